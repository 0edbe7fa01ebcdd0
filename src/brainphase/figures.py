"""Figures of a training trajectory, drawn only from ``trajectory.h5``.

``brainphase figures --trajectory trajectory.h5 --out-dir DIR [--formats png pdf]`` writes,
with fixed names so that a workflow can declare them:

``alignment.{png,pdf}``
    Brain alignment vs training tokens: each seed thin, the mean over seeds thick, the
    smoothed curve the phase rule ran on dashed, phases shaded.
``tasks.{png,pdf}``
    One panel per task metric, discontinuous metrics (e.g. next-token accuracy) first, then
    continuous ones (e.g. loss), side by side, same shading.
``layers.{png,pdf}``
    Heatmap of the seed-mean alignment per layer (rows) and checkpoint (columns), with
    the best layer of each checkpoint and the phase boundaries.

Token axis: training tokens on a ``symlog`` scale, linear between 0 and the first
non-zero checkpoint's tokens and logarithmic above, so that step 0 (0 tokens) is drawn at
the left edge. The heatmap's columns are checkpoints (log-spaced in tokens), labelled
with their tokens.

Phase shading follows :func:`phase_spans`: alignment spans from the first checkpoint to
the peak, detachment from the peak to the trough, realignment from the trough to the last
checkpoint (phases of Nakagi et al. 2025, "Triple Phase Transitions", arXiv:2502.20779).
Every title starts with "SIMULATED fMRI" when the trajectory's ``simulated`` attribute is
true. Figures are built with the object-oriented matplotlib API on the Agg canvas (no
pyplot, no global state); each ``plot_*`` function returns the :class:`~matplotlib.figure.Figure`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from brainphase.io import atomic_file
from brainphase.phases import PHASE_NAMES, UNDETERMINED, Trajectory, load_trajectory

logger = logging.getLogger(__name__)

PHASE_COLORS = {0: "#2ca02c", 1: "#d62728", 2: "#1f77b4"}
FIGURE_NAMES = ("alignment", "tasks", "layers")
FORMATS = ("png", "pdf", "svg")


def phase_spans(labels: np.ndarray, x: np.ndarray) -> list[tuple[int, float, float]]:
    """Token intervals to shade for each run of equal phase labels.

    Parameters
    ----------
    labels : ndarray of int, shape (n_steps,)
        Phase label per checkpoint (-1 = undetermined, not shaded).
    x : ndarray, shape (n_steps,)
        Position of each checkpoint (e.g. its training tokens).

    Returns
    -------
    list of (label, start, end)
        A run of checkpoints ``i..j`` spans from ``x[i-1]`` (the boundary checkpoint that
        ends the previous phase) to ``x[j]``, or from ``x[i]`` for the first run, so the
        spans of consecutive phases touch at the peak and the trough.
    """
    spans = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if labels[start] != UNDETERMINED:
                left = start - 1 if start > 0 and labels[start - 1] != UNDETERMINED else start
                spans.append((int(labels[start]), float(x[left]), float(x[i - 1])))
            start = i
    return spans


def _title(trajectory: Trajectory, text: str) -> str:
    prefix = "SIMULATED fMRI — " if trajectory.simulated else ""
    return f"{prefix}{trajectory.model_id}: {text}"


def _token_axis(ax: Axes, tokens: np.ndarray) -> None:
    positive = tokens[tokens > 0]
    linthresh = float(positive.min()) if positive.size else 1.0
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
    ax.set_xlim(float(tokens.min()), float(tokens.max()))
    ax.set_xlabel(f"training tokens (symlog: linear below {linthresh:,.0f})")
    ax.grid(alpha=0.3, which="major")


def _shade_phases(ax: Axes, trajectory: Trajectory) -> list[Patch]:
    """Shade the phases of the seed-mean curve; return legend handles."""
    handles = []
    for label, start, end in phase_spans(trajectory.labels, trajectory.tokens):
        span = ax.axvspan(start, end, color=PHASE_COLORS[label], alpha=0.13, linewidth=0, zorder=0)
        span.set_gid(f"phase-{label}")
    for label, name in PHASE_NAMES.items():
        if (trajectory.labels == label).any():
            handles.append(Patch(color=PHASE_COLORS[label], alpha=0.3, label=f"{label + 1}. {name}"))
    if not handles:
        handles.append(Patch(color="none", label=f"no phase detected (min_change={trajectory.phase_attrs['min_change']})"))
    return handles


def _seed_lines(ax: Axes, trajectory: Trajectory, values: np.ndarray, color: str) -> None:
    """Each seed thin (gid ``"seed-{seed}"``), the mean over seeds thick (gid ``"mean"``).

    ``values``: (n_seeds, n_steps).
    """
    for i, (seed, row) in enumerate(zip(trajectory.seeds, values)):
        line, = ax.plot(trajectory.tokens, row, color=color, linewidth=0.7, alpha=0.45,
                        label="individual seeds" if i == 0 else "_nolegend_")
        line.set_gid(f"seed-{seed}")
    line, = ax.plot(trajectory.tokens, values.mean(axis=0), color=color, linewidth=2.2, marker="o", markersize=3,
                    label=f"mean over {len(trajectory.seeds)} seeds")
    line.set_gid("mean")


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_alignment(trajectory: Trajectory) -> Figure:
    """Brain alignment vs training tokens, seeds thin, mean thick, phases shaded.

    Lines have gids ``"seed-{seed}"``, ``"mean"`` and ``"smoothed"``; their y data are the
    rows of ``trajectory.alignment``, its mean over seeds and ``trajectory.alignment_smoothed``.
    Shaded spans have gids ``"phase-{label}"`` (see :func:`phase_spans`).
    """
    figure = _new_figure(7.5, 4.5)
    ax = figure.add_subplot()
    handles = _shade_phases(ax, trajectory)
    _seed_lines(ax, trajectory, trajectory.alignment, "black")
    line, = ax.plot(trajectory.tokens, trajectory.alignment_smoothed, color="tab:orange", linestyle="--", linewidth=1.3,
                    label="smoothed mean (phase rule input)")
    line.set_gid("smoothed")
    _token_axis(ax, trajectory.tokens)
    ax.set_ylabel("brain alignment (mean over subjects\nof best-layer r over ROI voxels)")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=8, loc="best")
    figure.suptitle(_title(trajectory, "brain alignment over training"))
    return figure


def metric_order(trajectory: Trajectory) -> list[str]:
    """Metric names, discontinuous metrics first, then by name."""
    return sorted(trajectory.metrics, key=lambda name: (trajectory.metric_kinds[name] != "discontinuous", name))


def plot_tasks(trajectory: Trajectory) -> Figure:
    """Task metrics vs training tokens, one panel per metric (discontinuous first), phases shaded.

    Panel ``k`` shows metric ``metric_order(trajectory)[k]`` (its title starts with the
    metric's name) with line and span gids as in :func:`plot_alignment`.
    """
    names = metric_order(trajectory)
    figure = _new_figure(4.2 * len(names), 4.0)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        handles = _shade_phases(ax, trajectory)
        _seed_lines(ax, trajectory, trajectory.metrics[name], "tab:purple" if trajectory.metric_kinds[name] == "discontinuous" else "tab:brown")
        _token_axis(ax, trajectory.tokens)
        ax.set_title(f"{name} ({trajectory.metric_kinds[name]})", fontsize=10)
        ax.set_ylabel(name)
    axes[0].legend(handles=axes[0].get_legend_handles_labels()[0] + handles, fontsize=8, loc="best")
    figure.suptitle(_title(trajectory, "task metrics over training"))
    return figure


def _token_label(tokens: int) -> str:
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if tokens >= divisor:
            return f"{tokens / divisor:.3g}{suffix}"
    return str(int(tokens))


def plot_layers(trajectory: Trajectory) -> Figure:
    """Seed-mean alignment per layer (rows) and checkpoint (columns), best layer dotted.

    The image data is ``trajectory.alignment_layer.mean(axis=0).T`` (n_layers, n_steps);
    white dots mark the argmax layer of each column; white vertical lines at the peak
    (dashed, gid ``"boundary-peak"``) and trough (dotted, gid ``"boundary-trough"``) mark the
    phase boundaries.
    """
    per_layer = trajectory.alignment_layer.mean(axis=0).T  # (n_layers, n_steps)
    n_layers, n_steps = per_layer.shape
    figure = _new_figure(max(6.0, 0.35 * n_steps + 2), max(3.5, 0.3 * n_layers + 1.5))
    ax = figure.add_subplot()
    image = ax.imshow(per_layer, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
    figure.colorbar(image, ax=ax, label="alignment (r, mean over subjects)")
    ax.plot(np.arange(n_steps), per_layer.argmax(axis=0), "o", color="white", markersize=4, label="best layer")
    for which, style in (("peak", "--"), ("trough", ":")):
        index = int(trajectory.phase_attrs[f"{which}_index"])
        if index >= 0:
            line = ax.axvline(index, color="white", linestyle=style, linewidth=1.5,
                              label=f"{which} (step {trajectory.phase_attrs[f'{which}_step']})")
            line.set_gid(f"boundary-{which}")
    ax.set_yticks(np.arange(n_layers), [str(layer) for layer in trajectory.layers])
    tick_every = max(1, n_steps // 12)
    ticks = np.arange(0, n_steps, tick_every)
    ax.set_xticks(ticks, [_token_label(trajectory.tokens[i]) for i in ticks], rotation=45)
    ax.set_xlabel("checkpoint (training tokens, log-spaced)")
    ax.set_ylabel("layer")
    ax.legend(fontsize=8, loc="upper left", facecolor="0.5", framealpha=0.6, labelcolor="white")
    figure.suptitle(_title(trajectory, "alignment per layer"))
    return figure


PLOTS = {"alignment": plot_alignment, "tasks": plot_tasks, "layers": plot_layers}


def make_figures(trajectory_path: str | Path, out_dir: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Draw every figure of ``trajectory.h5`` into ``out_dir`` as ``{name}.{format}``.

    Parameters
    ----------
    trajectory_path : path
        ``trajectory.h5`` from ``brainphase phases``.
    out_dir : path
        Folder for ``alignment``, ``tasks`` and ``layers`` files (created if needed).
    formats : sequence of str
        Any of ``png``, ``pdf``, ``svg``.

    Returns
    -------
    list of Path
        Files written (each written atomically).
    """
    trajectory = load_trajectory(trajectory_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in PLOTS.items():
        figure = plot(trajectory)
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            with atomic_file(path, suffix=f".tmp.{fmt}") as tmp:
                figure.savefig(tmp, format=fmt, dpi=150)
            written.append(path)
    logger.info("wrote %d figure files to %s%s", len(written), out_dir, " (SIMULATED fMRI)" if trajectory.simulated else "")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase figures``."""
    parser.add_argument("--trajectory", required=True, type=Path, metavar="FILE", help="trajectory.h5 from `brainphase phases`")
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR", help="folder for alignment/tasks/layers.{png,pdf}")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], choices=FORMATS, help="file formats (default: png pdf)")


def main(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase figures``."""
    make_figures(args.trajectory, args.out_dir, args.formats)
