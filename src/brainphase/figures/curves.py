"""Curves over training: brain alignment (task metrics: :mod:`brainphase.figures.tasks`)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from brainphase.figures.data import ALTERNATIVE_CURVES, FigureData
from brainphase.figures.style import (boundary_positions, caption_text, captioned_grid,
                                      phase_color, phase_name, phase_spans, seed_band, shade_phases, title, token_axis)

ALTERNATIVE_COLORS = {
    "alignment_heldout_layer": "tab:blue",
    "alignment_layer_mean": "tab:orange",
    "alignment_beyond_baselines": "tab:purple",
    "alignment_group": "tab:brown",
}
#: y-axis text for the ``measure`` attribute of ``/brain/alignment``
MEASURE_TEXT = {
    "heldout_layer": "held-out r of the layer chosen on other data",
    "layer_mean": "held-out r, mean over layers",
    "heldout_layer_normalized": "held-out r / noise ceiling, layer chosen on other data",
    "beyond_baselines": "held-out r beyond the baseline features",
    "group": "held-out r on the group-average subject",
    "table": "as given in the input table",
}
TOKEN_CMAP = "viridis"


def seed_mean(values: np.ndarray) -> np.ndarray:
    """Mean over seeds ignoring NaN, NaN where every seed is NaN. (S, T) -> (T,)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    return np.where(count > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two (n,) arrays (ties get their average rank); NaN when
    either is constant. Written here to keep scipy.stats (seconds to import) out of the CLI."""
    def ranks(values):
        order = np.argsort(values, kind="stable")
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values), dtype=float)
        _, inverse = np.unique(values, return_inverse=True)
        sums = np.bincount(inverse, weights=ranked)
        return sums[inverse] / np.bincount(inverse)[inverse]

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def fitted_path(data: FigureData) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the piecewise-linear fit: the fit at each checkpoint plus at each knot.

    A knot between two checkpoints gets the value of the segment on its left extended to it
    (``fitted[j] + slope * (knot - x[j])``, ``j`` the last checkpoint before the knot), so
    the drawn line has its corners where the fit has them, not at checkpoints.

    Returns
    -------
    x, y : ndarray, shape (n_vertices,)
    """
    keep = np.isfinite(data.fitted)
    xs, ys = list(data.x[keep]), list(data.fitted[keep])
    slopes = data.segments.get("slope")
    knots = boundary_positions(data)
    if slopes is not None and len(slopes) == len(knots) + 1:
        for k, knot in enumerate(knots):
            left = np.flatnonzero(keep & (data.x <= knot))
            if left.size and not np.isclose(data.x[left[-1]], knot):
                xs.append(float(knot))
                ys.append(float(data.fitted[left[-1]] + slopes[k] * (knot - data.x[left[-1]])))
    order = np.argsort(xs, kind="stable")
    return np.asarray(xs)[order], np.asarray(ys)[order]


def _phase_names_at_bottom(ax, data: FigureData) -> None:
    """Name each shaded phase at the bottom of its span when the span is wide enough."""
    low, high = ax.get_xlim()
    for code, start, end in phase_spans(data.labels, data.x, boundary_positions(data)):
        if (end - start) / (high - low) > 0.09:
            ax.text((start + end) / 2, 0.015, phase_name(data, code), ha="center", va="bottom", fontsize=7.5,
                    color=phase_color(data, code), fontweight="bold", transform=ax.get_xaxis_transform(),
                    gid=f"phase-name-{code}")


def plot_alignment(data: FigureData) -> Figure:
    """Brain alignment vs training tokens with seeds, fit, phases, boundaries and their CIs.

    Artists (gids): seed lines ``alignment-seed-{seed}``, band ``alignment-band``, seed mean
    ``alignment-mean`` (y = NaN-aware mean over seeds of ``/brain/alignment``), fit
    ``fitted`` (vertices of :func:`fitted_path`), alternative curves ``alt-{dataset}``,
    phase spans ``phase-{code}``, boundaries ``boundary-{k}`` and ``boundary-ci-{k}``.
    """
    figure, grid = captioned_grid(10.0, [5.0], 1, caption_text(data), margin=0.0)
    ax = figure.add_subplot(grid[0])
    seed_band(ax, data.x, data.alignment, "black", "alignment", data.seeds)
    main = seed_mean(data.alignment)
    for name, values in data.alternatives.items():
        mean = seed_mean(values)
        if np.allclose(mean, main, equal_nan=True):
            continue
        ax.plot(data.x, mean, color=ALTERNATIVE_COLORS[name], linewidth=1.1, alpha=0.9, marker="o", markersize=2,
                label=f"{ALTERNATIVE_CURVES[name]} (seed mean)", gid=f"alt-{name}")
    if data.labelled and np.isfinite(data.fitted).any():
        fx, fy = fitted_path(data)
        ax.plot(fx, fy, color="tab:red", linewidth=1.6, linestyle="-", alpha=0.85, label="piecewise-linear fit",
                gid="fitted", zorder=3)
    token_axis(ax, data)
    handles = shade_phases(ax, data)
    _phase_names_at_bottom(ax, data)
    ax.set_ylabel("brain alignment\n" + textwrap.fill(MEASURE_TEXT.get(data.measure, data.measure), 45), fontsize=9)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    title(figure, data, "brain alignment over training")
    return figure
