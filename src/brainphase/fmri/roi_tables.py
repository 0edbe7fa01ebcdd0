"""``load-fmri --kind roi-table``: one volume x ROI table per subject and run -> responses.h5.

Files, anywhere under ``--root`` (sub-folders allowed)::

    sub-<subject>[_...]_run-<label>[_...].tsv | .csv | .npz | .npy
    sub-<subject>[_...]_run-<label>[_...].json      (optional sidecar: {"RepetitionTime": 2.0})

- ``<subject>``: letters and digits, as in BIDS.
- ``<label>``: the run label, with any characters (spaces, ``-``, ``_``, ``.``). It is found by
  matching ``run-<label>`` against the ``--run-map`` keys and the stimulus run names (the longest
  that matches, followed by ``_`` or the end of the name); otherwise it is the text after
  ``run-`` up to the next ``_``. ``--run-map`` maps it to a stimulus run (default: the same
  name). When the stimulus has a single run, files without ``run-`` belong to it.
- Content: one row per volume, one numeric column per ROI; the TSV/CSV header gives the ROI
  names (every column is an ROI: no index or time column). NPZ: arrays ``data`` (n_volumes,
  n_rois) and ``names``; NPY: the array alone (ROIs named ``target_<i>``). Every table has the
  same ROIs in the same order.
- TR: ``--tr`` (config ``fmri.tr``) or the sidecar's ``RepetitionTime``; when both are given
  they must agree within ``--tr-tolerance``, and all tables share one TR.

Each subject needs every run. Cleaning is :func:`nilearn.signal.clean` per run (detrend,
high-pass, z-score; tables carry no confounds), timing as in :mod:`brainphase.fmri.common`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np

from brainphase.errors import InputError
from brainphase.fmri.common import (TABLE_SUFFIXES, check_duration, check_trs, clean_signals, confound_strategies,
                                    drop_bad_columns, parse_run_map, read_table, run_timing, same_names, write_average,
                                    write_ceilings)
from brainphase.io import atomic_h5, provenance, string_array
from brainphase.config import schema_default
from brainphase.encoding.stimulus_cache import write_stimulus_baselines
from brainphase.stimuli import read_stimulus

log = logging.getLogger(__name__)

_SUBJECT = re.compile(r"^sub-([a-zA-Z0-9]+)(?=_|$)")
_ANY_RUN = re.compile(r"(?:^|_)run-([^_]+)")


def table_run_label(stem: str, known_labels: list[str]) -> str | None:
    """The run label in a table's file name (without suffix), or None when it has no ``run-``.

    Parameters
    ----------
    stem : str
        File name without the table suffix, e.g. ``"sub-01_run-pie man.v2"``.
    known_labels : list of str
        Labels to look for first (run-map keys and stimulus run names), any characters.

    Returns
    -------
    str or None
        The longest known label written as ``run-<label>`` followed by ``_`` or the end of the
        name; else the text after ``run-`` up to the next ``_``; else None.
    """
    matching = [label for label in known_labels
                if re.search(r"(?:^|_)run-" + re.escape(label) + r"(?=_|$)", stem)]
    if matching:
        return max(matching, key=len)
    generic = _ANY_RUN.search(stem)
    return generic.group(1) if generic else None


def _table_stem(path: Path) -> str:
    return path.name[: -len(path.suffix)]


def find_tables(args: argparse.Namespace, stimulus_runs: list[str]) -> dict[tuple[str, str], Path]:
    """The tables under ``--root``: {(``sub-<subject>``, stimulus run): path}, checked for unknown runs and duplicates."""
    root = Path(args.root)
    if not root.is_dir():
        raise InputError(f"--root {root}: not a directory")
    run_map = parse_run_map(args.run_map)
    known = list(dict.fromkeys([*run_map, *stimulus_runs]))
    wanted = {s.removeprefix("sub-") for s in args.subjects} if args.subjects else None
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(p for p in root.rglob("sub-*") if p.is_file() and p.suffix in TABLE_SUFFIXES):
        if "events" in path.name:
            continue
        stem = _table_stem(path)
        subject = _SUBJECT.match(stem)
        if subject is None:
            raise InputError(f"{path}: the name must start with sub-<subject>_ (letters and digits), e.g. sub-01_run-1.tsv")
        if wanted is not None and subject.group(1) not in wanted:
            continue
        label = table_run_label(stem, known)
        if label is None:
            if len(stimulus_runs) != 1:
                raise InputError(f"{path}: no run-<label> in the name, and the stimulus {args.stimulus} has "
                                 f"{len(stimulus_runs)} runs; name the file ..._run-<label>.{path.suffix[1:]}")
            log.info("%s: no run- in the name; it is the single stimulus run %r", path, stimulus_runs[0])
            run = stimulus_runs[0]
        else:
            run = run_map.get(label, label)
        if run not in stimulus_runs:
            raise InputError(f"{path}: run label {label!r} maps to {run!r}, not a run of {args.stimulus} "
                             f"({stimulus_runs}); add it to run_map (--run-map), e.g. {{{label!r}: {stimulus_runs[0]!r}}}")
        key = (f"sub-{subject.group(1)}", run)
        if key in found:
            raise InputError(f"{path}: a second table for {key[0]} run {run!r} (also {found[key]}); "
                             "keep one per subject and run")
        found[key] = path
    if not found:
        raise InputError(f"--root {root}: no sub-<subject>_run-<label>.tsv|csv|npz|npy ROI tables found"
                         + (f" for subjects {sorted(wanted)}" if wanted else ""))
    return found


def table_tr(path: Path, tr_option: float | None, tolerance: float) -> float:
    """TR (s) of one table: ``--tr`` and/or the sidecar ``<stem>.json`` ``RepetitionTime`` (must agree)."""
    sidecar = path.with_suffix(".json")
    sidecar_tr = None
    if sidecar.is_file():
        try:
            sidecar_tr = json.loads(sidecar.read_text()).get("RepetitionTime")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise InputError(f"{sidecar}: not a JSON object with RepetitionTime ({exc})") from exc
    if sidecar_tr is None and tr_option is None:
        raise InputError(f"{path}: no TR; give --tr (config fmri.tr, in s) or a sidecar {sidecar.name} "
                         '{"RepetitionTime": <s>}')
    if sidecar_tr is not None and tr_option is not None and abs(float(sidecar_tr) - tr_option) > tolerance:
        raise InputError(f"TR mismatch: --tr (fmri.tr) is {tr_option:g} s but {sidecar} RepetitionTime is {sidecar_tr:g} s")
    tr = float(sidecar_tr if sidecar_tr is not None else tr_option)
    if not tr > 0:
        raise InputError(f"{sidecar if sidecar_tr is not None else '--tr'}: TR {tr:g} s must be > 0")
    return tr


def load_roi_tables(args: argparse.Namespace) -> None:
    """``--kind roi-table``: one volume x ROI table per subject and run -> responses.h5."""
    if confound_strategies(args):
        raise InputError(f"--confounds {' '.join(args.confounds)}: ROI tables carry no confounds; "
                         "use --confounds auto or none")
    stimulus = read_stimulus(args.stimulus)
    stimulus_runs = list(dict.fromkeys(stimulus["run"]))
    paths = find_tables(args, stimulus_runs)
    trs = {path: table_tr(path, args.tr, args.tr_tolerance) for path in paths.values()}
    tr = check_trs(trs, args.tr_tolerance)
    tables, names = {}, {}
    for (subject, run), path in paths.items():
        data, names[path] = read_table(path)
        if len(data) <= args.dummy_scans:
            raise InputError(f"{path}: {len(data)} rows, not more than --dummy-scans {args.dummy_scans}")
        tables[subject, run] = data[args.dummy_scans:]
        check_duration(run, str(path), len(tables[subject, run]), tr, args, stimulus[stimulus["run"] == run])
    roi_names = same_names(names)
    subjects = sorted({s for s, _ in tables})
    runs = [r for r in stimulus_runs if any(k[1] == r for k in tables)]
    missing = [(s, r) for s in subjects for r in runs if (s, r) not in tables]
    if missing:
        raise InputError(f"--root {args.root}: no table for {missing}; every subject needs every run")
    if len(runs) < len(stimulus_runs):
        log.info("stimulus runs without tables (not loaded): %s", [r for r in stimulus_runs if r not in runs])
    columns, n_dropped = drop_bad_columns(tables, str(args.root))
    attrs = provenance("load-fmri", args, [args.stimulus] + list(paths.values()), simulated=False, tr=tr,
                       dataset_kind="roi-table", subjects=subjects + (["average"] if args.group_average else []),
                       runs=runs, n_dropped_voxels=n_dropped, n_voxels=len(columns), confounds=["none"])
    with atomic_h5(args.out, attrs) as out:
        out.create_dataset("rois/names", data=string_array([roi_names[c] for c in columns]))
        out.create_dataset("rois/labels", data=np.arange(1, len(columns) + 1, dtype=np.int16))
        write_stimulus_baselines(out, stimulus, schema_default("encode.frequency_language"))
        for subject in subjects:
            for run in runs:
                out.create_dataset(f"subjects/{subject}/runs/{run}/bold",
                                   data=clean_signals(tables[subject, run][:, columns], tr, args))
                group = out[f"subjects/{subject}/runs/{run}"]
                group.attrs.update({**run_timing(args, tr), "source": str(paths[subject, run]), "n_repeats": 1})
        if args.group_average:
            write_average(out, subjects, runs)
        write_ceilings(out, None, subjects, runs, {}, len(columns), args)
    log.info("wrote %s: %d subjects x %d runs, %d ROIs (TR %g s)", args.out, len(subjects), len(runs), len(columns), tr)

