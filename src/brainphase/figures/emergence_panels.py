"""Panels of the emergence figures (:mod:`brainphase.figures.emergence`): grids, seed lines, violins,
quantile bands, the loss axis and the W1-between-sizes heatmap, each drawn from :mod:`brainphase.emergence.read`'s
dataclasses with gids the tests look up."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from brainphase.emergence.read import Emergence, MetricResult
from brainphase.figures.curves import seed_mean
from brainphase.figures.style import captioned_grid


def figure_grid(n_panels: int, n_cols: int, caption: str, panel=(4.2, 2.8), **grid_kw):
    """Figure of ``n_panels`` axes of ``panel`` inches in rows of ``n_cols`` above ``caption``
    (:func:`~brainphase.figures.style.captioned_grid`); returns the figure, its grid and the axes."""
    n_rows = -(-max(n_panels, 1) // n_cols)
    figure, grid = captioned_grid(panel[0] * n_cols + 1.8, [panel[1]] * n_rows, n_cols, caption, **grid_kw)
    return figure, grid, [figure.add_subplot(grid[k // n_cols, k % n_cols]) for k in range(n_panels)]


def seed_lines(ax: Axes, x: np.ndarray, values: np.ndarray, color: str, gid: str, label: str) -> None:
    """Seeds thin (gids ``{gid}-seed-{i}``), seed mean thick with markers (gid ``{gid}-mean``)."""
    for i, row in enumerate(values if len(values) > 1 else []):
        ax.plot(x, row, color=color, linewidth=0.6, alpha=0.4, gid=f"{gid}-seed-{i}")
    ax.plot(x, seed_mean(values), color=color, linewidth=1.8, marker="o", markersize=3, label=label, gid=f"{gid}-mean")


def violins(ax: Axes, x: np.ndarray, values: np.ndarray, color: str, gid: str) -> None:
    """A violin per checkpoint: Gaussian kernel density of the finite seed values (bandwidth
    Silverman's, at least 1% of the panel's value range), half-width 40% of the smallest
    checkpoint gap; gids ``{gid}-violin-{t}``. None when every value is the same (the dots say it)."""
    finite = values[np.isfinite(values)]
    span = float(np.ptp(finite)) if finite.size else 0.0
    if span == 0:
        return
    gaps = np.diff(np.sort(x))
    half = 0.4 * (gaps[gaps > 0].min() if (gaps > 0).any() else 1.0)
    for t in range(values.shape[1]):
        v = values[np.isfinite(values[:, t]), t]
        if not v.size:
            continue
        bandwidth = max(1.06 * float(np.std(v)) * v.size ** -0.2, 0.01 * span)
        y = np.linspace(v.min() - 3 * bandwidth, v.max() + 3 * bandwidth, 64)
        density = np.exp(-0.5 * ((y[:, None] - v[None, :]) / bandwidth) ** 2).sum(axis=1)
        width = half * density / density.max()
        ax.fill_betweenx(y, x[t] - width, x[t] + width, color=color, alpha=0.3, linewidth=0, gid=f"{gid}-violin-{t}")


def quantile_bands(ax: Axes, x: np.ndarray, metric: MetricResult, color: str, gid: str) -> None:
    """Bands between the symmetric pairs of the stored seed quantiles (``quantiles`` at ``levels``:
    5–95 % lightest, then 25–75 %), behind the violins; gids ``{gid}-q{low}-{high}`` (percent)."""
    n = len(metric.levels)
    for i in range(n // 2):
        low, high = 100 * metric.levels[i], 100 * metric.levels[n - 1 - i]
        ax.fill_between(x, metric.quantiles[i], metric.quantiles[n - 1 - i], color=color, alpha=0.12, linewidth=0,
                        zorder=0, gid=f"{gid}-q{low:g}-{high:g}")


def loss_axis(ax: Axes, data: Emergence) -> None:
    """Validation loss on x, decreasing to the right (training proceeds left to right)."""
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    ax.set_xlabel(f"validation loss{f' ({data.loss_metric})' if data.loss_metric else ''}", fontsize=8)
    ax.grid(alpha=0.3)


def sharpness_text(value: float) -> str:
    """Sharpness for a legend: two decimals, ``n/a`` for NaN (the curve never rises)."""
    return f"{value:.2f}" if np.isfinite(value) else "n/a"


def w1_final_heatmap(ax: Axes, data: Emergence, name: str) -> None:
    """Heatmap of ``/sizes/{name}/w1_final`` (models x models, each cell annotated; gid ``{name}-w1-final``)."""
    w1 = np.asarray(data.sizes[name]["w1_final"], dtype=np.float64)
    image = ax.imshow(w1, cmap="magma_r", vmin=0.0, vmax=max(float(np.nanmax(w1)) if np.isfinite(w1).any() else 0.0, 1e-12),
                      gid=f"{name}-w1-final")
    for (i, j), value in np.ndenumerate(w1):
        ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.6 * image.get_clim()[1] else "black", gid=f"{name}-w1-final-{i}-{j}")
    ticks = range(len(data.models))
    ax.set_xticks(ticks, data.names, fontsize=7, rotation=30, ha="right")
    ax.set_yticks(ticks, data.names, fontsize=7)
    ax.set_title(f"{name}: W1 between sizes,\nfinal checkpoint", fontsize=9)
