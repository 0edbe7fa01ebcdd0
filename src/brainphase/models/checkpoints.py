"""Load one language-model checkpoint (local folder or Hugging Face revision) with provenance.

:func:`load_checkpoint` returns the model in eval mode on the chosen device, its tokenizer
and an ``info`` dict (model id, revision, step, tokens seen, sha256 of the weight files,
geometry) that the ``extract`` and ``tasks`` stages write into their HDF5 outputs.

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

import dataclasses
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from brainphase.errors import InputError
from brainphase.io import sha256_file
from brainphase.models.revisions import infer_revision, steps_to_tokens, tokens_per_step

log = logging.getLogger(__name__)

#: Metadata file written next to each checkpoint by ``brainphase train``.
CHECKPOINT_META = "brainphase_checkpoint.json"
_SAFETENSORS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
_TORCH_BIN = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The weight files transformers loads from a checkpoint folder (safetensors preferred).

    Returns
    -------
    list of Path, sorted; empty if the folder holds no ``model*.safetensors`` or
    ``pytorch_model*.bin``.
    """
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    chosen = [n for n in names if _SAFETENSORS.match(n)] or [n for n in names if _TORCH_BIN.match(n)]
    return [folder / n for n in chosen]


def hash_weights(files: list[Path]) -> dict[str, str]:
    """``{file name: sha256}``; a file cached from the Hub must match its content-addressed blob.

    In the Hugging Face cache, a large file is a link to ``blobs/<sha256 of its bytes>``, so
    a mismatch means the download is corrupt.
    """
    hashes = {}
    for path in files:
        digest = sha256_file(path)
        target = Path(os.path.realpath(path))
        if target.parent.name == "blobs" and _HEX64.match(target.name) and target.name != digest:
            raise InputError(
                f"{path}: corrupt download (sha256 {digest[:12]}... differs from the Hub's {target.name[:12]}...); "
                f"delete {target} and download again"
            )
        hashes[path.name] = digest
    return hashes


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


def _check_hub_revision(source: str, revision: str) -> None:
    """Fetch (or find in the cache) the config of a Hub revision, or say how to download it."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(source, revision=revision)
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
    revision : str, optional
        Branch / tag / commit on the Hub, or the ``step{N}`` sub-folder of a local source.
    device : {"auto", "cpu", "cuda"}
        See :func:`resolve_device`.

    Raises
    ------
    InputError
        Revision not available (the message gives the ``hf download`` command), corrupt
        weight file (named), or a tokenizer whose token ids exceed the model's embeddings.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_device, dtype = resolve_device(device)
    local = Path(source).is_dir()
    if local:
        folder = _local_folder(Path(source), revision)
        target, hub_kwargs = str(folder), {}
    else:
        target, hub_kwargs = str(source), {"revision": revision or "main"}
        _check_hub_revision(target, hub_kwargs["revision"])
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **hub_kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"{target}: cannot load the tokenizer ({_one_line(exc)})") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, **hub_kwargs)
    except Exception as exc:  # safetensors / pickle / shape errors: find and name the bad file
        folder = folder if local else _hub_snapshot(target, hub_kwargs["revision"])
        raise _diagnose_weights(weight_files(folder), exc) from exc
    if not local:
        folder = _hub_snapshot(target, hub_kwargs["revision"])
    files = weight_files(folder)
    if not files:
        raise InputError(f"{folder}: no model*.safetensors or pytorch_model*.bin weight file")
    weights_sha256 = hash_weights(files)
    model.to(torch_device).eval()

    vocab_size = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab_size:
        raise InputError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab_size}; "
            "the tokenizer does not belong to this model"
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
        "n_layers": int(config.num_hidden_layers),
        "d_model": int(config.hidden_size),
        "max_positions": int(config.max_position_embeddings),
        "vocab_size": int(vocab_size),
    }
    log.info(
        "loaded %s (revision %s, step %s) from %s on %s/%s: %d layers, d_model %d",
        info["model_id"], info["revision"] or "-", info["step"], folder, info["device"], info["dtype"],
        info["n_layers"], info["d_model"],
    )
    return Checkpoint(model=model, tokenizer=tokenizer, info=info)


def _read_meta(folder: Path) -> dict:
    path = folder / CHECKPOINT_META
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run `brainphase train` or delete the file") from exc


def model_attrs(info: dict, model_id: str | None = None, seed: int | None = None, step: int | None = None,
                tokens_per_step: int | None = None) -> dict:
    """The model provenance attributes of an output file (``model_id``, ``revision``, ``seed``,
    ``step``, ``tokens``, ``weights_sha256``).

    ``model_id`` / ``seed`` override the checkpoint's labels. ``step`` fills in a step the
    checkpoint does not know (a plain local folder) and must agree with one it knows;
    ``tokens_per_step`` gives the tokens when neither the metadata nor the revision name does.
    """
    known_step = info["step"]
    if step is not None and known_step is not None and int(step) != int(known_step):
        raise InputError(f"{info['source']}: --step {step} contradicts the checkpoint's own step {known_step}")
    step = known_step if step is None else int(step)
    tokens = info["tokens"]
    if tokens is None and tokens_per_step is not None and step is not None:
        tokens = int(step) * int(tokens_per_step)
    return {
        "model_id": model_id or info["model_id"],
        "revision": info["revision"],
        "seed": info["seed"] if seed is None else int(seed),
        "step": step,
        "tokens": tokens,
        "weights_sha256": info["weights_sha256"],
    }


def add_checkpoint_arguments(parser) -> None:
    """Options of the steps that load one checkpoint (``brainphase extract``, ``brainphase tasks``)."""
    parser.add_argument("--model", required=True, help="checkpoint folder or Hugging Face repo id")
    parser.add_argument("--revision", default=None, help="Hub branch/tag/commit, or step{N} sub-folder of --model")
    parser.add_argument("--model-id", default=None, help="label stored in the output (default: from the checkpoint)")
    parser.add_argument("--seed", type=int, default=None, help="training seed label stored in the output")
    parser.add_argument("--step", type=int, default=None,
                        help="training step, for folders whose metadata and revision name do not give it")
    parser.add_argument("--tokens-per-step", type=int, default=None,
                        help="training tokens per step, when neither metadata nor revision name give the tokens")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def cli_model_attrs(info: dict, args) -> dict:
    """:func:`model_attrs` from the options of :func:`add_checkpoint_arguments`; the step and the
    tokens must be known, since every downstream stage orders checkpoints by them."""
    attrs = model_attrs(info, args.model_id, args.seed, args.step, args.tokens_per_step)
    if attrs["step"] is None:
        raise InputError(f"{args.model}: the training step is unknown (no {CHECKPOINT_META}, "
                         "no step in the revision name); pass --step")
    if attrs["tokens"] is None:
        raise InputError(f"{args.model}: the tokens seen at step {attrs['step']} are unknown; "
                         "pass --tokens-per-step (config key models.NAME.tokens_per_step)")
    return attrs
