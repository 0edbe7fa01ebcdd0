"""One model's seeds x checkpoints series, read from its ``trajectory.h5``, for ``brainphase emergence``.

A :class:`ModelSeries` holds everything the emergence analysis uses of one model (one "size",
or one run labelled with ``--labels``): brain alignment, every task metric, the validation loss
(task ``heldout_text``, metric ``loss``), the internal metrics, and the per-seed phase segments.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.phases.label import quiet_nanmean
from brainphase.phases.read import load_trajectory

#: the validation loss axis: task heldout_text, metric loss (lower is better)
LOSS_METRIC = "heldout_text/loss"
#: name of brain alignment among the metrics
ALIGNMENT = "alignment"


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
class ModelSeries:
    """What the emergence analysis uses of one model's trajectory.

    Attributes
    ----------
    name : str
        The model's label (its model id, or the ``--labels`` entry).
    seeds, steps, tokens : ndarray of int64, shapes (S,), (T,), (T,)
    loss : ndarray, shape (S, T)
        Validation loss (:data:`LOSS_METRIC`); all NaN when the trajectory has none.
    metrics : dict of str -> MetricSeries
        ``"alignment"`` first, then every task metric ``"{task}/{metric}"``.
    internal : dict of str -> ndarray, shape (S, T)
        Internal metrics as ``"internal/{name}/layer{l}"`` and their layer mean ``"internal/{name}"``.
    seed_segments : DataFrame
        The trajectory's ``/phases/seed_segments`` (seed ids in column ``seed``).
    simulated : bool
    n_parameters : int or None
        Parameters of the trained checkpoint when found beside the trajectory, else None.
    source : str
        Path of the trajectory file.
    """

    name: str
    seeds: np.ndarray
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    metrics: dict
    internal: dict = field(default_factory=dict)
    seed_segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    simulated: bool = False
    n_parameters: int | None = None
    source: str = ""

    @property
    def has_loss(self) -> bool:
        return bool(np.isfinite(self.loss).any())


def safetensors_parameters(path: Path) -> int:
    """Number of parameters in a ``.safetensors`` file, from its JSON header (no tensor is read)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return int(sum(np.prod(entry["shape"], dtype=np.int64) for key, entry in header.items() if key != "__metadata__"))


def _n_parameters(trajectory: Path, model_id: str, seed: int, step: int) -> int | None:
    """Parameters of ``results/models/{model}/seed{seed}/step{step}`` beside ``results/trajectory/{model}/``."""
    weights = trajectory.parent.parent.parent / "models" / model_id / f"seed{seed}" / f"step{step}" / "model.safetensors"
    return safetensors_parameters(weights) if weights.is_file() else None


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
    n_parameters = (_n_parameters(path, trajectory.model_id, int(trajectory.seeds[0]), int(trajectory.steps[-1]))
                    if trajectory.model_id else None)
    return ModelSeries(name=name, seeds=np.asarray(trajectory.seeds, dtype=np.int64),
                       steps=np.asarray(trajectory.steps, dtype=np.int64),
                       tokens=np.asarray(trajectory.tokens, dtype=np.int64), loss=loss, metrics=metrics,
                       internal=internal, seed_segments=trajectory.seed_segments, simulated=trajectory.simulated,
                       n_parameters=n_parameters, source=str(path))
