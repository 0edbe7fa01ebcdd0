"""Task metrics over training, one row per task family, and alignment against a few of them.

Names. A task metric is ``"{task}/{metric}"`` (``/metrics/{task}/{metric}`` of trajectory.h5);
its family comes from the task group's ``family`` attribute. Metrics without a family (older
files, table columns) form one row "other metrics". Families appear in :data:`FAMILY_ORDER`,
unknown ones after them by name.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from brainphase.figures.curves import TOKEN_CMAP, seed_mean, spearman_rho
from brainphase.figures.data import FigureData
from brainphase.figures.style import (
    caption_text,
    captioned_grid,
    new_figure,
    no_data_panel,
    shade_phases,
    tick_positions,
    title,
    token_axis,
    token_label,
)
from brainphase.tasks.spec import FAMILIES

#: row order of the task families
FAMILY_ORDER = FAMILIES
#: preferred metric (last part of the name) per kind for ``alignment_tasks`` and column order; others by name after
PREFERRED = {
    "discontinuous": ("acc", "exact_match", "next_token_accuracy", "acc_norm"),
    "continuous": ("logprob", "logprob_correct", "loss", "prob_mass", "target_prob", "token_accuracy", "brier",
                   "edit_distance"),
}
NO_METRICS_TEXT = "no task metrics in this trajectory"
OTHER_FAMILY = "other metrics"
LINE_STYLES = ("-", "--", ":", "-.")


def family_label(family: str) -> str:
    return family or OTHER_FAMILY


def metric_key(name: str, kind: str) -> tuple:
    """Sort key of a metric name among those of its kind: :data:`PREFERRED` metrics first, then by name."""
    metric = name.rpartition("/")[2]
    preferred = PREFERRED.get(kind, ())
    return (preferred.index(metric) if metric in preferred else len(preferred), metric, name)


def metric_order(data: FigureData) -> list[str]:
    """Metric names: by family (:data:`FAMILY_ORDER`), discontinuous before continuous, preferred metrics first."""
    def key(name):
        family = data.metric_families.get(name, "")
        rank = FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER) + (family == "")
        kind = data.metric_kinds[name]
        return (rank, family, kind != "discontinuous", metric_key(name, kind))
    return sorted(data.metrics, key=key)


def family_panels(data: FigureData) -> list[tuple[str, list[str], list[tuple[str, list[str]]]]]:
    """What the ``tasks`` figure draws, one entry per family row.

    Returns
    -------
    list of (family, discontinuous, continuous)
        ``discontinuous``: every discontinuous metric of the family (one panel, shared 0-1
        scale); ``continuous``: ``(metric, names)`` per continuous metric (last part of the
        name), one panel each with one line per task.
    """
    rows: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    for name in metric_order(data):
        discontinuous, continuous = rows.setdefault(data.metric_families.get(name, ""), ([], {}))
        if data.metric_kinds[name] == "discontinuous":
            discontinuous.append(name)
        else:
            continuous.setdefault(name.rpartition("/")[2], []).append(name)
    return [(family, disc, list(cont.items())) for family, (disc, cont) in rows.items()]


def _draw_metrics(ax, data: FigureData, names: list[str], styles: dict[str, str]) -> None:
    """Each metric: seeds thin, seed mean thick with markers (gids ``{name}-seed-{seed}``, ``{name}-mean``),
    colour per task; labelled by task when all share one metric, else by full name."""
    one_metric = len({name.rpartition("/")[2] for name in names}) == 1
    tasks = list(dict.fromkeys(name.rpartition("/")[0] for name in names))
    for name in names:
        color = f"C{tasks.index(name.rpartition('/')[0]) % 10}"
        values = data.metrics[name]
        if len(data.seeds) > 1:
            for seed, row in zip(data.seeds, values):
                ax.plot(data.x, row, color=color, linewidth=0.6, alpha=0.35, linestyle=styles[name],
                        gid=f"{name}-seed-{seed}")
        ax.plot(data.x, seed_mean(values), color=color, linewidth=1.8, marker="o", markersize=3,
                linestyle=styles[name], label=(name.rpartition("/")[0] or name) if one_metric else name,
                gid=f"{name}-mean")


def plot_tasks(data: FigureData) -> Figure:
    """Task metrics vs training tokens: one row per family (:func:`family_panels`), the
    discontinuous metrics in the first column, one panel per continuous metric to the right;
    seeds thin, seed mean thick, the alignment figure's phases shaded.

    Panel titles: ``"{family}: discontinuous"`` and ``"{family}: {metric}"`` (gids
    ``panel-{family}-discontinuous`` / ``panel-{family}-{metric}``); line gids
    ``{name}-mean`` and ``{name}-seed-{seed}``.
    """
    rows = family_panels(data)
    has_disc = any(disc for _, disc, _ in rows)
    n_cont = max([len(cont) for _, _, cont in rows] + [0])
    n_rows, n_cols = max(len(rows), 1), max(int(has_disc) + n_cont, 1)
    seeds_text = "Thin lines: single seeds; thick: mean over seeds." if len(data.seeds) > 1 else "One seed."
    extra = (f"Left: discontinuous metrics (accuracy, exact match); right: continuous metrics, one panel each. {seeds_text}"
             if rows else "")
    figure, grid = captioned_grid(3.9 * n_cols + 1.4, [2.7] * n_rows, n_cols, caption_text(data, extra), margin=0.7)
    if not rows:
        no_data_panel(figure.add_subplot(grid[0, 0]), NO_METRICS_TEXT, "no-metrics")
    cells: dict[tuple[int, int], tuple[str, str, list[str], str]] = {}
    for i, (family, disc, cont) in enumerate(rows):
        if disc:
            cells[(i, 0)] = (family, "discontinuous", disc, "")
        for j, (metric, names) in enumerate(cont):
            lower = not all(data.metric_higher_is_better.get(n, True) for n in names)
            cells[(i, int(has_disc) + j)] = (family, metric, names, " (lower is better)" if lower else "")
    last_row = {col: max(r for r, c in cells if c == col) for _, col in cells}
    phase_handles = []
    for (row, col), (family, what, names, note) in cells.items():
        ax = figure.add_subplot(grid[row, col])
        metrics = list(dict.fromkeys(n.rpartition("/")[2] for n in names))
        styles = {n: LINE_STYLES[metrics.index(n.rpartition("/")[2]) % len(LINE_STYLES)] for n in names}
        _draw_metrics(ax, data, names, styles)
        token_axis(ax, data, label=row == last_row[col])
        phase_handles = shade_phases(ax, data) or phase_handles
        ax.set_title(f"{family_label(family)}: {what}{note}", fontsize=9, gid=f"panel-{family_label(family)}-{what}")
        if what == "discontinuous":
            ax.set_ylabel(" / ".join(metrics), fontsize=8)
        ax.tick_params(labelsize=7.5)
        ax.legend(fontsize=6.5, loc="best", ncols=2 if len(names) > 4 else 1)
    if cells:
        handles = [Line2D([], [], color="0.3", linewidth=0.6, alpha=0.6, label="single seeds"),
                   Line2D([], [], color="0.3", linewidth=1.8, marker="o", markersize=3, label="mean over seeds")]
        figure.legend(handles=handles[int(len(data.seeds) == 1):] + phase_handles, loc="outside right upper", fontsize=8)
    title(figure, data, "task metrics over training, by family")
    return figure


def alignment_task_metrics(data: FigureData) -> list[tuple[str, list[str]]]:
    """Per family (order of :func:`family_panels`): its preferred discontinuous and continuous
    metric (:data:`PREFERRED`, then by name), at most one of each."""
    chosen = []
    for family, disc, cont in family_panels(data):
        names = ([min(disc, key=lambda n: metric_key(n, "discontinuous"))] if disc else [])
        flat = [name for _, group in cont for name in group]
        names += [min(flat, key=lambda n: metric_key(n, "continuous"))] if flat else []
        chosen.append((family, names))
    return chosen


def plot_alignment_vs_tasks(data: FigureData) -> Figure:
    """Alignment (y) against task metrics (x): one row per family, its preferred discontinuous
    metric left and continuous metric right (:func:`alignment_task_metrics`).

    Small points: each seed at each checkpoint; large points joined in training order: the
    seed means (gid ``path-{metric}``, data = seed means of the metric and of alignment);
    colour = position on the token axis (colour bar labelled in tokens, ``0`` = step 0).
    Panel titles give Spearman's rho of the seed means over checkpoints.
    """
    chosen = alignment_task_metrics(data)
    n_rows = max(len(chosen), 1)
    n_cols = max([len(names) for _, names in chosen] + [1])
    figure = new_figure(4.0 * n_cols + 1.4, 3.0 * n_rows + 0.8)
    norm = Normalize(float(data.x.min()), float(data.x.max()) if data.x.max() > data.x.min() else float(data.x.min()) + 1)
    cmap = colormaps[TOKEN_CMAP]
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    y_mean = seed_mean(data.alignment)
    colour_x = np.broadcast_to(data.x, data.alignment.shape)
    for row, (family, names) in enumerate(chosen):
        for col, ax in enumerate(axes[row]):
            if col >= len(names):
                ax.set_axis_off()
                continue
            name = names[col]
            values = data.metrics[name]
            ok = np.isfinite(values) & np.isfinite(data.alignment)
            ax.scatter(values[ok], data.alignment[ok], c=colour_x[ok], cmap=cmap, norm=norm, s=10, alpha=0.45,
                       linewidths=0, gid=f"seeds-{name}")
            x_mean = seed_mean(values)
            keep = np.isfinite(x_mean) & np.isfinite(y_mean)
            ax.plot(x_mean[keep], y_mean[keep], color="0.45", linewidth=0.8, zorder=2, gid=f"path-{name}")
            ax.scatter(x_mean[keep], y_mean[keep], c=data.x[keep], cmap=cmap, norm=norm, s=34, edgecolors="black",
                       linewidths=0.6, zorder=3)
            rho = spearman_rho(x_mean[keep], y_mean[keep]) if keep.sum() >= 3 else np.nan
            rho_text = (f"Spearman ρ = {rho:.2f}" if np.isfinite(rho) else "ρ: too few checkpoints" if keep.sum() < 3
                        else "ρ undefined (a constant series)")
            ax.set_title(f"{family_label(family)}: {name} ({data.metric_kinds[name]})\n{rho_text} (seed means)", fontsize=8.5)
            ax.set_xlabel(name, fontsize=8.5)
            ax.set_ylabel("brain alignment", fontsize=8.5)
            ax.tick_params(labelsize=7.5)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.grid(alpha=0.3)
    if not chosen:
        no_data_panel(axes[0, 0], NO_METRICS_TEXT, "no-metrics")
    bar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes.ravel()), shrink=0.9, pad=0.02)
    positive = data.tokens > 0
    ticks = list(tick_positions(float(data.x[positive].min()), float(data.x.max()))) if positive.any() else []
    labels = [token_label(10 ** t) for t in ticks]
    if (~positive).any():
        ticks, labels = [float(data.x[~positive][0])] + ticks, ["0"] + labels
    bar.set_ticks(ticks, labels=labels)
    bar.set_label("training tokens (colour, log scale)")
    shown = sum(len(names) for _, names in chosen)
    if shown < len(data.metrics):
        figure.supxlabel(f"{shown} of {len(data.metrics)} task metrics shown (one discontinuous and one continuous per "
                         "family); the correlations of all are in /correlations of trajectory.h5", fontsize=8)
    title(figure, data, "brain alignment against task metrics")
    return figure
