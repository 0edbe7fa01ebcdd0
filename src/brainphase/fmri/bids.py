"""``load-fmri --kind bids``: fMRIPrep derivatives -> responses.h5.

Files: ``sub-*/[ses-*/]func/*_task-{task}_run-*_space-{space}[_res-*]_desc-preproc_bold.nii.gz``
with the matching ``_desc-brain_mask.nii.gz``, ``_desc-confounds_timeseries.tsv`` (read by
:func:`nilearn.interfaces.fmriprep.load_confounds`) and, when present, ``_events.tsv`` (checked
against the stimulus timings). Voxels are kept inside one mask shared by all subjects: the
**intersection** of every run's brain mask. The BOLD is masked in chunks of volumes read through
nibabel's array proxy (the same voxels and order as :class:`nilearn.maskers.NiftiMasker`
``transform`` with that mask), and cleaned with :func:`nilearn.signal.clean` in blocks of voxels,
so memory stays bounded by one run's masked data. Several BIDS runs mapped to the same stimulus
run are repeats: the stored response is their mean, and the repeat ceiling applies.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.fmri.common import (VOXEL_BLOCK, bids_entities, check_duration, check_trs, clean_signals,
                                    confound_strategies, parse_run_map, run_timing, stimulus_to_scanner,
                                    write_average, write_ceilings)
from brainphase.fmri.rois import on_grid, roi_labels
from brainphase.io import atomic_h5, provenance, string_array
from brainphase.config import schema_default
from brainphase.encoding.stimulus_cache import write_stimulus_baselines
from brainphase.stimuli import read_stimulus

log = logging.getLogger(__name__)

VOLUME_CHUNK = 32
EVENT_TOLERANCE_S = 0.5


@dataclass
class BoldRun:
    """One preprocessed BOLD file and its companions."""

    subject: str
    label: str  # BIDS run label (with ses- prefix when sessions exist)
    run: str  # stimulus run name
    bold: Path
    mask: Path
    space: str
    tr: float = 0.0
    n_trs: int = 0
    events: Path | None = None


def find_bold_runs(args: argparse.Namespace, stimulus_runs: list[str]) -> dict[str, dict[str, list[BoldRun]]]:
    """Discover the BOLD runs: {subject: {stimulus_run: [BoldRun, ...repeats]}}."""
    root = Path(args.root)
    if not root.is_dir():
        raise InputError(f"--root {root}: not a directory")
    run_map = parse_run_map(args.run_map)
    wanted = {s.removeprefix("sub-") for s in args.subjects} if args.subjects else None
    if wanted is not None and len(wanted) < len(args.subjects):
        raise InputError(f"--subjects {' '.join(args.subjects)}: a subject is named more than once (01 and sub-01 "
                         "are the same subject); give each subject once")
    labels_seen: set[str] = set()
    res_label = None if args.res is None else str(args.res)
    found: dict[str, dict[str, list[BoldRun]]] = {}
    candidates = sorted(root.glob("sub-*/func/*_desc-preproc_bold.nii*")) + sorted(root.glob("sub-*/ses-*/func/*_desc-preproc_bold.nii*"))
    for path in candidates:
        ent = bids_entities(path.name)
        if ent.get("task") != args.task or ent.get("space") != args.space:
            continue
        if res_label is not None and ent.get("res", "").removesuffix("mm") != res_label.removesuffix("mm"):
            continue
        subject = ent["sub"]
        labels_seen.update([ent.get("run", "")] + ([f"ses-{ent['ses']}_run-{ent.get('run')}"] if "ses" in ent else []))
        if wanted is not None and subject not in wanted:
            continue
        if "run" not in ent:
            raise InputError(f"{path}: no run- entity; every BOLD file needs a run label matched to a stimulus run")
        label = ent["run"] if "ses" not in ent else f"ses-{ent['ses']}_run-{ent['run']}"
        run = run_map.get(label, run_map.get(ent["run"], ent["run"]))
        if run not in stimulus_runs:
            raise InputError(f"{path}: run label {label!r} maps to stimulus run {run!r}, which is not in {args.stimulus} "
                             f"(runs {stimulus_runs}); fix --run-map")
        mask = Path(str(path).replace("_desc-preproc_bold", "_desc-brain_mask"))
        if not mask.is_file():
            raise InputError(f"{path}: brain mask {mask.name} not found beside it (fMRIPrep writes one per run)")
        stem = path.name.split("_space-")[0]
        events = path.parent / f"{stem}_events.tsv"
        runs = found.setdefault(subject, {}).setdefault(run, [])
        if any(r.label == label for r in runs):
            raise InputError(f"{path}: several BOLD files for sub-{subject} run {label} (different res-?); choose with --res")
        runs.append(BoldRun(subject, label, run, path, mask, ent["space"], events=events if events.is_file() else None))
    unmatched = sorted(set(run_map) - labels_seen)
    if unmatched and candidates:
        raise InputError(f"--run-map: run label(s) {', '.join(map(repr, unmatched))} name no BOLD file under {root} "
                         f"(task {args.task}, space {args.space}; labels found: {sorted(labels_seen - {''})}); "
                         "fix the labels in --run-map")
    if not found:
        raise InputError(f"--root {root}: no sub-*/[ses-*/]func/*_task-{args.task}_run-*_space-{args.space}"
                         f"_desc-preproc_bold.nii.gz found" + (f" for subjects {sorted(wanted)}" if wanted else ""))
    if wanted and set(wanted) - set(found):
        raise InputError(f"--subjects: no BOLD for {sorted(set(wanted) - set(found))} under {root}")
    run_sets = {s: sorted(r) for s, r in found.items()}
    reference = next(iter(run_sets.values()))
    for subject, runs in run_sets.items():
        if runs != reference:
            raise InputError(f"--root {root}: sub-{subject} has runs {runs} but sub-{next(iter(run_sets))} has {reference}; "
                             "every subject needs the same stimulus runs (filter with --subjects)")
    missing = [r for r in stimulus_runs if r not in reference]
    if missing:
        log.info("stimulus runs without BOLD (not loaded): %s", missing)
    return found


def bold_tr(path: Path, tolerance: float) -> tuple[float, int]:
    """TR (s) and number of volumes of a 4D NIfTI; header TR checked against the sidecar JSON."""
    import nibabel as nib  # noqa: PLC0415

    image = nib.load(path)
    if len(image.shape) != 4:
        raise InputError(f"{path}: a 3D image (shape {image.shape}) where a 4D BOLD time series is expected; "
                         "give the 4D *_desc-preproc_bold file (all volumes), not a single volume")
    zooms = image.header.get_zooms()
    units = image.header.get_xyzt_units()[1]
    tr = float(zooms[3]) / (1000.0 if units == "msec" else 1.0)
    sidecar = Path(str(path).split(".nii")[0] + ".json")
    if sidecar.is_file():
        sidecar_tr = json.loads(sidecar.read_text()).get("RepetitionTime")
        if sidecar_tr is not None and abs(float(sidecar_tr) - tr) > tolerance:
            raise InputError(f"TR mismatch: {path} header says {tr:g} s but {sidecar} RepetitionTime is {sidecar_tr:g} s; "
                             "correct whichever is wrong (the header's pixdim[4] or the sidecar)")
        if sidecar_tr is not None:
            tr = float(sidecar_tr)
    if not tr > 0:
        raise InputError(f"{path}: no usable TR in the header ({zooms[3]}) and no RepetitionTime sidecar")
    return tr, int(image.shape[3])


def shared_mask(runs: list[BoldRun], space: str):
    """Intersection of every run's brain mask on the grid of the first BOLD (a Nifti1Image, uint8)."""
    import nibabel as nib  # noqa: PLC0415

    reference_path = runs[0].bold
    reference = nib.load(reference_path)
    mask = None
    for run in runs:
        bold = nib.load(run.bold)
        if bold.shape[:3] != reference.shape[:3] or not np.allclose(bold.affine, reference.affine, atol=1e-4):
            raise InputError(f"{run.bold}: grid {bold.shape[:3]} differs from {reference_path} {reference.shape[:3]} "
                             "(shape or affine); resample all subjects to one template grid first")
        run_mask = on_grid(nib.load(run.mask), run.mask, bold, run.bold, space)
        current = np.asarray(run_mask.dataobj) > 0
        mask = current if mask is None else mask & current
    log.info("shared mask: intersection of %d run brain masks -> %d voxels", len(runs), int(mask.sum()))
    if not mask.any():
        raise InputError(f"the brain masks of {len(runs)} runs under {runs[0].bold.parents[2]} have an empty intersection")
    return nib.Nifti1Image(mask.astype(np.uint8), reference.affine)


def read_masked(path: Path, mask: np.ndarray, start: int) -> np.ndarray:
    """Masked BOLD from volume ``start`` on, read in chunks of volumes, shape (n_trs - start, n_mask) float32.

    Same voxels and order as ``NiftiMasker(mask_img).fit().transform(path)[start:]``.
    """
    import nibabel as nib  # noqa: PLC0415

    proxy = nib.load(path, keep_file_open=True).dataobj  # one gzip stream read forward, chunk after chunk
    n_trs = proxy.shape[3]
    out = np.empty((n_trs - start, int(mask.sum())), np.float32)
    for t0 in range(start, n_trs, VOLUME_CHUNK):
        t1 = min(t0 + VOLUME_CHUNK, n_trs)
        out[t0 - start:t1 - start] = np.asarray(proxy[..., t0:t1], dtype=np.float32)[mask].T
    return out


def run_confounds(run: BoldRun, strategies: list[str], n_trs: int, motion: str = "basic") -> np.ndarray | None:
    """Confound regressors of a run via nilearn's load_confounds, shape (n_trs, n_confounds), or None."""
    if not strategies:
        return None
    from nilearn.interfaces.fmriprep import load_confounds  # noqa: PLC0415

    try:
        confounds, sample_mask = load_confounds(str(run.bold), strategy=tuple(strategies), motion=motion)
    except Exception as exc:  # nilearn raises ValueError / its own MissingConfound for absent files or columns
        raise InputError(f"{run.bold}: confounds for strategies {strategies} could not be loaded: {exc} "
                         "(the *_desc-confounds_timeseries.tsv beside it needs fMRIPrep's columns for them; "
                         "fix the file or choose other --confounds, or none)") from exc
    if sample_mask is not None:
        raise InputError(f"{run.bold}: confound strategies {strategies} censor volumes, which breaks the TR grid")
    values = confounds.to_numpy(np.float64)
    if len(values) != n_trs:
        raise InputError(f"{run.bold}: confounds have {len(values)} rows but the BOLD has {n_trs} volumes")
    return values


def check_events(run: BoldRun, words: pd.DataFrame, args: argparse.Namespace) -> None:
    """Compare the word events of a BIDS run (scanner time from the file's first volume) with the stimulus timings.

    Expected onsets: ``dummy_scans * tr + time_scale * (stimulus onset - first_volume_time)``.
    """
    if run.events is None:
        return
    events = pd.read_csv(run.events, sep="\t")
    if "trial_type" in events:
        events = events[events["trial_type"] == "word"]
    if "onset" not in events or events.empty:
        return
    expected = stimulus_to_scanner(words["onset"].to_numpy(float), args, run.tr)
    found = events["onset"].to_numpy(float)
    if len(found) != len(expected) or np.max(np.abs(found - expected)) > EVENT_TOLERANCE_S:
        detail = (f"{len(found)} word events vs {len(expected)} stimulus words" if len(found) != len(expected)
                  else f"onsets differ by up to {np.max(np.abs(found - expected)):.2f} s")
        raise InputError(f"{run.events}: {detail} of stimulus run {run.run!r} ({args.stimulus}); check --run-map, "
                         f"--dummy-scans, --time-scale and --first-volume-time (stimulus time at the start of the "
                         f"first retained volume; here {args.first_volume_time:g} s)")


def _is_simulated(root: Path) -> bool:
    description = Path(root) / "dataset_description.json"
    return description.is_file() and bool(json.loads(description.read_text()).get("SIMULATED", False))


def load_bids(args: argparse.Namespace) -> None:
    """``--kind bids``: fMRIPrep derivatives -> responses.h5 (two passes, bounded memory)."""
    import h5py  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    stimulus = read_stimulus(args.stimulus)
    stimulus_runs = list(dict.fromkeys(stimulus["run"]))
    found = find_bold_runs(args, stimulus_runs)
    subjects = sorted(found)
    runs = [r for r in stimulus_runs if r in found[subjects[0]]]
    all_runs = [b for s in subjects for r in runs for b in found[s][r]]
    trs = {}
    for bold_run in all_runs:
        bold_run.tr, bold_run.n_trs = bold_tr(bold_run.bold, args.tr_tolerance)
        trs[bold_run.bold] = bold_run.tr
        if bold_run.n_trs <= args.dummy_scans:
            raise InputError(f"{bold_run.bold}: {bold_run.n_trs} volumes, not more than --dummy-scans {args.dummy_scans}")
        words = stimulus[stimulus["run"] == bold_run.run]
        check_duration(bold_run.run, str(bold_run.bold), bold_run.n_trs - args.dummy_scans, bold_run.tr, args, words)
        check_events(bold_run, words, args)
    tr = check_trs(trs, args.tr_tolerance)
    mask_img = shared_mask(all_runs, args.space)
    mask = np.asarray(mask_img.dataobj) > 0
    strategies = confound_strategies(args)
    simulated = _is_simulated(args.root)

    # pass 1: masked raw BOLD into a scratch file, find NaN / constant voxels
    valid = np.ones(int(mask.sum()), bool)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # the scratch folder lives beside the output
    with tempfile.TemporaryDirectory(prefix=".load-fmri-", dir=Path(args.out).parent) as scratch_dir, \
            h5py.File(Path(scratch_dir) / "raw.h5", "w") as scratch:
        n_nonfinite = n_constant = 0
        for bold_run in tqdm(all_runs, desc="read BOLD"):
            data = read_masked(bold_run.bold, mask, args.dummy_scans)
            finite = np.isfinite(data).all(axis=0)
            constant = finite & (np.nanmax(data, axis=0) == np.nanmin(data, axis=0))
            n_nonfinite += int((~finite & valid).sum())
            n_constant += int((constant & valid).sum())
            valid &= finite & ~constant
            scratch.create_dataset(str(bold_run.bold), data=data, chunks=(data.shape[0], min(VOXEL_BLOCK, data.shape[1])))
            del data
        n_dropped = int((~valid).sum())
        if n_dropped:
            log.warning("dropped %d of %d mask voxels: %d with NaN/inf values, %d constant in some run",
                        n_dropped, len(valid), n_nonfinite, n_constant)
        if not valid.any():
            raise InputError(f"--root {args.root}: every mask voxel is NaN or constant in some run")
        kept_mask = np.zeros(mask.shape, np.uint8)
        kept_mask[mask] = valid
        columns = np.flatnonzero(valid)
        rois = roi_labels(args, mask_img, args.space)

        roi_files = [p for p in (args.atlas, args.spheres) if p is not None]
        run_files = dict.fromkeys(p for r in all_runs for p in (r.bold, r.mask, r.events) if p is not None)
        attrs = provenance("load-fmri", args, [args.stimulus, *roi_files, *run_files], simulated=simulated, tr=tr, dataset_kind="bids",
                           subjects=[f"sub-{s}" for s in subjects] + (["average"] if args.group_average else []),
                           runs=runs, n_dropped_voxels=n_dropped, n_voxels=len(columns), confounds=strategies or ["none"],
                           mask_note="intersection of all runs' brain masks, minus NaN/constant voxels")
        with atomic_h5(args.out, attrs) as out:
            out.create_dataset("mask/mask", data=kept_mask, compression="gzip")
            out.create_dataset("mask/affine", data=mask_img.affine.astype(np.float64))
            write_stimulus_baselines(out, stimulus, schema_default("encode.frequency_language"))
            if rois is not None:
                out.create_dataset("rois/names", data=string_array(rois[0]))
                out.create_dataset("rois/labels", data=rois[1][valid])
            # pass 2: clean in voxel blocks, average repeats, write
            repeats: dict[str, dict[str, list[str]]] = {}
            for subject in tqdm(subjects, desc="clean BOLD"):
                for run in runs:
                    group = write_clean_run(out, scratch, f"sub-{subject}", run, found[subject][run], columns, strategies,
                                            tr, args)
                    if len(found[subject][run]) > 1:
                        repeats.setdefault(f"sub-{subject}", {})[run] = group
            if args.group_average:
                write_average(out, [f"sub-{s}" for s in subjects], runs)
            write_ceilings(out, scratch, [f"sub-{s}" for s in subjects], runs, repeats, len(columns), args)
    log.info("wrote %s: %d subjects x %d runs, %d voxels (TR %g s)", args.out, len(subjects), len(runs), len(columns), tr)


def write_clean_run(out, scratch, subject: str, run: str, bold_runs: list[BoldRun], columns: np.ndarray,
                    strategies: list[str], tr: float, args: argparse.Namespace) -> list[str]:
    """Clean every repeat of one run in voxel blocks; store the mean, and the single cleaned repeats as
    ``/subjects/{sub}/runs/{run}/repeats`` (so ``encode`` can recompute the repeat ceiling on the rows it
    scores); return the scratch keys of the cleaned repeats."""
    n_trs = {b.n_trs for b in bold_runs}
    if len(n_trs) > 1:
        raise InputError(f"{subject} run {run}: repeats {[str(b.bold) for b in bold_runs]} have different lengths {sorted(n_trs)}")
    n_kept = bold_runs[0].n_trs - args.dummy_scans
    dataset = out.create_dataset(f"subjects/{subject}/runs/{run}/bold", shape=(n_kept, len(columns)), dtype=np.float32,
                                 chunks=(n_kept, min(VOXEL_BLOCK, len(columns))))
    confounds = []
    for b in bold_runs:
        values = run_confounds(b, strategies, b.n_trs, args.motion)
        confounds.append(None if values is None else values[args.dummy_scans:])
    clean_keys = []
    stored_repeats = None
    if len(bold_runs) > 1:
        stored_repeats = out.create_dataset(f"subjects/{subject}/runs/{run}/repeats", shape=(len(bold_runs),) + dataset.shape,
                                            dtype=np.float32, chunks=(1,) + dataset.chunks)
    for b in bold_runs:
        if len(bold_runs) > 1:
            clean_keys.append(f"clean/{subject}/{run}/{b.label}")
            scratch.create_dataset(clean_keys[-1], shape=dataset.shape, dtype=np.float32, chunks=dataset.chunks)
    for start in range(0, len(columns), VOXEL_BLOCK):
        block = columns[start:start + VOXEL_BLOCK]
        total = np.zeros((n_kept, len(block)), np.float32)
        for k, b in enumerate(bold_runs):
            cleaned = clean_signals(scratch[str(b.bold)][:, block[0]:block[-1] + 1][:, block - block[0]], tr, args, confounds[k])
            total += cleaned
            if clean_keys:
                scratch[clean_keys[k]][:, start:start + len(block)] = cleaned
                stored_repeats[k, :, start:start + len(block)] = cleaned
        dataset[:, start:start + len(block)] = total / len(bold_runs)
    group = out[f"subjects/{subject}/runs/{run}"]
    group.attrs.update(run_timing(args, tr))
    group.attrs["source"] = str(bold_runs[0].bold) if len(bold_runs) == 1 else json.dumps([str(b.bold) for b in bold_runs])
    group.attrs["n_repeats"] = len(bold_runs)
    return clean_keys
