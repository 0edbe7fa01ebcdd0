"""Load one language-model checkpoint (local folder or Hugging Face revision) with provenance.

:func:`load_checkpoint` returns the model in eval mode on the chosen device, its tokenizer
and an ``info`` dict (model id, revision, step, tokens seen, sha256 of the weight files,
geometry) that the ``extract`` and ``tasks`` stages write into their HDF5 outputs (labels and
their command-line options: :mod:`brainphase.models.labels`).

Sources
-------
* a local folder holding ``config.json`` and weights (e.g. ``models/tiny/seed0/step128``),
  or a folder of ``step{N}/`` sub-folders with ``revision="step{N}"``; the folder's
  ``brainphase_checkpoint.json`` (written by ``brainphase train``) gives model id, seed,
  step and tokens seen;
* a Hugging Face repository id with a ``revision`` (branch, tag or commit); the Hugging Face
  cache is used (``HF_HOME`` / ``HF_HUB_CACHE``) and ``HF_HUB_OFFLINE=1`` is respected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from brainphase.errors import InputError
from brainphase.models.architecture import model_kind
from brainphase.models.revisions import CHECKPOINT_META, infer_revision, steps_to_tokens, tokens_per_step
from brainphase.models.weights import hash_weights, weight_files

log = logging.getLogger(__name__)



@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        Causal LM in eval mode, on ``info["device"]`` with dtype ``info["dtype"]``.
    tokenizer : transformers.PreTrainedTokenizerBase
    info : dict
        ``model_id``, ``source``, ``revision``, ``step``, ``tokens`` (tokens seen, may be
        None), ``seed`` (from ``brainphase_checkpoint.json``, else None), ``weights_sha256``
        ({weight file name: sha256}), ``device``, ``dtype``, ``n_layers`` (transformer
        blocks), ``d_model``, ``max_positions``, ``vocab_size`` (embedding rows).
    """

    model: Any
    tokenizer: Any
    info: dict


def resolve_device(name: str = "auto") -> tuple[torch.device, torch.dtype]:
    """Compute device and dtype: CUDA with bfloat16 when available, else CPU with float32.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"}
    """
    has_cuda = torch.cuda.is_available()
    if name == "auto":
        name = "cuda" if has_cuda else "cpu"
    if name == "cuda":
        if not has_cuda:
            raise InputError("--device cuda: no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda"), torch.bfloat16
    if name == "cpu":
        return torch.device("cpu"), torch.float32
    raise InputError(f"--device {name!r}: choose auto, cpu or cuda")


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line (library messages span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _local_folder(source: Path, revision: str | None) -> Path:
    if revision is None:
        folder = source
    else:
        folder = source / revision
        if not folder.is_dir():
            available = sorted(p.name for p in source.iterdir() if (p / "config.json").is_file())
            raise InputError(
                f"{source}: revision {revision!r} is not available (no folder {folder}); "
                f"available: {available or 'none'}"
            )
    if not (folder / "config.json").is_file():
        steps = sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())
        hint = f"; pass --revision with one of its checkpoints: {', '.join(steps)}" if steps else ""
        raise InputError(f"{folder}: no config.json, not a Hugging Face checkpoint folder{hint}")
    return folder


def _check_hub_revision(source: str, revision: str):
    """Fetch (or find in the cache) the config of a Hub revision, or say how to download it."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"model {source!r} revision {revision!r} is not available ({_one_line(exc)}); "
            f"download it with `hf download {source} --revision {revision}` (or check the name)"
        ) from exc


def _hub_snapshot(source: str, revision: str) -> Path:
    """Folder of the cached snapshot of a Hub revision (after transformers downloaded it)."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json", revision=revision)
    if not isinstance(cached, str):
        raise InputError(
            f"model {source!r} revision {revision!r}: config.json is not in the Hugging Face cache; "
            f"download it with `hf download {source} --revision {revision}`"
        )
    return Path(cached).parent


def _diagnose_weights(files: list[Path], exc: Exception) -> InputError:
    """Name the weight file that cannot be read (each is opened on its own)."""
    for path in files:
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():
                        handle.get_tensor(key)
            else:
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as file_exc:  # any failure to read the file is what we report
            return InputError(
                f"{path}: corrupt or unreadable weight file ({_one_line(file_exc)}); "
                "download or save the checkpoint again"
            )
    names = ", ".join(str(p) for p in files) or "no weight files found"
    return InputError(f"cannot load the model weights ({names}): {_one_line(exc)}")


def load_checkpoint(source: str | os.PathLike, revision: str | None = None, device: str = "auto") -> Checkpoint:
    """Load model and tokenizer of one checkpoint.

    Parameters
    ----------
    source : str or path
        Local checkpoint folder (or folder of ``step{N}/`` folders) or Hugging Face repo id.
        A path that does not exist is an error, never looked up on the Hub.
    revision : str, optional
        Branch / tag / commit on the Hub, or the ``step{N}`` sub-folder of a local source.
    device : {"auto", "cpu", "cuda"}
        See :func:`resolve_device`.

    Raises
    ------
    InputError
        Missing local folder, revision not available (the message gives the ``hf download``
        command), corrupt weight file (named), an unsupported architecture
        (:func:`~brainphase.models.architecture.model_kind`), missing base-model weights, or
        a tokenizer whose token ids exceed the model's embeddings.
    """
    from transformers import AutoConfig, AutoTokenizer

    from brainphase.config import is_local_source

    torch_device, dtype = resolve_device(device)
    local = is_local_source(str(source))
    if local:
        source = Path(os.path.expanduser(str(source)))
        if not source.is_dir():
            raise InputError(f"{source}: no such checkpoint folder (a local path, not a Hugging Face repository id)")
        folder = _local_folder(source, revision)
        target, hub_kwargs = str(folder), {}
        config = AutoConfig.from_pretrained(target)
    else:
        target, hub_kwargs = str(source), {"revision": revision or "main"}
        config = _check_hub_revision(target, hub_kwargs["revision"])
    kind = model_kind(config, target if local else f"{target} (revision {hub_kwargs['revision']})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **hub_kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"{target}: cannot load the tokenizer ({_one_line(exc)})") from exc
    try:
        with _quiet_transformers():  # its loading report is replaced by the checks and notes below
            model, loading = _model_class(kind).from_pretrained(target, dtype=dtype, output_loading_info=True,
                                                                **hub_kwargs)
    except Exception as exc:  # safetensors / pickle / shape errors: find and name the bad file
        folder = folder if local else _hub_snapshot(target, hub_kwargs["revision"])
        raise _diagnose_weights(weight_files(folder), exc) from exc
    if not local:
        folder = _hub_snapshot(target, hub_kwargs["revision"])
    files = weight_files(folder)
    if not files:
        raise InputError(f"{folder}: no model*.safetensors or pytorch_model*.bin weight file")
    weights_sha256 = hash_weights(files)
    lm_head = _check_missing_weights(model, kind, loading.get("missing_keys", []), folder)
    if loading.get("unexpected_keys"):
        log.info("%s: %d stored weights not used (e.g. a masked-LM head): %s", folder, len(loading["unexpected_keys"]),
                 ", ".join(sorted(loading["unexpected_keys"])[:3]))
    model.to(torch_device).eval()

    vocab_size = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab_size:
        raise InputError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab_size}; "
            "the tokenizer does not belong to this model; put the tokenizer the model was trained with in this folder"
        )
    meta = _read_meta(folder) if local else {}
    step, tokens = infer_revision(revision) if revision else (None, None)
    if tokens is None and step is not None and tokens_per_step(str(source)) is not None:
        tokens = steps_to_tokens([step], tokens_per_step(str(source)))[0]
    config = model.config
    info = {
        "model_id": meta.get("model_id") or (Path(source).name if local else str(source)),
        "source": str(source),
        "revision": revision or ("" if local else "main"),
        "step": meta.get("step", step),
        "tokens": meta.get("tokens_seen", tokens),
        "seed": meta.get("seed"),
        "weights_sha256": weights_sha256,
        "device": str(torch_device),
        "dtype": str(dtype).removeprefix("torch."),
        "architecture": kind,
        "lm_head": lm_head,
        "n_layers": int(config.num_hidden_layers),
        "d_model": int(config.hidden_size),
        "max_positions": _max_positions(config, tokenizer),
        "vocab_size": int(vocab_size),
    }
    log.info(
        "loaded %s (%s, revision %s, step %s) from %s on %s/%s: %d layers, d_model %d",
        info["model_id"], kind, info["revision"] or "-", info["step"], folder, info["device"], info["dtype"],
        info["n_layers"], info["d_model"],
    )
    if kind == "encoder":
        log.info("%s is an encoder (masked LM): loaded without a head; each word's window is wrapped in the "
                 "tokenizer's special tokens and its context is bidirectional within the window", info["model_id"])
    return Checkpoint(model=model, tokenizer=tokenizer, info=info)


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _model_class(kind: str):
    from transformers import AutoModel, AutoModelForCausalLM

    return AutoModelForCausalLM if kind == "causal" else AutoModel


def _check_missing_weights(model, kind: str, missing: list[str], folder: Path) -> bool:
    """Whether the model has a trained next-token head; missing base-model weights are an error.

    Weights that the checkpoint lacks are randomly initialised by ``transformers``: in the
    base model they would make every hidden state meaningless; in the head (a causal model
    saved without it) only the task metrics, which are then skipped.
    """
    prefix = getattr(model, "base_model_prefix", "")
    in_base = [k for k in missing if kind == "encoder" or (prefix and k.startswith(prefix + "."))]
    in_base = [k for k in in_base if "pooler" not in k]  # encoders' pooler is not used
    if in_base:
        shown = ", ".join(in_base[:5]) + (" ..." if len(in_base) > 5 else "")
        raise InputError(f"{folder}: the checkpoint lacks {len(in_base)} weights of the model ({shown}); "
                         "they would be random. Check that the folder holds the full model")
    if kind == "encoder":
        return False
    head = [k for k in missing if k not in in_base]
    if head:
        log.warning("%s: no trained next-token head (%s missing): task metrics will be skipped", folder, ", ".join(head))
    return not head


def _max_positions(config, tokenizer) -> int:
    """Token positions the model can take, also bounded by the tokenizer's ``model_max_length``
    (RoBERTa-type configs count 2 padding offsets in ``max_position_embeddings``)."""
    limit = int(config.max_position_embeddings)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < limit:
        limit = tokenizer_limit
    return limit


def _read_meta(folder: Path) -> dict:
    path = folder / CHECKPOINT_META
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run `brainphase train` or delete the file") from exc
