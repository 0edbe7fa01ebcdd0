"""Segment, name and bootstrap an alignment trajectory: the phases of Nakagi et al. (2025), with uncertainty.

:func:`analyse_trajectory` segments the seed-mean alignment curve at its measured noise
(:mod:`brainphase.phases.noise`, :mod:`brainphase.phases.segment`) and names the segments with
the phases of Nakagi et al. (2025, arXiv:2502.20779) (:mod:`brainphase.phases.naming`).

Uncertainty: seeds (and subjects, when given, and blocks of voxels,
when ``brainphase aggregate`` stored them: :mod:`brainphase.phases.voxel_blocks`) are resampled
with replacement ``n_bootstrap`` times and each resampled mean curve is segmented again with the
same noise level; the 2.5-97.5 % range of the bootstrap knot nearest to each fitted boundary gives its
CI in tokens, and the share of resamples whose phase sequence contains a phase name gives the
probability that the phase exists. Each seed's own curve is segmented too, and its labels are
compared with the pooled ones. Task metrics never enter the segmentation: for each segment the
change of every task metric over the segment is reported beside it, with its CI over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from brainphase.errors import InputError
from brainphase.phases.naming import (CONFIDENCE, LABEL_NAMES, UNDETERMINED, _segment_trends, name_segments,
                                      segment_labels, task_changes)
from brainphase.phases.noise import noise_dof, noise_sigma, quiet_nanmean
from brainphase.phases.segment import (DEFAULT_FALSE_BOUNDARY_RATE, DEFAULT_MAX_SEGMENTS, DEFAULT_MIN_POINTS,
                                       Segmentation, knot_cost, log_token_axis, segment_curve)
from brainphase.phases.voxel_blocks import VoxelBlocks, weighted_value

#: fewest finite checkpoints for which phases are labelled
MIN_CHECKPOINTS = 4


def segment_trajectory(x: np.ndarray, alignment: np.ndarray, subject_alignment: np.ndarray | None = None,
                       max_segments: int = DEFAULT_MAX_SEGMENTS, min_points: int = DEFAULT_MIN_POINTS,
                       false_boundary_rate: float = DEFAULT_FALSE_BOUNDARY_RATE) -> tuple[Segmentation, np.ndarray, str, float]:
    """The pooled segmentation of :func:`analyse_trajectory`, without names or bootstrap.

    Parameters
    ----------
    x : ndarray, shape (n_steps,)
        log10 tokens (:func:`~brainphase.phases.segment.log_token_axis`).
    alignment : ndarray, shape (n_seeds, n_steps)
    subject_alignment : ndarray, shape (n_seeds, n_steps, n_subjects), optional

    Returns
    -------
    segmentation : Segmentation
        Of the seed-mean curve.
    sigma : ndarray, shape (n_steps,)
    noise_source : str
    cost : float
        Chi² cost of one knot (:func:`~brainphase.phases.segment.knot_cost` with the noise estimate's dof).
    """
    curve = quiet_nanmean(alignment, axis=0)
    finite = np.isfinite(curve)
    sigma, source = noise_sigma(x, alignment, subject_alignment)
    cost = knot_cost(x[finite], sigma[finite], min_points, false_boundary_rate,
                     noise_dof=noise_dof(x, alignment, subject_alignment))
    return segment_curve(x, curve, sigma, max_segments, min_points, cost), sigma, source, cost


@dataclass
class TrajectoryPhases:
    """Result of :func:`analyse_trajectory` (columns of the tables in ``docs/hdf5_layout.md``).

    Attributes
    ----------
    status : str
        ``labelled``, or ``skipped: <reason>`` (then the tables have no rows and labels are -1).
    x, curve, fitted : ndarray, shape (n_steps,)
        log10 tokens, seed-mean curve (NaN = gap), piecewise-linear fit.
    labels : ndarray of int8, shape (n_steps,)
        Index into :data:`LABEL_NAMES` per checkpoint, -1 = not labelled.
    segments, boundaries, seed_segments : DataFrame
        The segment table (one row per segment, task changes in columns ``task/{metric}/...``),
        the boundary table, and the per-seed segment tables (column ``seed``).
    seed_labels : ndarray of int8, shape (n_seeds, n_steps)
    seed_agreement : ndarray, shape (n_seeds,)
        Share of finite checkpoints where a seed's label equals the pooled label.
    phase_probability : dict of str -> float
        Share of bootstrap resamples whose phase sequence contains each name.
    bootstrap_knots : ndarray, shape (n_bootstrap, max_segments - 1)
        Knots (log10 tokens) of each resample, NaN-padded.
    sigma : ndarray, shape (n_steps,)
    noise_source, bootstrap_kind, summary : str
    """

    status: str
    x: np.ndarray
    curve: np.ndarray
    fitted: np.ndarray
    labels: np.ndarray
    segments: pd.DataFrame
    boundaries: pd.DataFrame
    seed_segments: pd.DataFrame
    seed_labels: np.ndarray
    seed_agreement: np.ndarray
    phase_probability: dict = field(default_factory=dict)
    bootstrap_knots: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    sigma: np.ndarray = field(default_factory=lambda: np.empty(0))
    noise_source: str = ""
    bootstrap_kind: str = ""
    summary: str = ""

    @property
    def boundary_tokens(self) -> np.ndarray:
        return self.boundaries["tokens"].to_numpy() if len(self.boundaries) else np.empty(0)


def _nearest(x: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(x - value)))


def _segment_table(x: np.ndarray, tokens: np.ndarray, steps: np.ndarray, seg: Segmentation, names: list[str],
                   trends: list[str], z: float) -> pd.DataFrame:
    edges = np.concatenate([[x[0]], seg.knots, [x[-1]]])
    edge_tokens = np.concatenate([[tokens[0]], 10.0 ** seg.knots, [tokens[-1]]])
    return pd.DataFrame({
        "phase": names, "trend": trends,
        "start_step": [int(steps[_nearest(x, e)]) for e in edges[:-1]],
        "end_step": [int(steps[_nearest(x, e)]) for e in edges[1:]],
        "start_tokens": edge_tokens[:-1], "end_tokens": edge_tokens[1:],
        "start_log10_tokens": edges[:-1], "end_log10_tokens": edges[1:],
        "slope": seg.slopes, "slope_ci_low": seg.slopes - z * seg.slope_se, "slope_ci_high": seg.slopes + z * seg.slope_se,
    })


def _resample(rng: np.random.Generator, alignment: np.ndarray, subject_alignment: np.ndarray | None,
              fitted: np.ndarray, sigma: np.ndarray, blocks: VoxelBlocks | None = None,
              block_rng: np.random.Generator | None = None) -> tuple[np.ndarray, str]:
    """One bootstrap curve (n_steps,) and what was resampled.

    Seeds and subjects are drawn from ``rng`` exactly as without voxel blocks; the blocks are drawn
    from their own ``block_rng``, so with identical blocks the result equals the seed/subject-only
    bootstrap. With one seed and one subject the curve is the fit plus Gaussian noise at the
    measured sigma, shifted by the block-resampled curve's difference from the observed one.
    """
    n_seeds = alignment.shape[0]
    units = subject_alignment if blocks is None else blocks.resample(block_rng)  # (S, T, N)
    voxels = "" if blocks is None else f", voxel blocks ({blocks.n_blocks})"
    if units is not None and units.shape[2] >= 2:
        seeds = rng.integers(n_seeds, size=n_seeds)
        subjects = rng.integers(units.shape[2], size=units.shape[2])
        return quiet_nanmean(units[seeds][:, :, subjects], axis=(0, 2)), "seeds, subjects" + voxels
    if n_seeds >= 2:
        per_seed = alignment if blocks is None else quiet_nanmean(units, axis=2)
        return quiet_nanmean(per_seed[rng.integers(n_seeds, size=n_seeds)], axis=0), "seeds" + voxels
    shift = 0.0 if blocks is None else quiet_nanmean(units, axis=(0, 2)) - quiet_nanmean(alignment, axis=0)
    return fitted + rng.normal(0.0, sigma) + shift, "parametric (fit + Gaussian noise at the measured sigma)" + voxels


def _check_blocks(blocks: VoxelBlocks, alignment: np.ndarray, subject_alignment: np.ndarray | None) -> None:
    if subject_alignment is None or blocks.means.shape[:3] != subject_alignment.shape or blocks.weights.shape != blocks.means.shape:
        raise InputError(f"voxel blocks of shape {blocks.means.shape} / {blocks.weights.shape} need the per-subject "
                         f"alignment (n_seeds, n_steps, n_subjects) = {None if subject_alignment is None else subject_alignment.shape} "
                         f"of the same measure; alignment is {alignment.shape}")
    if not np.allclose(weighted_value(blocks.means, blocks.weights), subject_alignment, rtol=1e-6, atol=1e-9, equal_nan=True):
        raise InputError("the voxel blocks' weighted means differ from the per-subject alignment: they belong to another "
                         "measure or file; re-run `brainphase aggregate`")


def _summary(segments: pd.DataFrame, boundaries: pd.DataFrame) -> str:
    parts = []
    for i, row in segments.iterrows():
        end = (f"until {row.end_tokens:.3g} tokens [{boundaries.tokens_ci_low[i]:.3g}, {boundaries.tokens_ci_high[i]:.3g}]"
               if i < len(boundaries) else "to the last checkpoint")
        parts.append(f"{row.phase} ({end}; slope {row.slope:+.3g}/decade [{row.slope_ci_low:.3g}, {row.slope_ci_high:.3g}])")
    text = " -> ".join(parts)
    names = list(segments.phase)
    last = segments.iloc[-1]
    ci = f"95% CI of the slope of the last segment [{last.slope_ci_low:.3g}, {last.slope_ci_high:.3g}]"
    if "detachment" not in names:
        return f"alignment only; no detachment detected, {ci}. {text}" if "alignment" in names else f"no alignment phase detected, {ci}. {text}"
    if "realignment" not in names:
        return f"alignment and detachment; no realignment detected, {ci}. {text}"
    return text


def _skipped(reason: str, x: np.ndarray, curve: np.ndarray, n_seeds: int) -> TrajectoryPhases:
    n = len(x)
    return TrajectoryPhases(
        status=f"skipped: {reason}", x=x, curve=curve, fitted=np.full(n, np.nan), labels=np.full(n, UNDETERMINED, np.int8),
        segments=pd.DataFrame(), boundaries=pd.DataFrame(), seed_segments=pd.DataFrame(),
        seed_labels=np.full((n_seeds, n), UNDETERMINED, np.int8), seed_agreement=np.full(n_seeds, np.nan),
        summary=f"phases not labelled: {reason}")


def analyse_trajectory(tokens: np.ndarray, alignment: np.ndarray, steps: np.ndarray | None = None,
                       subject_alignment: np.ndarray | None = None, metrics: dict | None = None,
                       max_segments: int = DEFAULT_MAX_SEGMENTS, min_points: int = DEFAULT_MIN_POINTS,
                       false_boundary_rate: float = DEFAULT_FALSE_BOUNDARY_RATE, n_bootstrap: int = 200,
                       seed: int = 0, voxel_blocks: VoxelBlocks | None = None) -> TrajectoryPhases:
    """Segment, name and bootstrap an alignment trajectory (see the module docstring).

    Parameters
    ----------
    tokens : ndarray of int, shape (n_steps,)
        Tokens seen at each checkpoint, increasing.
    alignment : ndarray, shape (n_seeds, n_steps)
        Alignment per seed and checkpoint; NaN = missing (left out of the fits).
    steps : ndarray of int, shape (n_steps,), optional
        Step labels (default 0..n_steps-1).
    subject_alignment : ndarray, shape (n_seeds, n_steps, n_subjects), optional
        Per-subject alignment (mean over subjects = ``alignment``): resampled in the bootstrap.
    metrics : dict of str -> ndarray, shape (n_seeds, n_steps), optional
        Task metrics reported beside each segment.
    max_segments, min_points, false_boundary_rate
        See :func:`~brainphase.phases.segment.segment_curve` and :func:`~brainphase.phases.segment.knot_cost`.
    n_bootstrap : int
        Resamples (0 = no bootstrap: NaN CIs and probabilities).
    seed : int
        Seed of the bootstrap's random generator (the result is deterministic for a fixed seed).
    voxel_blocks : VoxelBlocks, optional
        Block means of ``subject_alignment`` (:mod:`brainphase.phases.voxel_blocks`): the
        bootstrap resamples the blocks too (from a generator spawned from ``seed``).

    Returns
    -------
    TrajectoryPhases
    """
    alignment = np.atleast_2d(np.asarray(alignment, dtype=np.float64))
    tokens = np.asarray(tokens)
    steps = np.arange(len(tokens)) if steps is None else np.asarray(steps)
    if alignment.shape[1] != len(tokens) or len(steps) != len(tokens):
        raise InputError(f"alignment has {alignment.shape[1]} checkpoints but tokens {len(tokens)} and steps {len(steps)}")
    curve = quiet_nanmean(alignment, axis=0)
    n_finite = int(np.isfinite(curve).sum())
    if n_finite < MIN_CHECKPOINTS:
        try:
            x = log_token_axis(tokens)
        except InputError:  # e.g. one checkpoint whose tokens are unknown (-1): nothing to place on an axis
            x = np.full(len(tokens), np.nan)
        return _skipped(f"{n_finite} checkpoint(s) with an alignment value; phases need at least {MIN_CHECKPOINTS}",
                        x, curve, alignment.shape[0])
    x = log_token_axis(tokens)
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    seg, sigma, noise_source, cost = segment_trajectory(x, alignment, subject_alignment, max_segments, min_points,
                                                        false_boundary_rate)
    dof = noise_dof(x, alignment, subject_alignment)
    trends = _segment_trends(seg, z, x, curve, sigma, min_points)
    names = name_segments(trends)
    segments = _segment_table(x, tokens, steps, seg, names, trends, z)
    labels = segment_labels(x, seg.knots, names)

    if voxel_blocks is not None:
        _check_blocks(voxel_blocks, alignment, subject_alignment)
    rng = np.random.default_rng(seed)
    block_rng = None if voxel_blocks is None else np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    boot_knots = np.full((n_bootstrap, max(max_segments - 1, 0)), np.nan)
    boot_names: list[set] = []
    bootstrap_kind = "none"
    for b in range(n_bootstrap):
        resampled, bootstrap_kind = _resample(rng, alignment, subject_alignment, seg.fitted, sigma, voxel_blocks, block_rng)
        if np.isfinite(resampled).sum() < MIN_CHECKPOINTS:
            continue
        boot = segment_curve(x, resampled, sigma, max_segments, min_points, cost)
        boot_knots[b, :len(boot.knots)] = boot.knots
        boot_names.append(set(name_segments(_segment_trends(boot, z))))
    low_q, high_q = 100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2
    ci = []
    for knot in seg.knots:
        nearest = [row[np.nanargmin(np.abs(row - knot))] for row in boot_knots if np.isfinite(row).any()]
        ci.append(np.percentile(nearest, [low_q, high_q]) if nearest else [np.nan, np.nan])
    ci = np.array(ci).reshape(-1, 2)
    boundaries = pd.DataFrame({
        "log10_tokens": seg.knots, "tokens": 10.0 ** seg.knots,
        "step": [int(steps[_nearest(x, k)]) for k in seg.knots],
        "tokens_ci_low": 10.0 ** ci[:, 0], "tokens_ci_high": 10.0 ** ci[:, 1],
    })
    segments["start_tokens_ci_low"] = np.concatenate([[segments.start_tokens[0]], boundaries.tokens_ci_low])
    segments["start_tokens_ci_high"] = np.concatenate([[segments.start_tokens[0]], boundaries.tokens_ci_high])
    segments["end_tokens_ci_low"] = np.concatenate([boundaries.tokens_ci_low, [segments.end_tokens.iloc[-1]]])
    segments["end_tokens_ci_high"] = np.concatenate([boundaries.tokens_ci_high, [segments.end_tokens.iloc[-1]]])
    probability = {name: (float(np.mean([name in s for s in boot_names])) if boot_names else float("nan"))
                   for name in LABEL_NAMES}
    segments["p_exists"] = [probability[name] for name in names]
    edges = np.concatenate([[x[0]], seg.knots, [x[-1]]])
    task_columns = {}  # joined at once: dozens of task metrics inserted one by one fragment the frame
    for metric, values in sorted((metrics or {}).items()):
        changes = task_changes(x, edges, np.atleast_2d(np.asarray(values, dtype=np.float64)))
        for column in changes:
            task_columns[f"task/{metric}/{column}"] = changes[column].to_numpy()
    segments = pd.concat([segments, pd.DataFrame(task_columns, index=segments.index)], axis=1)

    seed_rows, seed_labels, agreement = [], [], []
    single_sigma = sigma * np.sqrt(np.isfinite(alignment).sum(axis=0).clip(min=1))
    for i_seed in range(alignment.shape[0]):
        own = alignment[i_seed]
        if np.isfinite(own).sum() < MIN_CHECKPOINTS:
            seed_labels.append(np.full(len(x), UNDETERMINED, np.int8))
            agreement.append(np.nan)
            continue
        seed_cost = knot_cost(x[np.isfinite(own)], single_sigma[np.isfinite(own)], min_points, false_boundary_rate,
                              noise_dof=dof)
        seed_seg = segment_curve(x, own, single_sigma, max_segments, min_points, seed_cost)
        seed_trends = _segment_trends(seed_seg, z, x, own, single_sigma, min_points)
        seed_names = name_segments(seed_trends)
        table = _segment_table(x, tokens, steps, seed_seg, seed_names, seed_trends, z)
        table.insert(0, "seed", i_seed)
        seed_rows.append(table)
        own_labels = segment_labels(x, seed_seg.knots, seed_names)
        seed_labels.append(own_labels)
        finite = np.isfinite(own)
        agreement.append(float(np.mean(own_labels[finite] == labels[finite])))
    return TrajectoryPhases(
        status="labelled", x=x, curve=curve, fitted=seg.fitted, labels=labels, segments=segments, boundaries=boundaries,
        seed_segments=pd.concat(seed_rows, ignore_index=True) if seed_rows else pd.DataFrame(),
        seed_labels=np.stack(seed_labels), seed_agreement=np.array(agreement), phase_probability=probability,
        bootstrap_knots=boot_knots, sigma=sigma, noise_source=noise_source, bootstrap_kind=bootstrap_kind,
        summary=_summary(segments, boundaries))
