"""Alignment per ROI over training, and per ROI and layer at the last checkpoint."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from brainphase.figures.curves import seed_mean
from brainphase.figures.data import FigureData
from brainphase.figures.style import (EXTRA_COLORS, caption_text, captioned_grid, new_figure, no_data_panel, shade_phases,
                                      title, token_axis)


def plot_rois(data: FigureData) -> Figure:
    """Left: each ROI's alignment (held-out-chosen layer, seed mean) vs tokens, with the phases.
    Right: ROI x layer heatmap of r at the last checkpoint (mean over seeds and subjects).

    Works with one checkpoint (points instead of lines). Without ROIs: a note panel.
    Artists (gids): ``roi-{k}`` lines, ``roi-layer-heatmap``.
    """
    if data.alignment_roi is None or not len(data.roi_names):
        figure = new_figure(11.0, 4.6)
        no_data_panel(figure.add_subplot(1, 1, 1), "no ROIs in these scores (alignment over all voxels)", "no-rois")
        title(figure, data, "alignment per ROI")
        return figure
    caption = caption_text(data, "ROI values: mean r over the ROI's voxels, each subject at its held-out-chosen layer.")
    figure, grid = captioned_grid(11.0, [4.2], 2, caption, margin=0.2, width_ratios=[1.5, 1.0])
    ax = figure.add_subplot(grid[0, 0])
    per_roi = seed_mean(data.alignment_roi)  # (T, R)
    colors = [f"C{k}" for k in range(10)] + list(EXTRA_COLORS)
    for k, name in enumerate(data.roi_names):
        ax.plot(data.x, per_roi[:, k], marker="o", markersize=3, linewidth=1.2, color=colors[k % len(colors)],
                label=name, gid=f"roi-{k}")
    token_axis(ax, data)
    shade_phases(ax, data)
    ax.set_ylabel("alignment (r), mean over seeds")
    ax.legend(fontsize=7.5, loc="best", ncols=2 if len(data.roi_names) > 6 else 1)
    heat = figure.add_subplot(grid[0, 1])
    if data.roi_mean_r is not None:
        last = seed_mean(data.roi_mean_r[:, -1]).mean(axis=1)  # (L, R): seeds, then subjects
        image = heat.imshow(last.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                            gid="roi-layer-heatmap")
        figure.colorbar(image, ax=heat, label="r")
        heat.set_xticks(np.arange(len(data.layers)), [str(layer) for layer in data.layers], fontsize=8)
        heat.set_yticks(np.arange(len(data.roi_names)), data.roi_names, fontsize=8)
        heat.set_xlabel("layer (0 = embeddings)")
        heat.set_title(f"per layer at step {int(data.steps[-1])}", fontsize=9)
    else:
        heat.set_axis_off()
    title(figure, data, "alignment per ROI")
    return figure
