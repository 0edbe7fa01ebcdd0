"""Name the segments of an alignment curve with the phases of Nakagi et al. (2025), with uncertainty.

Nakagi et al. (2025, arXiv:2502.20779) describe three phases of brain alignment over training:
*alignment* (alignment rises), *detachment* (it falls or stalls after a rise) and *realignment*
(it rises again). Operationally (:func:`name_segments`), each segment of the continuous
piecewise-linear fit of :mod:`brainphase.phases.segment` is *rising*, *falling* or *flat* by the
95 % confidence interval of its slope (per decade of tokens), and the sequence is read in order:

- before any rise: flat = ``initial plateau``, falling = ``initial decline``;
- rising = ``alignment`` until the first segment that is not rising;
- flat or falling after alignment = ``detachment``; rising after a detachment = ``realignment``;
- after realignment: flat = ``plateau``, falling = ``second detachment``, and a rise after
  either = ``second realignment`` (then ``third ...``), instead of folding them into realignment.

Uncertainty (:func:`analyse_trajectory`): seeds (and subjects, when given, and blocks of voxels,
when ``brainphase aggregate`` stored them: :mod:`brainphase.phases.voxel_blocks`) are resampled
with replacement ``n_bootstrap`` times and each resampled mean curve is segmented again with the
same noise level; the 2.5-97.5 % range of the bootstrap knot nearest to each fitted boundary gives its
CI in tokens, and the share of resamples whose phase sequence contains a phase name gives the
probability that the phase exists. Each seed's own curve is segmented too, and its labels are
compared with the pooled ones. Task metrics never enter the segmentation: for each segment the
change of every task metric over the segment is reported beside it, with its CI over seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from brainphase.errors import InputError
from brainphase.phases.segment import (DEFAULT_FALSE_BOUNDARY_RATE, DEFAULT_MAX_SEGMENTS, DEFAULT_MIN_POINTS,
                                       Segmentation, flat_segment_test, knot_cost, log_token_axis,
                                       pseudo_residual_sigma, segment_curve)
from brainphase.phases.voxel_blocks import VoxelBlocks, weighted_value

#: phase names; a checkpoint's label is the index of its phase's name here (-1 = not labelled)
LABEL_NAMES = ("alignment", "detachment", "realignment", "plateau", "second detachment", "second realignment",
               "third detachment", "third realignment", "initial plateau", "initial decline", "later change")
UNDETERMINED = -1
#: fewest finite checkpoints for which phases are labelled
MIN_CHECKPOINTS = 4
#: two-sided confidence level of every interval
CONFIDENCE = 0.95
_ORDINALS = ("", "second ", "third ")
#: the seed spread is replaced by the curve's own pseudo-residual noise when that is this much larger
_RESIDUAL_EXCESS = 1.5


def quiet_nanmean(values: np.ndarray, axis) -> np.ndarray:
    """``np.nanmean`` that returns NaN for all-NaN slices (gaps) without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _ordinal(count: int, name: str) -> str:
    return f"{_ORDINALS[count]}{name}" if count < len(_ORDINALS) else "later change"


def slope_trend(slope: float, se: float, z: float) -> str:
    """``rising`` / ``falling`` / ``flat`` from a slope and its standard error (CI ``slope ± z se``)."""
    if slope - z * se > 0:
        return "rising"
    if slope + z * se < 0:
        return "falling"
    return "flat"


def name_segments(trends: list[str]) -> list[str]:
    """Map the trend of each segment, in order, to a phase name (see the module docstring).

    Parameters
    ----------
    trends : list of str
        ``rising``, ``falling`` or ``flat`` per segment, in training order.

    Returns
    -------
    list of str
        One name of :data:`LABEL_NAMES` per segment.
    """
    names: list[str] = []
    state, n_detachments, n_realignments = "before", 0, 0
    for trend in trends:
        rising = trend == "rising"
        if state == "before":
            name = {"rising": "alignment", "flat": "initial plateau", "falling": "initial decline"}[trend]
            state = "rising" if rising else "before"
        elif rising and state == "rising":
            name = names[-1]
        elif rising:  # after a detachment or a plateau
            name, state = _ordinal(n_realignments, "realignment"), "rising"
            n_realignments += 1
        elif state == "detached":
            name = names[-1]
        elif state == "plateau" and trend == "flat":
            name = "plateau"
        elif state == "rising" and n_realignments and trend == "flat":
            name, state = "plateau", "plateau"
        else:  # falling after any rise or plateau, or flat after the first alignment
            name, state = _ordinal(n_detachments, "detachment"), "detached"
            n_detachments += 1
        names.append(name)
    return names


def noise_sigma(x: np.ndarray, alignment: np.ndarray, subject_alignment: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Standard error of the seed-mean curve at each checkpoint, and where it came from.

    With >= 2 seeds: the seed x checkpoint interaction variance (each seed's deviation from the
    seed mean, minus that seed's mean deviation, so constant seed offsets do not count), pooled
    over checkpoints, divided by the number of finite seeds at each checkpoint. With one seed and
    >= 2 subjects: the same over subjects. Otherwise: the curve's pseudo-residuals
    (:func:`~brainphase.phases.segment.pseudo_residual_sigma`). When the curve's own
    pseudo-residual noise exceeds the seed/subject estimate by more than 1.5x (noise shared by
    all seeds, e.g. from the same fMRI data), the larger value is used.

    Parameters
    ----------
    x : ndarray, shape (n_steps,)
    alignment : ndarray, shape (n_seeds, n_steps)
    subject_alignment : ndarray, shape (n_seeds, n_steps, n_subjects), or None

    Returns
    -------
    sigma : ndarray, shape (n_steps,)
    source : str
    """
    curve = quiet_nanmean(alignment, axis=0)
    finite = np.isfinite(curve)
    units, source = None, "curve pseudo-residuals"
    if alignment.shape[0] >= 2:
        units, source = alignment, "seed spread"
    elif subject_alignment is not None and subject_alignment.shape[2] >= 2:
        units, source = subject_alignment[0].T, "subject spread"
    residual_sigma = pseudo_residual_sigma(x[finite], curve[finite])
    if units is not None:
        dev = units - quiet_nanmean(units, axis=0)[None, :]
        dev = dev - quiet_nanmean(dev, axis=1)[:, None]
        count = np.isfinite(units).sum(axis=0)
        n_units, n_points = units.shape[0], int(finite.sum())
        dof = max((n_units - 1) * (n_points - 1), 1)
        unit_var = np.nansum(dev ** 2) / dof
        sigma = np.sqrt(unit_var / np.maximum(count, 1))
        typical = float(np.nanmedian(sigma[finite])) if finite.any() else np.nan
        if np.isfinite(residual_sigma) and residual_sigma > _RESIDUAL_EXCESS * typical:
            # identical seeds (typical 0): the curve's own noise is all there is
            sigma = sigma * (residual_sigma / typical) if typical > 0 else np.full(len(x), residual_sigma)
            source += f", scaled up to the curve's pseudo-residual noise ({residual_sigma:.3g} > {_RESIDUAL_EXCESS} x {typical:.3g})"
    else:
        sigma = np.full(len(x), residual_sigma)
    if not np.isfinite(sigma[finite]).all() or not (sigma[finite] > 0).all():
        floor = max(float(np.nanmax(np.abs(curve))) * 1e-6, 1e-12) if finite.any() else 1e-12
        sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, floor)
        source += " (no measurable spread: floored)"
    return sigma, source


def noise_dof(x: np.ndarray, alignment: np.ndarray, subject_alignment: np.ndarray | None) -> float:
    """Degrees of freedom of :func:`noise_sigma`'s estimate (seeds x checkpoints interaction, or subjects,
    or about 0.6 n for the median of pseudo-residuals)."""
    finite = int(np.isfinite(quiet_nanmean(alignment, axis=0)).sum())
    if alignment.shape[0] >= 2:
        return float((alignment.shape[0] - 1) * (finite - 1))
    if subject_alignment is not None and subject_alignment.shape[2] >= 2:
        return float((subject_alignment.shape[2] - 1) * (finite - 1))
    return max(0.6 * (finite - 2), 1.0)


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


def segment_labels(x: np.ndarray, knots: np.ndarray, names: list[str]) -> np.ndarray:
    """Label code (index into :data:`LABEL_NAMES`) of each checkpoint; a checkpoint on a knot goes to the earlier segment."""
    segment = np.searchsorted(np.sort(knots), x, side="left")
    return np.array([LABEL_NAMES.index(names[k]) for k in segment], dtype=np.int8)


def _segment_trends(seg: Segmentation, z: float, x: np.ndarray | None = None, y: np.ndarray | None = None,
                    sigma: np.ndarray | None = None, min_points: int = 3) -> list[str]:
    """Trend of each segment.

    With the data given: flat when the likelihood-ratio test with the segment's knots re-fitted
    does not reject a zero slope at the 95 % level (:func:`~brainphase.phases.segment.flat_segment_test`,
    chi²(1)), else rising or falling by the sign of the slope. Without (the bootstrap, where
    speed matters): by the 95 % Wald interval of the slope given the knots.
    """
    if x is None:
        return [slope_trend(s, e, z) for s, e in zip(seg.slopes, seg.slope_se_fixed_knots)]
    critical = stats.chi2.ppf(CONFIDENCE, 1)
    return ["flat" if flat_segment_test(x, y, sigma, seg.knots, m, min_points) < critical
            else ("rising" if seg.slopes[m] > 0 else "falling") for m in range(seg.n_segments)]


def _change(x: np.ndarray, values: np.ndarray, lo: float, hi: float) -> float:
    """Change of one seed's metric over [lo, hi]: OLS slope x length, or interpolated difference with < 3 points."""
    inside = (x >= lo - 1e-12) & (x <= hi + 1e-12) & np.isfinite(values)
    if inside.sum() >= 3:
        slope = np.polyfit(x[inside], values[inside], 1)[0]
        return float(slope * (hi - lo))
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return float("nan")
    return float(np.interp(hi, x[ok], values[ok]) - np.interp(lo, x[ok], values[ok]))


def task_changes(x: np.ndarray, edges: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Change of a task metric over each segment, with its CI over seeds.

    Parameters
    ----------
    x : ndarray, shape (n_steps,)
    edges : ndarray, shape (n_segments + 1,)
        Segment edges in log10 tokens (first checkpoint, knots, last checkpoint).
    values : ndarray, shape (n_seeds, n_steps)

    Returns
    -------
    DataFrame
        One row per segment: ``change`` (mean over seeds), ``change_ci_low``, ``change_ci_high``
        (t interval over seeds; NaN with one seed), ``trend`` (``rising``/``falling``/``stagnant``
        when the CI excludes or includes 0; ``stagnant`` with no CI only when the change is 0).
    """
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        per_seed = np.array([_change(x, v, lo, hi) for v in values])
        per_seed = per_seed[np.isfinite(per_seed)]
        mean = float(per_seed.mean()) if len(per_seed) else float("nan")
        if len(per_seed) >= 2:
            half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(per_seed) - 1) * per_seed.std(ddof=1) / np.sqrt(len(per_seed))
            low, high = mean - half, mean + half
        else:
            low = high = float("nan")
        tiny = 1e-12 * max(1.0, abs(mean))  # identical seeds: a zero-width CI around rounding error
        if np.isfinite(low) and low > tiny:
            trend = "rising"
        elif np.isfinite(high) and high < -tiny:
            trend = "falling"
        elif np.isfinite(low) or mean == 0:
            trend = "stagnant"
        else:
            trend = "unknown"
        rows.append({"change": mean, "change_ci_low": low, "change_ci_high": high, "trend": trend})
    return pd.DataFrame(rows)


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
