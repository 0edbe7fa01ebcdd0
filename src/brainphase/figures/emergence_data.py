"""What the emergence figures read from ``emergence.h5`` (written by ``brainphase emergence``).

The layout is the emergence contract (README, "Emergence across seeds and sizes"): root
attributes ``models`` (the size axis, in order), ``simulated`` and ``loss_metric``; per model
``/models/{model}/{seeds,steps,tokens,loss}``, one group per metric under
``/models/{model}/metrics/`` (``alignment`` or ``{task}/{metric}``) holding ``values`` (S, T)
and its statistics, and ``/models/{model}/mirage/{task}``; ``/sizes/{metric}`` with two or
more models. :func:`load_emergence_data` keeps what the figures draw; a statistic absent from
a metric group is read as NaN so that a figure draws what is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from brainphase.errors import InputError
from brainphase.figures.data import token_positions, tokens_position
from brainphase.io import attr_text, open_h5

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


def _array(group: h5py.Group, name: str, shape: tuple[int, ...], dtype=float) -> np.ndarray:
    """Dataset ``name`` of ``group`` as an array of ``shape``; NaN (False for bool) when absent."""
    if name not in group:
        return np.zeros(shape, dtype=bool) if dtype is bool else np.full(shape, np.nan)
    return np.asarray(group[name][()], dtype=dtype).reshape(shape)


def _float_attr(obj: h5py.HLObject, key: str) -> float:
    return float(obj.attrs.get(key, np.nan))


def _read_metric(group: h5py.Group, name: str, n_seeds: int, n_steps: int) -> EmergenceMetric:
    values = np.asarray(group["values"][()], dtype=float)
    if values.shape != (n_seeds, n_steps):
        raise InputError(f"{group.file.filename}: {group.name}/values has shape {values.shape}, expected "
                         f"(seeds, steps) = {(n_seeds, n_steps)}; re-run `brainphase emergence`")
    return EmergenceMetric(
        name=name, kind=attr_text(group, "kind"), family=attr_text(group, "family"),
        higher_is_better=bool(group.attrs.get("higher_is_better", True)),
        threshold=_float_attr(group, "threshold"), sharpness=_float_attr(group, "sharpness"), values=values,
        bimodal=_array(group, "bimodal", (n_steps,), bool), success=_array(group, "success_probability", (n_steps,)),
        success_low=_array(group, "success_ci_low", (n_steps,)), success_high=_array(group, "success_ci_high", (n_steps,)),
        w1_steps=_array(group, "w1_steps", (max(n_steps - 1, 0),)),
        crossing_tokens=_array(group, "crossing_tokens", (n_seeds,)), crossing_loss=_array(group, "crossing_loss", (n_seeds,)))


def _groups_with(group: h5py.Group, key: str) -> list[tuple[str, h5py.Group]]:
    """``(name, group)`` of every group under ``group`` holding a member or attribute ``key``
    (nested names joined by "/", e.g. ``"task/acc"``)."""
    found = []
    group.visititems(lambda name, obj: found.append((name, obj))
                     if isinstance(obj, h5py.Group) and (key in obj or key in obj.attrs) else None)
    return found


def _read_model(handle: h5py.File, name: str) -> EmergenceModel:
    path = handle.filename
    if f"models/{name}" not in handle:
        raise InputError(f"{path}: root attribute 'models' names {name!r} but /models/{name} is missing; "
                         "re-run `brainphase emergence`")
    group = handle[f"models/{name}"]
    for key in ("seeds", "steps", "tokens"):
        if key not in group:
            raise InputError(f"{path}: /models/{name}/{key} is missing; re-run `brainphase emergence`")
    seeds, steps, tokens = (np.asarray(group[key][()], dtype=np.int64) for key in ("seeds", "steps", "tokens"))
    shape = (len(seeds), len(steps))
    metrics = ({metric: _read_metric(sub, metric, *shape) for metric, sub in _groups_with(group["metrics"], "values")}
               if "metrics" in group else {})
    mirage = {task: {key: (attr_text(sub, key) if key.endswith(("metric", "verdict")) else _float_attr(sub, key))
                     for key in ("discontinuous_metric", "continuous_metric", "sharpness_discontinuous",
                                 "sharpness_continuous", "verdict")}
              for task, sub in (group["mirage"].items() if "mirage" in group else ())}
    n_parameters = group.attrs.get("n_parameters")
    return EmergenceModel(name=name, seeds=seeds, steps=steps, tokens=tokens, loss=_array(group, "loss", shape),
                          metrics=metrics, mirage=mirage, n_parameters=None if n_parameters is None else int(n_parameters))


def load_emergence_data(path: str | Path) -> EmergenceData:
    """Read ``emergence.h5`` for the figures.

    Raises
    ------
    InputError
        When the file is missing, not HDF5, has no root attribute ``models``, or a model's
        ``seeds``/``steps``/``tokens`` or a metric's ``values`` are missing or mis-shaped.
    """
    path = Path(path)
    with open_h5(path) as handle:
        if "models" not in handle.attrs:
            raise InputError(f"{path}: no root attribute 'models'; pass the emergence.h5 written by "
                             "`brainphase emergence`")
        names = [str(n.decode() if isinstance(n, bytes) else n) for n in np.atleast_1d(handle.attrs["models"])]
        models = [_read_model(handle, name) for name in names]
        sizes = {}
        if "sizes" in handle:
            for metric, sub in _groups_with(handle["sizes"], "collapse_in_loss"):
                sizes[metric] = {key: (value.decode() if isinstance(value, bytes) else value)
                                 for key, value in sub.attrs.items()}
        simulated = bool(handle.attrs.get("simulated", False))
        loss_metric = attr_text(handle, "loss_metric")
    tokens = np.unique(np.concatenate([model.tokens for model in models] or [np.zeros(1, dtype=np.int64)]))
    return EmergenceData(path=path, simulated=simulated, loss_metric=loss_metric, models=models, sizes=sizes,
                         tokens=tokens, x=token_positions(tokens))
