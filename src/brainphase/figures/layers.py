"""Layer × checkpoint heatmap of brain alignment."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from brainphase.figures.data import FigureData
from brainphase.figures.style import (add_caption, caption_lines, caption_text, captioned_grid, new_figure, no_data_panel,
                                      phase_color, shade_phases, title, token_label)


def layer_means(data: FigureData) -> np.ndarray:
    """Seed-mean alignment per layer and checkpoint, NaN where every seed is NaN.

    Returns
    -------
    ndarray, shape (n_layers, n_steps)
    """
    values = data.alignment_layer
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    mean = np.where(count > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    return mean.T


def plot_layers(data: FigureData) -> Figure:
    """Heatmap of seed-mean alignment, layers (rows) × checkpoints (columns, labelled by tokens).

    The image (gid ``heatmap``) holds :func:`layer_means`; white dots (gid ``best-layer``)
    mark each column's best layer; a strip above (gid ``phase-strip``) colours each
    checkpoint by its phase; boundaries are white dashed lines (with their CI bars) at
    their position between columns. NaN cells are grey.
    """
    if data.alignment_layer is None or len(data.layers) == 0:
        figure, grid = captioned_grid(8.0, [1.6], 1, caption_text(data), margin=0.4)
        no_data_panel(figure.add_subplot(grid[0, 0]), "no per-layer alignment (/brain/alignment_layer) in this trajectory\n"
                      "(alignment given as a table, or scores without layers)", "no-layers")
        title(figure, data, "alignment per layer")
        return figure
    caption = caption_text(data, "Grey cells: no score at that checkpoint.")
    n_steps = len(data.steps)
    n_layers = len(data.layers)
    n_lines = caption_lines(caption, 100)
    figure = new_figure(min(16.0, max(7.0, 0.32 * n_steps + 3.0)), max(4.0, 0.28 * n_layers + 2.6) + 0.16 * n_lines)
    grid = figure.add_gridspec(3, 2, height_ratios=[0.35, max(3.0, 0.28 * n_layers), 0.2 + 0.16 * n_lines],
                               width_ratios=[1.0, 0.03])
    strip = figure.add_subplot(grid[0, 0])
    ax = figure.add_subplot(grid[1, 0], sharex=strip)
    per_layer = layer_means(data)
    cmap = colormaps["viridis"].with_extremes(bad="0.82")
    image = ax.imshow(np.ma.masked_invalid(per_layer), origin="lower", aspect="auto", cmap=cmap,
                      interpolation="nearest", gid="heatmap")
    figure.colorbar(image, cax=figure.add_subplot(grid[1, 1]), label="alignment (r), mean over seeds")
    columns = np.flatnonzero(np.isfinite(per_layer).any(axis=0))
    best = np.array([np.nanargmax(per_layer[:, c]) for c in columns], dtype=int)
    ax.plot(columns, best, "o", color="white", markeredgecolor="black", markeredgewidth=0.5,
            markersize=4 if n_steps <= 40 else 2.5,
            label="best layer", gid="best-layer")
    phase_handles = shade_phases(ax, data, index_x=np.arange(n_steps, dtype=float))
    _phase_strip(strip, data)
    ax.set_yticks(np.arange(n_layers), [str(layer) for layer in data.layers], fontsize=8)
    tick_every = max(1, int(np.ceil(n_steps / 16)))
    ticks = np.arange(0, n_steps, tick_every)
    ax.set_xticks(ticks, [token_label(float(data.tokens[i])) if data.tokens[i] > 0 else "0" for i in ticks],
                  rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.5, n_steps - 0.5)
    ax.set_xlabel("checkpoint (columns in training order, labelled by training tokens)")
    ax.set_ylabel("layer (0 = embeddings)")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + phase_handles, fontsize=7.5, loc="upper left",
              bbox_to_anchor=(0.0, -0.28 if n_layers > 6 else -0.35), ncols=4, frameon=False)
    add_caption(figure, figure.add_subplot(grid[2, :]), caption, 100)
    title(figure, data, "alignment per layer and checkpoint")
    return figure


def _phase_strip(ax, data: FigureData) -> None:
    """One coloured cell per checkpoint: its phase (white = not labelled)."""
    codes = data.labels if data.labelled else np.full(len(data.steps), -1)
    palette = ["white"] + [phase_color(data, code) for code in range(max(len(data.label_names), int(codes.max()) + 1, 1))]
    ax.imshow((codes + 1)[None, :], aspect="auto", cmap=ListedColormap(palette), vmin=-0.5,
              vmax=len(palette) - 0.5, interpolation="nearest", gid="phase-strip")
    ax.set_yticks([0], ["phase"], fontsize=8)
    ax.tick_params(axis="x", labelbottom=False, bottom=False)
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
    if not data.labelled:
        ax.text(0.5, 0.5, "phases not labelled", ha="center", va="center", fontsize=8, transform=ax.transAxes)
