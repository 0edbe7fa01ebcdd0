"""Where an ability appears, per seed, and which metric tracks brain alignment.

:func:`crossing` finds, for each seed, the first point of training at which a metric reaches
its threshold, on any axis (tokens, log10 tokens or validation loss: "the loss at which each
ability appears"), and the spread of those points over seeds. :func:`tracking_table` ranks
metrics by how well they follow brain alignment over training (Spearman rank correlation over
checkpoints, per seed, averaged over seeds with a bootstrap CI over seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from brainphase.config import schema_default
from brainphase.emergence._arrays import seed_step_array
from brainphase.errors import InputError

# defaults are stated once, in config/schema.yaml (section `emergence`)
#: bootstrap resamples of seeds behind the CI of the mean rank correlation
DEFAULT_N_BOOTSTRAP = schema_default("emergence.n_bootstrap")
#: coverage of that CI
DEFAULT_TRACKING_CONFIDENCE = schema_default("emergence.confidence")
#: seed of the bootstrap's random generator
DEFAULT_BOOTSTRAP_SEED = schema_default("emergence.bootstrap_seed")
#: fewest finite (alignment, metric) checkpoint pairs for a seed's rank correlation
MIN_PAIRS_SPEARMAN = 3


@dataclass(frozen=True)
class Crossing:
    """First threshold crossing of a metric, per seed, and its spread.

    Attributes
    ----------
    per_seed : ndarray, shape (n_seeds,)
        The x at which each seed first reaches the threshold, linearly interpolated between the
        last checkpoint below and the first at or above it; the first checkpoint's x when it is
        already there; NaN when the seed never reaches it.
    median, q25, q75 : float
        Median and quartiles of ``per_seed`` over the seeds that cross (NaN when none does).
    n_crossed : int
        Number of seeds that reach the threshold.
    threshold : float
    higher_is_better : bool
    """

    per_seed: np.ndarray
    median: float
    q25: float
    q75: float
    n_crossed: int
    threshold: float
    higher_is_better: bool

    @property
    def iqr(self) -> float:
        """Interquartile range of the crossing points over seeds."""
        return self.q75 - self.q25


def _first_crossing(x: np.ndarray, y: np.ndarray, threshold: float) -> float:
    """First x where y (in training order, higher is better) reaches threshold; NaN if never."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    reached = np.flatnonzero(y >= threshold)
    if not len(reached):
        return float("nan")
    j = reached[0]
    if j == 0:
        return float(x[0])
    fraction = (threshold - y[j - 1]) / (y[j] - y[j - 1])
    return float(x[j - 1] + fraction * (x[j] - x[j - 1]))


def crossing(x, values, threshold: float, higher_is_better: bool = True) -> Crossing:
    """Where each seed's metric first reaches ``threshold``, on the axis ``x``.

    Checkpoints are taken in training order (column order); the crossing is interpolated
    linearly in ``x`` as given, so pass log10 tokens for interpolation on a log axis, or each
    seed's validation loss for "the loss at which the ability appears".

    Parameters
    ----------
    x : array_like, shape (n_steps,) or (n_seeds, n_steps)
        The axis: tokens (shared by all seeds) or a per-seed quantity such as validation loss.
    values : array_like, shape (n_seeds, n_steps)
        The metric; NaN checkpoints (in ``x`` or ``values``) are skipped.
    threshold : float
    higher_is_better : bool
        If False the crossing is the first point at or *below* the threshold.

    Returns
    -------
    Crossing
    """
    values = seed_step_array(values)
    axis = np.asarray(x, dtype=np.float64)
    if axis.shape == values.shape[1:]:
        axis = np.broadcast_to(axis, values.shape)
    elif axis.shape != values.shape:
        raise InputError(f"x must have shape (n_steps,) = ({values.shape[1]},) or (n_seeds, n_steps) = "
                         f"{values.shape} like the metric, got {axis.shape}")
    if not np.isfinite(threshold):
        raise InputError(f"threshold must be a finite number, got {threshold}")
    sign = 1.0 if higher_is_better else -1.0
    per_seed = np.array([_first_crossing(axis[seed], sign * values[seed], sign * threshold)
                         for seed in range(values.shape[0])])
    crossed = per_seed[np.isfinite(per_seed)]
    if len(crossed):
        q25, median, q75 = np.quantile(crossed, [0.25, 0.5, 0.75])
    else:
        q25 = median = q75 = float("nan")
    return Crossing(per_seed=per_seed, median=float(median), q25=float(q25), q75=float(q75),
                    n_crossed=int(len(crossed)), threshold=float(threshold),
                    higher_is_better=bool(higher_is_better))


def _spearman_per_seed(alignment: np.ndarray, metric: np.ndarray) -> np.ndarray:
    rho = np.full(alignment.shape[0], np.nan)
    for seed in range(alignment.shape[0]):
        keep = np.isfinite(alignment[seed]) & np.isfinite(metric[seed])
        a, m = alignment[seed, keep], metric[seed, keep]
        if keep.sum() < MIN_PAIRS_SPEARMAN or np.ptp(a) == 0 or np.ptp(m) == 0:
            continue  # a constant series has no rank correlation
        rho[seed] = stats.spearmanr(a, m).statistic
    return rho


def tracking_table(alignment, metrics: dict, confidence: float = DEFAULT_TRACKING_CONFIDENCE,
                   n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = DEFAULT_BOOTSTRAP_SEED) -> pd.DataFrame:
    """Which metric best tracks brain alignment over training.

    For each metric and seed, the Spearman rank correlation over checkpoints between the
    metric and brain alignment; then the mean over seeds and a percentile bootstrap CI of that
    mean (seeds resampled with replacement, ``n_bootstrap`` times, generator seeded by
    ``seed``). The bootstrap treats seeds as the independent units; with fewer than 2 seeds the
    CI is NaN, and with very few seeds (< 5) it is too narrow.

    Parameters
    ----------
    alignment : array_like, shape (n_seeds, n_steps)
        Brain alignment per seed and checkpoint.
    metrics : dict of str -> array_like, shape (n_seeds, n_steps)
        Candidate metrics (task or internal), same seeds and checkpoints as ``alignment``.
    confidence : float
        Coverage of the bootstrap CI.
    n_bootstrap : int
    seed : int
        Seed of the bootstrap's random generator.

    Returns
    -------
    pandas.DataFrame
        One row per metric, sorted by ``abs(mean_rho)`` (largest first; metrics without a
        finite correlation last), columns ``metric``, ``mean_rho``, ``ci_low``, ``ci_high``,
        ``n_seeds`` (seeds with a finite correlation), ``rho_per_seed`` (ndarray, shape (n_seeds,)).
    """
    alignment = seed_step_array(alignment, "alignment")
    if not metrics:
        raise InputError("metrics is empty: pass at least one metric to compare with alignment")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie in (0, 1), got {confidence}")
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    half_alpha = (1.0 - confidence) / 2.0
    rows = []
    for name, values in metrics.items():
        values = seed_step_array(values, f"metric {name!r}")
        if values.shape != alignment.shape:
            raise InputError(f"metric {name!r} has shape {values.shape} but alignment has {alignment.shape}; "
                             "both must be (n_seeds, n_steps) over the same seeds and checkpoints")
        rho = _spearman_per_seed(alignment, values)
        finite = rho[np.isfinite(rho)]
        mean = float(finite.mean()) if len(finite) else float("nan")
        low = high = float("nan")
        if len(finite) >= 2:
            resampled = rng.choice(finite, size=(n_bootstrap, len(finite)), replace=True).mean(axis=1)
            low, high = np.quantile(resampled, [half_alpha, 1.0 - half_alpha])
        rows.append({"metric": name, "mean_rho": mean, "ci_low": float(low), "ci_high": float(high),
                     "n_seeds": int(len(finite)), "rho_per_seed": rho})
    table = pd.DataFrame(rows)
    order = np.argsort(-np.nan_to_num(np.abs(table["mean_rho"].to_numpy()), nan=-1.0), kind="stable")
    return table.iloc[order].reset_index(drop=True)
