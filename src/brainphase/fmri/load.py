"""``brainphase load-fmri``: preprocessed fMRI -> ``responses.h5`` (layout in ``docs/hdf5_layout.md``).

Three kinds of input (``--kind``):

``bids``
    fMRIPrep-style derivatives: ``sub-*/[ses-*/]func/*_task-{task}_run-*_space-{space}[_res-*]
    _desc-preproc_bold.nii.gz`` with the matching ``_desc-brain_mask.nii.gz``,
    ``_desc-confounds_timeseries.tsv`` (read by :func:`nilearn.interfaces.fmriprep.load_confounds`)
    and, when present, ``_events.tsv`` (checked against the stimulus timings). Voxels are kept
    inside one mask shared by all subjects: the **intersection** of every run's brain mask.
    The BOLD is masked in chunks of volumes read through nibabel's array proxy (the same
    voxels and order as :class:`nilearn.maskers.NiftiMasker` ``transform`` with that mask),
    and cleaned with :func:`nilearn.signal.clean` in blocks of voxels, so memory stays bounded
    by one run's masked data.
``roi-table``
    One table per subject and run, TR x ROI: ``sub-{sub}[_...]_run-{run}[_...].tsv|csv`` (header =
    ROI names) or ``.npz`` (arrays ``data`` (n_trs, n_rois) and ``names``), anywhere under
    ``--root``; ``--tr`` gives the repetition time.
``sentences``
    Item-level responses: ``{root}/sentences.tsv`` (column ``text``, one row per sentence;
    optional column ``passage``, the passage / story each sentence belongs to, stored as
    ``/sentences/passage`` so that ``brainphase encode`` never splits a passage across folds) and
    one table per subject ``sub-{sub}_sentences.tsv|csv|npy`` (n_sentences, n_targets).

Timing (``bids`` and ``roi-table``). Scanner time 0 is the first volume of the file, volume
``k`` is acquired at ``k * tr``. The stimulus starts at scanner time ``--time-offset`` and one
stimulus second lasts ``--time-scale`` scanner seconds, so
``scanner_time = time_offset + time_scale * stimulus_time``. After dropping ``--dummy-scans``
``d`` volumes, the run attribute ``first_volume_time = (d * tr - time_offset) / time_scale``
is the stimulus time of the first kept volume and ``volume_interval = tr / time_scale`` the
stimulus time between volumes (equal to ``tr`` unless a time scale is given).

Runs are matched to the stimulus by name (``--run-map`` maps BIDS run labels to stimulus run
names; default identical). Several BIDS runs mapped to the same stimulus run are repeats: the
stored response is their mean, and the repeat ceiling applies.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, string_array
from brainphase.stimuli import read_stimulus

log = logging.getLogger(__name__)

DEFAULT_SPACE = "MNI152NLin2009cAsym"
CONFOUND_STRATEGIES = ("motion", "wm_csf", "global_signal", "compcor", "high_pass")
DEFAULT_BIDS_CONFOUNDS = ("motion", "wm_csf")
VOLUME_CHUNK = 32
VOXEL_BLOCK = 16384
CEILING_BLOCK = 4096
EVENT_TOLERANCE_S = 0.5


# --------------------------------------------------------------------------- arguments
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=["bids", "roi-table", "sentences"], default="bids")
    parser.add_argument("--root", type=Path, required=True, help="BIDS derivatives root, or folder of ROI / sentence tables")
    parser.add_argument("--task", default="listening", help="BIDS task label")
    parser.add_argument("--space", default=DEFAULT_SPACE, help="BIDS space label of the BOLD to load")
    parser.add_argument("--res", default=None, help="BIDS res label to load when several resolutions exist (e.g. 2 or 2mm)")
    parser.add_argument("--subjects", nargs="+", default=None, help="subject labels to keep (01 or sub-01); default all")
    parser.add_argument("--stimulus", type=Path, help="stimulus_words.tsv (run names and durations; not for --kind sentences)")
    parser.add_argument("--out", type=Path, required=True, help="responses.h5 to write")
    parser.add_argument("--run-map", nargs="+", default=None,
                        help="JSON file {bids_run_label: stimulus_run} or label=run pairs; default identical names")
    parser.add_argument("--standardize", choices=["zscore_sample", "none"], default="zscore_sample")
    parser.add_argument("--detrend", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--high-pass", type=float, default=0.008,
                        help="Butterworth high-pass cut-off (Hz); default 0.008 (128 s, SPM/fMRIPrep convention); 0 = off")
    parser.add_argument("--confounds", nargs="+", default=None, choices=list(CONFOUND_STRATEGIES) + ["none"],
                        help="nilearn load_confounds strategies regressed out (default for bids: motion wm_csf; "
                             "none for tables)")
    parser.add_argument("--motion", choices=["basic", "derivatives", "power2", "full"], default="basic",
                        help="motion model of the 'motion' strategy: basic = 6 rigid-body parameters (default), "
                             "full = 24-parameter Friston expansion (costs signal on short runs)")
    parser.add_argument("--dummy-scans", type=int, default=0, help="initial volumes to drop")
    parser.add_argument("--time-offset", type=float, default=0.0, help="scanner time (s) at which the stimulus started")
    parser.add_argument("--time-scale", type=float, default=1.0, help="scanner seconds per stimulus second")
    parser.add_argument("--tr", type=float, default=None, help="repetition time (s) of ROI tables (--kind roi-table)")
    parser.add_argument("--tr-tolerance", type=float, default=0.01, help="largest TR difference (s) between files/runs")
    parser.add_argument("--atlas", type=Path, default=None, help="label NIfTI for ROI summaries (+ names TSV beside it)")
    parser.add_argument("--spheres", type=Path, default=None, help="TSV of name, x, y, z (MNI mm) [, radius]")
    parser.add_argument("--sphere-radius", type=float, default=8.0, help="sphere radius (mm) when the spheres file has none")
    parser.add_argument("--group-average", action=argparse.BooleanOptionalAction, default=False, help='add the pseudo-subject "average" (mean over subjects)')
    parser.add_argument("--ceiling", choices=["auto", "repeats", "loso", "none"], default="auto",
                        help="noise ceiling: repeats when a run was presented more than once, else leave-one-subject-out")


def _check_args(args: argparse.Namespace) -> None:
    if args.dummy_scans < 0:
        raise InputError(f"--dummy-scans {args.dummy_scans}: must be >= 0")
    if args.time_scale <= 0:
        raise InputError(f"--time-scale {args.time_scale}: must be > 0")
    if args.high_pass < 0:
        raise InputError(f"--high-pass {args.high_pass}: must be >= 0 (0 switches it off)")
    if args.kind != "sentences" and args.stimulus is None:
        raise InputError(f"--kind {args.kind} needs --stimulus (stimulus_words.tsv) for run names and durations")
    if args.atlas is not None and args.spheres is not None:
        raise InputError("--atlas and --spheres are exclusive: give one ROI definition")
    if args.kind != "bids" and (args.atlas is not None or args.spheres is not None):
        raise InputError(f"--atlas/--spheres need voxel data (--kind bids), not --kind {args.kind}")
    if args.confounds and "none" in args.confounds and len(args.confounds) > 1:
        raise InputError(f"--confounds {' '.join(args.confounds)}: 'none' cannot be combined with strategies")


def confound_strategies(args: argparse.Namespace) -> list[str]:
    """The load_confounds strategies in effect (kind-dependent default)."""
    if args.confounds is None:
        return list(DEFAULT_BIDS_CONFOUNDS) if args.kind == "bids" else []
    return [] if args.confounds == ["none"] else list(args.confounds)


def parse_run_map(items: list[str] | None) -> dict[str, str]:
    """``--run-map`` as {bids_run_label: stimulus_run}: a JSON file or ``label=run`` pairs."""
    if not items:
        return {}
    if len(items) == 1 and "=" not in items[0]:
        path = Path(items[0])
        if not path.is_file():
            raise InputError(f"--run-map {path}: not a file and not label=run pairs")
        try:
            mapping = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"--run-map {path}: not valid JSON ({exc})") from exc
        if not isinstance(mapping, dict):
            raise InputError(f"--run-map {path}: expected a JSON object {{bids_run_label: stimulus_run}}")
        return {str(k): str(v) for k, v in mapping.items()}
    mapping = {}
    for item in items:
        if item.count("=") != 1:
            raise InputError(f"--run-map {item!r}: expected label=run")
        label, run = item.split("=")
        mapping[label.strip()] = run.strip()
    return mapping


# --------------------------------------------------------------------------- cleaning and timing
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


def first_volume_time(args: argparse.Namespace, tr: float) -> float:
    """Stimulus time of the first kept volume: ``(dummy_scans * tr - time_offset) / time_scale``."""
    return (args.dummy_scans * tr - args.time_offset) / args.time_scale


def check_duration(run: str, source: str, n_trs: int, tr: float, args: argparse.Namespace, words: pd.DataFrame) -> None:
    """Error when the kept volumes end more than one volume before the run's last word offset.

    Logs a warning when words start before the first kept volume (they get no response).
    """
    start = first_volume_time(args, tr)
    interval = tr / args.time_scale
    end = start + n_trs * interval
    last_offset = float(words["offset"].max())
    if end < last_offset - interval:
        raise InputError(
            f"{source}: {n_trs} volumes x TR {tr:g} s cover stimulus time {start:g}-{end:g} s, but stimulus run "
            f"{run!r} lasts until {last_offset:g} s; check --run-map, --dummy-scans, --time-offset, --time-scale")
    early = int((words["onset"] < start).sum())
    if early:
        log.warning("%s: %d words of run %r start before the first kept volume (stimulus time %g s)", source, early, run, start)


# --------------------------------------------------------------------------- BIDS discovery
_ENTITY = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")


def bids_entities(name: str) -> dict[str, str]:
    """Entities of a BIDS file name, e.g. ``{"sub": "01", "task": "x", "run": "1", "desc": "preproc"}``."""
    return {key: value for key, value in _ENTITY.findall(name.split(".")[0])}


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
        raise InputError(f"{path}: a 3D image (shape {image.shape}) where a 4D BOLD time series is expected")
    zooms = image.header.get_zooms()
    units = image.header.get_xyzt_units()[1]
    tr = float(zooms[3]) / (1000.0 if units == "msec" else 1.0)
    sidecar = Path(str(path).split(".nii")[0] + ".json")
    if sidecar.is_file():
        sidecar_tr = json.loads(sidecar.read_text()).get("RepetitionTime")
        if sidecar_tr is not None and abs(float(sidecar_tr) - tr) > tolerance:
            raise InputError(f"TR mismatch: {path} header says {tr:g} s but {sidecar} RepetitionTime is {sidecar_tr:g} s")
        if sidecar_tr is not None:
            tr = float(sidecar_tr)
    if not tr > 0:
        raise InputError(f"{path}: no usable TR in the header ({zooms[3]}) and no RepetitionTime sidecar")
    return tr, int(image.shape[3])


def _image_space(path: Path) -> str | None:
    return bids_entities(path.name).get("space")


def _on_grid(image, path: Path, reference, reference_path: Path, space: str, interpolation: str = "nearest"):
    """Return ``image`` on the reference grid; resample (with a warning) if the space matches, else error."""
    from nilearn.image import resample_to_img  # noqa: PLC0415

    if image.shape[:3] == reference.shape[:3] and np.allclose(image.affine, reference.affine, atol=1e-4):
        return image
    image_space = _image_space(path)
    if image_space is not None and image_space != space:
        raise InputError(f"{path}: space {image_space!r} differs from the BOLD space {space!r} ({reference_path}); "
                         "give an image in the same space")
    log.warning("%s: shape %s / affine differ from %s %s; resampled (%s) to the BOLD grid", path, image.shape[:3],
                reference_path, reference.shape[:3], interpolation)
    return resample_to_img(image, reference, interpolation=interpolation, force_resample=True, copy_header=True)


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
        run_mask = _on_grid(nib.load(run.mask), run.mask, bold, run.bold, space)
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
    """Compare the word events of a BIDS run with the stimulus timings (scanner = offset + scale * stimulus)."""
    if run.events is None:
        return
    events = pd.read_csv(run.events, sep="\t")
    if "trial_type" in events:
        events = events[events["trial_type"] == "word"]
    if "onset" not in events or events.empty:
        return
    expected = args.time_offset + args.time_scale * words["onset"].to_numpy(float)
    found = events["onset"].to_numpy(float)
    if len(found) != len(expected) or np.max(np.abs(found - expected)) > EVENT_TOLERANCE_S:
        detail = (f"{len(found)} word events vs {len(expected)} stimulus words" if len(found) != len(expected)
                  else f"onsets differ by up to {np.max(np.abs(found - expected)):.2f} s")
        raise InputError(f"{run.events}: {detail} of stimulus run {run.run!r} ({args.stimulus}); "
                         "check --run-map, --time-offset and --time-scale")


# --------------------------------------------------------------------------- ROIs
def roi_labels(args: argparse.Namespace, mask_img, space: str) -> tuple[list[str], np.ndarray] | None:
    """ROI names and per-voxel labels (index + 1, 0 = none) over the mask voxels, or None without ROIs."""
    import nibabel as nib  # noqa: PLC0415

    mask = np.asarray(mask_img.dataobj) > 0
    if args.atlas is not None:
        atlas_path = Path(args.atlas)
        if not atlas_path.is_file():
            raise InputError(f"--atlas {atlas_path}: file not found")
        atlas = _on_grid(nib.load(atlas_path), atlas_path, mask_img, Path("the shared mask"), space)
        values = np.rint(np.asarray(atlas.dataobj)).astype(int)[mask]
        names_path = Path(str(atlas_path).split(".nii")[0] + ".tsv")
        if not names_path.is_file():
            raise InputError(f"--atlas {atlas_path}: names table {names_path.name} (columns index, name) not found beside it")
        table = pd.read_csv(names_path, sep="\t")
        if not {"index", "name"} <= set(table.columns):
            raise InputError(f"{names_path}: needs columns index and name, has {list(table.columns)}")
        labels = np.zeros(len(values), np.int16)
        for position, (index, name) in enumerate(zip(table["index"], table["name"])):
            labels[values == int(index)] = position + 1
        unnamed = np.setdiff1d(np.unique(values[values > 0]), table["index"].to_numpy())
        if len(unnamed):
            log.warning("%s: atlas values %s have no name in %s; their voxels get no ROI", atlas_path, unnamed.tolist(), names_path)
        return [str(n) for n in table["name"]], labels
    if args.spheres is not None:
        return sphere_labels(Path(args.spheres), args.sphere_radius, mask_img)
    return None


def sphere_labels(path: Path, default_radius: float, mask_img) -> tuple[list[str], np.ndarray]:
    """Spheres (NiftiSpheresMasker semantics: voxel centres within ``radius`` mm) as per-voxel labels.

    A voxel inside several spheres goes to the nearest centre (counted in the log).
    """
    if not path.is_file():
        raise InputError(f"--spheres {path}: file not found")
    table = pd.read_csv(path, sep="\t")
    if not {"name", "x", "y", "z"} <= set(table.columns):
        raise InputError(f"{path}: needs columns name, x, y, z (MNI mm) and optionally radius; has {list(table.columns)}")
    radius = table["radius"].to_numpy(float) if "radius" in table else np.full(len(table), default_radius)
    mask = np.asarray(mask_img.dataobj) > 0
    ijk = np.argwhere(mask)
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    centres = table[["x", "y", "z"]].to_numpy(float)
    distance = np.linalg.norm(xyz[:, None, :] - centres[None], axis=2)
    inside = distance <= radius[None, :]
    overlap = int((inside.sum(axis=1) > 1).sum())
    if overlap:
        log.info("%s: %d voxels lie in several spheres; each goes to the nearest centre", path, overlap)
    nearest = np.where(inside, distance, np.inf).argmin(axis=1)
    labels = np.where(inside.any(axis=1), nearest + 1, 0).astype(np.int16)
    empty = [str(n) for k, n in enumerate(table["name"]) if not (labels == k + 1).any()]
    if empty:
        raise InputError(f"{path}: spheres {empty} contain no voxel of the shared mask; move them or enlarge the radius")
    return [str(n) for n in table["name"]], labels


# --------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> None:
    """Load the responses named by ``args`` and write ``args.out``."""
    _check_args(args)
    if args.kind == "bids":
        load_bids(args)
    elif args.kind == "roi-table":
        load_roi_tables(args)
    else:
        load_sentences(args)


def _is_simulated(root: Path) -> bool:
    description = Path(root) / "dataset_description.json"
    return description.is_file() and bool(json.loads(description.read_text()).get("SIMULATED", False))


def _check_trs(trs: dict[Path, float], tolerance: float) -> float:
    items = list(trs.items())
    first_path, first_tr = items[0]
    for path, tr in items[1:]:
        if abs(tr - first_tr) > tolerance:
            raise InputError(f"TR mismatch: {first_path} has TR {first_tr:g} s but {path} has {tr:g} s "
                             f"(tolerance {tolerance:g} s); load runs with one TR together")
    return first_tr


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
    tr = _check_trs(trs, args.tr_tolerance)
    mask_img = shared_mask(all_runs, args.space)
    mask = np.asarray(mask_img.dataobj) > 0
    strategies = confound_strategies(args)
    simulated = _is_simulated(args.root)

    # pass 1: masked raw BOLD into a scratch file, find NaN / constant voxels
    valid = np.ones(int(mask.sum()), bool)
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
        attrs = provenance("load-fmri", args, [args.stimulus, *roi_files], simulated=simulated, tr=tr, dataset_kind="bids",
                           subjects=[f"sub-{s}" for s in subjects] + (["average"] if args.group_average else []),
                           runs=runs, n_dropped_voxels=n_dropped, n_voxels=len(columns), confounds=strategies or ["none"],
                           mask_note="intersection of all runs' brain masks, minus NaN/constant voxels")
        with atomic_h5(args.out, attrs) as out:
            out.create_dataset("mask/mask", data=kept_mask, compression="gzip")
            out.create_dataset("mask/affine", data=mask_img.affine.astype(np.float64))
            if rois is not None:
                out.create_dataset("rois/names", data=string_array(rois[0]))
                out.create_dataset("rois/labels", data=rois[1][valid])
            # pass 2: clean in voxel blocks, average repeats, write
            repeats: dict[str, dict[str, list[str]]] = {}
            for subject in tqdm(subjects, desc="clean BOLD"):
                for run in runs:
                    group = _write_clean_run(out, scratch, f"sub-{subject}", run, found[subject][run], columns, strategies,
                                             tr, args)
                    if len(found[subject][run]) > 1:
                        repeats.setdefault(f"sub-{subject}", {})[run] = group
            if args.group_average:
                _write_average(out, [f"sub-{s}" for s in subjects], runs)
            _write_ceilings(out, scratch, [f"sub-{s}" for s in subjects], runs, repeats, len(columns), args)
    log.info("wrote %s: %d subjects x %d runs, %d voxels (TR %g s)", args.out, len(subjects), len(runs), len(columns), tr)


def _write_clean_run(out, scratch, subject: str, run: str, bold_runs: list[BoldRun], columns: np.ndarray,
                     strategies: list[str], tr: float, args: argparse.Namespace) -> list[str]:
    """Clean every repeat of one run in voxel blocks; store the mean; return the scratch keys of the cleaned repeats."""
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
        dataset[:, start:start + len(block)] = total / len(bold_runs)
    group = out[f"subjects/{subject}/runs/{run}"]
    group.attrs["first_volume_time"] = first_volume_time(args, tr)
    group.attrs["volume_interval"] = tr / args.time_scale
    group.attrs["source"] = str(bold_runs[0].bold) if len(bold_runs) == 1 else json.dumps([str(b.bold) for b in bold_runs])
    group.attrs["n_repeats"] = len(bold_runs)
    return clean_keys


def _write_average(out, subjects: list[str], runs: list[str]) -> None:
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


def _write_ceilings(out, scratch, subjects: list[str], runs: list[str], repeats: dict, n_voxels: int,
                    args: argparse.Namespace) -> None:
    """Write ``/subjects/{sub}/noise_ceiling`` (n_voxels,) with the chosen estimator (fmri.ceiling)."""
    from brainphase.fmri.ceiling import ceiling_from_repeats, ceiling_loso, ceiling_of_average  # noqa: PLC0415

    method = choose_ceiling(args.ceiling, subjects, runs, repeats)
    out.attrs["ceiling_method"] = method
    if method == "none":
        return
    ceilings = np.zeros((len(subjects), n_voxels), np.float32)
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
            ceilings[:, start:stop] = ceiling_loso(stacked)
    for s, subject in enumerate(subjects):
        out.create_dataset(f"subjects/{subject}/noise_ceiling", data=ceilings[s])
    if args.group_average:
        if method == "repeats":
            log.info("noise ceiling of 'average' from the repeat ceilings of the subjects")
        out.create_dataset("subjects/average/noise_ceiling", data=ceiling_of_average(ceilings).astype(np.float32))
    log.info("noise ceiling (%s): median over voxels %.3f", method, float(np.nanmedian(ceilings)))


# --------------------------------------------------------------------------- ROI tables and sentences
_TABLE_SUFFIXES = (".tsv", ".csv", ".npz", ".npy")


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


def _drop_bad_columns(tables: dict, source: str) -> tuple[np.ndarray, int]:
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


def _same_names(names_by_file: dict[Path, list[str]]) -> list[str]:
    items = list(names_by_file.items())
    for path, names in items[1:]:
        if names != items[0][1]:
            raise InputError(f"{path}: targets {names[:5]}... differ from {items[0][0]} {items[0][1][:5]}...")
    return items[0][1]


def load_roi_tables(args: argparse.Namespace) -> None:
    """``--kind roi-table``: one TR x ROI table per subject and run -> responses.h5."""
    if args.tr is None or args.tr <= 0:
        raise InputError("--kind roi-table needs --tr (repetition time in s, > 0)")
    if confound_strategies(args):
        raise InputError(f"--confounds {args.confounds}: ROI tables carry no confounds; pass --confounds none")
    stimulus = read_stimulus(args.stimulus)
    stimulus_runs = list(dict.fromkeys(stimulus["run"]))
    run_map = parse_run_map(args.run_map)
    wanted = {s.removeprefix("sub-") for s in args.subjects} if args.subjects else None
    tables, names, sources = {}, {}, {}
    for path in sorted(p for p in Path(args.root).rglob("sub-*") if p.suffix in _TABLE_SUFFIXES and "events" not in p.name):
        ent = bids_entities(path.name)
        if "run" not in ent or (wanted is not None and ent["sub"] not in wanted):
            continue
        run = run_map.get(ent["run"], ent["run"])
        if run not in stimulus_runs:
            raise InputError(f"{path}: run {ent['run']!r} maps to {run!r}, not a run of {args.stimulus} ({stimulus_runs}); fix --run-map")
        key = (f"sub-{ent['sub']}", run)
        if key in tables:
            raise InputError(f"{path}: a second table for {key[0]} run {run} (also {sources[key]}); keep one per subject and run")
        data, names[path] = read_table(path)
        if len(data) <= args.dummy_scans:
            raise InputError(f"{path}: {len(data)} rows, not more than --dummy-scans {args.dummy_scans}")
        tables[key], sources[key] = data[args.dummy_scans:], path
        check_duration(run, str(path), len(tables[key]), args.tr, args, stimulus[stimulus["run"] == run])
    if not tables:
        raise InputError(f"--root {args.root}: no sub-*_run-*.tsv|csv|npz ROI tables found")
    roi_names = _same_names(names)
    subjects = sorted({s for s, _ in tables})
    runs = [r for r in stimulus_runs if any(k[1] == r for k in tables)]
    missing = [(s, r) for s in subjects for r in runs if (s, r) not in tables]
    if missing:
        raise InputError(f"--root {args.root}: no table for {missing}; every subject needs every run")
    columns, n_dropped = _drop_bad_columns(tables, str(args.root))
    attrs = provenance("load-fmri", args, [args.stimulus] + list(sources.values()), simulated=False, tr=args.tr,
                       dataset_kind="roi-table", subjects=subjects + (["average"] if args.group_average else []),
                       runs=runs, n_dropped_voxels=n_dropped, n_voxels=len(columns), confounds=["none"])
    with atomic_h5(args.out, attrs) as out:
        out.create_dataset("rois/names", data=string_array([roi_names[c] for c in columns]))
        out.create_dataset("rois/labels", data=np.arange(1, len(columns) + 1, dtype=np.int16))
        for (subject, run), data in tables.items():
            out.create_dataset(f"subjects/{subject}/runs/{run}/bold", data=clean_signals(data[:, columns], args.tr, args))
            group = out[f"subjects/{subject}/runs/{run}"]
            group.attrs.update({"first_volume_time": first_volume_time(args, args.tr), "volume_interval": args.tr / args.time_scale,
                                "source": str(sources[(subject, run)]), "n_repeats": 1})
        if args.group_average:
            _write_average(out, subjects, runs)
        _write_ceilings(out, None, subjects, runs, {}, len(columns), args)
    log.info("wrote %s: %d subjects x %d runs, %d ROIs", args.out, len(subjects), len(runs), len(columns))


def load_sentences(args: argparse.Namespace) -> None:
    """``--kind sentences``: one response per sentence and target -> ``/subjects/{sub}/sentences/responses``."""
    root = Path(args.root)
    text_path = root / "sentences.tsv"
    if not text_path.is_file():
        raise InputError(f"{text_path}: not found; --kind sentences needs sentences.tsv (column text) in --root")
    sentences = pd.read_csv(text_path, sep="\t", keep_default_na=False)
    if "text" not in sentences:
        raise InputError(f"{text_path}: needs a column 'text' (one sentence per row), has {list(sentences.columns)}")
    if "passage" in sentences and (sentences["passage"].astype(str).str.strip() == "").any():
        first = int(np.flatnonzero(sentences["passage"].astype(str).str.strip() == "")[0])
        raise InputError(f"{text_path}: column 'passage' is blank in row {first + 2}; give every sentence its passage label")
    if args.detrend or args.high_pass:
        log.info("--kind sentences: detrending and high-pass do not apply to item responses; skipped")
    wanted = {s.removeprefix("sub-") for s in args.subjects} if args.subjects else None
    tables, names, sources = {}, {}, {}
    for path in sorted(root.rglob("sub-*_sentences.*")):
        if path.suffix not in _TABLE_SUFFIXES:
            continue
        subject = bids_entities(path.name)["sub"]
        if wanted is not None and subject not in wanted:
            continue
        data, names[path] = read_table(path)
        if len(data) != len(sentences):
            raise InputError(f"{path}: {len(data)} rows but {text_path} has {len(sentences)} sentences")
        tables[f"sub-{subject}"], sources[f"sub-{subject}"] = data, path
    if not tables:
        raise InputError(f"--root {root}: no sub-*_sentences.tsv|csv|npy|npz response tables found")
    target_names = _same_names(names)
    subjects = sorted(tables)
    columns, n_dropped = _drop_bad_columns(tables, str(root))
    attrs = provenance("load-fmri", args, [text_path] + list(sources.values()), simulated=False, tr=np.nan,
                       dataset_kind="sentences", subjects=subjects + (["average"] if args.group_average else []),
                       runs=[], n_dropped_voxels=n_dropped, n_voxels=len(columns), n_sentences=len(sentences))
    with atomic_h5(args.out, attrs) as out:
        out.create_dataset("sentences/text", data=string_array(sentences["text"].astype(str)))
        out.create_dataset("sentences/target_names", data=string_array([target_names[c] for c in columns]))
        if "passage" in sentences:
            out.create_dataset("sentences/passage", data=string_array(sentences["passage"].astype(str)))
        responses = {}
        for subject in subjects:
            values = tables[subject][:, columns]
            if args.standardize != "none":
                values = (values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
            responses[subject] = values.astype(np.float32)
            out.create_dataset(f"subjects/{subject}/sentences/responses", data=responses[subject])
        if args.group_average:
            out.create_dataset("subjects/average/sentences/responses", data=np.mean(list(responses.values()), axis=0))
        method = choose_ceiling(args.ceiling, subjects, ["sentences"], {})
        out.attrs["ceiling_method"] = method
        if method != "none":
            from brainphase.fmri.ceiling import ceiling_loso, ceiling_of_average  # noqa: PLC0415

            ceilings = ceiling_loso(np.stack([responses[s] for s in subjects]))
            for s, subject in enumerate(subjects):
                out.create_dataset(f"subjects/{subject}/noise_ceiling", data=ceilings[s].astype(np.float32))
            if args.group_average:
                out.create_dataset("subjects/average/noise_ceiling", data=ceiling_of_average(ceilings).astype(np.float32))
    log.info("wrote %s: %d subjects x %d sentences, %d targets", args.out, len(subjects), len(sentences), len(columns))
