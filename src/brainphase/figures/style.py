"""Shared drawing helpers: figure creation, the token axis, phase shading, boundaries, notes.

Token axis. Checkpoints sit at ``FigureData.x`` (log10 training tokens; step 0 one
log-spacing before the first positive checkpoint), on a linear axis in log10 units whose
ticks are labelled with token counts (``1M``, ``10M``...). Step 0 gets its own tick ``0``
and a broken-axis mark ``//`` between it and the first positive checkpoint, because 0 has no
logarithm.

Phases. :func:`phase_spans` turns the per-checkpoint codes of ``/phases/labels`` into shaded
intervals; colours are fixed per phase *name* (:func:`phase_color`) so that every figure
agrees. Each boundary is a dashed vertical line, and its bootstrap CI in tokens a horizontal
bar with end caps at the top of the panel.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from brainphase.figures.data import FigureData
from brainphase.io import atomic_file

NAMED_PHASE_COLORS = {
    "alignment": "#2ca02c",
    "detachment": "#d62728",
    "realignment": "#1f77b4",
    "plateau": "#7f7f7f",
    "second detachment": "#ff7f0e",
    "second realignment": "#9467bd",
    "third detachment": "#8c564b",
    "third realignment": "#17becf",
    "initial plateau": "#c7c7c7",
    "initial decline": "#e377c2",
    "later change": "#bcbd22",
}
EXTRA_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf")
SIMULATED_TEXT = "SIMULATED fMRI"
BOUNDARY_COLOR = "0.25"


def save_figures(figures: dict[str, Figure], out_dir: str | Path, formats: Sequence[str], dpi: int = 150) -> list[Path]:
    """Write each figure as ``out_dir/{name}.{format}``, each file atomically.

    Parameters
    ----------
    figures : dict of str -> Figure
        Drawn before any file is written, so a drawing error leaves no partial set.
    out_dir : path
        Created if needed.
    formats : sequence of str
        matplotlib formats (``png``, ``pdf``, ``svg``).
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    list of Path
        The files, figure by figure, format by format.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            with atomic_file(path, suffix=f".tmp.{fmt}") as tmp:
                figure.savefig(tmp, format=fmt, dpi=dpi)
            written.append(path)
    return written


def new_figure(width: float, height: float, constrained: bool = True) -> Figure:
    """A matplotlib Figure on the Agg canvas (no pyplot state)."""
    figure = Figure(figsize=(width, height), layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def title(figure: Figure, data: FigureData, text: str) -> None:
    """Suptitle ``"[SIMULATED fMRI — ]model: text"``, bold red when the fMRI is simulated."""
    prefix = f"{SIMULATED_TEXT} — " if data.simulated else ""
    model = f"{data.model_id}: " if data.model_id else ""
    figure.suptitle(f"{prefix}{model}{text}", fontsize=11, color="#b00000" if data.simulated else "black",
                    fontweight="bold" if data.simulated else "normal")


def token_label(tokens: float) -> str:
    """Short token count: ``0``, ``512``, ``3.3M``, ``1.2B``, ``2T``."""
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if tokens >= divisor:
            return f"{tokens / divisor:.3g}{suffix}"
    return f"{tokens:.3g}"


def tick_positions(low: float, high: float) -> np.ndarray:
    """log10 positions of 1-2-5 (or decade-only) ticks within [low, high]."""
    decades = np.arange(np.floor(low), np.ceil(high) + 1)
    for multipliers in ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0)):
        ticks = np.log10(np.outer(10.0 ** decades, multipliers).ravel())
        ticks = ticks[(ticks >= low - 1e-9) & (ticks <= high + 1e-9)]
        if ticks.size >= 3:
            return ticks
    return ticks


def token_axis(ax: Axes, data: FigureData, label: bool = True) -> None:
    """Set up ``ax``'s x axis as the log token axis (see the module docstring)."""
    x = data.x
    positive = data.tokens > 0
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = 0.03 * (hi - lo) if hi > lo else 0.5
    ax.set_xlim(lo - pad, hi + pad)
    ticks = list(tick_positions(float(x[positive].min()), hi)) if positive.any() else []
    if len(ticks) < 2:  # less than a factor ~2.5 between checkpoints: label the checkpoints themselves
        ticks = list(np.unique(x[positive]))
    labels = [token_label(10 ** t) for t in ticks]
    if (~positive).any():
        zero = float(x[~positive][0])
        ticks.insert(0, zero)
        labels.insert(0, "0")
        if positive.any():
            _break_mark(ax, (zero + float(x[positive].min())) / 2)
    ax.set_xticks(ticks, labels)
    if label:
        ax.set_xlabel("training tokens (log scale; step 0 at the left)" if (~positive).any() else "training tokens (log scale)")
    ax.grid(alpha=0.3, axis="x")


def _break_mark(ax: Axes, position: float) -> None:
    """Two short slanted strokes on the x axis at ``position``: the axis is broken there."""
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    width = 0.006 * (ax.get_xlim()[1] - ax.get_xlim()[0])
    for offset in (-width, width):
        ax.plot([position + offset - width, position + offset + width], [-0.02, 0.02], color="black",
                linewidth=1.0, transform=transform, clip_on=False, gid="axis-break")


def phase_color(data: FigureData, code: int) -> str:
    """Colour of phase code ``code``: fixed per name, extra colours for unknown names."""
    name = data.label_names[code] if code < len(data.label_names) else f"phase {code}"
    return NAMED_PHASE_COLORS.get(name, EXTRA_COLORS[code % len(EXTRA_COLORS)])


def phase_name(data: FigureData, code: int) -> str:
    return data.label_names[code] if code < len(data.label_names) else f"phase {code}"


def phase_spans(labels: np.ndarray, x: np.ndarray, knots: np.ndarray) -> list[tuple[int, float, float]]:
    """Intervals to shade for each run of equal phase codes.

    Parameters
    ----------
    labels : ndarray of int, shape (n_steps,)
        Phase code per checkpoint, -1 = not labelled (not shaded).
    x : ndarray, shape (n_steps,)
        Checkpoint positions, increasing.
    knots : ndarray, shape (n_knots,)
        Boundary positions (same units as ``x``).

    Returns
    -------
    list of (code, start, end)
        A run of checkpoints ``i..j`` spans ``[x[i], x[j]]``; where it touches the next run
        (no unlabelled checkpoint between) both meet at the boundary knot lying in
        ``[x[j], x[j+1]]`` (the midpoint when none does), so adjacent phases share an edge.
    """
    runs = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((int(labels[start]), start, i - 1))
            start = i
    edges = {}
    for (_, _, end), (_, next_start, _) in zip(runs[:-1], runs[1:]):
        between = [k for k in knots if x[end] - 1e-9 <= k <= x[next_start] + 1e-9]
        edges[end] = between[0] if between else (x[end] + x[next_start]) / 2
    spans = []
    for index, (code, first, last) in enumerate(runs):
        if code < 0:
            continue
        left = edges.get(first - 1, x[first]) if index > 0 and runs[index - 1][0] >= 0 else x[first]
        right = edges.get(last, x[last]) if index + 1 < len(runs) and runs[index + 1][0] >= 0 else x[last]
        spans.append((code, float(left), float(right)))
    return spans


def boundary_positions(data: FigureData) -> np.ndarray:
    """Boundary positions on the token axis, shape (n_boundaries,)."""
    if "log10_tokens" in data.boundaries:
        return np.asarray(data.boundaries["log10_tokens"], dtype=float)
    return data.position(data.boundaries.get("tokens", np.zeros(0)))


def shade_phases(ax: Axes, data: FigureData, index_x: np.ndarray | None = None) -> list:
    """Shade phases and draw boundaries (dashed line + CI bar) on ``ax``; return legend handles.

    ``index_x`` draws on a checkpoint-index axis instead (the heatmap): boundary and CI
    positions are interpolated between checkpoints.
    """
    if not data.labelled:
        return []
    knots = boundary_positions(data)
    to_axis = (lambda p: np.interp(p, data.x, index_x)) if index_x is not None else (lambda p: p)
    for code, start, end in phase_spans(data.labels, data.x, knots):
        if index_x is None:
            ax.axvspan(start, end, color=phase_color(data, code), alpha=0.14, linewidth=0, zorder=0,
                       gid=f"phase-{code}")
    handles = [Patch(color=phase_color(data, code), alpha=0.35, label=phase_name(data, code))
               for code in sorted(set(data.labels[data.labels >= 0].tolist()))]
    low = data.position(data.boundaries.get("tokens_ci_low", np.full(len(knots), np.nan)))
    high = data.position(data.boundaries.get("tokens_ci_high", np.full(len(knots), np.nan)))
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    color = BOUNDARY_COLOR if index_x is None else "white"
    for k, knot in enumerate(knots):
        ax.axvline(to_axis(knot), color=color, linestyle="--", linewidth=1.0, zorder=1.5, gid=f"boundary-{k}")
        if np.isfinite(low[k]) and np.isfinite(high[k]):
            ax.plot([to_axis(low[k]), to_axis(high[k])], [0.965, 0.965], color=color, linewidth=1.8, marker="|",
                    markersize=8, markeredgewidth=1.8, transform=transform, zorder=4, gid=f"boundary-ci-{k}")
        ax.plot([to_axis(knot)], [0.965], marker="v", color=color, markersize=5, transform=transform, zorder=4)
    if len(knots):
        handles.append(Line2D([], [], color=BOUNDARY_COLOR, linestyle="--", marker="v", markersize=5,
                              label="boundary, bar = 95% CI"))
    return handles


def caption_text(data: FigureData, extra: str = "") -> str:
    """The text under a figure: the phase summary (or why phases were not labelled) + ``extra``."""
    if data.labelled:
        text = f"Phases: {data.summary}" if data.summary else "Phases labelled (no summary stored)."
    elif data.status.startswith("skipped"):
        text = f"Phases not labelled: {data.status.partition(':')[2].strip() or data.status}."
    elif len(data.steps) < 4:
        text = f"Phases not labelled: only {len(data.steps)} checkpoint(s), at least 4 are needed."
    else:
        text = f"Phases not labelled ({data.status})."
    if extra:
        text = f"{text.rstrip('.')}. {extra}"
    return text


def add_caption(figure: Figure, ax: Axes, text: str, width: int = 110) -> None:
    """Write wrapped ``text`` into ``ax`` (an axes reserved for it, axis hidden)."""
    ax.axis("off")
    wrapped = "\n".join(textwrap.fill(part, width) for part in text.split("\n"))
    ax.text(0.0, 1.0, wrapped, ha="left", va="top", fontsize=8, transform=ax.transAxes, gid="caption")


def caption_lines(text: str, width: int = 110) -> int:
    return sum(len(textwrap.wrap(part, width)) or 1 for part in text.split("\n"))


#: caption characters per inch of figure width (fontsize 8)
CAPTION_CHARS_PER_INCH = 10.5


def captioned_grid(width: float, panel_heights: Sequence[float], n_cols: int, caption: str,
                   margin: float = 0.6, **grid_kw) -> tuple[Figure, GridSpec]:
    """A figure of panel rows above a full-width caption row holding ``caption``.

    Parameters
    ----------
    width : float
        Figure width (inches); the caption wraps at :data:`CAPTION_CHARS_PER_INCH` per inch.
    panel_heights : sequence of float, shape (n_rows,)
        Height of each panel row (inches).
    n_cols : int
        Columns of the grid.
    caption : str
        Text of the caption row (:func:`add_caption`); ``""`` still reserves a thin row.
    margin : float
        Height (inches) added for titles, tick labels and the suptitle.
    **grid_kw
        Passed to ``Figure.add_gridspec`` (e.g. ``width_ratios``).

    Returns
    -------
    figure : Figure
    grid : GridSpec, shape (n_rows + 1, n_cols)
        Rows ``0..n_rows-1`` are for the panels; the last row holds the caption.
    """
    chars = int(CAPTION_CHARS_PER_INCH * width)
    caption_height = 0.2 + 0.16 * caption_lines(caption, chars)
    figure = new_figure(width, sum(panel_heights) + margin + caption_height)
    grid = figure.add_gridspec(len(panel_heights) + 1, n_cols, height_ratios=[*panel_heights, caption_height], **grid_kw)
    add_caption(figure, figure.add_subplot(grid[len(panel_heights), :]), caption, chars)
    return figure, grid


def no_data_panel(ax: Axes, text: str, gid: str, width: int = 60) -> None:
    """Turn ``ax`` into a note saying what is missing: ``text`` centred, each line wrapped at
    ``width`` characters (artist gid ``gid``), no axes."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.fill(line, width) for line in text.split("\n")), ha="center", va="center",
            fontsize=9, transform=ax.transAxes, gid=gid)


def seed_band(ax: Axes, x: np.ndarray, values: np.ndarray, color: str, name: str, seeds: np.ndarray) -> None:
    """Seed lines (thin), min–max band over seeds, mean over seeds (thick, markers).

    ``values``: (n_seeds, n_steps), NaN = gap (lines break there). Artists have gids
    ``"{name}-seed-{seed}"``, ``"{name}-band"`` and ``"{name}-mean"``.
    """
    finite = np.isfinite(values)
    with np.errstate(all="ignore"):
        count = finite.sum(axis=0)
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), np.nan)
        low = np.where(count > 0, np.nanmin(np.where(finite, values, np.inf), axis=0), np.nan)
        high = np.where(count > 0, np.nanmax(np.where(finite, values, -np.inf), axis=0), np.nan)
    if len(seeds) > 1:
        ax.fill_between(x, low, high, where=np.isfinite(low) & np.isfinite(high), color=color, alpha=0.18,
                        linewidth=0, label=f"min–max over {len(seeds)} seeds", gid=f"{name}-band", interpolate=False)
        for i, (seed, row) in enumerate(zip(seeds, values)):
            ax.plot(x, row, color=color, linewidth=0.6, alpha=0.5, gid=f"{name}-seed-{seed}",
                    label="single seeds" if i == 0 else "_nolegend_")
    ax.plot(x, mean, color=color, linewidth=2.0, marker="o", markersize=3.5,
            label=f"mean over {len(seeds)} seed{'s' if len(seeds) > 1 else ''}", gid=f"{name}-mean")
