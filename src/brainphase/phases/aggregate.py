"""Brain alignment and task metrics over training, and the triple-phase labels.

Two subcommands live here:

``brainphase aggregate``
    Collects the per-checkpoint files ``scores/{model}/seed{seed}/step{step}.h5`` and
    ``tasks/{model}/seed{seed}/step{step}.h5`` into ``metrics.h5``: arrays over
    seeds x steps (see :func:`aggregate` and the "trajectory" section of
    ``docs/hdf5_layout.md``).
``brainphase phases``
    Copies ``metrics.h5`` into ``trajectory.h5`` and adds the phase labels of
    :func:`label_phases` and the alignment/task correlations of :func:`correlate`.

Background: Nakagi et al. (2025), "Triple Phase Transitions: Understanding the Learning
Dynamics of Large Language Models from a Neuroscience Perspective", arXiv:2502.20779.
Over training checkpoints they report (1) *brain alignment*: alignment with fMRI rises
together with task ability; (2) *brain detachment*: alignment falls or stalls while task
accuracy stagnates; (3) *brain realignment*: alignment rises again as abilities
consolidate. :func:`label_phases` is a first, deterministic operationalisation of these
three phases on the alignment curve; it is not the paper's own procedure.

Brain alignment of one checkpoint (:func:`voxel_mean`, :func:`alignment_summary`)
    For each layer ``l`` and subject ``s``, ``A[l, s]`` = mean of the held-out Pearson
    ``r`` (``/r``) over the voxels that belong to an ROI (``/rois/labels > 0`` of the
    responses file given with ``--responses``), or over all voxels when the scores file
    has no ROIs. The *alignment* of the checkpoint is ``mean_s max_l A[l, s]`` (each
    subject's best layer, averaged over subjects). The per-layer curve is
    ``mean_s A[l, s]``; the same reduction is applied to ``/r_normalized`` when present
    (NaN voxels, where no noise ceiling exists, are left out of the mean).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from scipy import stats
from tqdm import tqdm

from brainphase.errors import InputError
from brainphase.io import atomic_h5, attr_text, open_h5, provenance, read_strings, string_array

logger = logging.getLogger(__name__)

#: label value -> phase name; -1 marks steps no phase could be assigned to.
PHASE_NAMES = {0: "alignment", 1: "detachment", 2: "realignment"}
UNDETERMINED = -1

#: tolerance (absolute, in r) when checking /roi_mean_r against the ROI labels
_ROI_CHECK_ATOL = 1e-4

PHASE_RULE = (
    "On the seed-mean alignment curve, checkpoints sorted by step (log-spaced, so the step "
    "index is a log-token axis), smoothed by a centred moving average of smooth_window "
    "checkpoints whose half-width shrinks symmetrically at the ends. "
    "Alignment (0): from the first checkpoint to the peak P, the highest point after the "
    "curve first rose by >= min_change above its running minimum, confirmed when the curve "
    "then drops >= min_change below P (fall) or stays below P for stall_steps checkpoints "
    "while the smoothed primary task metric varies by < task_min_change (stall). "
    "Detachment (1): after P up to the trough T, the lowest point before the curve rises "
    ">= min_change above it again. Realignment (2): after T to the last checkpoint. "
    "Without a first rise every step is -1; without a confirmed peak every step is 0; "
    "without a rise after the trough detachment runs to the end."
)


# --------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------


def voxel_mean(r: np.ndarray, roi_voxels: np.ndarray | None) -> np.ndarray:
    """Mean score over the selected voxels, per layer and subject.

    Parameters
    ----------
    r : ndarray, shape (n_layers, n_subjects, n_voxels)
        Held-out Pearson r (or r / noise ceiling). NaN voxels are left out of the mean.
    roi_voxels : ndarray of bool, shape (n_voxels,), or None
        Voxels that belong to an ROI (``labels > 0``); ``None`` uses every voxel.

    Returns
    -------
    ndarray of float64, shape (n_layers, n_subjects)

    Raises
    ------
    InputError
        When a (layer, subject) has no finite score among the selected voxels.
    """
    selected = r if roi_voxels is None else r[:, :, roi_voxels]
    if not np.isfinite(selected).any(axis=2).all():
        raise InputError("a (layer, subject) has no finite score among the selected voxels")
    return np.nanmean(selected.astype(np.float64), axis=2)


def alignment_summary(layer_subject: np.ndarray, layers: np.ndarray) -> dict[str, np.ndarray]:
    """Brain alignment from per-(layer, subject) scores (Nakagi et al. 2025, arXiv:2502.20779).

    Parameters
    ----------
    layer_subject : ndarray, shape (..., n_layers, n_subjects)
        Mean r over the selected voxels (:func:`voxel_mean`), any leading axes (e.g. seeds, steps).
    layers : ndarray of int, shape (n_layers,)
        Layer indices (as in the activations), used to report best layers.

    Returns
    -------
    dict
        ``alignment`` (...): mean over subjects of each subject's max over layers;
        ``alignment_subject`` (..., n_subjects): max over layers;
        ``best_layer_subject`` (..., n_subjects): layer index of that max;
        ``alignment_layer`` (..., n_layers): mean over subjects (the per-layer curve);
        ``best_layer`` (...): layer index of the max of ``alignment_layer``.
    """
    alignment_layer = layer_subject.mean(axis=-1)
    return {
        "alignment": layer_subject.max(axis=-2).mean(axis=-1),
        "alignment_subject": layer_subject.max(axis=-2),
        "best_layer_subject": layers[layer_subject.argmax(axis=-2)],
        "alignment_layer": alignment_layer,
        "best_layer": layers[alignment_layer.argmax(axis=-1)],
    }


@dataclass
class _Checkpoint:
    """Identity of one per-checkpoint input file."""

    path: Path
    model_id: str
    seed: int
    step: int
    tokens: int


def _checkpoint(path: Path, handle: h5py.File) -> _Checkpoint:
    missing = [k for k in ("model_id", "seed", "step", "tokens") if k not in handle.attrs]
    if missing:
        raise InputError(f"{path}: root attributes {missing} are missing; re-create it with a current brainphase")
    return _Checkpoint(path, attr_text(handle, "model_id"), int(handle.attrs["seed"]), int(handle.attrs["step"]), int(handle.attrs["tokens"]))


def _grid(checkpoints: Sequence[_Checkpoint], kind: str) -> tuple[list[int], list[int], dict[tuple[int, int], _Checkpoint]]:
    """Check that ``checkpoints`` form a full seeds x steps grid; return sorted seeds, steps and the map."""
    by_key: dict[tuple[int, int], _Checkpoint] = {}
    for ckpt in checkpoints:
        key = (ckpt.seed, ckpt.step)
        if key in by_key:
            raise InputError(
                f"--{kind}: {by_key[key].path} and {ckpt.path} are both seed {ckpt.seed}, step {ckpt.step}; pass each checkpoint once"
            )
        by_key[key] = ckpt
    models = sorted({c.model_id for c in checkpoints})
    if len(models) > 1:
        examples = {m: next(str(c.path) for c in checkpoints if c.model_id == m) for m in models}
        raise InputError(f"--{kind}: files come from different models {examples}; aggregate one model at a time")
    seeds = sorted({c.seed for c in checkpoints})
    steps = sorted({c.step for c in checkpoints})
    missing = [f"seed {seed} step {step}" for seed in seeds for step in steps if (seed, step) not in by_key]
    if missing:
        raise InputError(
            f"--{kind}: every seed must have the same steps (steps found: {steps}); missing: {', '.join(missing)}. "
            "Run the missing checkpoints or leave the incomplete seed out"
        )
    for step in steps:
        tokens = {by_key[(seed, step)].tokens for seed in seeds}
        if len(tokens) > 1:
            raise InputError(f"--{kind}: step {step} has different 'tokens' attributes across seeds: {sorted(tokens)}")
    return seeds, steps, by_key


def _read_labels(path: Path, roi_names: list[str], n_voxels: int) -> np.ndarray:
    """Read ``/rois/labels`` of a responses file and check it against the scores files."""
    with open_h5(path, stage="load-fmri") as handle:
        if "rois/labels" not in handle or "rois/names" not in handle:
            raise InputError(f"{path}: has no /rois/labels and /rois/names; pass the responses.h5 the scores were computed from")
        labels = handle["rois/labels"][()]
        names = read_strings(handle["rois/names"])
    if names != roi_names:
        raise InputError(f"{path}: /rois/names {names} differ from the scores files' /roi_names {roi_names}; pass the matching responses file")
    if labels.shape != (n_voxels,):
        raise InputError(f"{path}: /rois/labels has shape {labels.shape}, the scores have {n_voxels} voxels; pass the matching responses file")
    return labels


def _read_tasks(ckpts: dict[tuple[int, int], _Checkpoint], seeds: list[int], steps: list[int]) -> dict[str, dict]:
    """Task metrics as ``{name: {"values": (n_seeds, n_steps), "higher_is_better": bool, "kind": str}}``."""
    metrics: dict[str, dict] = {}
    for i_seed, seed in enumerate(seeds):
        for i_step, step in enumerate(steps):
            path = ckpts[(seed, step)].path
            with open_h5(path, stage="tasks") as handle:
                if "metrics" not in handle or not len(handle["metrics"]):
                    raise InputError(f"{path}: no /metrics/{{name}} datasets; re-run `brainphase tasks` for it")
                group = handle["metrics"]
                if metrics and sorted(group) != sorted(metrics):
                    raise InputError(f"{path}: metrics {sorted(group)} differ from the other tasks files' {sorted(metrics)}")
                for name, dataset in group.items():
                    kind = attr_text(dataset, "kind")
                    if kind not in ("continuous", "discontinuous") or "higher_is_better" not in dataset.attrs:
                        raise InputError(f"{path}: /metrics/{name} needs attrs higher_is_better and kind (continuous/discontinuous)")
                    entry = metrics.setdefault(name, {
                        "values": np.full((len(seeds), len(steps)), np.nan),
                        "higher_is_better": bool(dataset.attrs["higher_is_better"]),
                        "kind": kind,
                    })
                    if (entry["kind"], entry["higher_is_better"]) != (kind, bool(dataset.attrs["higher_is_better"])):
                        raise InputError(f"{path}: /metrics/{name} attrs differ from the other tasks files'")
                    entry["values"][i_seed, i_step] = float(dataset[()])
    return metrics


def aggregate(
    scores_paths: Sequence[str | Path],
    tasks_paths: Sequence[str | Path],
    out: str | Path,
    responses_path: str | Path | None = None,
    config: argparse.Namespace | dict | None = None,
) -> Path:
    """Collect per-checkpoint scores and task metrics into ``metrics.h5``.

    Parameters
    ----------
    scores_paths : sequence of path
        ``scores/{model}/seed{seed}/step{step}.h5`` files (written by ``brainphase encode``),
        one per (seed, step); together they must cover every step for every seed.
    tasks_paths : sequence of path
        ``tasks/{model}/seed{seed}/step{step}.h5`` files for the same (seed, step) grid.
    out : path
        ``metrics.h5`` to write (atomically).
    responses_path : path, optional
        ``fmri/responses.h5`` whose ``/rois/labels`` select the ROI voxels. Required when
        the scores files have ROIs (non-empty ``/roi_names``).
    config : namespace or dict, optional
        Settings recorded in the provenance (defaults to the arguments above).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        Incomplete seeds x steps grid, duplicated checkpoints, mixed models, mixed
        simulated/real data, inconsistent layers/subjects/ROIs or metrics, or a responses
        file that does not match the scores.
    """
    scores_paths = [Path(p) for p in scores_paths]
    tasks_paths = [Path(p) for p in tasks_paths]
    if not scores_paths or not tasks_paths:
        raise InputError("aggregate needs at least one --scores and one --tasks file")

    score_ckpts, simulated_flags = [], []
    for path in scores_paths:
        with open_h5(path, stage="encode") as handle:
            score_ckpts.append(_checkpoint(path, handle))
            simulated_flags.append(bool(handle.attrs.get("simulated", False)))
    task_ckpts = []
    for path in tasks_paths:
        with open_h5(path, stage="tasks") as handle:
            task_ckpts.append(_checkpoint(path, handle))
    seeds, steps, scores_by_key = _grid(score_ckpts, "scores")
    task_seeds, task_steps, tasks_by_key = _grid(task_ckpts, "tasks")
    if (task_seeds, task_steps) != (seeds, steps):
        raise InputError(
            f"--scores cover seeds {seeds} x steps {steps} but --tasks cover seeds {task_seeds} x steps {task_steps}; "
            "pass the tasks files of the same checkpoints"
        )
    model_id = score_ckpts[0].model_id
    if task_ckpts[0].model_id != model_id:
        raise InputError(f"--scores are of model {model_id!r} but --tasks of {task_ckpts[0].model_id!r}")
    for key, ckpt in scores_by_key.items():
        if tasks_by_key[key].tokens != ckpt.tokens:
            raise InputError(f"{ckpt.path} says tokens={ckpt.tokens} but {tasks_by_key[key].path} says {tasks_by_key[key].tokens}")
    if len(set(simulated_flags)) > 1:
        sim = [str(p) for p, s in zip(scores_paths, simulated_flags) if s][:3]
        raise InputError(f"--scores mix simulated ({sim}...) and real fMRI; aggregate one kind at a time")
    simulated = simulated_flags[0]
    tokens = np.array([scores_by_key[(seeds[0], step)].tokens for step in steps], dtype=np.int64)
    n_seeds, n_steps = len(seeds), len(steps)

    first = scores_by_key[(seeds[0], steps[0])].path
    with open_h5(first) as handle:
        layers = handle["layers"][()]
        subjects = read_strings(handle["subjects"])
        roi_names = read_strings(handle["roi_names"])
        n_voxels = handle["r"].shape[2]
        has_normalized = "r_normalized" in handle
    n_layers, n_subjects, n_rois = len(layers), len(subjects), len(roi_names)
    if n_rois and responses_path is None:
        raise InputError(
            f"{first}: the scores have {n_rois} ROIs {roi_names}; alignment is the mean r over ROI voxels, which needs "
            "their labels: pass --responses fmri/responses.h5 (the file the scores were computed from)"
        )
    roi_voxels = None
    if n_rois:
        labels = _read_labels(Path(responses_path), roi_names, n_voxels)
        roi_voxels = labels > 0
        logger.info("alignment over %d ROI voxels of %d (%d ROIs)", int(roi_voxels.sum()), n_voxels, n_rois)
    else:
        logger.info("scores have no ROIs: alignment over all %d voxels", n_voxels)

    shape = (n_seeds, n_steps)
    brain = {
        "layer_subject_r": np.empty(shape + (n_layers, n_subjects)),
        "roi_mean_r": np.empty(shape + (n_layers, n_subjects, n_rois)),
    }
    if has_normalized:
        brain["layer_subject_r_normalized"] = np.empty(shape + (n_layers, n_subjects))
    n_nan = 0
    grid = [(i, seed, j, step) for i, seed in enumerate(seeds) for j, step in enumerate(steps)]
    for i_seed, seed, i_step, step in tqdm(grid, desc="aggregate scores", unit="file", disable=None):
        path = scores_by_key[(seed, step)].path
        with open_h5(path, stage="encode") as handle:
            if (not np.array_equal(handle["layers"][()], layers) or read_strings(handle["subjects"]) != subjects
                    or read_strings(handle["roi_names"]) != roi_names or handle["r"].shape != (n_layers, n_subjects, n_voxels)):
                raise InputError(f"{path}: layers, subjects, ROIs or voxel count differ from {first}; all checkpoints must be scored alike")
            if ("r_normalized" in handle) != has_normalized:
                raise InputError(f"{path}: /r_normalized is present in some scores files and not in others (e.g. {first})")
            r = handle["r"][()]
            roi_mean_r = handle["roi_mean_r"][()]
            r_normalized = handle["r_normalized"][()] if has_normalized else None
        if roi_mean_r.shape != (n_layers, n_subjects, n_rois):
            raise InputError(f"{path}: /roi_mean_r has shape {roi_mean_r.shape}, expected {(n_layers, n_subjects, n_rois)}")
        if n_rois:
            expected = np.stack([np.nanmean(r[:, :, labels == k + 1], axis=2) for k in range(n_rois)], axis=2)
            if not np.allclose(expected, roi_mean_r, atol=_ROI_CHECK_ATOL, equal_nan=True):
                raise InputError(f"{path}: /roi_mean_r does not equal the mean of /r over the ROIs of {responses_path}; "
                                 "pass the responses file these scores were computed from")
        selected = r if roi_voxels is None else r[:, :, roi_voxels]
        n_nan += int(np.isnan(selected).sum())
        try:
            brain["layer_subject_r"][i_seed, i_step] = voxel_mean(r, roi_voxels)
            if has_normalized:
                brain["layer_subject_r_normalized"][i_seed, i_step] = voxel_mean(r_normalized, roi_voxels)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        brain["roi_mean_r"][i_seed, i_step] = roi_mean_r
    if n_nan:
        logger.warning("left %d NaN voxel scores out of the alignment means", n_nan)

    for suffix in ("", "_normalized") if has_normalized else ("",):
        for name, values in alignment_summary(brain[f"layer_subject_r{suffix}"], layers).items():
            brain[f"{name}{suffix}"] = values
    # (..., n_layers, n_subjects, n_rois) -> (..., n_rois): each subject's best layer, mean over subjects
    brain["alignment_roi"] = brain["roi_mean_r"].max(axis=-3).mean(axis=-2)

    metrics = _read_tasks(tasks_by_key, seeds, steps)
    voxel_selection = "roi_voxels" if n_rois else "all_voxels"
    inputs = [*scores_paths, *tasks_paths] + ([Path(responses_path)] if responses_path is not None else [])
    if config is None:
        config = {"scores": scores_paths, "tasks": tasks_paths, "responses": responses_path, "out": out}
    attrs = provenance("aggregate", config, inputs, model_id=model_id, simulated=simulated,
                       n_seeds=n_seeds, n_steps=n_steps)
    with atomic_h5(out, attrs) as handle:
        handle["seeds"] = np.asarray(seeds, dtype=np.int64)
        handle["steps"] = np.asarray(steps, dtype=np.int64)
        handle["tokens"] = tokens
        handle["layers"] = layers
        handle["subjects"] = string_array(subjects)
        handle["roi_names"] = string_array(roi_names)
        group = handle.create_group("brain")
        for name, values in brain.items():
            group[name] = values
        group.attrs["voxel_selection"] = voxel_selection
        group.attrs["definition"] = (
            "layer_subject_r[seed, step, layer, subject] = mean of /r over the selected voxels "
            f"({voxel_selection}; NaN voxels left out); alignment = mean over subjects of the max over layers; "
            "alignment_layer = mean over subjects; alignment_roi = mean over subjects of the max over layers of /roi_mean_r"
        )
        task_group = handle.create_group("metrics")
        for name in sorted(metrics):
            task_group[name] = metrics[name]["values"]
            task_group[name].attrs["higher_is_better"] = metrics[name]["higher_is_better"]
            task_group[name].attrs["kind"] = metrics[name]["kind"]
    logger.info("aggregated %d seeds x %d steps of %s (%d metrics) into %s", n_seeds, n_steps, model_id, len(metrics), out)
    return Path(out)


def add_aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase aggregate``."""
    parser.add_argument("--scores", nargs="+", required=True, type=Path, metavar="FILE",
                        help="scores/{model}/seed{seed}/step{step}.h5 files (every step of every seed)")
    parser.add_argument("--tasks", nargs="+", required=True, type=Path, metavar="FILE",
                        help="tasks/{model}/seed{seed}/step{step}.h5 files of the same checkpoints")
    parser.add_argument("--responses", type=Path, default=None, metavar="FILE",
                        help="fmri/responses.h5 whose /rois/labels select the ROI voxels (required when the scores have ROIs)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="metrics.h5 to write")


def run_aggregate(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase aggregate``."""
    aggregate(args.scores, args.tasks, args.out, responses_path=args.responses, config=args)


# --------------------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------------------


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average whose half-width shrinks symmetrically at the ends.

    Parameters
    ----------
    values : ndarray, shape (n_steps,)
    window : int
        Odd number of checkpoints averaged (1 = no smoothing). Point ``t`` averages
        ``values[t-h : t+h+1]`` with ``h = min(window // 2, t, n_steps - 1 - t)``, so the
        ends are kept and a linear trend is preserved exactly.

    Returns
    -------
    ndarray, shape (n_steps,)
    """
    if window < 1 or window % 2 == 0:
        raise InputError(f"--smooth-window must be a positive odd number of checkpoints, got {window}")
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    out = np.empty(n)
    for t in range(n):
        h = min(window // 2, t, n - 1 - t)
        out[t] = values[t - h:t + h + 1].mean()
    return out


@dataclass
class PhaseResult:
    """Outcome of :func:`label_phases` on one curve.

    Attributes
    ----------
    labels : ndarray of int8, shape (n_steps,)
        0 alignment, 1 detachment, 2 realignment, -1 undetermined.
    peak_index, trough_index : int
        Checkpoint index of the peak P (end of alignment) and trough T (end of detachment);
        -1 when absent.
    detachment_kind : str
        ``"fall"``, ``"stall"`` or ``"none"`` (no peak confirmed).
    """

    labels: np.ndarray
    peak_index: int
    trough_index: int
    detachment_kind: str


def label_phases(alignment: np.ndarray, task: np.ndarray, min_change: float, stall_steps: int,
                 task_min_change: float) -> PhaseResult:
    """Label checkpoints with the three phases of Nakagi et al. (2025, arXiv:2502.20779).

    The rule (applied to already smoothed curves; see :data:`PHASE_RULE`):

    1. *Rise*: scan from the start, tracking the running minimum ``m``; the first index
       where ``alignment - alignment[m] >= min_change`` confirms a rise. None: every
       label is -1.
    2. *Peak* ``P``: from then on track ``P = argmax alignment[m:t+1]`` (first occurrence).
       ``P`` is confirmed at the first ``t`` where ``alignment[P] - alignment[t] >= min_change``
       (a *fall*) or where ``t - P >= stall_steps`` and ``task[P:t+1]`` varies by less than
       ``task_min_change`` (a *stall*: no new alignment maximum while the task stagnates).
       Not confirmed by the end: every label is 0 (alignment only).
    3. *Trough* ``T``: from ``P`` on, track ``T = argmin alignment[P:t+1]``; it is confirmed
       at the first ``t`` with ``alignment[t] - alignment[T] >= min_change``.

    Labels: 0 on ``[0, P]``, 1 on ``(P, T]``, 2 on ``(T, end]``; without a confirmed
    trough, 1 on ``(P, end]``.

    Parameters
    ----------
    alignment : ndarray, shape (n_steps,)
        Alignment per checkpoint, sorted by step.
    task : ndarray, shape (n_steps,)
        Primary task metric per checkpoint (used by the stall test only).
    min_change : float
        Smallest change of alignment (in r) that counts as a rise or a fall.
    stall_steps : int
        Checkpoints without a new alignment maximum that, with a flat task metric, make a stall.
    task_min_change : float
        Task-metric range below which the task counts as stagnating.

    Returns
    -------
    PhaseResult
    """
    alignment = np.asarray(alignment, dtype=np.float64)
    task = np.asarray(task, dtype=np.float64)
    n = len(alignment)
    labels = np.full(n, UNDETERMINED, dtype=np.int8)

    running_min = 0
    rise = None
    for t in range(n):
        if alignment[t] < alignment[running_min]:
            running_min = t
        if alignment[t] - alignment[running_min] >= min_change:
            rise = t
            break
    if rise is None:
        return PhaseResult(labels, -1, -1, "none")

    peak, kind = running_min, "none"
    for t in range(running_min, n):
        if alignment[t] > alignment[peak]:
            peak = t
        if t < rise:  # only a confirmed rise can end in a peak
            continue
        if alignment[peak] - alignment[t] >= min_change:
            kind = "fall"
        elif t - peak >= stall_steps and np.ptp(task[peak:t + 1]) < task_min_change:
            kind = "stall"
        if kind != "none":
            break
    if kind == "none":
        labels[:] = 0
        return PhaseResult(labels, -1, -1, kind)

    trough, confirmed = peak, False
    for t in range(peak, n):
        if alignment[t] < alignment[trough]:
            trough = t
        if alignment[t] - alignment[trough] >= min_change:
            confirmed = True
            break
    labels[:peak + 1] = 0
    labels[peak + 1:] = 1
    if not confirmed:
        return PhaseResult(labels, peak, -1, kind)
    labels[trough + 1:] = 2
    return PhaseResult(labels, peak, trough, kind)


def correlate(alignment: np.ndarray, metric: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of alignment with a task metric over steps.

    Parameters
    ----------
    alignment, metric : ndarray, shape (n_steps,)

    Returns
    -------
    dict
        ``pearson_r``, ``pearson_p``, ``spearman_rho``, ``spearman_p`` (NaN when either
        series is constant: the correlation is undefined).
    """
    if np.ptp(alignment) == 0 or np.ptp(metric) == 0:
        return {k: float("nan") for k in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p")}
    pearson = stats.pearsonr(alignment, metric)
    spearman = stats.spearmanr(alignment, metric)
    return {"pearson_r": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
            "spearman_rho": float(spearman.statistic), "spearman_p": float(spearman.pvalue)}


def _primary_metric(metrics: h5py.Group, requested: str | None, path: Path) -> str:
    names = sorted(metrics)
    if requested is not None:
        if requested not in metrics:
            raise InputError(f"--primary-metric {requested!r} is not in {path}:/metrics (available: {names})")
        return requested
    for name in names:
        if attr_text(metrics[name], "kind") == "discontinuous":
            return name
    raise InputError(f"{path}: no discontinuous metric in /metrics {names}; choose one with --primary-metric")


def phases(metrics_path: str | Path, out: str | Path, smooth_window: int = 3, min_change: float = 0.01,
           stall_steps: int = 3, task_min_change: float = 0.01, primary_metric: str | None = None,
           config: argparse.Namespace | dict | None = None) -> Path:
    """Write ``trajectory.h5``: ``metrics.h5`` plus ``/phases`` and ``/correlations``.

    Parameters
    ----------
    metrics_path : path
        ``metrics.h5`` written by :func:`aggregate`.
    out : path
        ``trajectory.h5`` to write (atomically).
    smooth_window, min_change, stall_steps, task_min_change
        Parameters of :func:`smooth` and :func:`label_phases`.
    primary_metric : str, optional
        Task metric of the stall test; default: the first (by name) discontinuous metric.
    config : namespace or dict, optional
        Settings recorded in the provenance (defaults to the arguments above).

    Returns
    -------
    Path
        ``out``.
    """
    metrics_path = Path(metrics_path)
    if min_change <= 0:
        raise InputError(f"--min-change must be > 0, got {min_change}")
    if stall_steps < 1:
        raise InputError(f"--stall-steps must be >= 1, got {stall_steps}")
    if task_min_change < 0:
        raise InputError(f"--task-min-change must be >= 0, got {task_min_change}")
    if config is None:
        config = {"metrics": metrics_path, "out": out, "smooth_window": smooth_window, "min_change": min_change,
                  "stall_steps": stall_steps, "task_min_change": task_min_change, "primary_metric": primary_metric}
    with open_h5(metrics_path, stage="aggregate") as src:
        missing = [k for k in ("steps", "tokens", "seeds", "brain/alignment", "metrics") if k not in src]
        if missing:
            raise InputError(f"{metrics_path}: missing {missing}; re-create it with `brainphase aggregate`")
        steps, tokens, seeds = src["steps"][()], src["tokens"][()], src["seeds"][()]
        if len(steps) < 3:
            raise InputError(f"{metrics_path}: only {len(steps)} steps; phases need at least 3 checkpoints")
        alignment = src["brain/alignment"][()]
        primary = _primary_metric(src["metrics"], primary_metric, metrics_path)
        task = src["metrics"][primary][()]
        metric_values = {name: src["metrics"][name][()] for name in sorted(src["metrics"])}

        def run_rule(curve: np.ndarray, task_curve: np.ndarray) -> tuple[np.ndarray, PhaseResult]:
            smoothed = smooth(curve, smooth_window)
            return smoothed, label_phases(smoothed, smooth(task_curve, smooth_window), min_change,
                                          stall_steps, task_min_change)

        mean_smoothed, mean_result = run_rule(alignment.mean(axis=0), task.mean(axis=0))
        seed_runs = [run_rule(alignment[i], task[i]) for i in range(len(seeds))]
        correlations = {name: correlate(alignment.mean(axis=0), values.mean(axis=0)) for name, values in metric_values.items()}
        seed_correlations = {name: [correlate(alignment[i], values[i]) for i in range(len(seeds))]
                             for name, values in metric_values.items()}
        for name, corr in correlations.items():
            if np.isnan(corr["pearson_r"]):
                logger.warning("correlation of alignment with %s is undefined (a constant series): stored as NaN", name)

        def boundary(index: int, values: np.ndarray) -> int:
            return int(values[index]) if index >= 0 else -1

        attrs = provenance(
            "phases", config, [metrics_path],
            model_id=src.attrs["model_id"], simulated=bool(src.attrs.get("simulated", False)),
            n_seeds=len(seeds), n_steps=len(steps),
            aggregate_config_json=src.attrs.get("config_json", ""),
            aggregate_input_sha256=src.attrs.get("input_sha256", ""),
        )
        with atomic_h5(out, attrs) as handle:
            for name in src:
                src.copy(src[name], handle, name=name)
            group = handle.create_group("phases")
            group["labels"] = mean_result.labels
            group["alignment_smoothed"] = mean_smoothed
            group["seed_labels"] = np.stack([res.labels for _, res in seed_runs])
            group["seed_alignment_smoothed"] = np.stack([sm for sm, _ in seed_runs])
            for which, index_of in (("peak", lambda res: res.peak_index), ("trough", lambda res: res.trough_index)):
                group[f"seed_{which}_step"] = np.array([boundary(index_of(res), steps) for _, res in seed_runs], dtype=np.int64)
                group[f"seed_{which}_tokens"] = np.array([boundary(index_of(res), tokens) for _, res in seed_runs], dtype=np.int64)
            group["seed_detachment_kind"] = string_array([res.detachment_kind for _, res in seed_runs])
            group.attrs.update({
                "rule": PHASE_RULE,
                "phase_names": json.dumps(PHASE_NAMES),
                "smooth_window": smooth_window, "min_change": min_change, "stall_steps": stall_steps,
                "task_min_change": task_min_change, "primary_metric": primary,
                "peak_index": mean_result.peak_index, "trough_index": mean_result.trough_index,
                "peak_step": boundary(mean_result.peak_index, steps),
                "trough_step": boundary(mean_result.trough_index, steps),
                "peak_tokens": boundary(mean_result.peak_index, tokens),
                "trough_tokens": boundary(mean_result.trough_index, tokens),
                "detachment_kind": mean_result.detachment_kind,
            })
            corr_group = handle.create_group("correlations")
            corr_group.attrs["definition"] = ("correlation over steps of brain/alignment with each /metrics/{name}: "
                                              "seed-mean curves (pearson_r, ...) and per seed (seed_pearson_r, ...); NaN when a series is constant")
            names = list(correlations)
            corr_group["metric_names"] = string_array(names)
            for key in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"):
                corr_group[key] = np.array([correlations[n][key] for n in names])
                corr_group[f"seed_{key}"] = np.array([[c[key] for c in seed_correlations[n]] for n in names]).T
    counts = {PHASE_NAMES.get(k, "undetermined"): int((mean_result.labels == k).sum()) for k in (0, 1, 2, UNDETERMINED)}
    logger.info("phases of the seed-mean curve: %s (peak step %s, trough step %s, detachment %s) -> %s", counts,
                boundary(mean_result.peak_index, steps), boundary(mean_result.trough_index, steps),
                mean_result.detachment_kind, out)
    return Path(out)


def add_phases_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase phases``."""
    parser.add_argument("--metrics", required=True, type=Path, metavar="FILE", help="metrics.h5 from `brainphase aggregate`")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="trajectory.h5 to write")
    parser.add_argument("--smooth-window", type=int, default=3, metavar="INT",
                        help="odd number of checkpoints in the centred moving average (1 = none; default 3)")
    parser.add_argument("--min-change", type=float, default=0.01, metavar="FLOAT",
                        help="smallest rise or fall of alignment (in r) that counts (default 0.01)")
    parser.add_argument("--stall-steps", type=int, default=3, metavar="INT",
                        help="checkpoints without a new alignment maximum that, with a flat task metric, make a stall (default 3)")
    parser.add_argument("--task-min-change", type=float, default=0.01, metavar="FLOAT",
                        help="range of the primary task metric below which it stagnates (default 0.01)")
    parser.add_argument("--primary-metric", default=None, metavar="NAME",
                        help="task metric of the stall test (default: first discontinuous metric by name)")


def run_phases(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase phases``."""
    phases(args.metrics, args.out, smooth_window=args.smooth_window, min_change=args.min_change,
           stall_steps=args.stall_steps, task_min_change=args.task_min_change,
           primary_metric=args.primary_metric, config=args)


# --------------------------------------------------------------------------------------
# reading trajectory.h5
# --------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Contents of ``trajectory.h5`` used by the figures (shapes as in ``docs/hdf5_layout.md``).

    Attributes
    ----------
    steps, tokens : ndarray of int64, shape (n_steps,)
    seeds : ndarray of int64, shape (n_seeds,)
    layers : ndarray of int, shape (n_layers,)
    alignment : ndarray, shape (n_seeds, n_steps)
    alignment_layer : ndarray, shape (n_seeds, n_steps, n_layers)
    best_layer : ndarray, shape (n_seeds, n_steps)
    metrics : dict of str -> ndarray, shape (n_seeds, n_steps)
    metric_kinds : dict of str -> str  ("continuous" / "discontinuous")
    labels : ndarray of int8, shape (n_steps,)
    alignment_smoothed : ndarray, shape (n_steps,)
        Smoothed seed-mean alignment, the curve the phase rule ran on.
    seed_labels : ndarray of int8, shape (n_seeds, n_steps)
    phase_attrs : dict
        Attributes of ``/phases`` (rule parameters, peak/trough step and tokens).
    model_id : str
    simulated : bool
    """

    steps: np.ndarray
    tokens: np.ndarray
    seeds: np.ndarray
    layers: np.ndarray
    alignment: np.ndarray
    alignment_layer: np.ndarray
    best_layer: np.ndarray
    metrics: dict[str, np.ndarray]
    metric_kinds: dict[str, str]
    labels: np.ndarray
    alignment_smoothed: np.ndarray
    seed_labels: np.ndarray
    phase_attrs: dict
    model_id: str
    simulated: bool


def load_trajectory(path: str | Path) -> Trajectory:
    """Read ``trajectory.h5`` (written by :func:`phases`) into a :class:`Trajectory`."""
    path = Path(path)

    with open_h5(path, stage="phases") as handle:
        return Trajectory(
            steps=handle["steps"][()], tokens=handle["tokens"][()], seeds=handle["seeds"][()],
            layers=handle["layers"][()], alignment=handle["brain/alignment"][()],
            alignment_layer=handle["brain/alignment_layer"][()], best_layer=handle["brain/best_layer"][()],
            metrics={name: ds[()] for name, ds in handle["metrics"].items()},
            metric_kinds={name: attr_text(ds, "kind") for name, ds in handle["metrics"].items()},
            labels=handle["phases/labels"][()], alignment_smoothed=handle["phases/alignment_smoothed"][()],
            seed_labels=handle["phases/seed_labels"][()],
            phase_attrs={k: (attr_text(handle["phases"], k) if isinstance(v, (bytes, str)) else v)
                         for k, v in handle["phases"].attrs.items()},
            model_id=attr_text(handle, "model_id"), simulated=bool(handle.attrs.get("simulated", False)),
        )
