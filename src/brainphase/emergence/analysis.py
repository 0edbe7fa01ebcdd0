"""The emergence analysis of several models (sizes, or labelled runs): what ``brainphase emergence`` stores.

Per model and metric (:func:`metric_summary`): the seed distribution at every checkpoint, the
dip test, the success probability with its Clopper-Pearson CI, W1 between consecutive
checkpoints, the first threshold crossing of every seed in tokens and in validation loss, and
the sharpness of the seed-mean curve. Per model and task: the mirage check (:func:`mirage`).
Per model: the per-seed phase boundaries of the trajectory with the loss at each
(:func:`phase_boundaries`, :func:`phase_boundary_spread`) and the tracking table
(:func:`tracking`). Across models: the spread of the crossings in tokens and in loss and
whether the models collapse onto one curve in loss (:func:`sizes`).

Thresholds (:func:`resolve_thresholds`): ``emergence.thresholds`` by metric name, else the
midpoint of the seed mean at the first and at the last checkpoint, pooled over all models, so
every model is measured against the same threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainphase.emergence.distributions import (bimodality, seed_distribution, success_probability,
                                                wasserstein_between, wasserstein_steps)
from brainphase.emergence.series import ALIGNMENT, ModelSeries
from brainphase.emergence.sharpness import mirage_check, sharpness
from brainphase.emergence.tracking import crossing, tracking_table
from brainphase.errors import InputError
from brainphase.phases.noise import quiet_nanmean
from brainphase.phases.seed_boundaries import spread_table
from brainphase.phases.segment import log_token_axis

DEFAULT_THRESHOLD_SOURCE = "default: midpoint of first and last checkpoint"
NO_THRESHOLD_SOURCE = "default: none (the seed mean is the same at the first and the last checkpoint)"
#: mirage verdict of a task whose two metrics never rise (both sharpness values NaN)
NO_RISE = "no rise in either metric"


@dataclass(frozen=True)
class Settings:
    """Parameters of the analysis (defaults in config/schema.yaml, section ``emergence``)."""

    bimodality_alpha: float
    confidence: float
    window_decades: float
    sharp_threshold: float
    n_bootstrap: int
    bootstrap_seed: int
    thresholds: dict


def resolve_thresholds(models: list[ModelSeries], thresholds: dict) -> dict:
    """Threshold of every metric of any model: ``name -> (value, source)``.

    A metric named in ``thresholds`` gets that value (source ``config``); any other gets the
    midpoint between its seed mean at the first checkpoint and at the last, each pooled over the
    seeds of every model that has the metric (source :data:`DEFAULT_THRESHOLD_SOURCE`); NaN
    (no success probability, no crossings) when those two means are equal.
    """
    names = sorted({name for model in models for name in model.metrics})
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise InputError(f"emergence.thresholds names {unknown}, which no trajectory has; "
                         f"metrics are 'alignment' or '{{task}}/{{metric}}', e.g. {names[1:4]}")
    resolved = {}
    for name in names:
        if name in thresholds:
            resolved[name] = (float(thresholds[name]), "config")
            continue
        series = [model.metrics[name].values for model in models if name in model.metrics]
        first = quiet_nanmean(np.concatenate([values[:, 0] for values in series]), axis=0)
        last = quiet_nanmean(np.concatenate([values[:, -1] for values in series]), axis=0)
        if first == last:  # a metric that does not move (e.g. 0 throughout) has no transition to threshold
            resolved[name] = (float("nan"), NO_THRESHOLD_SOURCE)
        else:
            resolved[name] = (float((first + last) / 2.0), DEFAULT_THRESHOLD_SOURCE)
    return resolved


def _tokens_of(x_cross: np.ndarray, x: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """log-token axis position -> tokens (step 0's position maps back to its 0 tokens)."""
    out = 10.0 ** x_cross
    at_first = np.isclose(x_cross, x[0])
    return np.where(at_first, float(tokens[0]), out)


def _oriented(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return values if higher_is_better else -values


def _sharpness(tokens: np.ndarray, curve: np.ndarray, window_decades: float) -> float:
    """Sharpness of a curve, NaN when it has fewer than 2 finite checkpoints."""
    if np.isfinite(curve).sum() < 2:
        return float("nan")
    return sharpness(tokens, curve, window_decades)


def metric_summary(model: ModelSeries, name: str, threshold: tuple, settings: Settings) -> tuple[dict, dict]:
    """Every per-checkpoint statistic of one metric of one model.

    Returns
    -------
    datasets : dict of str -> ndarray
        ``values`` (S, T), ``mean`` (T,), ``quantiles`` (Q, T), ``dip``, ``dip_p``, ``bimodal`` (T,),
        ``success_probability``, ``success_ci_low``, ``success_ci_high`` (T,), ``w1_steps`` (T - 1,),
        ``crossing_tokens``, ``crossing_loss`` (S,).
    attrs : dict
        ``kind``, ``higher_is_better``, ``threshold``, ``threshold_source``, ``family``,
        ``sharpness``, ``quantile_levels``.
    """
    metric = model.metrics[name]
    values = metric.values
    value, source = threshold
    distribution = seed_distribution(values)
    dip = bimodality(values, settings.bimodality_alpha)
    x = log_token_axis(model.tokens)
    no_steps, no_seeds = np.full(len(model.tokens), np.nan), np.full(len(model.seeds), np.nan)
    datasets = {
        "values": values, "mean": distribution.mean, "quantiles": distribution.quantiles,
        "dip": dip.dip, "dip_p": dip.p_value, "bimodal": dip.bimodal,
        "success_probability": no_steps, "success_ci_low": no_steps, "success_ci_high": no_steps,
        "w1_steps": wasserstein_steps(values), "crossing_tokens": no_seeds, "crossing_loss": no_seeds,
    }
    if np.isfinite(value):  # a default threshold is NaN only when no seed has a value at the first or last checkpoint
        success = success_probability(values, value, metric.higher_is_better, settings.confidence)
        datasets.update(success_probability=success.probability, success_ci_low=success.ci_low,
                        success_ci_high=success.ci_high)
        datasets["crossing_tokens"] = _tokens_of(crossing(x, values, value, metric.higher_is_better).per_seed, x,
                                                 model.tokens)
        if model.has_loss:
            datasets["crossing_loss"] = crossing(model.loss, values, value, metric.higher_is_better).per_seed
    attrs = {"kind": metric.kind, "higher_is_better": bool(metric.higher_is_better), "threshold": value,
             "threshold_source": source, "family": metric.family,
             "sharpness": _sharpness(model.tokens, _oriented(distribution.mean, metric.higher_is_better),
                                     settings.window_decades),
             "quantile_levels": np.asarray(distribution.levels, dtype=np.float64)}
    return datasets, attrs


def mirage(model: ModelSeries, settings: Settings) -> dict:
    """Mirage check of every task with a discontinuous and a continuous metric: ``task -> attrs``.

    The first discontinuous and the first continuous metric of the task (in name order) are
    compared on their seed means, each oriented so that higher is better; the verdict is
    :data:`NO_RISE` when neither ever rises.
    """
    tasks: dict[str, dict[str, list[str]]] = {}
    for name, metric in model.metrics.items():
        task = name.rpartition("/")[0]
        if task and metric.kind in ("discontinuous", "continuous"):
            tasks.setdefault(task, {"discontinuous": [], "continuous": []})[metric.kind].append(name)
    checks = {}
    for task, kinds in sorted(tasks.items()):
        if not kinds["discontinuous"] or not kinds["continuous"]:
            continue
        pair = sorted(kinds["discontinuous"])[0], sorted(kinds["continuous"])[0]
        curves = [_oriented(quiet_nanmean(model.metrics[n].values, axis=0), model.metrics[n].higher_is_better)
                  for n in pair]
        if min(np.isfinite(c).sum() for c in curves) < 2:
            continue
        check = mirage_check(model.tokens, curves[0], curves[1], settings.sharp_threshold, settings.window_decades)
        checks[task] = {"discontinuous_metric": pair[0], "continuous_metric": pair[1],
                        "sharpness_discontinuous": check.sharpness_discontinuous,
                        "sharpness_continuous": check.sharpness_continuous,
                        "verdict": NO_RISE if np.isnan([check.sharpness_discontinuous, check.sharpness_continuous]).all()
                        else check.verdict,
                        "sharp_threshold": check.sharp_threshold}
    return checks


def phase_boundaries(model: ModelSeries) -> pd.DataFrame:
    """Each seed's phase boundaries (the trajectory's ``/phases/seed_boundaries``) with the loss at each.

    Returns
    -------
    DataFrame
        The columns of :func:`brainphase.phases.seed_boundaries.seed_boundaries` (``seed``,
        ``boundary``, ``log10_tokens``, ``tokens``, ``step``, ``from_phase``, ``to_phase``,
        ``pooled_boundary``) and ``loss``: the seed's validation loss interpolated over log10
        tokens at the knot (NaN without loss at >= 2 checkpoints).
    """
    table = model.seed_boundaries.copy()
    x = log_token_axis(model.tokens)
    loss = np.full(len(table), np.nan)
    for row, (seed, knot) in enumerate(zip(table["seed"], table["log10_tokens"])):
        own = model.loss[int(np.flatnonzero(model.seeds == seed)[0])]
        finite = np.isfinite(own)
        if finite.sum() >= 2:
            loss[row] = np.interp(knot, x[finite], own[finite])
    table["loss"] = loss
    return table


def phase_boundary_spread(model: ModelSeries, boundaries: pd.DataFrame) -> pd.DataFrame:
    """The trajectory's ``/phases/boundary_spread`` with the spread of the loss at the matched seed boundaries.

    ``boundaries`` is :func:`phase_boundaries`; the loss columns ``loss_min``, ``loss_median``,
    ``loss_max``, ``loss_std`` come from :func:`brainphase.phases.seed_boundaries.spread_table`
    (the same matching and statistics as the tokens columns).
    """
    spread = model.boundary_spread.reset_index(drop=True)
    loss = spread_table(boundaries, len(spread), ("loss",))
    return pd.concat([spread, loss.drop(columns=["pooled_boundary", "n_seeds"])], axis=1)


TRACKING_COLUMNS = ["model", "metric", "n_seeds", "spearman_mean", "ci_low", "ci_high"]


def tracking(model: ModelSeries, settings: Settings) -> pd.DataFrame:
    """Rank correlation with brain alignment over checkpoints of every task and internal metric.

    Spearman per seed, mean over seeds, bootstrap CI over seeds
    (:func:`brainphase.emergence.tracking.tracking_table`); sorted by ``|spearman_mean|``.
    """
    candidates = {name: metric.values for name, metric in model.metrics.items() if name != ALIGNMENT}
    candidates.update(model.internal)
    if not candidates:
        return pd.DataFrame(columns=TRACKING_COLUMNS)
    table = tracking_table(model.metrics[ALIGNMENT].values, candidates, settings.confidence,
                           settings.n_bootstrap, settings.bootstrap_seed)
    return pd.DataFrame({"model": model.name, "metric": table["metric"], "n_seeds": table["n_seeds"],
                         "spearman_mean": table["mean_rho"], "ci_low": table["ci_low"], "ci_high": table["ci_high"]},
                        columns=TRACKING_COLUMNS)


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


def _spread(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max() - finite.min()) if len(finite) >= 2 else float("nan")


def sizes(models: list[ModelSeries], crossings: dict) -> dict:
    """Comparison of the models for every metric they all have: ``name -> (attrs, datasets)``.

    ``crossings[(model, name)]`` = (crossing_tokens (S,), crossing_loss (S,)). Per model the
    median crossing over the seeds that cross; across models the spread (max - min) of those
    medians, in log10 tokens and in loss. **Collapse rule**: the models collapse onto one
    curve in loss when the spread of the median crossing loss, relative to the range of the
    validation loss over all models' checkpoints, is smaller than the spread of the median
    crossing in log10 tokens relative to the log10 range of the (positive) checkpoint tokens;
    ``collapse_in_loss`` is False when fewer than 2 models cross or a model has no loss.
    ``w1_final`` (M, M): W1 between the models' seed distributions at their last checkpoints.
    """
    names = [name for name in models[0].metrics if all(name in model.metrics for model in models)]
    positive = np.concatenate([model.tokens[model.tokens > 0] for model in models]).astype(np.float64)
    tokens_range = float(np.log10(positive.max()) - np.log10(positive.min())) if len(positive) else float("nan")
    losses = np.concatenate([model.loss.ravel() for model in models])
    loss_range = _spread(losses)
    out = {}
    for name in names:
        tokens_median = np.array([_median(crossings[(model.name, name)][0]) for model in models])
        loss_median = np.array([_median(crossings[(model.name, name)][1]) for model in models])
        with np.errstate(divide="ignore"):
            log_tokens = np.where(tokens_median > 0, np.log10(np.where(tokens_median > 0, tokens_median, 1.0)), np.nan)
        tokens_spread, loss_spread = _spread(log_tokens), _spread(loss_median)
        relative_tokens = tokens_spread / tokens_range if tokens_range > 0 else float("nan")
        relative_loss = loss_spread / loss_range if loss_range > 0 else float("nan")
        collapse = bool(np.isfinite(relative_tokens) and np.isfinite(relative_loss) and relative_loss < relative_tokens)
        w1 = np.array([[wasserstein_between(a.metrics[name].values[:, -1:], b.metrics[name].values[:, -1:])[0]
                        for b in models] for a in models])
        attrs = {"crossing_tokens_spread_log10": tokens_spread, "crossing_loss_spread": loss_spread,
                 "crossing_tokens_spread_relative": relative_tokens, "crossing_loss_spread_relative": relative_loss,
                 "collapse_in_loss": collapse, "n_models_crossed": int(np.isfinite(log_tokens).sum())}
        out[name] = (attrs, {"median_crossing_tokens": tokens_median, "median_crossing_loss": loss_median,
                             "w1_final": w1})
    return out
