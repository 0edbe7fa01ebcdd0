"""Planted alignment trajectories with a known segmentation, to validate the phase labels.

Independent of the project's fMRI simulator: the alignment curve of every seed is a
continuous piecewise-linear function of ``x = log10(tokens)`` (step 0 is placed on ``x`` by
:func:`brainphase.phases.segment.log_token_axis`) plus Gaussian noise, an optional constant
per-seed offset and optional NaN gaps. :func:`planted_case` draws one trajectory,
:func:`planted_set` a reproducible grid of them, :func:`score_case` compares an estimated
segmentation with the truth and :func:`accuracy_table` summarises many cases.

Noise level of a case (the issue's definition)
    ``ratio = min_j |slope_{j+1} - slope_j| / SE``, slopes in alignment per decade of tokens
    and ``SE = sigma_seed / sqrt(n_seeds)`` the standard error of the seed-mean curve at one
    checkpoint. Levels: ``high`` ratio in [2, 4), ``moderate`` [4, 8), ``low`` [8, 16). For
    one-segment cases (no slope change) the same ratio is |slope| / SE.

A case is *correct* when the estimated number of segments equals the true one and every
estimated boundary falls within one checkpoint of the true one; boundaries are compared as
the index of the nearest checkpoint on ``x`` among checkpoints with data (seed-mean not NaN).

Resolvable cases
    The ratio alone does not say whether a boundary can be found: a change of 4 SE per decade
    is plain over a decade of a log schedule but cannot be placed to +-1 of the 100+
    checkpoints of a linear one. :func:`identifiability` gives, in closed form from the truth,
    each slope change in units of its standard error and each knot's asymptotic standard
    error; ``planted_case(min_change_z=..., max_knot_se=...)`` redraws until both conditions
    hold (the tests use 6 and half a checkpoint spacing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainphase.phases.segment import log_token_axis

#: tokens per optimiser step of the Pythia models (1024 sequences x 2048 tokens)
PYTHIA_TOKENS_PER_STEP = 2_097_152

SCHEDULES = ("log", "linear", "pythia", "dense_late", "uneven")

#: slope patterns (per segment: up = rising, down = falling, flat = zero slope) by number of segments
PATTERNS = {
    1: ("up", "flat", "down"),
    2: ("up-down", "up-flat", "flat-up", "down-up"),
    3: ("up-down-up", "up-flat-up", "flat-up-down", "up-down-flat"),
    4: ("up-down-up-flat", "up-down-up-down", "flat-up-down-up", "up-flat-up-flat"),
}

#: noise level -> [low, high) range of ratio = min slope change per decade / seed-mean SE
NOISE_LEVELS = {"high": (2.0, 4.0), "moderate": (4.0, 8.0), "low": (8.0, 16.0)}


class UnattainableCase(ValueError):
    """No draw met the detectability conditions of :func:`planted_case` within ``max_tries``."""


_TREND = {"up": "rising", "down": "falling", "flat": "flat"}
_SIGN = {"up": 1.0, "down": -1.0, "flat": 0.0}


def schedule_steps(rng: np.random.Generator, schedule: str) -> np.ndarray:
    """Checkpoint steps of one schedule, sorted, starting at step 0.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the schedule's free sizes (how many steps; the uneven steps themselves).
    schedule : {"log", "linear", "pythia", "dense_late", "uneven"}
        ``log``: 0 and powers of two 1..2^k (k in 14..18); ``linear``: every 1000 steps up to
        40..150 checkpoints; ``pythia``: 0, 1, 2, 4, ..., 512 then every 1000 up to 143000
        (154 checkpoints); ``dense_late``: 25 log-spaced steps up to 143000 plus 40 linear ones
        over its last decade; ``uneven``: 20..100 distinct steps drawn log-uniformly in
        [1, 2^17], with step 0.

    Returns
    -------
    steps : numpy.ndarray of int64, shape (n_steps,)
    """
    if schedule == "log":
        steps = np.concatenate([[0], 2 ** np.arange(int(rng.integers(14, 19)) + 1)])
    elif schedule == "linear":
        steps = 1000 * np.arange(int(rng.integers(40, 151)))
    elif schedule == "pythia":
        steps = np.concatenate([[0], 2 ** np.arange(10), np.arange(1000, 143001, 1000)])
    elif schedule == "dense_late":
        late = np.linspace(14300, 143000, 40)
        steps = np.concatenate([[0], np.geomspace(1, 143000, 25), late])
    elif schedule == "uneven":
        steps = np.concatenate([[0], 2.0 ** rng.uniform(0, 17, int(rng.integers(20, 101)))])
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return np.unique(np.round(steps).astype(np.int64))


def _segment_of(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Index of the segment each position belongs to (knots sorted)."""
    return np.searchsorted(knots, x, side="right")


def _draw_knots(rng, x, n_segments, min_checkpoints, min_decades, max_tries=2000):
    """Sorted knots in (x[0], x[-1]) with every segment holding ``min_checkpoints`` positions
    of ``x`` and spanning ``min_decades``; raises when the schedule has no room."""
    if n_segments == 1:
        return np.empty(0)
    for _ in range(max_tries):
        knots = np.sort(rng.uniform(x[0], x[-1], n_segments - 1))
        edges = np.concatenate([[x[0]], knots, [x[-1]]])
        counts = np.bincount(_segment_of(x, knots), minlength=n_segments)
        if counts.min() >= min_checkpoints and np.diff(edges).min() >= min_decades:
            return knots
    raise ValueError(f"no room for {n_segments} segments of >= {min_checkpoints} checkpoints and "
                     f">= {min_decades} decades on {len(x)} checkpoints spanning {x[-1] - x[0]:.2f} decades")


def _slopes(rng, pattern, ratio, seed_mean_se):
    """Slopes per decade with the pattern's signs, the smallest change between neighbours
    (or the single slope) equal to ``ratio * seed_mean_se``."""
    signs = np.array([_SIGN[part] for part in pattern])
    slopes = signs * rng.uniform(1.0, 2.5, len(signs))
    changes = np.abs(np.diff(slopes)) if len(slopes) > 1 else np.abs(slopes)
    smallest = changes.min()
    if smallest == 0:
        return slopes  # a single flat segment
    return slopes * ratio * seed_mean_se / smallest


def identifiability(x: np.ndarray, knots: np.ndarray, slopes: np.ndarray, seed_mean_se: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """How well the data can pin each true boundary, in closed form from the truth.

    For the continuous hinge model ``f = b0 + b1 x + sum_j c_j max(0, x - k_j)`` with i.i.d.
    noise of standard deviation ``seed_mean_se`` at the points ``x``:

    - ``change_z[j] = |c_j| / SE(c_j)`` with the knots known (ordinary least-squares standard
      error of the slope change): how many standard errors the slope change at knot j is;
    - ``knot_se[j]``: asymptotic standard error of knot j in decades, from the Fisher information
      of the model with the knots as free parameters (``df/dk_j = -c_j [x > k_j]``).

    Parameters
    ----------
    x : numpy.ndarray, shape (n_points,)
        Checkpoints with data, log10 tokens.
    knots : numpy.ndarray, shape (n_segments - 1,)
    slopes : numpy.ndarray, shape (n_segments,)
        Slope per decade of each segment.
    seed_mean_se : float
        Standard error of the seed-mean curve at one checkpoint.

    Returns
    -------
    change_z, knot_se : numpy.ndarray, shape (n_segments - 1,)
        Both empty for one segment; ``knot_se`` is inf for a knot without a slope change.
    """
    if not len(knots):
        return np.empty(0), np.empty(0)
    changes = np.diff(slopes)
    hinges = np.maximum(0.0, x[:, None] - knots[None, :])
    linear = np.column_stack([np.ones_like(x), x, hinges])
    covariance = np.linalg.pinv(linear.T @ linear) * seed_mean_se ** 2
    change_z = np.abs(changes) / np.sqrt(np.diag(covariance)[2:])
    fisher_design = np.column_stack([linear, -(x[:, None] > knots[None, :]).astype(float) * changes[None, :]])
    fisher_covariance = np.linalg.pinv(fisher_design.T @ fisher_design) * seed_mean_se ** 2
    knot_se = np.sqrt(np.maximum(np.diag(fisher_covariance)[2 + len(knots):], 0.0))
    knot_se[changes == 0] = np.inf
    return change_z, knot_se


def _draw_gaps(rng, segment, n_segments, nan_fraction, min_checkpoints, max_tries=2000):
    """Boolean (n_steps,) gaps: a ``nan_fraction`` of interior checkpoints, each segment keeping
    ``min_checkpoints`` checkpoints with data."""
    gap = np.zeros(len(segment), dtype=bool)
    n_gaps = int(round(nan_fraction * len(segment)))
    if n_gaps == 0:
        return gap
    for _ in range(max_tries):
        gap[:] = False
        gap[1 + rng.choice(len(segment) - 2, n_gaps, replace=False)] = True
        if np.bincount(segment[~gap], minlength=n_segments).min() >= min_checkpoints:
            return gap
    raise ValueError(f"cannot place {nan_fraction:.0%} gaps keeping {min_checkpoints} checkpoints per segment")


def _local_spacing(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Checkpoint spacing (decades) around each knot: the mean gap between the two checkpoints
    on either side of the knot's nearest checkpoint, shape (n_knots,)."""
    spacing = np.diff(x)
    nearest = np.array([np.argmin(np.abs(x - knot)) for knot in knots], dtype=int)
    return np.array([spacing[max(i - 1, 0):i + 1].mean() for i in nearest])


def _task_metrics(rng, x, n_seeds):
    """A saturated accuracy (ramps up over the first fifth of ``x``, then exactly 1.0) and a
    smoothly falling loss, each (n_seeds, n_steps)."""
    ramp_end = x[0] + 0.2 * (x[-1] - x[0])
    ramp = np.clip((x - x[0]) / (ramp_end - x[0]), 0.0, 1.0)
    accuracy = 0.25 + 0.75 * ramp + rng.normal(0, 0.01, (n_seeds, len(x))) * (ramp < 1)
    loss = 4.0 - 2.5 * (x - x[0]) / (x[-1] - x[0]) + rng.normal(0, 0.02, (n_seeds, len(x)))
    return ({"saturated_accuracy": np.minimum(accuracy, 1.0), "loss": loss},
            {"saturated_accuracy": "discontinuous", "loss": "continuous"})


def planted_case(rng: np.random.Generator, schedule: str = "pythia", pattern: str = "up-down-up", *,
                 noise: str | float = "moderate", n_seeds: int = 3, sigma_seed: float = 0.01,
                 seed_offset_sd: float = 0.0, nan_fraction: float = 0.0, min_checkpoints: int = 3,
                 min_decades: float = 0.3, max_knot_se: float | None = None,
                 min_change_z: float | None = None, with_metrics: bool = False,
                 tokens_per_step: int = PYTHIA_TOKENS_PER_STEP, max_tries: int = 500) -> dict:
    """One planted trajectory: seeds x checkpoints of a piecewise-linear curve in log10 tokens.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice (schedule, knots, slopes, noise, offsets, gaps).
    schedule : str
        One of :data:`SCHEDULES` (see :func:`schedule_steps`).
    pattern : str
        Segment trends joined by ``-`` (``up``, ``down``, ``flat``), e.g. ``"up-down-up-flat"``.
    noise : str or float
        A level of :data:`NOISE_LEVELS` (ratio drawn uniformly in its range) or the ratio itself.
    n_seeds : int
        Number of seeds (rows of ``alignment``).
    sigma_seed : float
        Standard deviation of one seed's noise at one checkpoint.
    seed_offset_sd : float
        Standard deviation, in units of ``sigma_seed``, of a constant shift added to each seed.
    nan_fraction : float
        Fraction of checkpoints set to NaN in every seed (gaps); each segment keeps
        ``min_checkpoints`` checkpoints with data, the first and last checkpoints are kept.
    min_checkpoints, min_decades : int, float
        Each true segment holds at least this many checkpoints and spans this many decades.
    max_knot_se : float or None
        When given, redraw the schedule, noise ratio, knots, slopes and gaps until every knot's asymptotic
        standard error (:func:`identifiability`) is at most this many local checkpoint spacings,
        i.e. until "within one checkpoint" is statistically attainable (0.5: +-1 checkpoint
        is +-2 standard errors). None: no such condition (the issue's plain definition).
    min_change_z : float or None
        Likewise, redraw until every slope change is at least this many of its standard errors
        (``change_z`` of :func:`identifiability`), i.e. until each boundary is detectable.
    with_metrics : bool
        Add task metrics: ``saturated_accuracy`` (flat at 1.0 after the first fifth of the
        axis) and ``loss`` (falling).
    tokens_per_step : int
        Tokens seen per optimiser step.
    max_tries : int
        Draws allowed to meet ``max_knot_se`` and ``min_change_z`` before a ValueError.

    Returns
    -------
    dict
        ``steps`` (n_steps,) int64, ``tokens`` (n_steps,) float, ``x`` (n_steps,) log10 tokens
        (step 0 placed by ``log_token_axis``), ``alignment`` (n_seeds, n_steps) float,
        ``truth`` (n_steps,) noiseless curve, ``knots`` (n_segments-1,) true boundaries in log10
        tokens, ``boundary_index`` (n_segments-1,) index of the checkpoint nearest each knot
        (among checkpoints with data), ``slopes`` (n_segments,) per decade, ``trends``
        (list of "rising"/"falling"/"flat"), ``n_segments``, ``pattern``, ``schedule``,
        ``noise`` (level name or "custom"), ``ratio``, ``sigma_seed``, ``seed_mean_se``,
        ``n_seeds``, ``seed_offsets`` (n_seeds,), ``gap`` (n_steps,) bool, ``change_z``,
        ``knot_se`` (decades) and ``knot_se_checkpoints`` (n_segments-1,) from
        :func:`identifiability` and :func:`_local_spacing`, and when
        ``with_metrics`` ``metrics`` {name: (n_seeds, n_steps)} with ``metric_kinds``.
    """
    parts = pattern.split("-")
    if not parts or any(part not in _SIGN for part in parts):
        raise ValueError(f"pattern {pattern!r} must be up/down/flat joined by '-'")
    if isinstance(noise, str) and noise not in NOISE_LEVELS:
        raise ValueError(f"noise {noise!r} must be one of {list(NOISE_LEVELS)} or a number")
    level = noise if isinstance(noise, str) else "custom"
    n_segments = len(parts)
    seed_mean_se = sigma_seed / np.sqrt(n_seeds)
    for _ in range(max_tries):
        steps = schedule_steps(rng, schedule)
        tokens = steps.astype(float) * tokens_per_step
        x = log_token_axis(tokens)
        ratio = rng.uniform(*NOISE_LEVELS[noise]) if isinstance(noise, str) else float(noise)
        knots = _draw_knots(rng, x, n_segments, min_checkpoints, min_decades)
        slopes = _slopes(rng, parts, ratio, seed_mean_se)
        segment = _segment_of(x, knots)
        gap = _draw_gaps(rng, segment, n_segments, nan_fraction, min_checkpoints)
        kept = np.flatnonzero(~gap)
        change_z, knot_se = identifiability(x[kept], knots, slopes, seed_mean_se)
        knot_se_checkpoints = knot_se / _local_spacing(x[kept], knots)
        if ((max_knot_se is None or np.all(knot_se_checkpoints <= max_knot_se))
                and (min_change_z is None or np.all(change_z >= min_change_z))):
            break
    else:
        raise UnattainableCase(f"no {pattern} case on this {schedule} schedule at noise {noise!r} has every knot's standard "
                         f"error <= {max_knot_se} checkpoint spacings and slope change >= {min_change_z} standard "
                         f"errors in {max_tries} draws")
    # continuous piecewise-linear: value at each knot carried into the next segment
    edges = np.concatenate([[x[0]], knots])
    starts = np.concatenate([[0.0], np.cumsum(slopes[:-1] * np.diff(edges))])
    truth = 0.05 + starts[segment] + slopes[segment] * (x - edges[segment])
    offsets = rng.normal(0.0, seed_offset_sd * sigma_seed, n_seeds) if seed_offset_sd > 0 else np.zeros(n_seeds)
    alignment = truth + offsets[:, None] + rng.normal(0.0, sigma_seed, (n_seeds, len(x)))
    alignment[:, gap] = np.nan

    boundary_index = np.array([kept[np.argmin(np.abs(x[kept] - knot))] for knot in knots], dtype=np.int64)
    case = dict(steps=steps, tokens=tokens, x=x, alignment=alignment, truth=truth, knots=knots,
                boundary_index=boundary_index, slopes=slopes, trends=[_TREND[part] for part in parts],
                n_segments=n_segments, pattern=pattern, schedule=schedule, noise=level, ratio=float(ratio),
                sigma_seed=sigma_seed, seed_mean_se=float(seed_mean_se), n_seeds=n_seeds,
                seed_offsets=offsets, gap=gap, change_z=change_z, knot_se=knot_se,
                knot_se_checkpoints=knot_se_checkpoints)
    if with_metrics:
        case["metrics"], case["metric_kinds"] = _task_metrics(rng, x, n_seeds)
    return case


def planted_set(seed: int = 0, n_per_cell: int = 10, schedules=("log", "linear", "pythia", "dense_late", "uneven"),
                segment_counts=(1, 2, 3, 4), noise_levels=("high", "moderate", "low"),
                max_knot_se: float | None = None, min_change_z: float | None = None,
                max_tries: int = 100) -> list[dict]:
    """A reproducible grid of planted cases: ``n_per_cell`` per (segments x noise x schedule).

    Within a cell the pattern cycles through :data:`PATTERNS`; each case draws 3..10 seeds,
    ``sigma_seed`` in [0.005, 0.03], a per-seed offset (sd 1-3 sigma_seed) in half of the
    cases and 5-10 % NaN gaps in a quarter of them; ``max_knot_se`` and ``min_change_z`` are passed to
    :func:`planted_case` with ``max_tries``; a case that cannot meet them is left out, so
    such cells hold fewer cases (0 where none can: e.g. four segments on a linear schedule at
    moderate noise are never all detectable). Each case has its own child generator of
    ``numpy.random.SeedSequence(seed)``, so a case does not depend on the size of the grid.

    Returns
    -------
    list of dict
        Cases as :func:`planted_case` returns them.
    """
    cases = []
    cells = [(k, level, schedule) for k in segment_counts for level in noise_levels for schedule in schedules]
    for cell_index, (n_segments, level, schedule) in enumerate(cells):
        children = np.random.SeedSequence([seed, cell_index]).spawn(n_per_cell)
        for index, child in enumerate(children):
            rng = np.random.default_rng(child)
            patterns = PATTERNS[n_segments]
            try:
                cases.append(planted_case(
                    rng, schedule, patterns[index % len(patterns)], noise=level, n_seeds=int(rng.integers(3, 11)),
                    sigma_seed=float(rng.uniform(0.005, 0.03)),
                    seed_offset_sd=float(rng.uniform(1, 3)) if rng.random() < 0.5 else 0.0,
                    nan_fraction=float(rng.uniform(0.05, 0.1)) if rng.random() < 0.25 else 0.0,
                    max_knot_se=max_knot_se, min_change_z=min_change_z, max_tries=max_tries))
            except UnattainableCase:
                if max_knot_se is None and min_change_z is None:
                    raise
                continue  # this cell cannot meet the conditions: it has fewer cases (see accuracy_table)
    return cases


def score_case(case: dict, estimated_knots: np.ndarray, knot_se_tolerance: float = 0.0) -> dict:
    """Compare an estimated segmentation with the planted one.

    Parameters
    ----------
    case : dict
        From :func:`planted_case`.
    estimated_knots : numpy.ndarray, shape (n_estimated_segments - 1,)
        Estimated boundaries in log10 tokens (same axis as ``case["x"]``).
    knot_se_tolerance : float
        A boundary further than one checkpoint still counts as found when it is within this
        many of its asymptotic standard errors (``case["knot_se"]``) of the truth; 0: the plain
        one-checkpoint rule.

    Returns
    -------
    dict
        ``n_true``, ``n_estimated``, ``count_ok`` (same number of segments), ``boundaries_ok``
        (count_ok and each boundary's nearest checkpoint with data within one index of the
        true one, or within ``knot_se_tolerance`` standard errors), ``correct`` (= boundaries_ok), ``spurious`` (a 1-segment case got a boundary).
    """
    estimated_knots = np.sort(np.asarray(estimated_knots, dtype=float).ravel())
    n_estimated = len(estimated_knots) + 1
    kept = np.flatnonzero(~case["gap"])
    count_ok = n_estimated == case["n_segments"]
    boundaries_ok = count_ok
    if count_ok and len(estimated_knots):
        nearest = np.array([kept[np.argmin(np.abs(case["x"][kept] - knot))] for knot in estimated_knots])
        position = np.searchsorted(kept, case["boundary_index"])  # indices among checkpoints with data
        within_one = np.abs(np.searchsorted(kept, nearest) - position) <= 1
        within_se = np.abs(estimated_knots - case["knots"]) <= knot_se_tolerance * case["knot_se"]
        boundaries_ok = bool(np.all(within_one | within_se))
    return dict(n_true=case["n_segments"], n_estimated=n_estimated, count_ok=bool(count_ok),
                boundaries_ok=bool(boundaries_ok), correct=bool(boundaries_ok),
                spurious=bool(case["n_segments"] == 1 and n_estimated > 1))


def accuracy_table(cases: list[dict], scores: list[dict]) -> pd.DataFrame:
    """Fraction correct by (segments x noise x schedule) plus totals per noise level.

    Returns
    -------
    pandas.DataFrame
        Columns ``n_segments``, ``noise``, ``schedule``, ``cases``, ``count_correct`` (fraction
        with the right number of segments), ``correct`` (count and boundaries right);
        rows with ``schedule == "all"`` pool the schedules.
    """
    frame = pd.DataFrame([dict(n_segments=case["n_segments"], noise=case["noise"], schedule=case["schedule"],
                               count_ok=score["count_ok"], correct=score["correct"])
                          for case, score in zip(cases, scores, strict=True)])
    keys = ["n_segments", "noise", "schedule"]

    def summarise(grouped):
        return grouped.agg(cases=("correct", "size"), count_correct=("count_ok", "mean"),
                           correct=("correct", "mean")).reset_index()

    per_cell = summarise(frame.groupby(keys, sort=False))
    pooled = summarise(frame.groupby(["n_segments", "noise"], sort=False)).assign(schedule="all")
    return pd.concat([per_cell, pooled[per_cell.columns]], ignore_index=True).sort_values(keys, kind="stable")
