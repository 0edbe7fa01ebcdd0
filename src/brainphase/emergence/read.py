"""Read ``emergence.h5`` (written by ``brainphase emergence``) into typed dataclasses and DataFrames.

The one reader of the file: the emergence figures (:mod:`brainphase.figures.emergence`) draw
from what :func:`load_emergence` returns. A per-checkpoint statistic absent from a metric group
reads as NaN (``bimodal`` as False), so a figure draws what is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainphase.emergence.series import ModelAxes
from brainphase.errors import InputError
from brainphase.io import _plain, open_h5
from brainphase.phases.read import read_table_group

#: the metric name of brain alignment
ALIGNMENT = "alignment"


@dataclass
class MetricResult:
    """One metric of one model (``/models/{model}/metrics/{name}``).

    Attributes
    ----------
    name : str
        ``alignment`` or ``{task}/{metric}``.
    kind : str
        ``continuous``, ``discontinuous`` or ``brain``.
    family : str
        Task family (``brain`` for alignment, ``""`` when absent).
    higher_is_better : bool
    threshold : float
        Success threshold (NaN: none).
    threshold_source : str
    sharpness : float
        Sharpness of the seed-mean curve vs tokens (NaN: it never rises).
    values : ndarray, shape (S, T)
        Every seed's value (NaN = missing).
    mean : ndarray, shape (T,)
    quantiles : ndarray, shape (Q, T)
        Seed quantiles at ``levels``.
    levels : ndarray, shape (Q,)
    dip, dip_p : ndarray, shape (T,)
        Hartigan's dip and its p value.
    bimodal : ndarray of bool, shape (T,)
    success_probability, success_ci_low, success_ci_high : ndarray, shape (T,)
        P(metric passes ``threshold``) over seeds and its confidence interval.
    w1_steps : ndarray, shape (T - 1,)
        Wasserstein-1 between the seed distributions of checkpoints t and t + 1.
    crossing_tokens, crossing_loss : ndarray, shape (S,)
        First crossing of ``threshold`` per seed (NaN = never).
    """

    name: str
    kind: str
    family: str
    higher_is_better: bool
    threshold: float
    threshold_source: str
    sharpness: float
    values: np.ndarray
    mean: np.ndarray
    quantiles: np.ndarray
    levels: np.ndarray
    dip: np.ndarray
    dip_p: np.ndarray
    bimodal: np.ndarray
    success_probability: np.ndarray
    success_ci_low: np.ndarray
    success_ci_high: np.ndarray
    w1_steps: np.ndarray
    crossing_tokens: np.ndarray
    crossing_loss: np.ndarray


@dataclass
class ModelResult(ModelAxes):
    """One model (size or labelled run) of ``emergence.h5``: :class:`~brainphase.emergence.series.ModelAxes`
    (``name``, ``seeds``, ``steps``, ``tokens``, ``loss``, ``metrics``) and below.

    Attributes
    ----------
    metrics : dict of str -> MetricResult
    mirage : dict of str -> dict
        Per task the attrs of ``/models/{model}/mirage/{task}``: ``discontinuous_metric``,
        ``continuous_metric``, ``sharpness_discontinuous``, ``sharpness_continuous``, ``verdict``,
        ``sharp_threshold``.
    phase_boundaries, phase_boundary_spread : DataFrame
    n_parameters, n_layers, hidden_size : int or None
        The model's size, when the trajectory knew it.
    """

    mirage: dict = field(default_factory=dict)
    phase_boundaries: pd.DataFrame = field(default_factory=pd.DataFrame)
    phase_boundary_spread: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_parameters: int | None = None
    n_layers: int | None = None
    hidden_size: int | None = None

    @property
    def label(self) -> str:
        """Legend label: the name, with the parameter count when known."""
        return f"{self.name} ({self.n_parameters / 1e6:.3g}M)" if self.n_parameters else self.name


@dataclass
class Emergence:
    """Contents of ``emergence.h5`` (layout: docs/hdf5_layout.md).

    Attributes
    ----------
    path : Path
    models : list of ModelResult
        The size axis (or the ``--labels``), in file order.
    tracking : DataFrame
        ``model, metric, n_seeds, spearman_mean, ci_low, ci_high``.
    sizes : dict of str -> dict
        Per metric present in every model (only with >= 2 models): the attrs
        (``crossing_tokens_spread_log10``, ``crossing_loss_spread``, ``collapse_in_loss``, ...) and
        the arrays ``median_crossing_tokens``, ``median_crossing_loss`` (M,), ``w1_final`` (M, M).
    simulated : bool
    loss_metric : str
        What ``loss`` is (``""`` when no model has a loss).
    attrs : dict
        Every root attribute (provenance).
    """

    path: Path
    models: list
    tracking: pd.DataFrame
    sizes: dict
    simulated: bool
    loss_metric: str
    attrs: dict

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    @property
    def results(self) -> dict:
        """Models by name."""
        return {model.name: model for model in self.models}

    @property
    def model_id(self) -> str:
        """Title prefix of the figures: the model names, or their count when many."""
        return ", ".join(self.names) if len(self.models) <= 3 else f"{len(self.models)} models"

    @property
    def has_loss(self) -> bool:
        return any(model.has_loss for model in self.models)

    @property
    def tokens(self) -> np.ndarray:
        """Every model's token counts, sorted and unique, shape (n_all,): the axis figures share."""
        return np.unique(np.concatenate([model.tokens for model in self.models] or [np.zeros(1, dtype=np.int64)]))

    @property
    def x(self) -> np.ndarray:
        """Positions of :attr:`tokens` on the log token axis (:func:`brainphase.figures.data.token_positions`)."""
        from brainphase.figures.data import token_positions

        return token_positions(self.tokens)

    def position(self, tokens: np.ndarray | float) -> np.ndarray:
        """Shared token-axis position of token counts (same shape)."""
        from brainphase.figures.data import tokens_position

        return tokens_position(tokens, self.x, self.tokens)

    def metric_names(self) -> list[str]:
        """Every metric of any model, in first-seen order (models in size order)."""
        return list(dict.fromkeys(name for model in self.models for name in model.metrics))

    def metric(self, name: str) -> MetricResult:
        """The metric ``name`` of the first model that has it (for its kind, family, threshold)."""
        return next(model.metrics[name] for model in self.models if name in model.metrics)


def _attrs(obj: h5py.HLObject) -> dict:
    return {key: _plain(value) for key, value in obj.attrs.items()}


def _groups(group: h5py.Group, test) -> list[tuple[str, h5py.Group]]:
    """Every sub-group (at any depth, name relative to ``group``) for which ``test(subgroup)`` holds, sorted."""
    found = []
    group.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Group) and test(obj) else None)
    return sorted(found, key=lambda item: item[0])


def _metric(name: str, group: h5py.Group, n_seeds: int, n_steps: int) -> MetricResult:
    def array(key: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        if key not in group:
            return np.zeros(shape, dtype=bool) if dtype is bool else np.full(shape, np.nan)
        return np.asarray(group[key][()], dtype=dtype).reshape(shape)

    attrs = _attrs(group)
    levels = np.asarray(group["quantiles"].attrs["levels"], dtype=np.float64) if "quantiles" in group else np.zeros(0)
    return MetricResult(
        name=name, kind=str(attrs.get("kind", "")), family=str(attrs.get("family", "")),
        higher_is_better=bool(attrs.get("higher_is_better", True)), threshold=float(attrs.get("threshold", np.nan)),
        threshold_source=str(attrs.get("threshold_source", "")), sharpness=float(attrs.get("sharpness", np.nan)),
        values=array("values", (n_seeds, n_steps)), mean=array("mean", (n_steps,)),
        quantiles=array("quantiles", (len(levels), n_steps)), levels=levels, dip=array("dip", (n_steps,)),
        dip_p=array("dip_p", (n_steps,)), bimodal=array("bimodal", (n_steps,), bool),
        success_probability=array("success_probability", (n_steps,)),
        success_ci_low=array("success_ci_low", (n_steps,)), success_ci_high=array("success_ci_high", (n_steps,)),
        w1_steps=array("w1_steps", (max(n_steps - 1, 0),)), crossing_tokens=array("crossing_tokens", (n_seeds,)),
        crossing_loss=array("crossing_loss", (n_seeds,)))


def _model(group: h5py.Group, name: str) -> ModelResult:
    seeds, steps = group["seeds"][()], group["steps"][()]
    shape = (len(seeds), len(steps))
    attrs = _attrs(group)
    size = {key: int(attrs[key]) if key in attrs else None for key in ("n_parameters", "n_layers", "hidden_size")}
    return ModelResult(
        name=name, seeds=seeds, steps=steps, tokens=group["tokens"][()],
        loss=np.asarray(group["loss"][()], dtype=np.float64).reshape(shape),
        metrics={metric: _metric(metric, g, *shape) for metric, g in _groups(group["metrics"], lambda g: "values" in g)},
        mirage={task: _attrs(g) for task, g in _groups(group["mirage"], lambda g: "verdict" in g.attrs)},
        phase_boundaries=read_table_group(group["phase_boundaries"]),
        phase_boundary_spread=read_table_group(group["phase_boundary_spread"]), **size)


def load_emergence(path: str | Path) -> Emergence:
    """Read ``emergence.h5`` into an :class:`Emergence`.

    Raises
    ------
    InputError
        When the file is missing, not HDF5, not written by ``brainphase emergence``, or lacks a
        part of the layout.
    """
    path = Path(path)
    with open_h5(path, stage="emergence") as handle:
        try:
            attrs = _attrs(handle)
            names = list(attrs["models"]) if isinstance(attrs["models"], list) else [attrs["models"]]
            models = [_model(handle["models"][name], name) for name in names]
            sizes = {}
            if "sizes" in handle:
                for name, group in _groups(handle["sizes"], lambda g: "w1_final" in g):
                    sizes[name] = {**_attrs(group), **{k: ds[()] for k, ds in group.items()}}
            tracking = read_table_group(handle["tracking"])
        except KeyError as exc:
            raise InputError(f"{path}: missing {exc}; pass the emergence.h5 written by `brainphase emergence`") from exc
        return Emergence(path=path, models=models, tracking=tracking, sizes=sizes,
                         simulated=bool(attrs.get("simulated", False)), loss_metric=str(attrs.get("loss_metric", "")),
                         attrs=attrs)
