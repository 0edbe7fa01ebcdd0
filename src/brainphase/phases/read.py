"""Read ``trajectory.h5`` (written by ``brainphase phases``) into arrays and pandas DataFrames."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainphase.io import attr_text, open_h5, read_strings
from brainphase.phases.aggregate import MEASURES
from brainphase.phases.noise import quiet_nanmean
from brainphase.phases.seed_boundaries import boundary_spread, seed_boundaries


@dataclass
class Trajectory:
    """Contents of ``trajectory.h5`` (shapes and meanings in ``docs/hdf5_layout.md``).

    Attributes
    ----------
    steps, tokens : ndarray of int64, shape (n_steps,)
    seeds : ndarray of int64, shape (n_seeds,)
    alignment : ndarray, shape (n_seeds, n_steps)
        The curve the phases were computed on (``measure``).
    measure : str
    curves : dict of str -> ndarray, shape (n_seeds, n_steps)
        Every alignment curve of ``/brain`` (``heldout_layer``, ``layer_mean``, ``group``, ...).
    layers : ndarray of int, shape (n_layers,) (empty for a table input)
    alignment_layer : ndarray, shape (n_seeds, n_steps, n_layers), or None
    roi_names : list of str
    roi_mean_r : ndarray, shape (n_seeds, n_steps, n_layers, n_subjects, n_rois), or None
    alignment_roi : ndarray, shape (n_seeds, n_steps, n_rois), or None
        Per ROI, each subject at its held-out-chosen layer, mean over subjects.
    metrics : dict of str -> ndarray, shape (n_seeds, n_steps)
        Task metrics by name: ``"{task}/{metric}"`` (``/metrics/{task}/{metric}``), or the
        plain name of an older file or a table column (``/metrics/{name}``).
    metric_kinds : dict of str -> str
        ``continuous`` / ``discontinuous``.
    x, curve, fitted : ndarray, shape (n_steps,)
        log10 tokens of the fit, seed-mean curve, piecewise-linear fit.
    labels : ndarray of int8, shape (n_steps,)
        Index into ``label_names``; -1 = not labelled.
    label_names : list of str
    segments, boundaries, seed_segments : DataFrame
        The phase tables (no rows when phases were skipped).
    seed_labels : ndarray of int8, shape (n_seeds, n_steps)
    seed_agreement : ndarray, shape (n_seeds,)
    phase_probability : dict of str -> float
    phase_attrs : dict
        Attributes of ``/phases`` (``status``, ``summary``, method, parameters, versions).
    correlations : DataFrame
        One row per task metric: Pearson and Spearman correlation with alignment.
    voxel_r : ndarray, shape (n_steps, n_voxels), or None
    mask, affine : ndarray or None
        Brain mask and its affine for ``voxel_r``.
    model_id : str
    simulated : bool
    metric_higher_is_better : dict of str -> bool
    metric_families : dict of str -> str
        Family of each metric's task (``next_token``, ``induction``, ``formal``, ...); ``""``
        for a metric without a task group (older files, table columns).
    task_attrs : dict of str -> dict
        Attributes of each ``/metrics/{task}`` group (``family``, ``version``, ``n_items``...).
    internal_metrics : dict of str -> ndarray, shape (n_seeds, n_steps, n_internal_layers)
        ``/internal/{name}`` (empty when the trajectory has none).
    internal_layers : ndarray of int, shape (n_internal_layers,)
    internal_descriptions : dict of str -> str
    seed_boundaries : DataFrame
        Each seed's own boundaries matched to the pooled ones (``/phases/seed_boundaries``;
        :mod:`brainphase.phases.seed_boundaries`). Derived from ``seed_segments`` and
        ``boundaries`` when reading a file written before it was stored.
    boundary_spread : DataFrame
        Per pooled boundary, the spread of the seeds' matching boundaries (``/phases/boundary_spread``).
    model_size : dict
        Attributes of ``/model``: ``checkpoint``, ``checkpoint_revision`` and whichever of
        ``n_parameters``, ``n_layers``, ``hidden_size`` are known (empty for a table input or an
        older file).
    """

    steps: np.ndarray
    tokens: np.ndarray
    seeds: np.ndarray
    alignment: np.ndarray
    measure: str
    curves: dict
    layers: np.ndarray
    alignment_layer: np.ndarray | None
    roi_names: list
    roi_mean_r: np.ndarray | None
    alignment_roi: np.ndarray | None
    metrics: dict
    metric_kinds: dict
    x: np.ndarray
    curve: np.ndarray
    fitted: np.ndarray
    labels: np.ndarray
    label_names: list
    segments: pd.DataFrame
    boundaries: pd.DataFrame
    seed_segments: pd.DataFrame
    seed_labels: np.ndarray
    seed_agreement: np.ndarray
    phase_probability: dict
    phase_attrs: dict
    correlations: pd.DataFrame
    voxel_r: np.ndarray | None = None
    mask: np.ndarray | None = None
    affine: np.ndarray | None = None
    model_id: str = ""
    simulated: bool = False
    extra: dict = field(default_factory=dict)
    metric_higher_is_better: dict = field(default_factory=dict)
    metric_families: dict = field(default_factory=dict)
    task_attrs: dict = field(default_factory=dict)
    internal_metrics: dict = field(default_factory=dict)
    internal_layers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    internal_descriptions: dict = field(default_factory=dict)
    seed_boundaries: pd.DataFrame = field(default_factory=pd.DataFrame)
    boundary_spread: pd.DataFrame = field(default_factory=pd.DataFrame)
    model_size: dict = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.phase_attrs.get("status") == "labelled"

    def layer_roi_table(self) -> pd.DataFrame:
        """Long table of alignment per seed, checkpoint, layer and ROI (mean over subjects).

        Columns ``seed, step, tokens, layer, roi, alignment``; ``roi`` = ``"all ROIs"`` for the
        mean over every ROI voxel (``/brain/alignment_layer``). Empty without per-layer data.
        """
        if self.alignment_layer is None:
            return pd.DataFrame(columns=["seed", "step", "tokens", "layer", "roi", "alignment"])
        seed, step, layer = np.meshgrid(np.arange(len(self.seeds)), np.arange(len(self.steps)),
                                        np.arange(len(self.layers)), indexing="ij")
        parts = [pd.DataFrame({"seed": self.seeds[seed.ravel()], "step": self.steps[step.ravel()],
                               "tokens": self.tokens[step.ravel()], "layer": self.layers[layer.ravel()],
                               "roi": "all ROIs", "alignment": self.alignment_layer.ravel()})]
        if self.roi_mean_r is not None:
            per_roi = self.roi_mean_r.mean(axis=3)  # (S, T, L, R): mean over subjects
            for k, name in enumerate(self.roi_names):
                parts.append(parts[0].assign(roi=name, alignment=per_roi[..., k].ravel()))
        return pd.concat(parts, ignore_index=True)

    @property
    def tasks(self) -> pd.DataFrame:
        """Long table of task metrics: one row per seed, checkpoint and metric.

        Columns ``seed, step, tokens, task, family, metric, kind, value``; ``task`` and ``metric``
        split the name ``"{task}/{metric}"`` (``task`` is ``""`` for a name without ``/``).
        """
        columns = ["seed", "step", "tokens", "task", "family", "metric", "kind", "value"]
        seed, step = (a.ravel() for a in np.meshgrid(np.arange(len(self.seeds)), np.arange(len(self.steps)), indexing="ij"))
        parts = []
        for name, values in self.metrics.items():
            task, _, metric = name.rpartition("/")
            parts.append(pd.DataFrame({"seed": self.seeds[seed], "step": self.steps[step], "tokens": self.tokens[step],
                                       "task": task, "family": self.metric_families.get(name, ""), "metric": metric,
                                       "kind": self.metric_kinds.get(name, ""), "value": np.asarray(values).ravel()}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)

    @property
    def internal(self) -> pd.DataFrame:
        """Long table of internal metrics: one row per seed, checkpoint, layer and metric.

        Columns ``seed, step, tokens, layer, metric, value``.
        """
        columns = ["seed", "step", "tokens", "layer", "metric", "value"]
        if not self.internal_metrics:
            return pd.DataFrame(columns=columns)
        seed, step, layer = (a.ravel() for a in np.meshgrid(np.arange(len(self.seeds)), np.arange(len(self.steps)),
                                                             np.arange(len(self.internal_layers)), indexing="ij"))
        return pd.concat([pd.DataFrame({"seed": self.seeds[seed], "step": self.steps[step], "tokens": self.tokens[step],
                                        "layer": self.internal_layers[layer], "metric": name,
                                        "value": np.asarray(values).ravel()})
                          for name, values in self.internal_metrics.items()], ignore_index=True)

    def frame(self) -> pd.DataFrame:
        """One row per checkpoint: step, tokens, seed-mean alignment, fit, phase name, seed-mean metrics."""
        names = np.array(self.label_names + ["not labelled"])
        data = {"step": self.steps, "tokens": self.tokens, "alignment": self.curve, "fitted": self.fitted,
                "phase": names[self.labels]}
        for name, values in self.metrics.items():
            data[name] = quiet_nanmean(values, axis=0)
        return pd.DataFrame(data)


def read_table_group(group: h5py.Group) -> pd.DataFrame:
    """A group of equal-length 1-D datasets (one per column) as a DataFrame; nested groups as ``a/b`` columns."""
    columns: dict[str, np.ndarray] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            columns[name] = read_strings(obj) if obj.dtype.kind in "OS" else obj[()]

    group.visititems(visit)
    return pd.DataFrame(columns)


def metric_datasets(handle: h5py.File) -> dict[str, h5py.Dataset]:
    """Every task-metric dataset under ``/metrics`` by name, in sorted order.

    ``/metrics/{task}/{metric}`` is named ``"{task}/{metric}"`` (its group's attrs hold the
    task's family and version); a dataset directly under ``/metrics`` (older files, table
    columns) keeps its plain name. No ``/metrics`` group: no metrics.
    """
    found: dict[str, h5py.Dataset] = {}
    if "metrics" in handle:
        handle["metrics"].visititems(lambda name, obj: found.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return dict(sorted(found.items()))


def _family(handle: h5py.File, name: str) -> str:
    task = name.rpartition("/")[0]
    return attr_text(handle["metrics"][task], "family") if task else ""


def _attrs(group: h5py.Group) -> dict:
    return {k: (attr_text(group, k) if isinstance(v, (bytes, str)) else v) for k, v in group.attrs.items()}


def load_trajectory(path: str | Path) -> Trajectory:
    """Read ``trajectory.h5`` into a :class:`Trajectory`."""
    with open_h5(Path(path), stage="phases") as handle:
        brain, phases = handle["brain"], handle["phases"]
        curves = {m: brain[f"alignment_{m}"][()] for m in MEASURES if f"alignment_{m}" in brain}
        metrics = metric_datasets(handle)
        tasks = {name: _attrs(group) for name, group in handle["metrics"].items()
                 if isinstance(group, h5py.Group)} if "metrics" in handle else {}
        internal = handle["internal"] if "internal" in handle else None
        corr = handle["correlations"]
        segments, boundaries = read_table_group(phases["segments"]), read_table_group(phases["boundaries"])
        seed_segments = read_table_group(phases["seed_segments"])
        if "seed_boundaries" in phases:
            matched, spread = read_table_group(phases["seed_boundaries"]), read_table_group(phases["boundary_spread"])
        else:  # written before these tables were stored: derived from the segment tables when they are complete
            complete = {"phase", "end_log10_tokens", "end_tokens", "end_step"} <= set(seed_segments.columns)
            tables = (seed_segments, boundaries, segments) if complete else (pd.DataFrame(),) * 3
            matched = seed_boundaries(*tables[:2])
            spread = boundary_spread(matched, *tables[1:])
        correlations = pd.DataFrame({"metric": read_strings(corr["metric_names"]),
                                     **{k: corr[k][()] for k in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p")}})
        return Trajectory(
            steps=handle["steps"][()], tokens=handle["tokens"][()], seeds=handle["seeds"][()],
            alignment=brain["alignment"][()], measure=attr_text(brain["alignment"], "measure"), curves=curves,
            layers=handle["layers"][()] if "layers" in handle else np.empty(0, dtype=int),
            alignment_layer=brain["alignment_layer"][()] if "alignment_layer" in brain else None,
            roi_names=read_strings(handle["roi_names"]) if "roi_names" in handle else [],
            roi_mean_r=brain["roi_mean_r"][()] if "roi_mean_r" in brain else None,
            alignment_roi=brain["alignment_roi"][()] if "alignment_roi" in brain else None,
            metrics={name: ds[()] for name, ds in metrics.items()},
            metric_kinds={name: attr_text(ds, "kind") for name, ds in metrics.items()},
            x=phases["x"][()], curve=phases["curve"][()], fitted=phases["fitted"][()], labels=phases["labels"][()],
            label_names=read_strings(phases["label_names"]), segments=segments,
            boundaries=boundaries, seed_segments=seed_segments,
            seed_labels=phases["seed_labels"][()], seed_agreement=phases["seed_agreement"][()],
            phase_probability={name: float(ds[()]) for name, ds in phases["phase_probability"].items()},
            phase_attrs=_attrs(phases), correlations=correlations,
            voxel_r=brain["voxel_r"][()] if "voxel_r" in brain else None,
            mask=handle["mask/mask"][()] if "mask/mask" in handle else None,
            affine=handle["mask/affine"][()] if "mask/affine" in handle else None,
            model_id=attr_text(handle, "model_id"), simulated=bool(handle.attrs.get("simulated", False)),
            metric_higher_is_better={name: bool(ds.attrs.get("higher_is_better", True)) for name, ds in metrics.items()},
            metric_families={name: _family(handle, name) for name in metrics}, task_attrs=tasks,
            internal_metrics={} if internal is None else {name: ds[()] for name, ds in sorted(internal.items())},
            internal_layers=np.zeros(0, dtype=np.int64) if internal is None else np.asarray(internal.attrs["layers"], dtype=np.int64),
            internal_descriptions={} if internal is None else {n: attr_text(ds, "description") for n, ds in internal.items()},
            seed_boundaries=matched, boundary_spread=spread,
            model_size=_attrs(handle["model"]) if "model" in handle else {},
        )
