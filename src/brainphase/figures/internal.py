"""Internal (representation) metrics over training: one panel per metric, one line per layer."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from brainphase.figures.curves import seed_mean
from brainphase.figures.data import FigureData
from brainphase.figures.style import caption_text, captioned_grid, no_data_panel, shade_phases, title, token_axis

NO_INTERNAL_TEXT = "no internal metrics in this trajectory"
LAYER_CMAP = "viridis"
#: panel order of the metrics of `brainphase internal`; others after them by name
INTERNAL_ORDER = ("twonn_dimension", "effective_rank", "anisotropy", "cka_previous", "cka_final")


def internal_order(data: FigureData) -> list[str]:
    return sorted(data.internal_metrics, key=lambda n: (INTERNAL_ORDER.index(n) if n in INTERNAL_ORDER else len(INTERNAL_ORDER), n))


def plot_internal(data: FigureData) -> Figure:
    """Each ``/internal/{name}`` vs training tokens: one line per layer (seed mean, colour =
    layer), the alignment figure's phases shaded; a note panel when the trajectory has none.

    Line gids ``{name}-layer-{layer}`` (y = NaN-aware mean over seeds of ``/internal/{name}[:, :, l]``).
    """
    names = internal_order(data)
    n_cols = min(max(len(names), 1), 3)
    n_rows = -(-max(len(names), 1) // n_cols)
    described = [f"{name}: {data.internal_descriptions[name]}" for name in names if data.internal_descriptions.get(name)]
    caption = caption_text(data, ("Lines: layers (colour), mean over seeds. " + "; ".join(described)) if names else "")
    figure, grid = captioned_grid(4.2 * n_cols + 1.6, [3.0] * n_rows, n_cols, caption, margin=0.5)
    if not names:
        no_data_panel(figure.add_subplot(grid[0, 0]), NO_INTERNAL_TEXT, "no-internal")
    layers = np.asarray(data.internal_layers)
    norm = Normalize(float(layers.min()), float(layers.max()) if len(layers) and layers.max() > layers.min()
                     else float(layers.min()) + 1) if len(layers) else Normalize(0, 1)
    cmap = colormaps[LAYER_CMAP]
    axes, phase_handles = [], []
    for k, name in enumerate(names):
        row, col = divmod(k, n_cols)
        ax = figure.add_subplot(grid[row, col])
        mean = seed_mean(data.internal_metrics[name])  # (T, L)
        for position, layer in enumerate(layers):
            ax.plot(data.x, mean[:, position], color=cmap(norm(layer)), linewidth=1.1, marker="o", markersize=2,
                    gid=f"{name}-layer-{layer}")
        token_axis(ax, data, label=row == n_rows - 1 or k + n_cols >= len(names))
        phase_handles = shade_phases(ax, data)
        ax.set_title(name, fontsize=10, gid=f"panel-{name}")
        ax.tick_params(labelsize=7.5)
        axes.append(ax)
    if axes:
        bar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.9, pad=0.02)
        bar.set_label("layer (0 = embeddings)")
        bar.set_ticks(layers if len(layers) <= 13 else layers[:: -(-len(layers) // 13)])
        if phase_handles:
            figure.legend(handles=phase_handles, loc="outside right upper", fontsize=8)
    title(figure, data, "internal representations over training (mean over seeds)")
    return figure
