"""Curves over training: alignment, task metrics, and alignment against each task metric."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from brainphase.figures.data import ALTERNATIVE_CURVES, FigureData
from brainphase.figures.style import (add_caption, boundary_positions, caption_lines, caption_text, new_figure,
                                      phase_color, phase_name, phase_spans, seed_band, shade_phases, tick_positions,
                                      title, token_axis, token_label)

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
KIND_COLORS = {"discontinuous": "tab:purple", "continuous": "tab:brown"}
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
    caption = caption_text(data)
    n_lines = caption_lines(caption)
    figure = new_figure(10.0, 5.2 + 0.16 * n_lines)
    grid = figure.add_gridspec(2, 1, height_ratios=[5.0, 0.2 + 0.16 * n_lines])
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
    add_caption(figure, figure.add_subplot(grid[1]), caption)
    title(figure, data, "brain alignment over training")
    return figure


def metric_order(data: FigureData) -> list[str]:
    """Metric names, discontinuous ones first, then by name."""
    return sorted(data.metrics, key=lambda name: (data.metric_kinds[name] != "discontinuous", name))


def task_layout(counts: list[int]) -> tuple[int, list[int]]:
    """Grid for blocks of panels side by side: (rows, columns of each block).

    Parameters
    ----------
    counts : list of int
        Number of panels in each block (discontinuous metrics, continuous metrics).

    Returns
    -------
    n_rows : int
        1 when no block has 2 panels, else enough rows for at most 3 columns per block (at least 2).
    block_columns : list of int
        ``ceil(count / n_rows)`` per block (at least 1).
    """
    largest = max(counts + [1])
    n_rows = 1 if largest <= 1 else max(2, -(-largest // 3))
    return n_rows, [max(1, -(-count // n_rows)) for count in counts]


def plot_tasks(data: FigureData) -> Figure:
    """Task metrics vs training tokens: the block of discontinuous metrics on the left, the block
    of continuous ones on the right (:func:`task_layout`), each panel with seeds, band, mean and
    the alignment figure's phases. A block's single panel spans both rows.

    Panel titles are ``"{kind}: {metric}"``; line gids as in :func:`plot_alignment` with the
    metric name instead of ``alignment``.
    """
    names = metric_order(data)
    kinds = [kind for kind in ("discontinuous", "continuous") if any(data.metric_kinds[n] == kind for n in names)]
    blocks = {kind: [n for n in names if data.metric_kinds[n] == kind] for kind in kinds}
    n_rows, block_columns = task_layout([len(blocks[kind]) for kind in kinds])
    n_cols = max(sum(block_columns), 1)
    caption = caption_text(data, "Left: discontinuous metrics; right: continuous metrics." if len(kinds) == 2 else "")
    n_lines = caption_lines(caption, 120)
    figure = new_figure(4.6 * n_cols + 1.9, 3.1 * n_rows + 0.8 + 0.16 * n_lines)
    grid = figure.add_gridspec(n_rows + 1, n_cols, height_ratios=[3.1] * n_rows + [0.2 + 0.16 * n_lines])
    if not names:
        ax = figure.add_subplot(grid[0, 0])
        ax.text(0.5, 0.5, "no task metrics in this trajectory", ha="center", va="center", transform=ax.transAxes,
                gid="no-metrics")
        ax.set_axis_off()
    legend_ax, legend_handles, free_cell = None, None, None
    first_column = 0
    for kind, columns in zip(kinds, block_columns):
        panels = blocks[kind]
        rows_used = -(-len(panels) // columns)
        for i, name in enumerate(panels):
            row, col = divmod(i, columns)
            cell = grid[:n_rows, first_column + col] if rows_used == 1 else grid[row, first_column + col]
            ax = figure.add_subplot(cell)
            seed_band(ax, data.x, data.metrics[name], KIND_COLORS.get(kind, "tab:gray"), name, data.seeds)
            token_axis(ax, data, label=rows_used == 1 or row == rows_used - 1 or i + columns >= len(panels))
            phase_handles = shade_phases(ax, data)
            ax.set_title(f"{kind}: {name}", fontsize=10, gid=f"panel-{name}")
            ax.set_ylabel(name, fontsize=9)
            legend_ax, legend_handles = ax, ax.get_legend_handles_labels()[0] + phase_handles
        if rows_used * columns > len(panels):
            free_cell = grid[rows_used - 1, first_column + columns - 1]
        first_column += columns
    if legend_handles is not None:
        if free_cell is not None:  # an empty cell of the grid holds the legend
            holder = figure.add_subplot(free_cell)
            holder.set_axis_off()
            holder.legend(handles=legend_handles, fontsize=8, loc="center")
        else:  # beside the last panel drawn (bottom right)
            legend_ax.legend(handles=legend_handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                             borderaxespad=0.0)
    add_caption(figure, figure.add_subplot(grid[n_rows, :]), caption, 120)
    title(figure, data, "task metrics over training")
    return figure


def plot_alignment_vs_tasks(data: FigureData) -> Figure:
    """Alignment (y) against each task metric (x), one panel per metric.

    Small points: each seed at each checkpoint; large points joined in training order: the
    seed means (gid ``path-{metric}``, data = seed means of the metric and of alignment);
    colour = position on the token axis (colour bar labelled in tokens, ``0`` = step 0).
    Panel titles give Spearman's rho of the seed means over checkpoints.
    """
    names = metric_order(data)
    n_panels = max(len(names), 1)
    n_cols = min(n_panels, 3)
    n_rows = int(np.ceil(n_panels / n_cols))
    figure = new_figure(4.3 * n_cols + 1.2, 3.7 * n_rows + 0.5)
    norm = Normalize(float(data.x.min()), float(data.x.max()) if data.x.max() > data.x.min() else float(data.x.min()) + 1)
    cmap = colormaps[TOKEN_CMAP]
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    y_mean = seed_mean(data.alignment)
    colour_x = np.broadcast_to(data.x, data.alignment.shape)
    for ax, name in zip(axes, names):
        values = data.metrics[name]
        ok = np.isfinite(values) & np.isfinite(data.alignment)
        ax.scatter(values[ok], data.alignment[ok], c=colour_x[ok], cmap=cmap, norm=norm, s=10, alpha=0.45,
                   linewidths=0, gid=f"seeds-{name}")
        x_mean = seed_mean(values)
        keep = np.isfinite(x_mean) & np.isfinite(y_mean)
        ax.plot(x_mean[keep], y_mean[keep], color="0.45", linewidth=0.8, zorder=2, gid=f"path-{name}")
        ax.scatter(x_mean[keep], y_mean[keep], c=data.x[keep], cmap=cmap, norm=norm, s=38, edgecolors="black",
                   linewidths=0.6, zorder=3)
        rho = spearman_rho(x_mean[keep], y_mean[keep]) if keep.sum() >= 3 else np.nan
        rho_text = f"Spearman ρ = {rho:.2f}" if np.isfinite(rho) else "ρ: too few checkpoints"
        ax.set_title(f"{name} ({data.metric_kinds[name]})\n{rho_text} (seed means)", fontsize=9)
        ax.set_xlabel(name, fontsize=9)
        ax.set_ylabel("brain alignment", fontsize=9)
        ax.grid(alpha=0.3)
    if not names:
        axes[0].text(0.5, 0.5, "no task metrics in this trajectory", ha="center", va="center",
                     transform=axes[0].transAxes, gid="no-metrics")
    for ax in axes[len(names):]:
        ax.set_axis_off()
    bar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.9, pad=0.02)
    positive = data.tokens > 0
    ticks = list(tick_positions(float(data.x[positive].min()), float(data.x.max()))) if positive.any() else []
    labels = [token_label(10 ** t) for t in ticks]
    if (~positive).any():
        ticks, labels = [float(data.x[~positive][0])] + ticks, ["0"] + labels
    bar.set_ticks(ticks, labels=labels)
    bar.set_label("training tokens (colour, log scale)")
    title(figure, data, "brain alignment against task metrics")
    return figure
