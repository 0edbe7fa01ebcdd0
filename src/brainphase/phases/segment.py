"""Continuous piecewise-linear segmentation of a curve over log10(training tokens).

The model, ``K`` continuous linear segments fitted by weighted least squares with weights
``1 / sigma**2``, and the search for its knots for each ``K`` are in
:mod:`brainphase.phases.piecewise`; this module prepares the axis and the noise, chooses ``K``
and tests segments for flatness.

The number of segments minimises ``chi2_K + cost * (K - 1)``, where
``chi2_K = sum(((y - f) / sigma) ** 2)`` uses the measured standard error ``sigma`` of each point
(not a fixed threshold in r), and ``cost`` is what one knot gains on pure noise: the
``1 - false_boundary_rate`` quantile of the largest chi² decrease that adding one knot to a
straight line achieves on Gaussian noise at the same checkpoints and weights (:func:`knot_cost`,
simulated; it depends only on the schedule and the relative weights, not on the data). A
fixed BIC-style cost ``c ln(n)`` is too lenient on short schedules and too strict on long ones:
the search over knot positions makes the null gain nearly independent of n (about 6-8 for 8 to
154 checkpoints at 95-97.5 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainphase.config import schema_default
from brainphase.errors import InputError
from brainphase.phases.piecewise import _design, _feasible, _fitter, _wls

# defaults are stated once, in config/schema.yaml (section `phases`)
#: share of straight noisy lines that may get a spurious boundary (see the module docstring)
DEFAULT_FALSE_BOUNDARY_RATE = schema_default("phases.false_boundary_rate")
#: null simulations behind :func:`knot_cost`
N_NULL_SIMULATIONS = 1000
DEFAULT_MAX_SEGMENTS = schema_default("phases.max_segments")
DEFAULT_MIN_POINTS = schema_default("phases.min_points")


def log_token_axis(tokens: np.ndarray) -> np.ndarray:
    """Training tokens -> the x axis of the segmentation, log10(tokens).

    Step 0 (0 tokens, the random initialisation) has no logarithm: it is placed one
    log-spacing before the first positive checkpoint, i.e. at
    ``2 * log10(t1) - log10(t2)`` for the first two positive token counts ``t1 < t2``
    (one decade before ``t1`` when there is a single positive checkpoint).

    Parameters
    ----------
    tokens : array of int, shape (n_steps,)
        Tokens seen at each checkpoint, strictly increasing, >= 0.

    Returns
    -------
    ndarray of float64, shape (n_steps,)
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    if tokens.ndim != 1 or not len(tokens):
        raise InputError(f"tokens must be a non-empty 1-D array, got shape {tokens.shape}")
    if (tokens < 0).any() or not np.isfinite(tokens).all():
        raise InputError(f"tokens must be finite and >= 0, got {tokens[(tokens < 0) | ~np.isfinite(tokens)][:3]}")
    if (np.diff(tokens) <= 0).any():
        raise InputError("tokens must be strictly increasing (one checkpoint per token count, sorted by step)")
    x = np.full(len(tokens), np.nan)
    positive = tokens > 0
    x[positive] = np.log10(tokens[positive])
    if not positive.all():
        first = x[positive]
        if not len(first):
            raise InputError("every checkpoint has 0 tokens: there is no training axis to segment")
        spacing = first[1] - first[0] if len(first) > 1 else 1.0
        x[~positive] = first[0] - spacing
    return x


def pseudo_residual_sigma(x: np.ndarray, y: np.ndarray) -> float:
    """Noise standard deviation of a curve from its local pseudo-residuals.

    Each interior point is compared with the straight line through its two neighbours,
    ``e_i = y_i - (a_i y_{i-1} + b_i y_{i+1})`` (Gasser, Sroka & Jennen-Steinmetz 1986), whose
    variance is ``sigma² (1 + a_i² + b_i²)`` for independent noise. The median of the
    normalised squares, divided by the median of chi²(1) (0.4549), is robust to the few
    points near knots.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Finite values, x increasing.

    Returns
    -------
    float
        NaN when n < 3.
    """
    if len(x) < 3:
        return float("nan")
    left, mid, right = x[:-2], x[1:-1], x[2:]
    a = (right - mid) / (right - left)
    b = (mid - left) / (right - left)
    e = y[1:-1] - (a * y[:-2] + b * y[2:])
    return float(np.sqrt(np.median(e ** 2 / (1 + a ** 2 + b ** 2)) / 0.45493642))


@dataclass
class Segmentation:
    """Result of :func:`segment_curve`.

    Attributes
    ----------
    n_segments : int
    knots : ndarray, shape (n_segments - 1,)
        Boundary positions in log10 tokens.
    fitted : ndarray, shape (n_steps,)
        Fitted values at every x (also at NaN points of y).
    slopes, slope_se : ndarray, shape (n_segments,)
        Slope of each segment per decade of tokens and its asymptotic standard error with the
        knot positions estimated too (Muggeo 2003).
    slope_se_fixed_knots : ndarray, shape (n_segments,)
        The standard error given the knots (smaller; used where speed matters, the bootstrap).
    chi2 : ndarray, shape (max_segments,)
        Minimum chi² found for 1..max_segments segments (inf where not feasible).
    criterion : ndarray, shape (max_segments,)
        ``chi2 + knot_cost * (K - 1)``.
    knot_cost : float
        The cost of one knot that was used.
    knots_by_k : list of ndarray
        The knots found for each K.
    """

    n_segments: int
    knots: np.ndarray
    fitted: np.ndarray
    slopes: np.ndarray
    slope_se: np.ndarray
    slope_se_fixed_knots: np.ndarray
    chi2: np.ndarray
    criterion: np.ndarray
    knots_by_k: list
    knot_cost: float


def knot_cost(x: np.ndarray, sigma: float | np.ndarray, min_points: int = DEFAULT_MIN_POINTS,
              false_boundary_rate: float = DEFAULT_FALSE_BOUNDARY_RATE, n_simulations: int = N_NULL_SIMULATIONS,
              seed: int = 0, noise_dof: float | None = None) -> float:
    """Chi² decrease one knot must beat: its null quantile on noise around a straight line.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Positions of the finite points, increasing.
    sigma : float or ndarray, shape (n,)
        Standard errors (only their ratios matter).
    min_points : int
    false_boundary_rate : float
        In (0, 1): the quantile taken is ``1 - false_boundary_rate``.
    n_simulations : int
    seed : int
        Seed of the simulations (deterministic result).
    noise_dof : float, optional
        Degrees of freedom of the estimate of ``sigma``: each simulated gain is divided by an
        independent ``chi²(dof) / dof`` draw, as chi² computed with an estimated sigma is (an
        F rather than a chi² statistic); None = sigma known.

    Returns
    -------
    float
        ``inf`` when no knot fits in (too few points).
    """
    if not 0 < false_boundary_rate < 1:
        raise InputError(f"false_boundary_rate must be in (0, 1), got {false_boundary_rate}")
    x = np.asarray(x, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), x.shape)
    w = 1.0 / sigma ** 2
    fitter = _fitter(x, w, min_points)
    feasible = fitter.feasible_mask(np.empty(0))
    if not feasible.any():
        return float("inf")
    design = _design(x, np.empty(0))
    gram_inv = np.linalg.pinv(design.T @ (design * w[:, None]))
    hw = fitter.weighted_hinges[feasible]
    cross = hw @ design
    den = fitter.hinge_norms[feasible] - np.einsum("mp,pq,mq->m", cross, gram_inv, cross)
    noise = np.random.default_rng(seed).normal(size=(n_simulations, len(x))) * sigma
    residual = noise - ((noise * w) @ design @ gram_inv) @ design.T
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(den > 1e-12, (residual @ hw.T) ** 2 / den, 0.0).max(axis=1)
    if noise_dof is not None and np.isfinite(noise_dof):
        rng = np.random.default_rng([seed, 1])
        gain = gain / (rng.chisquare(noise_dof, n_simulations) / noise_dof)
    return float(np.quantile(gain, 1.0 - false_boundary_rate))


def segment_curve(x: np.ndarray, y: np.ndarray, sigma: float | np.ndarray,
                  max_segments: int = DEFAULT_MAX_SEGMENTS, min_points: int = DEFAULT_MIN_POINTS,
                  cost: float | None = None) -> Segmentation:
    """Fit 1..max_segments continuous linear segments and choose their number (see the module docstring).

    Parameters
    ----------
    x : ndarray, shape (n_steps,)
        log10 tokens (:func:`log_token_axis`), increasing.
    y : ndarray, shape (n_steps,)
        The curve; NaN values are gaps, left out of the fit.
    sigma : float or ndarray, shape (n_steps,)
        Standard error of each y (> 0).
    max_segments : int
        Largest number of segments considered.
    min_points : int
        Fewest checkpoints a segment spans (>= 2).
    cost : float, optional
        Chi² cost of one knot; default :func:`knot_cost` of these points at the schema's
        ``phases.false_boundary_rate``.

    Returns
    -------
    Segmentation
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), x.shape)
    if max_segments < 1 or min_points < 2:
        raise InputError(f"max_segments must be >= 1 and min_points >= 2, got {max_segments} and {min_points}")
    finite = np.isfinite(y)
    if not (np.isfinite(sigma[finite]).all() and (sigma[finite] > 0).all()):
        raise InputError("sigma must be finite and > 0 at every point of the curve")
    xs, ys, ws = x[finite], y[finite], 1.0 / sigma[finite] ** 2
    n = len(xs)
    if n < 2:
        raise InputError(f"the curve has {n} finite points; a segmentation needs at least 2")
    fitter = _fitter(xs, ws, min_points)
    fitter.y = ys
    fitter.dp_tables(max_segments)
    chi2 = np.full(max_segments, np.inf)
    knots_by_k: list = [np.empty(0)] + [None] * (max_segments - 1)
    chi2[0] = fitter.chi2(np.empty(0))

    def keep(knots: np.ndarray | None) -> None:
        if knots is None or not len(knots) or not _feasible(xs, knots, min_points):
            return
        value = fitter.chi2(knots)
        if value < chi2[len(knots)] - 1e-9:
            chi2[len(knots)], knots_by_k[len(knots)] = value, np.sort(knots)

    # forward: add the best knot to the best K-1 fit, and start from the discontinuous optimum
    for k in range(2, max_segments + 1):
        previous = knots_by_k[k - 2]
        added = None if previous is None else fitter.best_addition(previous)
        if added is not None:
            keep(fitter.refine(np.append(previous, added)))
        dp = fitter.dp_init(k)
        if dp is not None and _feasible(xs, dp, min_points):
            keep(fitter.refine(dp))
    # backward: drop the least useful knot of the best K+1 fit
    for k in range(max_segments - 1, 1, -1):
        richer = knots_by_k[k]
        if richer is None:
            continue
        drops = [np.delete(richer, j) for j in range(len(richer))]
        keep(fitter.refine(drops[int(np.argmin([fitter.chi2(d) for d in drops]))]))
    for k in range(1, max_segments):  # the best knots of each K, polished between checkpoints
        if knots_by_k[k] is not None:
            knots_by_k[k] = fitter.polish(knots_by_k[k])
            chi2[k] = fitter.chi2(knots_by_k[k])
    if cost is None:
        cost = knot_cost(xs, sigma[finite], min_points)
    criterion = chi2 + np.append(0.0, cost * np.arange(1, max_segments))  # cost inf: one segment, no 0 x inf
    n_segments = int(np.argmin(criterion)) + 1
    knots = np.sort(knots_by_k[n_segments - 1])
    coef, _ = _wls(xs, ys, ws, knots)
    design_all = _design(x, knots)
    # asymptotic covariance with the knots as free parameters too (segmented regression, Muggeo
    # 2003): d f / d k_j = -c_j [x > k_j]; ignoring it makes slopes look surer than they are
    jacobian = np.column_stack([_design(xs, knots)] + [-coef[2 + j] * (xs > k) for j, k in enumerate(knots)])
    covariance = np.linalg.pinv(jacobian.T @ (jacobian * ws[:, None]))
    slope_rows = np.zeros((n_segments, jacobian.shape[1]))
    slope_rows[:, 1:n_segments + 1] = np.tril(np.ones((n_segments, n_segments)))  # slope m = b1 + c_1..c_m
    slopes = slope_rows[:, :len(coef)] @ coef
    slope_se = np.sqrt(np.maximum(np.einsum("kp,pq,kq->k", slope_rows, covariance, slope_rows), 0.0))
    fixed_rows = slope_rows[:, :len(coef)]
    fixed_covariance = np.linalg.pinv(jacobian[:, :len(coef)].T @ (jacobian[:, :len(coef)] * ws[:, None]))
    slope_se_fixed_knots = np.sqrt(np.maximum(np.einsum("kp,pq,kq->k", fixed_rows, fixed_covariance, fixed_rows), 0.0))
    return Segmentation(n_segments, knots, design_all @ coef, slopes, slope_se, slope_se_fixed_knots, chi2, criterion,
                        knots_by_k, float(cost))


def _flat_design(x: np.ndarray, knots: np.ndarray, segment: int) -> np.ndarray:
    """Design of the continuous fit whose segment ``segment`` has slope 0.

    The slope of segment m is ``b1 + c_1 + ... + c_m``; setting it to 0 eliminates ``b1``, whose
    column ``x`` moves into the columns of ``c_1..c_m`` (``h_j - x``).
    """
    design = _design(x, knots)
    columns = [design[:, 0]]
    for j in range(len(knots)):
        columns.append(design[:, 2 + j] - design[:, 1] if j < segment else design[:, 2 + j])
    return np.column_stack(columns)


def _batched_chi2(designs: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares chi² of many designs at once, designs shape (m, n, p)."""
    weighted = designs * w[None, :, None]
    gram = np.einsum("mnp,mnq->mpq", weighted, designs) + 1e-12 * np.eye(designs.shape[2])
    coef = np.linalg.solve(gram, np.einsum("mnp,n->mp", weighted, y)[..., None])[..., 0]
    residual = y[None, :] - np.einsum("mnp,mp->mn", designs, coef)
    return np.einsum("mn,n->m", residual ** 2, w)


def flat_segment_test(x: np.ndarray, y: np.ndarray, sigma: float | np.ndarray, knots: np.ndarray, segment: int,
                      min_points: int = DEFAULT_MIN_POINTS, window: int = 20, sweeps: int = 3) -> float:
    """Likelihood-ratio statistic for "segment ``segment`` is flat", with its knots re-fitted.

    The fit with that segment's slope forced to 0 moves the segment's own knots (over the
    ``window`` nearest checkpoints and midpoints on each side, by coordinate descent), so a
    flat segment whose knot was placed a little early (tilting it) is recognised as flat: the
    constrained fit moves the knot instead. Under flatness the statistic is about chi²(1)
    (3.84 at 95 %).

    Parameters
    ----------
    x, y : ndarray, shape (n_steps,)
        NaN in ``y`` = gap.
    sigma : float or ndarray, shape (n_steps,)
    knots : ndarray, shape (n_segments - 1,)
        Knots of the free fit (:func:`segment_curve`).
    segment : int
        Index of the segment tested (0 = first).

    Returns
    -------
    float
        chi²(flat) - chi²(free), >= 0.
    """
    finite = np.isfinite(y)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), np.shape(x))
    xs, ys, ws = x[finite], y[finite], 1.0 / sigma[finite] ** 2
    candidates = _fitter(xs, ws, min_points).candidates
    knots = np.sort(np.asarray(knots, dtype=float))
    free = float(_batched_chi2(_design(xs, knots)[None], ys, ws)[0])
    current, best = knots.copy(), float(_batched_chi2(_flat_design(xs, knots, segment)[None], ys, ws)[0])
    movable = [j for j in (segment - 1, segment) if 0 <= j < len(knots)]
    for _ in range(sweeps):
        moved = False
        for j in movable:
            centre = int(np.searchsorted(candidates, current[j]))
            nearby = candidates[max(centre - window, 0):centre + window]
            trials = [t for t in (np.sort(np.concatenate([np.delete(current, j), [c]])) for c in nearby)
                      if _feasible(xs, t, min_points)]
            if not trials:
                continue
            values = _batched_chi2(np.stack([_flat_design(xs, t, segment) for t in trials]), ys, ws)
            k = int(np.argmin(values))
            if values[k] < best - 1e-9:
                best, current, moved = float(values[k]), trials[k], True
        if not moved:
            break
    return max(best - free, 0.0)
