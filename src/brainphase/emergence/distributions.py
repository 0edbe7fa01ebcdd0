"""Distributions of a metric over random seeds, checkpoint by checkpoint.

Every function takes a metric as an array of shape (n_seeds, n_steps) (one row per seed, one
column per checkpoint, NaN for a missing value) and summarises each column: quantiles
(:func:`seed_distribution`), Hartigan's dip test of unimodality (:func:`bimodality`; at a
transition some seeds have an ability and some do not yet, so the seed distribution is bimodal),
the probability that a seed has reached a threshold with its exact binomial interval
(:func:`success_probability`), and the Wasserstein-1 distance between the seed distributions of
consecutive checkpoints (:func:`wasserstein_steps`, how much the distribution moves per step) or
of two sets of seeds such as two model sizes (:func:`wasserstein_between`).
"""

from __future__ import annotations

from dataclasses import dataclass

import diptest
import numpy as np
from scipy import stats

from brainphase.config import schema_default
from brainphase.emergence._arrays import seed_step_array
from brainphase.errors import InputError

#: quantile levels reported by :func:`seed_distribution`
QUANTILE_LEVELS = (0.05, 0.25, 0.50, 0.75, 0.95)
# defaults are stated once, in config/schema.yaml (section `emergence`)
#: significance level of the dip test behind the ``bimodal`` call
DEFAULT_BIMODALITY_ALPHA = schema_default("emergence.bimodality_alpha")
#: coverage of the Clopper-Pearson interval of the success probability
DEFAULT_CONFIDENCE = schema_default("emergence.confidence")
#: the dip test is not defined for fewer seeds than this (diptest warns for n <= 3)
MIN_SEEDS_DIP = 4


@dataclass(frozen=True)
class SeedDistribution:
    """Per-checkpoint summary of a metric over seeds.

    Attributes
    ----------
    mean : ndarray, shape (n_steps,)
        Mean over the seeds with a finite value (NaN where none).
    quantiles : ndarray, shape (len(levels), n_steps)
        Quantiles over seeds (linear interpolation, numpy's default), NaN where no seed is finite.
    levels : tuple of float
        The quantile levels, :data:`QUANTILE_LEVELS`.
    n_finite : ndarray of int, shape (n_steps,)
        Number of seeds with a finite value.
    """

    mean: np.ndarray
    quantiles: np.ndarray
    levels: tuple
    n_finite: np.ndarray


def seed_distribution(values) -> SeedDistribution:
    """Mean, quantiles (5, 25, 50, 75, 95 %) and number of finite seeds at every checkpoint.

    Parameters
    ----------
    values : array_like, shape (n_seeds, n_steps)

    Returns
    -------
    SeedDistribution
    """
    values = seed_step_array(values)
    n_finite = np.isfinite(values).sum(axis=0)
    mean = np.full(values.shape[1], np.nan)
    quantiles = np.full((len(QUANTILE_LEVELS), values.shape[1]), np.nan)
    has = n_finite > 0
    if has.any():
        mean[has] = np.nanmean(values[:, has], axis=0)
        quantiles[:, has] = np.nanquantile(values[:, has], QUANTILE_LEVELS, axis=0)
    return SeedDistribution(mean=mean, quantiles=quantiles, levels=QUANTILE_LEVELS, n_finite=n_finite)


@dataclass(frozen=True)
class Bimodality:
    """Hartigan's dip test at every checkpoint.

    Attributes
    ----------
    dip : ndarray, shape (n_steps,)
        Dip statistic (0 for a unimodal empirical distribution function; at most 0.25).
        NaN where fewer than :data:`MIN_SEEDS_DIP` seeds are finite.
    p_value : ndarray, shape (n_steps,)
        p-value against the uniform null (the least favourable unimodal distribution), from
        the ``diptest`` package's interpolated table; NaN where ``dip`` is NaN.
    bimodal : ndarray of bool, shape (n_steps,)
        ``p_value < alpha``; False where untestable.
    alpha : float
    """

    dip: np.ndarray
    p_value: np.ndarray
    bimodal: np.ndarray
    alpha: float


def bimodality(values, alpha: float = DEFAULT_BIMODALITY_ALPHA) -> Bimodality:
    """Hartigan's dip test of unimodality of the seed distribution at each checkpoint.

    The dip is the largest distance between the empirical distribution function and the
    closest unimodal one. The test is conservative (calibrated on the uniform distribution):
    under Gaussian seeds it calls fewer than ``alpha`` of the steps bimodal. Its power depends
    on the number of seeds and on the separation of two equal groups in units of their
    standard deviation (simulated, alpha = 0.05, README "Emergence statistics"): 40 seeds find
    a 6-SD split 99 % of the time but a 4-SD split only half the time; 10 seeds find a 10-SD
    split; 5 seeds find even a 10-SD split only about 40 % of the time. An unbalanced
    mixture is harder: with 40 seeds a minority of 3-9 seeds 16 SD away is often missed,
    one of at least a quarter of the seeds is found. With few seeds a
    negative call means "not shown", not "unimodal".

    Parameters
    ----------
    values : array_like, shape (n_seeds, n_steps)
    alpha : float
        Significance level of the ``bimodal`` call, in (0, 1).

    Returns
    -------
    Bimodality
    """
    values = seed_step_array(values)
    if not 0 < alpha < 1:
        raise InputError(f"alpha must lie in (0, 1), got {alpha}")
    n_steps = values.shape[1]
    dip = np.full(n_steps, np.nan)
    p_value = np.full(n_steps, np.nan)
    for step in range(n_steps):
        column = values[:, step]
        column = column[np.isfinite(column)]
        if len(column) < MIN_SEEDS_DIP:
            continue
        dip[step], p_value[step] = diptest.diptest(column)
    bimodal = np.zeros(n_steps, dtype=bool)
    tested = np.isfinite(p_value)
    bimodal[tested] = p_value[tested] < alpha
    return Bimodality(dip=dip, p_value=p_value, bimodal=bimodal, alpha=alpha)


@dataclass(frozen=True)
class SuccessProbability:
    """P(metric reaches the threshold) over seeds at every checkpoint, with its exact CI.

    Attributes
    ----------
    probability : ndarray, shape (n_steps,)
        ``n_success / n_finite`` (NaN where no seed is finite).
    ci_low, ci_high : ndarray, shape (n_steps,)
        Clopper-Pearson (exact binomial) interval with coverage ``confidence``.
    n_success, n_finite : ndarray of int, shape (n_steps,)
    threshold : float
    higher_is_better : bool
    confidence : float
    """

    probability: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_success: np.ndarray
    n_finite: np.ndarray
    threshold: float
    higher_is_better: bool
    confidence: float


def clopper_pearson(n_success, n_total, confidence: float = DEFAULT_CONFIDENCE):
    """Exact (Clopper-Pearson) binomial confidence interval from beta quantiles.

    Parameters
    ----------
    n_success, n_total : array_like of int, same shape
        Successes and trials; entries with ``n_total == 0`` give NaN.
    confidence : float

    Returns
    -------
    low, high : ndarray of float, same shape as the inputs
    """
    k = np.asarray(n_success, dtype=np.float64)
    n = np.asarray(n_total, dtype=np.float64)
    half_alpha = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, stats.beta.ppf(half_alpha, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1.0 - half_alpha, k + 1, n - k), 1.0)
    empty = n == 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def success_probability(values, threshold: float, higher_is_better: bool = True,
                        confidence: float = DEFAULT_CONFIDENCE) -> SuccessProbability:
    """Share of seeds whose metric has reached ``threshold``, per checkpoint, with an exact CI.

    Success is ``value >= threshold`` (``value <= threshold`` when ``higher_is_better`` is
    False, e.g. for a loss). Seeds with NaN at a checkpoint are left out of that checkpoint.

    Parameters
    ----------
    values : array_like, shape (n_seeds, n_steps)
    threshold : float
    higher_is_better : bool
    confidence : float
        Coverage of the Clopper-Pearson interval, in (0, 1).

    Returns
    -------
    SuccessProbability
    """
    values = seed_step_array(values)
    if not np.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got {threshold}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie in (0, 1), got {confidence}")
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        success = (values >= threshold) if higher_is_better else (values <= threshold)
    n_success = (success & finite).sum(axis=0)
    n_finite = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = np.where(n_finite > 0, n_success / np.maximum(n_finite, 1), np.nan)
    low, high = clopper_pearson(n_success, n_finite, confidence)
    return SuccessProbability(probability=probability, ci_low=low, ci_high=high, n_success=n_success,
                              n_finite=n_finite, threshold=float(threshold),
                              higher_is_better=bool(higher_is_better), confidence=float(confidence))


def _wasserstein_1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two empirical distributions: the integral of |F_a - F_b| over the real line."""
    a, b = np.sort(a), np.sort(b)
    support = np.sort(np.concatenate([a, b]))
    widths = np.diff(support)
    cdf_a = np.searchsorted(a, support[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, support[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def wasserstein_steps(values) -> np.ndarray:
    """Wasserstein-1 distance between the seed distributions of consecutive checkpoints.

    Each checkpoint's distribution is the empirical distribution of its finite seed values
    (equal weights); the distance is in the metric's own unit.

    Parameters
    ----------
    values : array_like, shape (n_seeds, n_steps)

    Returns
    -------
    ndarray of float64, shape (n_steps - 1,)
        Entry ``i`` compares checkpoints ``i`` and ``i + 1``; NaN where either has no finite seed.
    """
    values = seed_step_array(values)
    distances = np.full(values.shape[1] - 1, np.nan)
    for step in range(values.shape[1] - 1):
        before, after = values[:, step], values[:, step + 1]
        before, after = before[np.isfinite(before)], after[np.isfinite(after)]
        if len(before) and len(after):
            distances[step] = _wasserstein_1(before, after)
    return distances


def wasserstein_between(values_a, values_b) -> np.ndarray:
    """Wasserstein-1 distance between two seed distributions (e.g. two model sizes), per checkpoint.

    Parameters
    ----------
    values_a : array_like, shape (n_seeds_a, n_steps)
    values_b : array_like, shape (n_seeds_b, n_steps)
        Same checkpoints (columns) as ``values_a``; the numbers of seeds may differ.

    Returns
    -------
    ndarray of float64, shape (n_steps,)
        NaN where either side has no finite seed.
    """
    values_a = seed_step_array(values_a, "values_a")
    values_b = seed_step_array(values_b, "values_b")
    if values_a.shape[1] != values_b.shape[1]:
        raise InputError(f"values_a has {values_a.shape[1]} checkpoints and values_b {values_b.shape[1]}; "
                         "compare the two at the same checkpoints (columns)")
    distances = np.full(values_a.shape[1], np.nan)
    for step in range(values_a.shape[1]):
        a, b = values_a[:, step], values_b[:, step]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) and len(b):
            distances[step] = _wasserstein_1(a, b)
    return distances
