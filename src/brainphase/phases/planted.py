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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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

_TREND = {"up": "rising", "down": "falling", "flat": "flat"}
_SIGN = {"up": 1.0, "down": -1.0, "flat": 0.0}


def _log_token_axis(tokens: np.ndarray) -> np.ndarray:
    """``log10(tokens)`` as the method sees it (the lead's :func:`segment.log_token_axis`)."""
    from brainphase.phases.segment import log_token_axis

    return np.asarray(log_token_axis(tokens), dtype=float)


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
                 min_decades: float = 0.3, with_metrics: bool = False,
                 tokens_per_step: int = PYTHIA_TOKENS_PER_STEP) -> dict:
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
    with_metrics : bool
        Add task metrics: ``saturated_accuracy`` (flat at 1.0 after the first fifth of the
        axis) and ``loss`` (falling).
    tokens_per_step : int
        Tokens seen per optimiser step.

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
        ``n_seeds``, ``seed_offsets`` (n_seeds,), ``gap`` (n_steps,) bool, and when
        ``with_metrics`` ``metrics`` {name: (n_seeds, n_steps)} with ``metric_kinds``.
    """
    parts = pattern.split("-")
    if not parts or any(part not in _SIGN for part in parts):
        raise ValueError(f"pattern {pattern!r} must be up/down/flat joined by '-'")
    if isinstance(noise, str):
        if noise not in NOISE_LEVELS:
            raise ValueError(f"noise {noise!r} must be one of {list(NOISE_LEVELS)} or a number")
        ratio, level = rng.uniform(*NOISE_LEVELS[noise]), noise
    else:
        ratio, level = float(noise), "custom"
    steps = schedule_steps(rng, schedule)
    tokens = steps.astype(float) * tokens_per_step
    x = _log_token_axis(tokens)
    n_segments = len(parts)
    knots = _draw_knots(rng, x, n_segments, min_checkpoints, min_decades)
    seed_mean_se = sigma_seed / np.sqrt(n_seeds)
    slopes = _slopes(rng, parts, ratio, seed_mean_se)
    # continuous piecewise-linear: value at each knot carried into the next segment
    edges = np.concatenate([[x[0]], knots])
    starts = np.concatenate([[0.0], np.cumsum(slopes[:-1] * np.diff(edges))])
    segment = _segment_of(x, knots)
    truth = 0.05 + starts[segment] + slopes[segment] * (x - edges[segment])

    gap = np.zeros(len(x), dtype=bool)
    if nan_fraction > 0:
        for _ in range(2000):
            gap[:] = False
            gap[1 + rng.choice(len(x) - 2, int(round(nan_fraction * len(x))), replace=False)] = True
            if np.bincount(segment[~gap], minlength=n_segments).min() >= min_checkpoints:
                break
        else:
            raise ValueError(f"cannot place {nan_fraction:.0%} gaps keeping {min_checkpoints} checkpoints per segment")
    offsets = rng.normal(0.0, seed_offset_sd * sigma_seed, n_seeds) if seed_offset_sd > 0 else np.zeros(n_seeds)
    alignment = truth + offsets[:, None] + rng.normal(0.0, sigma_seed, (n_seeds, len(x)))
    alignment[:, gap] = np.nan

    kept = np.flatnonzero(~gap)
    boundary_index = np.array([kept[np.argmin(np.abs(x[kept] - knot))] for knot in knots], dtype=np.int64)
    case = dict(steps=steps, tokens=tokens, x=x, alignment=alignment, truth=truth, knots=knots,
                boundary_index=boundary_index, slopes=slopes, trends=[_TREND[part] for part in parts],
                n_segments=n_segments, pattern=pattern, schedule=schedule, noise=level, ratio=float(ratio),
                sigma_seed=sigma_seed, seed_mean_se=float(seed_mean_se), n_seeds=n_seeds,
                seed_offsets=offsets, gap=gap)
    if with_metrics:
        case["metrics"], case["metric_kinds"] = _task_metrics(rng, x, n_seeds)
    return case


def planted_set(seed: int = 0, n_per_cell: int = 10, schedules=("log", "linear", "pythia", "dense_late", "uneven"),
                segment_counts=(1, 2, 3, 4), noise_levels=("high", "moderate", "low")) -> list[dict]:
    """A reproducible grid of planted cases: ``n_per_cell`` per (segments x noise x schedule).

    Within a cell the pattern cycles through :data:`PATTERNS`; each case draws 3..10 seeds,
    ``sigma_seed`` in [0.005, 0.03], a per-seed offset (sd 1-3 sigma_seed) in half of the
    cases and 5-10 % NaN gaps in a quarter of them. Each case has its own child generator of
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
            cases.append(planted_case(
                rng, schedule, patterns[index % len(patterns)], noise=level, n_seeds=int(rng.integers(3, 11)),
                sigma_seed=float(rng.uniform(0.005, 0.03)),
                seed_offset_sd=float(rng.uniform(1, 3)) if rng.random() < 0.5 else 0.0,
                nan_fraction=float(rng.uniform(0.05, 0.1)) if rng.random() < 0.25 else 0.0))
    return cases


def score_case(case: dict, estimated_knots: np.ndarray) -> dict:
    """Compare an estimated segmentation with the planted one.

    Parameters
    ----------
    case : dict
        From :func:`planted_case`.
    estimated_knots : numpy.ndarray, shape (n_estimated_segments - 1,)
        Estimated boundaries in log10 tokens (same axis as ``case["x"]``).

    Returns
    -------
    dict
        ``n_true``, ``n_estimated``, ``count_ok`` (same number of segments), ``boundaries_ok``
        (count_ok and each boundary's nearest checkpoint with data within one index of the
        true one), ``correct`` (= boundaries_ok), ``spurious`` (a 1-segment case got a boundary).
    """
    estimated_knots = np.sort(np.asarray(estimated_knots, dtype=float).ravel())
    n_estimated = len(estimated_knots) + 1
    kept = np.flatnonzero(~case["gap"])
    count_ok = n_estimated == case["n_segments"]
    boundaries_ok = count_ok
    if count_ok and len(estimated_knots):
        nearest = np.array([kept[np.argmin(np.abs(case["x"][kept] - knot))] for knot in estimated_knots])
        position = np.searchsorted(kept, case["boundary_index"])  # indices among checkpoints with data
        boundaries_ok = bool(np.all(np.abs(np.searchsorted(kept, nearest) - position) <= 1))
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
