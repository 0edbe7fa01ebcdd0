"""Task and internal metrics of every checkpoint -> arrays over seeds x steps (``brainphase aggregate``).

Task files ``tasks/{model}/seed{seed}/{chunk}/step{step}.h5`` (:mod:`brainphase.tasks`) hold one group
``/metrics/{task}`` per task (attrs ``family``, ``version``, ``n_items``, ...) with one scalar
``/metrics/{task}/{metric}`` per metric (attrs ``kind``, ``higher_is_better``). Internal files
``internal/{model}/seed{seed}/{chunk}/step{step}.h5`` (``brainphase internal``) hold ``/metrics/{name}``
of shape (n_layers,). Every checkpoint of one aggregation must carry the same tasks (same
versions, families, item counts and metrics) and the same internal metrics over the same
layers; otherwise an :class:`~brainphase.errors.InputError` names the file that differs.
A task metric is called ``"{task}/{metric}"`` everywhere downstream. Layout of the result:
the "trajectory" section of ``docs/hdf5_layout.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from brainphase.errors import InputError
from brainphase.io import attr_text, open_h5

logger = logging.getLogger(__name__)

#: attrs of a task group that every checkpoint must share (``n_items`` compared as int)
TASK_ATTRS = ("family", "version", "n_items")
#: further task-group attrs carried into metrics.h5 when present
OPTIONAL_TASK_ATTRS = ("output_type", "source")
KINDS = ("continuous", "discontinuous")

Grid = dict[tuple[int, int], Path]


def _task_signature(path: Path, handle: h5py.File) -> tuple[dict, dict]:
    """Task group attrs ``{task: {attr: value}}`` and metric attrs ``{"task/metric": (kind, higher_is_better)}``."""
    tasks, metrics = {}, {}
    for task, group in handle["metrics"].items():
        if not isinstance(group, h5py.Group):
            raise InputError(f"{path}: /metrics/{task} is a dataset; a tasks file has one group /metrics/{{task}} per task "
                             "with /metrics/{task}/{metric} inside (it was written by an older `brainphase tasks`): "
                             "re-run `brainphase tasks` (or `brainphase measure`) for it")
        missing = [key for key in TASK_ATTRS if key not in group.attrs]
        if missing:
            raise InputError(f"{path}: /metrics/{task} lacks attrs {missing}; re-run `brainphase tasks` for it")
        tasks[task] = {"family": attr_text(group, "family"), "version": attr_text(group, "version"),
                       "n_items": int(group.attrs["n_items"]),
                       **{key: attr_text(group, key) for key in OPTIONAL_TASK_ATTRS if key in group.attrs}}
        if not len(group):
            raise InputError(f"{path}: task group /metrics/{task} has no metric datasets; re-run `brainphase tasks` for it")
        for metric, dataset in group.items():
            kind = attr_text(dataset, "kind")
            if not isinstance(dataset, h5py.Dataset) or dataset.shape != () or kind not in KINDS \
                    or "higher_is_better" not in dataset.attrs:
                raise InputError(f"{path}: /metrics/{task}/{metric} must be a scalar with attrs kind (one of {KINDS}) "
                                 "and higher_is_better; re-run `brainphase tasks` for it")
            metrics[f"{task}/{metric}"] = (kind, bool(dataset.attrs["higher_is_better"]))
    return tasks, metrics


def _first_difference(found: dict, expected: dict) -> str:
    """Words for the first key whose value differs between two signatures."""
    if sorted(found) != sorted(expected):
        return f"has {sorted(found)}, expected {sorted(expected)}"
    key = next(k for k in sorted(found) if found[k] != expected[k])
    if isinstance(found[key], dict):
        attr = next(a for a in sorted(set(found[key]) | set(expected[key])) if found[key].get(a) != expected[key].get(a))
        return f"task {key}: {attr} {found[key].get(attr)!r} here, {expected[key].get(attr)!r} there"
    return f"{key}: {found[key]} here, {expected[key]} there"


def read_task_metrics(paths: Grid, seeds: list[int], steps: list[int]) -> dict:
    """Stack the task metrics of every checkpoint.

    Parameters
    ----------
    paths : dict (seed, step) -> Path
        One tasks file per checkpoint of the full seeds x steps grid (checked by the caller);
        empty: no task metrics.
    seeds, steps : list of int
        Sorted axes of the grid.

    Returns
    -------
    dict
        ``tasks``: {task: group attrs (family, version, n_items, and output_type/source when
        present)}; ``metrics``: {"task/metric": {"values": ndarray (n_seeds, n_steps), "kind":
        str, "higher_is_better": bool}}; ``suite_sha256``: str ("" when the files do not say).
        Empty ``tasks``/``metrics`` when every file was skipped (its root attr ``skipped``).

    Raises
    ------
    InputError
        A file with other tasks, versions, families, item counts or metrics than the first,
        a flat ``/metrics/{name}`` dataset (older layout), or skipped and scored files mixed.
    """
    if not paths:
        return {"tasks": {}, "metrics": {}, "suite_sha256": ""}
    reference: tuple[Path, dict, dict, str] | None = None
    skipped: dict[str, Path] = {}
    values: dict[str, np.ndarray] = {}
    for i_seed, seed in enumerate(seeds):
        for i_step, step in enumerate(steps):
            path = paths[(seed, step)]
            with open_h5(path, stage="tasks") as handle:
                reason = attr_text(handle, "skipped")
                if reason:
                    skipped.setdefault(reason, path)
                    continue
                if "metrics" not in handle or not len(handle["metrics"]):
                    raise InputError(f"{path}: no /metrics/{{task}} groups and no 'skipped' reason; re-run `brainphase tasks` for it")
                tasks, metrics = _task_signature(path, handle)
                suite = attr_text(handle, "suite_sha256")
                if reference is None:
                    reference = (path, tasks, metrics, suite)
                    values = {name: np.full((len(seeds), len(steps)), np.nan) for name in metrics}
                first, first_tasks, first_metrics, first_suite = reference
                for what, found, expected in (("tasks", tasks, first_tasks), ("metrics", metrics, first_metrics)):
                    if found != expected:
                        raise InputError(f"{path}: its {what} differ from {first}'s ({_first_difference(found, expected)}); "
                                         "every checkpoint must be scored with the same task suite: re-run `brainphase tasks` "
                                         "on the checkpoints with the older suite")
                if suite != first_suite:
                    raise InputError(f"{path}: suite_sha256 {suite!r} differs from {first}'s {first_suite!r} (the task "
                                     "files were edited between runs); re-run `brainphase tasks` so all use one suite")
                for name in metrics:
                    task, metric = name.split("/", 1)
                    values[name][i_seed, i_step] = float(handle["metrics"][task][metric][()])
    if skipped and reference is not None:
        reason, path = next(iter(skipped.items()))
        raise InputError(f"{path}: task metrics were skipped ({reason}) but {reference[0]} has metrics; "
                         "aggregate checkpoints of one kind of model")
    for reason in sorted(skipped):
        logger.warning("no task metrics: %s", reason)
    if reference is None:
        return {"tasks": {}, "metrics": {}, "suite_sha256": ""}
    _, tasks, metrics, suite = reference
    return {"tasks": tasks, "suite_sha256": suite,
            "metrics": {name: {"values": values[name], "kind": kind, "higher_is_better": better}
                        for name, (kind, better) in metrics.items()}}


def write_task_metrics(handle: h5py.File, collected: dict) -> None:
    """Write :func:`read_task_metrics`'s result as ``/metrics/{task}/{metric}`` (S, T) with attrs."""
    group = handle.create_group("metrics")
    if collected["suite_sha256"]:
        group.attrs["suite_sha256"] = collected["suite_sha256"]
    for task, attrs in sorted(collected["tasks"].items()):
        group.create_group(task).attrs.update(attrs)
    for name, entry in sorted(collected["metrics"].items()):
        group[name] = entry["values"]
        group[name].attrs.update(kind=entry["kind"], higher_is_better=entry["higher_is_better"])


def read_internal_metrics(paths: Grid, seeds: list[int], steps: list[int]) -> dict:
    """Stack the internal (representation) metrics of every checkpoint.

    Parameters
    ----------
    paths : dict (seed, step) -> Path
        One ``internal/...`` file per checkpoint of the full grid (checked by the caller);
        empty: no internal metrics.
    seeds, steps : list of int

    Returns
    -------
    dict
        ``metrics``: {name: ndarray (n_seeds, n_steps, n_layers)}; ``descriptions``: {name: str};
        ``layers``: ndarray of int (n_layers,) (the file's ``/layers`` when present, else
        0..n_layers-1: activation layer ``i`` is ``/layer_{i}``).

    Raises
    ------
    InputError
        A file with other metric names or layers than the first, or a metric that is not 1-D.
    """
    if not paths:
        return {"metrics": {}, "descriptions": {}, "layers": np.zeros(0, dtype=np.int64)}
    reference: tuple[Path, list[str], np.ndarray] | None = None
    metrics: dict[str, np.ndarray] = {}
    descriptions: dict[str, str] = {}
    for i_seed, seed in enumerate(seeds):
        for i_step, step in enumerate(steps):
            path = paths[(seed, step)]
            with open_h5(path, stage="internal") as handle:
                if "metrics" not in handle or not len(handle["metrics"]):
                    raise InputError(f"{path}: no /metrics/{{name}} datasets; re-run `brainphase internal` for it")
                group = handle["metrics"]
                names = sorted(group)
                shapes = {name: group[name].shape for name in names}
                bad = [name for name, shape in shapes.items() if len(shape) != 1 or not shape[0]]
                if bad or len(set(shapes.values())) > 1:
                    raise InputError(f"{path}: internal metrics must all have shape (n_layers,), found {shapes}")
                n_layers = shapes[names[0]][0]
                layers = handle["layers"][()] if "layers" in handle else np.arange(n_layers)
                if reference is None:
                    reference = (path, names, layers)
                    metrics = {name: np.full((len(seeds), len(steps), n_layers), np.nan) for name in names}
                    descriptions = {name: attr_text(group[name], "description") for name in names}
                first, first_names, first_layers = reference
                if names != first_names:
                    raise InputError(f"{path}: internal metrics {names} differ from {first}'s {first_names}; "
                                     "re-run `brainphase internal` on every checkpoint with the same version")
                if not np.array_equal(layers, first_layers):
                    raise InputError(f"{path}: layers {list(layers)} differ from {first}'s {list(first_layers)}; "
                                     "every checkpoint must be measured on the same layers")
                for name in names:
                    metrics[name][i_seed, i_step] = group[name][()]
    return {"metrics": metrics, "descriptions": descriptions, "layers": np.asarray(reference[2], dtype=np.int64)}


def write_internal_metrics(handle: h5py.File, collected: dict) -> None:
    """Write :func:`read_internal_metrics`'s result as ``/internal/{name}`` (S, T, L); group attr ``layers``."""
    if not collected["metrics"]:
        return
    group = handle.create_group("internal")
    group.attrs["layers"] = collected["layers"]
    for name, values in sorted(collected["metrics"].items()):
        group[name] = values
        group[name].attrs["description"] = collected["descriptions"].get(name, "")
