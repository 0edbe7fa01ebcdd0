"""One model's seeds x checkpoints series, read from its ``trajectory.h5``, for ``brainphase emergence``.

A :class:`ModelSeries` holds everything the emergence analysis uses of one model (one "size",
or one run labelled with ``--labels``): brain alignment, every task metric, the validation loss
(task ``heldout_text``, metric ``loss``), the internal metrics, the per-seed phase boundaries
and their spread (``/phases/seed_boundaries``, ``/phases/boundary_spread``) and the model size
(``/model``), all as ``brainphase phases`` stored them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.phases.noise import quiet_nanmean
from brainphase.phases.read import load_trajectory

#: the validation loss axis: task heldout_text, metric loss (lower is better)
LOSS_METRIC = "heldout_text/loss"
#: name of brain alignment among the metrics
ALIGNMENT = "alignment"
#: the ``/model`` attrs of trajectory.h5 that give a model's size
SIZE_KEYS = ("n_parameters", "n_layers", "hidden_size")


@dataclass(frozen=True)
class MetricSeries:
    """One metric of one model.

    Attributes
    ----------
    values : ndarray, shape (n_seeds, n_steps)
    kind : str
        ``continuous``, ``discontinuous`` (task metrics) or ``brain`` (alignment).
    higher_is_better : bool
    family : str
        Task family (``brain`` for alignment).
    """

    values: np.ndarray
    kind: str
    higher_is_better: bool
    family: str


@dataclass
class ModelAxes:
    """The seeds x checkpoints axes of one model, shared by the analysis input (:class:`ModelSeries`)
    and the stored result (:class:`brainphase.emergence.read.ModelResult`).

    Attributes
    ----------
    name : str
        The model's label (its model id, or the ``--labels`` entry).
    seeds, steps, tokens : ndarray of int64, shapes (S,), (T,), (T,)
    loss : ndarray, shape (S, T)
        Validation loss (:data:`LOSS_METRIC`); all NaN when the trajectory has none.
    metrics : dict of str -> metric
        ``"alignment"`` first, then every task metric ``"{task}/{metric}"``.
    """

    name: str
    seeds: np.ndarray
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    metrics: dict

    @property
    def has_loss(self) -> bool:
        return bool(np.isfinite(self.loss).any())


@dataclass
class ModelSeries(ModelAxes):
    """What the emergence analysis uses of one model's trajectory (:class:`ModelAxes` and below).

    Attributes
    ----------
    metrics : dict of str -> MetricSeries
    internal : dict of str -> ndarray, shape (S, T)
        Internal metrics as ``"internal/{name}/layer{l}"`` and their layer mean ``"internal/{name}"``.
    seed_boundaries, boundary_spread : DataFrame
        The trajectory's ``/phases/seed_boundaries`` and ``/phases/boundary_spread``
        (:mod:`brainphase.phases.seed_boundaries`).
    simulated : bool
    size : dict
        The trajectory's ``/model`` attrs that give its size: ``n_parameters``, ``n_layers``,
        ``hidden_size`` where known (:mod:`brainphase.phases.model_size`).
    source : str
        Path of the trajectory file.
    """

    internal: dict = field(default_factory=dict)
    seed_boundaries: pd.DataFrame = field(default_factory=pd.DataFrame)
    boundary_spread: pd.DataFrame = field(default_factory=pd.DataFrame)
    simulated: bool = False
    size: dict = field(default_factory=dict)
    source: str = ""


def load_series(path: str | Path, name: str | None = None) -> ModelSeries:
    """Read one model's trajectory.h5 into a :class:`ModelSeries`.

    Parameters
    ----------
    path : str or Path
        A ``trajectory.h5`` written by ``brainphase phases``.
    name : str, optional
        Label of the model; its ``model_id`` (else the file's folder name) when None.
    """
    path = Path(path)
    trajectory = load_trajectory(path)
    name = name or trajectory.model_id or path.parent.name
    if "/" in name or not name.strip():
        raise InputError(f"{path}: model label {name!r} must be non-empty and contain no '/'; pass --labels")
    shape = (len(trajectory.seeds), len(trajectory.steps))
    metrics = {ALIGNMENT: MetricSeries(np.asarray(trajectory.alignment, dtype=np.float64), "brain", True, "brain")}
    for metric, values in trajectory.metrics.items():
        metrics[metric] = MetricSeries(np.asarray(values, dtype=np.float64), trajectory.metric_kinds.get(metric, ""),
                                       trajectory.metric_higher_is_better.get(metric, True),
                                       trajectory.metric_families.get(metric, ""))
    loss = metrics[LOSS_METRIC].values if LOSS_METRIC in metrics else np.full(shape, np.nan)
    internal = {}
    for metric, values in trajectory.internal_metrics.items():  # (S, T, L)
        for k, layer in enumerate(trajectory.internal_layers):
            internal[f"internal/{metric}/layer{int(layer)}"] = np.asarray(values[..., k], dtype=np.float64)
        internal[f"internal/{metric}"] = quiet_nanmean(np.asarray(values, dtype=np.float64), axis=-1)
    size = {key: int(trajectory.model_size[key]) for key in SIZE_KEYS if key in trajectory.model_size}
    return ModelSeries(name=name, seeds=np.asarray(trajectory.seeds, dtype=np.int64),
                       steps=np.asarray(trajectory.steps, dtype=np.int64),
                       tokens=np.asarray(trajectory.tokens, dtype=np.int64), loss=loss, metrics=metrics,
                       internal=internal, seed_boundaries=trajectory.seed_boundaries,
                       boundary_spread=trajectory.boundary_spread, simulated=trajectory.simulated, size=size,
                       source=str(path))
