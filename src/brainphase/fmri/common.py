"""Helpers shared by every input kind of ``brainphase load-fmri``: run names, timing, cleaning,
response tables, the group average and the noise ceiling.

Timing convention (``bids`` and ``roi-table``). ``--dummy-scans d`` drops the first ``d``
volumes of every file. ``--first-volume-time T`` is the **stimulus time (s) at the start of the
first retained volume**: T = 20 when that volume starts 20 s into the audio, T = -4 when it
starts 4 s before the audio. One stimulus second lasts ``--time-scale`` scanner seconds, so
retained volume ``k`` starts at stimulus time ``T + k * tr / time_scale``. Each run stores
``first_volume_time = T`` and ``volume_interval = tr / time_scale`` (``docs/hdf5_layout.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError

log = logging.getLogger(__name__)

CONFOUND_STRATEGIES = ("motion", "wm_csf", "global_signal", "compcor", "high_pass")
#: what ``--confounds auto`` means for BIDS derivatives (tables and sentences carry no confounds)
AUTO_BIDS_CONFOUNDS = ("motion", "wm_csf")
TABLE_SUFFIXES = (".tsv", ".csv", ".npz", ".npy")
VOXEL_BLOCK = 16384
CEILING_BLOCK = 4096


# --------------------------------------------------------------------------- run names
def parse_run_map(items: list[str] | None) -> dict[str, str]:
    """``--run-map`` as {file run label: stimulus run}.

    ``items`` is one JSON file, one inline JSON object (``'{"story 1": "story"}'``, any
    characters), or ``label=run`` pairs (labels without ``=``).
    """
    if not items:
        return {}
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        return _run_map_object(items[0], "--run-map (inline JSON)")
    if len(items) == 1 and "=" not in items[0]:
        path = Path(items[0])
        if not path.is_file():
            raise InputError(f"--run-map {path}: not a file, not a JSON object and not label=run pairs")
        return _run_map_object(path.read_text(), f"--run-map {path}")
    mapping = {}
    for item in items:
        if item.count("=") != 1:
            raise InputError(f"--run-map {item!r}: expected label=run (for labels containing '=' give a JSON object)")
        label, run = item.split("=")
        mapping[label.strip()] = run.strip()
    return mapping


def _run_map_object(text: str, source: str) -> dict[str, str]:
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(mapping, dict):
        raise InputError(f"{source}: expected a JSON object {{file_run_label: stimulus_run}}")
    return {str(k): str(v) for k, v in mapping.items()}


_ENTITY = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")


def bids_entities(name: str) -> dict[str, str]:
    """Entities of a BIDS file name, e.g. ``{"sub": "01", "task": "x", "run": "1", "desc": "preproc"}``."""
    return {key: value for key, value in _ENTITY.findall(name.split(".")[0])}


# --------------------------------------------------------------------------- cleaning and timing
def confound_strategies(args: argparse.Namespace) -> list[str]:
    """The load_confounds strategies in effect: ``auto`` = motion + wm_csf for bids, none otherwise."""
    if args.confounds == ["auto"]:
        return list(AUTO_BIDS_CONFOUNDS) if args.kind == "bids" else []
    return [] if args.confounds == ["none"] else list(args.confounds)


def clean_signals(signals: np.ndarray, tr: float, args: argparse.Namespace, confounds: np.ndarray | None = None) -> np.ndarray:
    """Clean one run with :func:`nilearn.signal.clean` as configured (detrend, high-pass, confounds, z-score).

    Parameters
    ----------
    signals : ndarray, shape (n_trs, n_columns)
    tr : float
    args : argparse.Namespace
        Uses ``detrend``, ``high_pass`` (0 = off) and ``standardize``.
    confounds : ndarray, shape (n_trs, n_confounds), optional

    Returns
    -------
    ndarray, shape (n_trs, n_columns), float32
    """
    from nilearn.signal import clean  # noqa: PLC0415

    standardize = None if args.standardize == "none" else args.standardize
    cleaned = clean(np.asarray(signals, np.float64), detrend=args.detrend, standardize=standardize,
                    confounds=confounds, high_pass=args.high_pass or None, t_r=tr,
                    butterworth__copy=True)  # vectorised filtfilt (nilearn loops over voxels otherwise)
    return cleaned.astype(np.float32)


def run_timing(args: argparse.Namespace, tr: float) -> dict[str, float]:
    """The per-run timing attributes: ``first_volume_time`` and ``volume_interval = tr / time_scale`` (s)."""
    return {"first_volume_time": float(args.first_volume_time), "volume_interval": tr / args.time_scale}


def stimulus_to_scanner(onset: np.ndarray, args: argparse.Namespace, tr: float) -> np.ndarray:
    """Scanner time (s from the first volume of the file, dummy scans included) of stimulus times, shape as ``onset``."""
    return args.dummy_scans * tr + args.time_scale * (np.asarray(onset, float) - args.first_volume_time)


def check_duration(run: str, source: str, n_trs: int, tr: float, args: argparse.Namespace, words: pd.DataFrame) -> None:
    """Error when the kept volumes end more than one volume before the run's last word offset.

    Logs a warning when words start before the first kept volume (they get no response).
    """
    timing = run_timing(args, tr)
    start, interval = timing["first_volume_time"], timing["volume_interval"]
    end = start + n_trs * interval
    last_offset = float(words["offset"].max())
    log.info("%s: %d retained volumes cover stimulus time %g-%g s; the words of run %r span %g-%g s",
             source, n_trs, start, end, run, float(words["onset"].min()), last_offset)
    if end < last_offset - interval:
        raise InputError(
            f"{source}: {n_trs} retained volumes x TR {tr:g} s cover stimulus time {start:g}-{end:g} s, but stimulus "
            f"run {run!r} lasts until {last_offset:g} s; check --run-map, --dummy-scans, --time-scale and "
            f"--first-volume-time (stimulus time at the start of the first retained volume, e.g. 20 when it starts "
            f"20 s into the audio)")
    early = int((words["onset"] < start).sum())
    if early:
        log.warning("%s: %d words of run %r start before the first kept volume (stimulus time %g s)", source, early, run, start)


def check_trs(trs: dict[Path, float], tolerance: float) -> float:
    """The one TR shared by all files (within ``tolerance`` s), else an error naming two files."""
    items = list(trs.items())
    first_path, first_tr = items[0]
    for path, tr in items[1:]:
        if abs(tr - first_tr) > tolerance:
            raise InputError(f"TR mismatch: {first_path} has TR {first_tr:g} s but {path} has {tr:g} s "
                             f"(tolerance {tolerance:g} s); load runs with one TR together")
    return first_tr


# --------------------------------------------------------------------------- response tables
def read_table(path: Path) -> tuple[np.ndarray, list[str]]:
    """A response table: TSV/CSV with a header of target names, NPZ (``data``, ``names``) or NPY (no names).

    Returns
    -------
    data : ndarray, shape (n_rows, n_targets) float64
    names : list of str, length n_targets
    """
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "data" not in archive:
                raise InputError(f"{path}: NPZ needs an array 'data' (n_rows, n_targets) and optionally 'names'")
            data = np.asarray(archive["data"], np.float64)
            names = [str(n) for n in archive["names"]] if "names" in archive else None
    elif path.suffix == ".npy":
        data, names = np.asarray(np.load(path, allow_pickle=False), np.float64), None
    else:
        frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
        non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise InputError(f"{path}: non-numeric column(s) {non_numeric}; a table holds one numeric column per ROI/target")
        data, names = frame.to_numpy(np.float64), [str(c) for c in frame.columns]
    if data.ndim != 2:
        raise InputError(f"{path}: expected a 2-D table (rows x targets), got shape {data.shape}")
    names = names or [f"target_{i}" for i in range(data.shape[1])]
    if len(names) != data.shape[1]:
        raise InputError(f"{path}: {len(names)} names for {data.shape[1]} columns")
    return data, names


def drop_bad_columns(tables: dict, source: str) -> tuple[np.ndarray, int]:
    """Columns finite and non-constant in every table -> (kept column indices, n_dropped), logged."""
    valid = None
    for data in tables.values():
        ok = np.isfinite(data).all(axis=0) & (np.nanmax(data, axis=0) != np.nanmin(data, axis=0))
        valid = ok if valid is None else valid & ok
    n_dropped = int((~valid).sum())
    if n_dropped:
        log.warning("%s: dropped %d of %d targets with NaN/inf or constant values", source, n_dropped, len(valid))
    if not valid.any():
        raise InputError(f"{source}: every target is NaN or constant")
    return np.flatnonzero(valid), n_dropped


def same_names(names_by_file: dict[Path, list[str]]) -> list[str]:
    """The target names shared by every table, else an error naming the first file that differs."""
    items = list(names_by_file.items())
    for path, names in items[1:]:
        if names != items[0][1]:
            raise InputError(f"{path}: targets {names[:5]}... differ from {items[0][0]} {items[0][1][:5]}...")
    return items[0][1]


# --------------------------------------------------------------------------- group average and noise ceiling
def write_average(out, subjects: list[str], runs: list[str]) -> None:
    """Pseudo-subject ``average``: mean of the subjects' cleaned runs (same length required)."""
    for run in runs:
        shapes = {s: out[f"subjects/{s}/runs/{run}/bold"].shape for s in subjects}
        if len(set(shapes.values())) > 1:
            raise InputError(f"--group-average: run {run} has different shapes across subjects {shapes}")
        shape = next(iter(shapes.values()))
        dataset = out.create_dataset(f"subjects/average/runs/{run}/bold", shape=shape, dtype=np.float32,
                                     chunks=(shape[0], min(VOXEL_BLOCK, shape[1])))
        for start in range(0, shape[1], VOXEL_BLOCK):
            stop = min(start + VOXEL_BLOCK, shape[1])
            dataset[:, start:stop] = np.mean([out[f"subjects/{s}/runs/{run}/bold"][:, start:stop] for s in subjects], axis=0)
        group = out[f"subjects/average/runs/{run}"]
        group.attrs.update({k: v for k, v in out[f"subjects/{subjects[0]}/runs/{run}"].attrs.items()})
        group.attrs["source"] = f"mean over {len(subjects)} subjects"


def choose_ceiling(method: str, subjects: list[str], runs: list[str], repeats: dict) -> str:
    """Resolve ``--ceiling auto``: repeats if every subject has every run repeated, else loso with >= 2 subjects."""
    fully_repeated = len(repeats) == len(subjects) and all(len(repeats[s]) == len(runs) for s in subjects)
    if method == "auto":
        method = "repeats" if fully_repeated else ("loso" if len(subjects) >= 2 else "none")
        if method == "none":
            log.info("noise ceiling: none (one subject and no repeated runs)")
    if method == "repeats" and not fully_repeated:
        raise InputError("--ceiling repeats: needs every run presented at least twice to every subject "
                         "(map several BIDS runs to one stimulus run with --run-map)")
    if method == "loso" and len(subjects) < 2:
        raise InputError(f"--ceiling loso: needs at least 2 subjects, got {len(subjects)}")
    return method


def write_ceilings(out, scratch, subjects: list[str], runs: list[str], repeats: dict, n_voxels: int,
                   args: argparse.Namespace) -> None:
    """Write ``/subjects/{sub}/noise_ceiling`` (n_voxels,) with the chosen estimator (fmri.ceiling).

    ``repeats`` is {subject: {run: [scratch keys of the cleaned repeats]}}, read from ``scratch``.
    """
    from brainphase.fmri.ceiling import ceiling_from_repeats, ceiling_loso, ceiling_of_average  # noqa: PLC0415

    method = choose_ceiling(args.ceiling, subjects, runs, repeats)
    out.attrs["ceiling_method"] = method
    if method == "none":
        return
    ceilings = np.zeros((len(subjects), n_voxels), np.float32)
    group = np.zeros(n_voxels, np.float32)
    for start in range(0, n_voxels, CEILING_BLOCK):
        stop = min(start + CEILING_BLOCK, n_voxels)
        if method == "repeats":
            for s, subject in enumerate(subjects):
                stacked = np.concatenate([np.stack([scratch[key][:, start:stop] for key in repeats[subject][run]])
                                          for run in runs], axis=1)  # (n_repeats, n_trs_total, block)
                ceilings[s, start:stop] = ceiling_from_repeats(stacked)
        else:
            stacked = np.stack([np.concatenate([out[f"subjects/{s}/runs/{r}/bold"][:, start:stop] for r in runs])
                                for s in subjects])  # (n_subjects, n_trs_total, block)
            ceilings[:, start:stop], group[start:stop] = ceiling_loso(stacked, with_group=True)
    for s, subject in enumerate(subjects):
        out.create_dataset(f"subjects/{subject}/noise_ceiling", data=ceilings[s])
    if args.group_average:
        if method == "repeats":
            log.info("noise ceiling of 'average' from the repeat ceilings of the subjects")
            group = ceiling_of_average(ceilings).astype(np.float32)
        out.create_dataset("subjects/average/noise_ceiling", data=group)
    log.info("noise ceiling (%s): median over voxels %.3f", method, float(np.nanmedian(ceilings)))
