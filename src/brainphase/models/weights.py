"""Which weight files a checkpoint folder holds, and their sha256: without importing torch.

``brainphase extract`` records these hashes in ``weights_sha256``; every ``brainphase encode``
job re-hashes the checkpoint it is told the activations come from
(:func:`brainphase.verify.check_activations_checkpoint`). Keeping this apart from
:mod:`brainphase.models.checkpoints` (which imports torch, ~2 s) keeps torch out of encode jobs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from brainphase.errors import InputError
from brainphase.io import sha256_file

_SAFETENSORS = re.compile(r"^model(-\d+-of-\d+)?\.safetensors$")
_TORCH_BIN = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
