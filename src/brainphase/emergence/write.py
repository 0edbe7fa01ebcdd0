"""Write ``emergence.h5`` (layout: docs/hdf5_layout.md, "emergence.h5") from several models' series."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainphase.emergence.analysis import (Settings, metric_summary, mirage, phase_boundaries, phase_boundary_spread,
                                           resolve_thresholds, sizes, tracking)
from brainphase.emergence.series import LOSS_METRIC, ModelSeries
from brainphase.io import atomic_h5, provenance, string_array, write_attrs


def write_table(group: h5py.Group, table: pd.DataFrame) -> None:
    """One 1-D dataset per column (strings as variable-length UTF-8); zero rows keep the columns."""
    for column in table.columns:
        values = table[column].to_numpy()
        if values.dtype == object or values.dtype.kind in "US":
            group.create_dataset(column, data=string_array(str(v) for v in values))
        else:
            group.create_dataset(column, data=values)


def _write_model(group: h5py.Group, model: ModelSeries, thresholds: dict, settings: Settings) -> dict:
    """One ``/models/{model}`` group; returns ``{(model, metric): (crossing_tokens, crossing_loss)}``."""
    group.create_dataset("seeds", data=model.seeds)
    group.create_dataset("steps", data=model.steps)
    group.create_dataset("tokens", data=model.tokens)
    group.create_dataset("loss", data=model.loss)
    group.attrs["source"] = model.source
    write_attrs(group, model.size)
    crossings = {}
    metrics = group.create_group("metrics")
    for name in model.metrics:
        datasets, attrs = metric_summary(model, name, thresholds[name], settings)
        target = metrics.create_group(name)  # "{task}/{metric}" makes nested groups
        levels = attrs.pop("quantile_levels")
        for key, value in datasets.items():
            target.create_dataset(key, data=value)
        target["quantiles"].attrs["levels"] = levels
        write_attrs(target, attrs)
        crossings[(model.name, name)] = (datasets["crossing_tokens"], datasets["crossing_loss"])
    checks = group.create_group("mirage")
    for task, attrs in mirage(model, settings).items():
        write_attrs(checks.create_group(task), attrs)
    boundaries = phase_boundaries(model)
    write_table(group.create_group("phase_boundaries"), boundaries)
    write_table(group.create_group("phase_boundary_spread"), phase_boundary_spread(model, boundaries))
    return crossings


def write_emergence(out: str | Path, models: list[ModelSeries], settings: Settings, config: dict) -> None:
    """Analyse ``models`` (the size axis, in this order) and write ``out`` atomically.

    Parameters
    ----------
    out : str or Path
    models : list of ModelSeries
        Distinct names.
    settings : Settings
    config : dict
        The command's settings, recorded as provenance.
    """
    thresholds = resolve_thresholds(models, settings.thresholds)
    attrs = provenance("emergence", config, [model.source for model in models],
                       models=[model.name for model in models],
                       simulated=any(model.simulated for model in models),
                       loss_metric=LOSS_METRIC if any(model.has_loss for model in models) else "")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(out, attrs) as handle:
        crossings = {}
        for model in models:
            crossings.update(_write_model(handle.create_group(f"models/{model.name}"), model, thresholds, settings))
        tables = [tracking(model, settings) for model in models]
        write_table(handle.create_group("tracking"), pd.concat(tables, ignore_index=True))
        if len(models) >= 2:
            group = handle.create_group("sizes")
            group.attrs["collapse_rule"] = (
                "collapse_in_loss: crossing_loss_spread / (range of the validation loss over all checkpoints) < "
                "crossing_tokens_spread_log10 / (log10 range of the positive checkpoint tokens)")
            for name, (metric_attrs, datasets) in sizes(models, crossings).items():
                target = group.create_group(name)
                write_attrs(target, metric_attrs)
                for key, value in datasets.items():
                    target.create_dataset(key, data=np.asarray(value, dtype=np.float64))
