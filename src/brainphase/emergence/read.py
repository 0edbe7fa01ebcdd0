"""Read ``emergence.h5`` (written by ``brainphase emergence``) into dataclasses and DataFrames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainphase.io import _plain, open_h5
from brainphase.phases.read import read_table_group


@dataclass
class MetricResult:
    """One metric of one model (``/models/{model}/metrics/{name}``).

    Attributes
    ----------
    name : str
        ``alignment`` or ``{task}/{metric}``.
    data : dict of str -> ndarray
        ``values`` (S, T), ``mean`` (T,), ``quantiles`` (Q, T), ``dip``, ``dip_p``, ``bimodal``,
        ``success_probability``, ``success_ci_low``, ``success_ci_high`` (T,), ``w1_steps`` (T - 1,),
        ``crossing_tokens``, ``crossing_loss`` (S,).
    levels : ndarray, shape (Q,)
        Quantile levels of ``quantiles``.
    attrs : dict
        ``kind``, ``higher_is_better``, ``threshold``, ``threshold_source``, ``family``, ``sharpness``.
    """

    name: str
    data: dict
    levels: np.ndarray
    attrs: dict



@dataclass
class ModelResult:
    """One model (size or labelled run) of ``emergence.h5``.

    Attributes
    ----------
    name : str
    seeds, steps, tokens : ndarray of int64
    loss : ndarray, shape (S, T)
        Validation loss (NaN when absent).
    metrics : dict of str -> MetricResult
    mirage : DataFrame
        One row per task: ``task``, ``discontinuous_metric``, ``continuous_metric``,
        ``sharpness_discontinuous``, ``sharpness_continuous``, ``verdict``.
    phase_boundaries, phase_boundary_spread : DataFrame
    n_parameters : int or None
    """

    name: str
    seeds: np.ndarray
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    metrics: dict
    mirage: pd.DataFrame
    phase_boundaries: pd.DataFrame
    phase_boundary_spread: pd.DataFrame
    n_parameters: int | None = None


@dataclass
class Emergence:
    """Contents of ``emergence.h5`` (layout: docs/hdf5_layout.md).

    Attributes
    ----------
    models : list of str
        The size axis (or the ``--labels``), in order.
    results : dict of str -> ModelResult
    tracking : DataFrame
        ``model, metric, n_seeds, spearman_mean, ci_low, ci_high``.
    sizes : dict of str -> dict
        Per metric present in every model (only with >= 2 models): the attrs
        (``crossing_tokens_spread_log10``, ``crossing_loss_spread``, ``collapse_in_loss``, ...) and
        the arrays ``median_crossing_tokens``, ``median_crossing_loss`` (M,), ``w1_final`` (M, M).
    simulated : bool
    loss_metric : str
    attrs : dict
        Every root attribute (provenance).
    """

    models: list
    results: dict
    tracking: pd.DataFrame
    sizes: dict
    simulated: bool
    loss_metric: str
    attrs: dict


def _attrs(obj: h5py.HLObject) -> dict:
    return {key: _plain(value) for key, value in obj.attrs.items()}


def _groups(group: h5py.Group, test) -> list[tuple[str, h5py.Group]]:
    """Every sub-group (at any depth, name relative to ``group``) for which ``test(subgroup)`` holds, sorted."""
    found = []
    group.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Group) and test(obj) else None)
    return sorted(found, key=lambda item: item[0])


def _model(group: h5py.Group, name: str) -> ModelResult:
    metrics = {metric: MetricResult(metric, {k: ds[()] for k, ds in g.items() if isinstance(ds, h5py.Dataset)},
                                    np.asarray(g["quantiles"].attrs["levels"]), _attrs(g))
               for metric, g in _groups(group["metrics"], lambda g: "values" in g)}
    mirage = pd.DataFrame([{"task": task, **_attrs(g)} for task, g in _groups(group["mirage"], lambda g: "verdict" in g.attrs)],
                          columns=["task", "discontinuous_metric", "continuous_metric", "sharpness_discontinuous",
                                   "sharpness_continuous", "verdict", "sharp_threshold"])
    n_parameters = group.attrs.get("n_parameters")
    return ModelResult(name=name, seeds=group["seeds"][()], steps=group["steps"][()], tokens=group["tokens"][()],
                       loss=group["loss"][()], metrics=metrics, mirage=mirage,
                       phase_boundaries=read_table_group(group["phase_boundaries"]),
                       phase_boundary_spread=read_table_group(group["phase_boundary_spread"]),
                       n_parameters=None if n_parameters is None else int(n_parameters))


def load_emergence(path: str | Path) -> Emergence:
    """Read ``emergence.h5`` into an :class:`Emergence`."""
    with open_h5(Path(path), stage="emergence") as handle:
        attrs = _attrs(handle)
        models = list(attrs["models"]) if isinstance(attrs["models"], list) else [attrs["models"]]
        results = {name: _model(handle["models"][name], name) for name in models}
        sizes = {}
        if "sizes" in handle:
            for name, group in _groups(handle["sizes"], lambda g: "w1_final" in g):
                sizes[name] = {**_attrs(group), **{k: ds[()] for k, ds in group.items()}}
        return Emergence(models=models, results=results, tracking=read_table_group(handle["tracking"]), sizes=sizes,
                         simulated=bool(attrs.get("simulated", False)), loss_metric=str(attrs.get("loss_metric", "")),
                         attrs=attrs)
