"""HDF5 and file I/O shared by every stage: atomic writes, provenance, hashing.

Every HDF5 file brainphase writes goes through :func:`atomic_h5`, which writes to a
temporary file beside the target and renames it into place only when the block finished
without error, so a crash or a bad input never leaves a half-written output. The root
group of every file carries the provenance attributes listed in ``docs/hdf5_layout.md``
(``brainphase_version``, ``stage``, ``created_utc``, ``config_json``, ``config_sha256``,
``input_sha256``, ``working_dir`` and stage-specific ones such as ``model_id``, ``revision``, ``step``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import h5py
import numpy as np

from brainphase import __version__
from brainphase.errors import InputError

_HASH_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file's bytes (streamed, constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Map each path (as given, as a string) to its sha256. Directories hash every file inside."""
    hashes: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                hashes[str(child)] = sha256_file(child)
        else:
            hashes[str(path)] = sha256_file(path)
    return hashes


def to_jsonable(value: Any) -> Any:
    """Convert argparse namespaces, paths and numpy scalars into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return to_jsonable({k: v for k, v in vars(value).items() if not k.startswith("_") and not callable(v)})
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def config_sha256(config: Any) -> str:
    """Stable sha256 of a configuration (dict or argparse namespace), keys sorted."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def provenance(stage: str, config: Any, inputs: Iterable[str | os.PathLike] = (), **extra: Any) -> dict:
    """Build the provenance attributes written on the root of every HDF5 output.

    Parameters
    ----------
    stage : str
        Name of the CLI step that wrote the file (``"extract"``, ``"encode"``...).
    config : dict or argparse.Namespace
        The settings that produced the file; stored as JSON and hashed.
    inputs : iterable of path
        Input files (or directories: every file inside) whose sha256 are recorded in
        ``input_sha256``, keyed by the path as given; relative paths are relative to the
        recorded ``working_dir``. A checkpoint's weights are recorded by the stage that loads
        it, in ``weights_sha256``.
    **extra
        Further attributes, e.g. ``model_id``, ``revision``, ``step``, ``tokens``.
    """
    attrs = {
        "brainphase_version": __version__,
        "stage": stage,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config_json": json.dumps(to_jsonable(config), sort_keys=True),
        "config_sha256": config_sha256(config),
        "input_sha256": json.dumps(sha256_files(inputs), sort_keys=True),
        "working_dir": os.getcwd(),  # relative input paths are relative to it (`brainphase verify`)
    }
    attrs.update(extra)
    return attrs


def write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Write attributes, storing ``None`` as the empty string and dicts/lists of str as JSON."""
    for key, value in attrs.items():
        if value is None:
            value = ""
        elif isinstance(value, Mapping):
            value = json.dumps(to_jsonable(value), sort_keys=True)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            value = np.array(value, dtype=h5py.string_dtype())
        elif isinstance(value, Path):
            value = str(value)
        obj.attrs[key] = value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_sibling(path: Path, suffix: str) -> Path:
    """A new empty file beside ``path`` with the permissions a plain ``open`` would give it.

    ``mkstemp`` creates files readable by their owner only; outputs on a shared cluster must
    be readable by the group as the umask allows, so the mode is reset before the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, attrs: Mapping[str, Any] | None = None) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only on success.

    The file is written as a hidden temporary sibling; when the ``with`` block exits
    without error the root attributes ``attrs`` are written, the file is closed and renamed
    onto ``path`` (atomic on POSIX). On any exception the temporary file is removed and an
    existing file at ``path`` is left untouched.
    """
    path = Path(path)
    tmp = _temp_sibling(path, ".tmp.h5")
    try:
        with h5py.File(tmp, "w") as handle:
            yield handle
            if attrs:
                write_attrs(handle, attrs)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that is renamed onto ``path`` only on success.

    An existing directory at ``path`` is replaced on success and kept on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path for any file format; renamed onto ``path`` only on success."""
    path = Path(path)
    tmp = _temp_sibling(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_attrs(path: str | os.PathLike) -> dict:
    """Return the root attributes of an HDF5 file as plain Python values."""
    with open_h5(path) as handle:
        return {k: _plain(v) for k, v in handle.attrs.items()}


def attr_text(obj: h5py.HLObject, key: str, default: str = "") -> str:
    """A string attribute of an HDF5 object as ``str`` (h5py may return ``bytes``);
    ``default`` when the attribute is absent."""
    return str(_plain(obj.attrs.get(key, default)))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, stage: str | None = None) -> Iterator[h5py.File]:
    """Open a brainphase HDF5 file read-only, with a clear error if it is missing or not HDF5.

    If ``stage`` is given, the file's ``stage`` attribute must match it, so that e.g. a
    scores file passed where activations are expected is reported by name.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc}); it is truncated or corrupt: delete it and re-run the step that wrote it") from exc
    with handle:
        if stage is not None:
            found = _plain(handle.attrs.get("stage", ""))
            if found != stage:
                raise InputError(
                    f"{path}: expected a file written by `brainphase {stage}`, "
                    f"but its 'stage' attribute is {found!r}"
                )
        yield handle


def read_nonempty_text(path: str | os.PathLike, fix: str) -> str:
    """The UTF-8 text of ``path``; an InputError naming the file and ``fix`` when it is
    missing or holds only whitespace."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found; {fix}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise InputError(f"{path}: empty; {fix}")
    return text


def string_array(values: Iterable[str]) -> np.ndarray:
    """A numpy array of variable-length UTF-8 strings, ready for ``create_dataset``."""
    return np.array(list(values), dtype=h5py.string_dtype())


def read_strings(dataset: h5py.Dataset) -> list[str]:
    """Read a dataset of strings as a list of Python ``str``."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in dataset[()]]
