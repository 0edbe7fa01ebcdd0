"""The size of the model a trajectory belongs to: parameters and architecture, read cheaply.

``brainphase aggregate`` records it as the ``/model`` group of ``metrics.h5`` (copied into
``trajectory.h5`` by ``brainphase phases``), so every trajectory carries its place on the size
axis. The checkpoint is the one the scores were computed for (``checkpoint`` and
``checkpoint_revision`` in the ``config_json`` of a scores file, set by the ``encode`` rule): a
local folder, or a Hugging Face revision found in the local cache (never downloaded). Nothing is
guessed: a number is written only when it is read from the checkpoint.

- ``n_parameters``: sum of the tensor sizes in the JSON headers of the ``model*.safetensors``
  files transformers loads (:func:`brainphase.models.weights.weight_files`; no
  tensor is read, nothing is hashed); absent for ``.bin`` weights or an uncached revision.
- ``n_layers`` and ``hidden_size``: from ``config.json`` (``num_hidden_layers`` / ``n_layer`` /
  ``num_layers``; ``hidden_size`` / ``n_embd`` / ``d_model``).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import h5py
import numpy as np

from brainphase.io import attr_text
from brainphase.models.weights import weight_files

#: config.json keys of the transformer's depth and width, in order of preference
_CONFIG_KEYS = {"n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
                "hidden_size": ("hidden_size", "n_embd", "d_model")}


def safetensors_parameters(path: str | Path) -> int:
    """Number of parameters in a ``.safetensors`` file, from its JSON header (no tensor is read)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return int(sum(np.prod(entry["shape"], dtype=np.int64) for key, entry in header.items() if key != "__metadata__"))


def folder_size(folder: Path) -> dict:
    """``n_parameters``, ``n_layers``, ``hidden_size`` of a checkpoint folder: those that can be read.

    Parameters
    ----------
    folder : Path
        A Hugging Face checkpoint folder (``config.json`` and weights), or a cached snapshot.

    Returns
    -------
    dict
        Only the keys that were read; empty when the folder has neither config nor safetensors.
    """
    size = {}
    weights = [path for path in weight_files(folder) if path.suffix == ".safetensors"]
    if weights:
        size["n_parameters"] = sum(safetensors_parameters(path) for path in weights)
    config_path = folder / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        config = config.get("text_config", config)  # multimodal configs nest the language model's
        for name, keys in _CONFIG_KEYS.items():
            found = next((config[key] for key in keys if isinstance(config.get(key), int)), None)
            if found is not None:
                size[name] = int(found)
    return size


def checkpoint_reference(scores: h5py.File) -> tuple[str, str | None] | None:
    """``(checkpoint, revision)`` a scores file was computed for, from its ``config_json``; None when not recorded."""
    config = json.loads(attr_text(scores, "config_json") or "{}")
    checkpoint = config.get("checkpoint")
    return (str(checkpoint), config.get("checkpoint_revision")) if checkpoint else None


def model_size(scores: h5py.File) -> dict:
    """What is known of the size of the checkpoint behind one scores file (layout: ``/model`` of metrics.h5).

    Returns
    -------
    dict
        ``checkpoint`` and ``checkpoint_revision`` (``""`` for none) when the scores name their
        checkpoint, plus whichever of ``n_parameters``, ``n_layers``, ``hidden_size`` could be
        read (:func:`folder_size`); empty when the scores do not name a checkpoint.
    """
    from brainphase.verify import checkpoint_folder

    reference = checkpoint_reference(scores)
    if reference is None:
        return {}
    folder = checkpoint_folder(*reference)
    size = folder_size(folder) if folder is not None and folder.is_dir() else {}
    return {"checkpoint": reference[0], "checkpoint_revision": reference[1] or "", **size}
