"""What the emergence figures read from ``emergence.h5`` (written by ``brainphase emergence``).

The file is read by the emergence stage's reader (:mod:`brainphase.emergence.read`; layout in
docs/hdf5_layout.md, "emergence.h5"): root attributes ``models`` (the size axis, in order),
``simulated`` and ``loss_metric``; per model ``seeds``, ``steps``, ``tokens``, ``loss``, one
group per metric (``alignment`` or ``{task}/{metric}``) holding ``values`` (S, T) and its
statistics, and the mirage check per task; ``/sizes/{metric}`` with two or more models.
:func:`load_emergence_data` keeps what the figures draw, on one token axis shared by all
models; a statistic absent from a metric group is NaN so that a figure draws what is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainphase.errors import InputError
from brainphase.figures.data import token_positions, tokens_position

#: the metric name of brain alignment
ALIGNMENT = "alignment"


@dataclass
class EmergenceMetric:
    """One metric of one model over seeds and checkpoints.

    Attributes
    ----------
    name : str
        ``"alignment"`` or ``"{task}/{metric}"``.
    kind : str
        ``"continuous"``, ``"discontinuous"`` or ``"brain"``.
    family : str
        Task family (``"brain"`` for alignment, ``""`` when absent).
    higher_is_better : bool
    threshold, sharpness : float
        Success threshold; sharpness of the seed-mean curve vs tokens (NaN when absent).
    values : ndarray, shape (n_seeds, n_steps)
        Every seed's value (NaN = missing).
    bimodal : ndarray of bool, shape (n_steps,)
        The seed distribution was called bimodal at that checkpoint.
    success, success_low, success_high : ndarray, shape (n_steps,)
        P(metric passes ``threshold``) over seeds and its confidence interval.
    w1_steps : ndarray, shape (n_steps - 1,)
        Wasserstein-1 distance between the seed distributions of checkpoints ``t`` and ``t + 1``.
    crossing_tokens, crossing_loss : ndarray, shape (n_seeds,)
        First crossing of ``threshold`` per seed (NaN = never).
    """

    name: str
    kind: str
    family: str
    higher_is_better: bool
    threshold: float
    sharpness: float
    values: np.ndarray
    bimodal: np.ndarray
    success: np.ndarray
    success_low: np.ndarray
    success_high: np.ndarray
    w1_steps: np.ndarray
    crossing_tokens: np.ndarray
    crossing_loss: np.ndarray


@dataclass
class EmergenceModel:
    """One model (a size, or a run label such as ``eps=0.25``).

    Attributes
    ----------
    name : str
    seeds : ndarray of int, shape (n_seeds,)
    steps, tokens : ndarray of int, shape (n_steps,)
    loss : ndarray, shape (n_seeds, n_steps)
        Validation loss (all NaN when the model has none).
    metrics : dict of str -> EmergenceMetric
    mirage : dict of str -> dict
        Per task the attributes of ``/models/{model}/mirage/{task}`` (``discontinuous_metric``,
        ``continuous_metric``, ``sharpness_discontinuous``, ``sharpness_continuous``, ``verdict``).
    n_parameters : int or None
    """

    name: str
    seeds: np.ndarray
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    metrics: dict[str, EmergenceMetric] = field(default_factory=dict)
    mirage: dict[str, dict] = field(default_factory=dict)
    n_parameters: int | None = None

    @property
    def has_loss(self) -> bool:
        return bool(np.isfinite(self.loss).any())

    @property
    def label(self) -> str:
        """Legend label: the name, with the parameter count when known."""
        return f"{self.name} ({self.n_parameters / 1e6:.3g}M)" if self.n_parameters else self.name


@dataclass
class EmergenceData:
    """Contents of ``emergence.h5`` that the figures draw.

    Attributes
    ----------
    path : Path
    simulated : bool
    loss_metric : str
        What ``loss`` is (``""`` when no model has a loss).
    models : list of EmergenceModel
        In the order of the root attribute ``models`` (the size axis).
    sizes : dict of str -> dict
        Per metric the attributes of ``/sizes/{metric}`` (only with >= 2 models).
    tokens, x : ndarray, shape (n_all,)
        Every model's token counts (sorted, unique) and their token-axis positions
        (:func:`brainphase.figures.data.token_positions`): the axis all panels share.
    """

    path: Path
    simulated: bool
    loss_metric: str
    models: list[EmergenceModel]
    sizes: dict[str, dict]
    tokens: np.ndarray
    x: np.ndarray

    @property
    def model_id(self) -> str:
        """Title prefix of the figures: the model names, or their count when many."""
        names = [model.name for model in self.models]
        return ", ".join(names) if len(names) <= 3 else f"{len(names)} models"

    @property
    def has_loss(self) -> bool:
        return any(model.has_loss for model in self.models)

    def position(self, tokens: np.ndarray | float) -> np.ndarray:
        """Shared token-axis position of token counts (same shape)."""
        return tokens_position(tokens, self.x, self.tokens)

    def metric_names(self) -> list[str]:
        """Every metric of any model, in first-seen order (models in size order)."""
        return list(dict.fromkeys(name for model in self.models for name in model.metrics))

    def metric(self, name: str) -> EmergenceMetric:
        """The metric ``name`` of the first model that has it (for its kind, family, threshold)."""
        return next(model.metrics[name] for model in self.models if name in model.metrics)


def _convert_metric(metric, n_seeds: int, n_steps: int) -> EmergenceMetric:
    """A :class:`brainphase.emergence.read.MetricResult` as an :class:`EmergenceMetric`
    (statistics absent from the file as NaN, ``bimodal`` as False)."""
    def array(key: str, shape: tuple[int, ...], dtype=float) -> np.ndarray:
        if key not in metric.data:
            return np.zeros(shape, dtype=bool) if dtype is bool else np.full(shape, np.nan)
        return np.asarray(metric.data[key], dtype=dtype).reshape(shape)

    attrs = metric.attrs
    return EmergenceMetric(
        name=metric.name, kind=str(attrs.get("kind", "")), family=str(attrs.get("family", "")),
        higher_is_better=bool(attrs.get("higher_is_better", True)), threshold=float(attrs.get("threshold", np.nan)),
        sharpness=float(attrs.get("sharpness", np.nan)), values=array("values", (n_seeds, n_steps)),
        bimodal=array("bimodal", (n_steps,), bool), success=array("success_probability", (n_steps,)),
        success_low=array("success_ci_low", (n_steps,)), success_high=array("success_ci_high", (n_steps,)),
        w1_steps=array("w1_steps", (max(n_steps - 1, 0),)), crossing_tokens=array("crossing_tokens", (n_seeds,)),
        crossing_loss=array("crossing_loss", (n_seeds,)))


def _convert_model(result) -> EmergenceModel:
    """A :class:`brainphase.emergence.read.ModelResult` as an :class:`EmergenceModel`."""
    shape = (len(result.seeds), len(result.steps))
    return EmergenceModel(
        name=result.name, seeds=np.asarray(result.seeds), steps=np.asarray(result.steps),
        tokens=np.asarray(result.tokens), loss=np.asarray(result.loss, dtype=float).reshape(shape),
        metrics={name: _convert_metric(metric, *shape) for name, metric in result.metrics.items()},
        mirage={row["task"]: {key: row[key] for key in ("discontinuous_metric", "continuous_metric",
                                                         "sharpness_discontinuous", "sharpness_continuous", "verdict")}
                for row in result.mirage.to_dict("records")},
        n_parameters=result.n_parameters)


def load_emergence_data(path: str | Path) -> EmergenceData:
    """Read ``emergence.h5`` for the figures, through the emergence stage's own reader
    (:func:`brainphase.emergence.read.load_emergence`).

    Raises
    ------
    InputError
        When the file is missing, not HDF5, not written by ``brainphase emergence``, or lacks a
        part of the layout.
    """
    from brainphase.emergence.read import load_emergence

    path = Path(path)
    try:
        emergence = load_emergence(path)
    except KeyError as exc:
        raise InputError(f"{path}: missing {exc}; pass the emergence.h5 written by `brainphase emergence`") from exc
    models = [_convert_model(emergence.results[name]) for name in emergence.models]
    tokens = np.unique(np.concatenate([model.tokens for model in models] or [np.zeros(1, dtype=np.int64)]))
    return EmergenceData(path=path, simulated=emergence.simulated, loss_metric=emergence.loss_metric, models=models,
                         sizes=emergence.sizes, tokens=tokens, x=token_positions(tokens))
