"""``brainphase aggregate``: per-checkpoint scores and task metrics -> ``metrics.h5``.

Collects ``scores/{model}/seed{seed}/{chunk}/step{step}.h5`` (from ``brainphase encode``) and, when
there are any, ``tasks/...`` and ``internal/{model}/seed{seed}/{chunk}/step{step}.h5`` (task metrics
``/metrics/{task}/{metric}`` and internal metrics ``/internal/{name}``,
:mod:`brainphase.phases.collect`) into arrays over seeds x steps.
Brain alignment of a checkpoint is summarised without layer-selection bias
(:mod:`brainphase.phases.summary`): ``alignment_heldout_layer`` (layer chosen on other
subjects or other voxels) and ``alignment_layer_mean``; the per-layer curve, per-ROI values,
ceiling-normalised values, the group-average pseudo-subject (never mixed with the subjects),
the variance a layer explains beyond the stimulus baselines, and seed/subject-mean voxel maps
are stored beside them. Layout: the "trajectory" section of ``docs/hdf5_layout.md``.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from tqdm import tqdm

from brainphase.errors import InputError
from brainphase.io import atomic_h5, attr_text, open_h5, provenance, read_strings, string_array, write_attrs
from brainphase.config import schema_default
from brainphase.phases.summary import FIXED_LAYER, HELDOUT_VOXELS, checkpoint_summary, fixed_layer_choice, voxel_mean
from brainphase.phases.model_size import model_size
from brainphase.phases.collect import read_internal_metrics, read_task_metrics, write_internal_metrics, write_task_metrics
from brainphase.phases.voxel_blocks import BlockCollector, block_sizes, block_starts

logger = logging.getLogger(__name__)

#: tolerance (absolute, in r) when checking /roi_mean_r against the ROI labels
_ROI_CHECK_ATOL = 1e-4
#: alignment measures stored in /brain as alignment_{measure} (S, T), with alignment_{measure}_subject (S, T, N)
#: for all but group
MEASURES = ("heldout_layer", "layer_mean", "heldout_layer_normalized", "beyond_baselines", "group")


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
    values = {}
    for key in ("seed", "step", "tokens"):
        text = attr_text(handle, key) if isinstance(handle.attrs[key], (bytes, str)) else handle.attrs[key]
        try:
            values[key] = int(text)
        except (TypeError, ValueError):
            fix = ("pass --seed N to `brainphase extract` and `brainphase tasks` (the training seed; 0 for a single "
                   "model)" if key == "seed" else f"pass --{key} to the step that wrote it")
            raise InputError(f"{path}: root attribute {key!r} is {text!r}, not an integer: it was written without a {key} "
                             f"label; {fix}, then re-run the steps after it") from None
    return _Checkpoint(path, attr_text(handle, "model_id"), values["seed"], values["step"], values["tokens"])


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


def _matching_grid(paths: list[Path], kind: str, stage: str, scores_by_key: dict, seeds: list[int],
                   steps: list[int], model_id: str) -> dict[tuple[int, int], Path]:
    """``{(seed, step): path}`` of per-checkpoint ``--{kind}`` files covering the scores' grid."""
    if not paths:
        return {}
    ckpts = []
    for path in paths:
        with open_h5(path, stage=stage) as handle:
            ckpts.append(_checkpoint(path, handle))
    found_seeds, found_steps, by_key = _grid(ckpts, kind)
    if (found_seeds, found_steps) != (seeds, steps):
        raise InputError(f"--scores cover seeds {seeds} x steps {steps} but --{kind} cover seeds {found_seeds} x steps "
                         f"{found_steps}; pass the {kind} files of the same checkpoints")
    if ckpts[0].model_id != model_id:
        raise InputError(f"--scores are of model {model_id!r} but --{kind} of {ckpts[0].model_id!r}")
    for key, ckpt in scores_by_key.items():
        if by_key[key].tokens != ckpt.tokens:
            raise InputError(f"{ckpt.path} says tokens={ckpt.tokens} but {by_key[key].path} says {by_key[key].tokens}")
    return {key: ckpt.path for key, ckpt in by_key.items()}


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


@dataclass
class _ScoresLayout:
    """Axes shared by every scores file of one aggregation (taken from the first file)."""

    path: Path
    layers: np.ndarray
    subjects: list[str]
    roi_names: list[str]
    n_voxels: int
    optional: frozenset  # which optional datasets the first file has

    @classmethod
    def read(cls, path: Path) -> "_ScoresLayout":
        with open_h5(path, stage="encode") as handle:
            optional = frozenset(name for name in ("r_normalized", "group/r", "variance_partition/unique_r2") if name in handle)
            return cls(path, handle["layers"][()], read_strings(handle["subjects"]), read_strings(handle["roi_names"]),
                       handle["r"].shape[2], optional)

    def check(self, path: Path, handle: h5py.File) -> None:
        if (not np.array_equal(handle["layers"][()], self.layers) or read_strings(handle["subjects"]) != self.subjects
                or read_strings(handle["roi_names"]) != self.roi_names
                or handle["r"].shape != (len(self.layers), len(self.subjects), self.n_voxels)):
            raise InputError(f"{path}: layers, subjects, ROIs or voxel count differ from {self.path}; all checkpoints must be scored alike")
        for name in ("r_normalized", "group/r", "variance_partition/unique_r2"):
            if (name in handle) != (name in self.optional):
                raise InputError(f"{path}: /{name} is present in some scores files and not in others (e.g. {self.path}); "
                                 "re-run encode for every checkpoint with the same settings")


def _read_mask(path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    if path is None:
        return None
    with open_h5(path, stage="load-fmri") as handle:
        if "mask/mask" not in handle:
            return None
        return handle["mask/mask"][()], handle["mask/affine"][()]


def _check_roi_means(path: Path, r: np.ndarray, roi_mean_r: np.ndarray, labels: np.ndarray, responses: Path) -> None:
    n_rois = roi_mean_r.shape[-1]
    expected = np.stack([np.nanmean(r[:, :, labels == k + 1], axis=2) for k in range(n_rois)], axis=2)
    if not np.allclose(expected, roi_mean_r, atol=_ROI_CHECK_ATOL, equal_nan=True):
        raise InputError(f"{path}: /roi_mean_r does not equal the mean of /r over the ROIs of {responses}; "
                         "pass the responses file these scores were computed from")


def aggregate(scores_paths: Sequence[str | Path], tasks_paths: Sequence[str | Path], out: str | Path,
              responses_path: str | Path | None = None, config: argparse.Namespace | dict | None = None,
              voxel_blocks: int | None = None, internal_paths: Sequence[str | Path] = ()) -> Path:
    """Collect per-checkpoint scores, task and internal metrics into ``metrics.h5``.

    Parameters
    ----------
    scores_paths : sequence of path
        ``scores/{model}/seed{seed}/{chunk}/step{step}.h5`` files, one per (seed, step); together they
        must cover every step for every seed. One checkpoint is enough.
    tasks_paths : sequence of path
        ``tasks/{model}/seed{seed}/{chunk}/step{step}.h5`` files of the same checkpoints, or none (no
        task metrics, e.g. a sentence-level study without task text). Files whose root attr
        ``skipped`` says why (a model without a trained LM head) contribute no metrics.
    out : path
        ``metrics.h5`` to write (atomically).
    responses_path : path, optional
        ``fmri/responses.h5``: its ``/rois/labels`` select the ROI voxels (required when the
        scores have ROIs) and its ``/mask`` places voxel maps.
    config : namespace or dict, optional
        Settings recorded in the provenance.
    voxel_blocks : int, optional
        Contiguous voxel blocks whose means are stored for the phase bootstrap
        (:mod:`brainphase.phases.voxel_blocks`; only with >= 2 voxels per block; 0 = none);
        default ``phases.voxel_blocks`` of the schema.
    internal_paths : sequence of path
        ``internal/{model}/seed{seed}/{chunk}/step{step}.h5`` files (``brainphase internal``) of the same
        checkpoints, or none; stored as ``/internal/{name}`` (S, T, L)
        (:func:`brainphase.phases.collect.read_internal_metrics`).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        Incomplete seeds x steps grid, duplicated checkpoints, a file without a seed label, mixed
        models, mixed simulated/real data, inconsistent layers/subjects/ROIs/metrics, task files
        with other tasks or versions, or a responses file that does not match the scores.
    """
    scores_paths = [Path(p) for p in scores_paths]
    tasks_paths = [Path(p) for p in tasks_paths]
    internal_paths = [Path(p) for p in internal_paths]
    if not scores_paths:
        raise InputError("aggregate needs at least one --scores file")
    score_ckpts, simulated_flags = [], []
    for path in scores_paths:
        with open_h5(path, stage="encode") as handle:
            score_ckpts.append(_checkpoint(path, handle))
            simulated_flags.append(bool(handle.attrs.get("simulated", False)))
    seeds, steps, scores_by_key = _grid(score_ckpts, "scores")
    model_id = score_ckpts[0].model_id
    tasks_by_key = _matching_grid(tasks_paths, "tasks", "tasks", scores_by_key, seeds, steps, model_id)
    internal_by_key = _matching_grid(internal_paths, "internal", "internal", scores_by_key, seeds, steps, model_id)
    if len(set(simulated_flags)) > 1:
        sim = [str(p) for p, s in zip(scores_paths, simulated_flags) if s][:3]
        raise InputError(f"--scores mix simulated ({sim}...) and real fMRI; aggregate one kind at a time")
    tokens = np.array([scores_by_key[(seeds[0], step)].tokens for step in steps], dtype=np.int64)

    layout = _ScoresLayout.read(scores_by_key[(seeds[0], steps[0])].path)
    with open_h5(scores_by_key[(seeds[0], steps[-1])].path) as handle:
        size = model_size(handle)
    n_layers, n_subjects, n_rois = len(layout.layers), len(layout.subjects), len(layout.roi_names)
    if n_rois and responses_path is None:
        raise InputError(f"{layout.path}: the scores have {n_rois} ROIs {layout.roi_names}; alignment is the mean r over ROI "
                         "voxels, which needs their labels: pass --responses fmri/responses.h5 (the file the scores were computed from)")
    labels = _read_labels(Path(responses_path), layout.roi_names, layout.n_voxels) if n_rois else None
    voxels = None if labels is None else labels > 0
    mask = _read_mask(Path(responses_path) if responses_path is not None else None)
    logger.info("alignment over %s", f"{int(voxels.sum())} ROI voxels of {layout.n_voxels}" if n_rois
                else f"all {layout.n_voxels} voxels (the scores have no ROIs)")
    n_selected = layout.n_voxels if voxels is None else int(voxels.sum())
    voxel_blocks = schema_default("phases.voxel_blocks") if voxel_blocks is None else voxel_blocks
    starts = block_starts(n_selected, voxel_blocks)

    shape = (len(seeds), len(steps))
    brain = {"layer_subject_r": np.empty(shape + (n_layers, n_subjects)),
             "roi_mean_r": np.empty(shape + (n_layers, n_subjects, n_rois)),
             "heldout_position": np.zeros(shape + (n_subjects,), dtype=int)}
    per_subject = {m: np.full(shape + (n_subjects,), np.nan) for m in ("heldout_layer", "layer_mean")}
    if "r_normalized" in layout.optional:
        brain["layer_subject_r_normalized"] = np.empty(shape + (n_layers, n_subjects))
    if "variance_partition/unique_r2" in layout.optional:
        brain["layer_subject_unique_r2"] = np.empty(shape + (n_layers, n_subjects))
    if "group/r" in layout.optional:
        brain["alignment_group_layer"] = np.empty(shape + (n_layers,))
    voxel_r = np.zeros((len(steps), layout.n_voxels)) if mask is not None else None
    blocks = None if starts is None else BlockCollector(shape, n_layers, n_subjects, starts, {"r", *layout.optional})
    methods = set()
    grid = [(i, seed, j, step) for i, seed in enumerate(seeds) for j, step in enumerate(steps)]
    for i_seed, seed, i_step, step in tqdm(grid, desc="aggregate scores", unit="file", disable=None):
        path = scores_by_key[(seed, step)].path
        with open_h5(path, stage="encode") as handle:
            layout.check(path, handle)
            r = handle["r"][()]
            roi_mean_r = handle["roi_mean_r"][()]
            extra = {name: handle[name][()] for name in layout.optional}
        for name, values in extra.items():
            expected = (n_layers, layout.n_voxels)
            if name != "group/r" and values.shape != (n_layers, n_subjects, layout.n_voxels):
                raise InputError(f"{path}: /{name} has shape {values.shape} but /r has {(n_layers, n_subjects, layout.n_voxels)} "
                                 "(layers, subjects, voxels); the group-average pseudo-subject belongs under /group")
            if name == "group/r" and values.shape != expected:
                raise InputError(f"{path}: /group/r has shape {values.shape}, expected {expected} (layers, voxels)")
        if roi_mean_r.shape != (n_layers, n_subjects, n_rois):
            raise InputError(f"{path}: /roi_mean_r has shape {roi_mean_r.shape}, expected {(n_layers, n_subjects, n_rois)}")
        if n_rois:
            _check_roi_means(path, r, roi_mean_r, labels, Path(responses_path))
        try:
            summary = checkpoint_summary(r, voxels, starts)
            if blocks is not None:
                blocks.add(i_seed, i_step, {"r": r, **extra}, voxels, summary["heldout_blocks"])
            if "r_normalized" in extra:
                brain["layer_subject_r_normalized"][i_seed, i_step] = voxel_mean(extra["r_normalized"], voxels, allow_empty=True)
            if "variance_partition/unique_r2" in extra:
                brain["layer_subject_unique_r2"][i_seed, i_step] = voxel_mean(extra["variance_partition/unique_r2"], voxels, allow_empty=True)
            if "group/r" in extra:
                brain["alignment_group_layer"][i_seed, i_step] = voxel_mean(extra["group/r"][:, None, :], voxels, allow_empty=True)[:, 0]
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        methods.add(summary["method"])
        brain["layer_subject_r"][i_seed, i_step] = summary["layer_subject"]
        brain["roi_mean_r"][i_seed, i_step] = roi_mean_r
        brain["heldout_position"][i_seed, i_step] = summary["heldout_position"]
        per_subject["heldout_layer"][i_seed, i_step] = summary["heldout_layer_subject"]
        per_subject["layer_mean"][i_seed, i_step] = summary["layer_mean_subject"]
        if voxel_r is not None:
            chosen = r[summary["heldout_position"], np.arange(n_subjects)]  # (n_subjects, n_voxels)
            voxel_r[i_step] += np.nanmean(chosen, axis=0) / len(seeds)
    method = methods.pop() if len(methods) == 1 else FIXED_LAYER
    position = brain.pop("heldout_position")
    if method == FIXED_LAYER:
        per_subject["heldout_layer"], position = fixed_layer_choice(brain["layer_subject_r"])

    def at_chosen(values: np.ndarray) -> np.ndarray:  # (S, T, L, N, ...) -> (S, T, N, ...)
        index = position.reshape(position.shape[:2] + (1, n_subjects) + (1,) * (values.ndim - 4))
        return np.take_along_axis(values, index, axis=2)[:, :, 0]

    if "layer_subject_r_normalized" in brain:
        per_subject["heldout_layer_normalized"] = at_chosen(brain["layer_subject_r_normalized"])
    if "layer_subject_unique_r2" in brain:
        # at each subject's held-out-chosen layer; where that layer was not partitioned
        # (encode.partition_layers: best or a list), the mean over the partitioned layers
        unique = brain["layer_subject_unique_r2"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            partitioned_mean = np.nanmean(unique, axis=2)
        chosen = at_chosen(unique)
        per_subject["beyond_baselines"] = np.where(np.isfinite(chosen), chosen, partitioned_mean)
    for measure, values in per_subject.items():
        brain[f"alignment_{measure}_subject"] = values
        brain[f"alignment_{measure}"] = values.mean(axis=-1)
    brain["heldout_layer_subject"] = layout.layers[position]
    brain["alignment_layer"] = brain["layer_subject_r"].mean(axis=-1)
    brain["alignment_roi"] = at_chosen(brain["roi_mean_r"]).mean(axis=2)
    if "alignment_group_layer" in brain:
        brain["alignment_group"] = brain["alignment_group_layer"].mean(axis=-1)
    if blocks is not None:
        brain.update(blocks.datasets(at_chosen, split_half=method == HELDOUT_VOXELS))
        brain["voxel_block_sizes"] = block_sizes(starts, n_selected)

    task_metrics = read_task_metrics(tasks_by_key, seeds, steps)
    internal = read_internal_metrics(internal_by_key, seeds, steps)
    inputs = [*scores_paths, *tasks_paths, *internal_paths] + ([Path(responses_path)] if responses_path is not None else [])
    if config is None:
        config = {"scores": scores_paths, "tasks": tasks_paths, "internal": internal_paths, "responses": responses_path,
                  "out": out}
    attrs = provenance("aggregate", config, inputs, model_id=model_id, simulated=simulated_flags[0],
                       n_seeds=len(seeds), n_steps=len(steps))
    with atomic_h5(out, attrs) as handle:
        handle["seeds"] = np.asarray(seeds, dtype=np.int64)
        handle["steps"] = np.asarray(steps, dtype=np.int64)
        handle["tokens"] = tokens
        handle["layers"] = layout.layers
        handle["subjects"] = string_array(layout.subjects)
        handle["roi_names"] = string_array(layout.roi_names)
        group = handle.create_group("brain")
        for name, values in brain.items():
            group[name] = values
        if voxel_r is not None:
            group["voxel_r"] = voxel_r.astype(np.float32)
            handle["mask/mask"], handle["mask/affine"] = mask
        group.attrs["voxel_selection"] = "roi_voxels" if n_rois else "all_voxels"
        group.attrs["layer_selection"] = method
        group.attrs["voxel_blocks"] = 0 if starts is None else len(starts)
        group.attrs["measures"] = string_array([m for m in MEASURES if f"alignment_{m}" in group])
        write_attrs(handle.create_group("model"), size)
        write_task_metrics(handle, task_metrics)
        write_internal_metrics(handle, internal)
    logger.info("aggregated %d seeds x %d steps of %s (%d task metrics, %d internal metrics; layer selection: %s) into %s",
                len(seeds), len(steps), model_id, len(task_metrics["metrics"]), len(internal["metrics"]), method, out)
    return Path(out)


def add_aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase aggregate``."""
    parser.add_argument("--scores", nargs="+", required=True, type=Path, metavar="FILE",
                        help="scores/{model}/seed{seed}/{chunk}/step{step}.h5 files (every step of every seed)")
    parser.add_argument("--tasks", nargs="*", default=[], type=Path, metavar="FILE",
                        help="tasks/{model}/seed{seed}/{chunk}/step{step}.h5 files of the same checkpoints (none: no task metrics)")
    parser.add_argument("--internal", nargs="*", default=[], type=Path, metavar="FILE",
                        help="internal/{model}/seed{seed}/{chunk}/step{step}.h5 files of the same checkpoints (none: no internal metrics)")
    parser.add_argument("--responses", type=Path, default=None, metavar="FILE",
                        help="fmri/responses.h5 whose /rois/labels select the ROI voxels (required when the scores have ROIs)")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="metrics.h5 to write")
    parser.add_argument("--voxel-blocks", type=int, default=schema_default("phases.voxel_blocks"), metavar="N",
                        help="contiguous voxel blocks stored for the phase bootstrap, when there are >= 2N voxels "
                             "(0 = none; default %(default)s)")


def run_aggregate(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase aggregate``."""
    aggregate(args.scores, args.tasks, args.out, responses_path=args.responses, config=args,
              voxel_blocks=args.voxel_blocks, internal_paths=args.internal)
