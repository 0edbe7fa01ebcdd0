"""Figures of a training trajectory, drawn only from ``trajectory.h5``.

``brainphase figures --trajectory trajectory.h5 --out-dir DIR [--formats png pdf]`` always
writes the same files, so that a workflow can declare them:

``alignment``
    Brain alignment vs training tokens (log axis, step 0 shown): seed lines, min–max band
    over seeds, seed mean, the piecewise-linear fit, phases shaded, each boundary with its
    95% CI bar, the alternative curves (layer mean, held-out layer, beyond baselines, group)
    thin; the phase summary under the plot (:func:`~brainphase.figures.curves.plot_alignment`).
``layers``
    Layer × checkpoint heatmap of seed-mean alignment with the best layer, a phase strip and
    the boundaries (:func:`~brainphase.figures.layers.plot_layers`).
``tasks``
    Task metrics vs tokens, one row per task family: discontinuous metrics (left) beside one
    panel per continuous metric (right), seeds thin + seed mean, same phases
    (:func:`~brainphase.figures.tasks.plot_tasks`).
``alignment_tasks``
    Alignment against one discontinuous and one continuous metric per family, coloured by
    training tokens (:func:`~brainphase.figures.tasks.plot_alignment_vs_tasks`).
``internal``
    Internal representation metrics (``/internal/*``) vs tokens, one panel per metric, one
    line per layer (seed mean), same phases (:func:`~brainphase.figures.internal.plot_internal`).
``rois``
    Alignment per ROI vs tokens, and an ROI × layer heatmap at the last checkpoint
    (:func:`~brainphase.figures.rois.plot_rois`); works with a single checkpoint.
``brain_maps``
    nilearn glass brains of ``/brain/voxel_r`` at the first checkpoint, each boundary and the
    last checkpoint; a panel saying there are no voxel maps when the file has none
    (:func:`~brainphase.figures.brain.plot_brain_maps`).

Each figure says SIMULATED (title prefix, bold red) when the root attribute ``simulated`` is
true. With fewer than 4 checkpoints or ``/phases`` status "skipped: ...", nothing is shaded or
fitted and the figure says why; NaN values are drawn as gaps. A trajectory without task or
internal metrics gets a panel saying so. Figures use the object-oriented
matplotlib API on the Agg canvas; each ``plot_*`` function returns its Figure.

The figures of several models and seeds (``emergence.h5``) are in
:mod:`brainphase.figures.emergence` (``brainphase emergence-figures``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

from brainphase.figures.brain import plot_brain_maps
from brainphase.figures.curves import plot_alignment
from brainphase.figures.data import FigureData, load_figure_data
from brainphase.figures.internal import plot_internal
from brainphase.figures.layers import plot_layers
from brainphase.figures.rois import plot_rois
from brainphase.figures.style import phase_spans, save_figures
from brainphase.figures.tasks import metric_order, plot_alignment_vs_tasks, plot_tasks
from brainphase.io import atomic_file

logger = logging.getLogger(__name__)

PLOTS = {
    "alignment": plot_alignment,
    "layers": plot_layers,
    "tasks": plot_tasks,
    "alignment_tasks": plot_alignment_vs_tasks,
    "internal": plot_internal,
    "rois": plot_rois,
    "brain_maps": plot_brain_maps,
}
#: long table written beside the figures: alignment per seed, checkpoint, layer and ROI
TABLE_NAME = "alignment_table.tsv"
FIGURE_NAMES = tuple(PLOTS)
FORMATS = ("png", "pdf", "svg")

__all__ = ["FIGURE_NAMES", "FORMATS", "FigureData", "PLOTS", "load_figure_data", "make_figures", "metric_order",
           "phase_spans", "plot_alignment", "plot_alignment_vs_tasks", "plot_brain_maps", "plot_internal", "plot_layers",
           "plot_rois", "plot_tasks", "TABLE_NAME"]


def make_figures(trajectory_path: str | Path, out_dir: str | Path, formats: Sequence[str] = ("png", "pdf"),
                 dpi: int = 150) -> list[Path]:
    """Draw every figure of ``trajectory.h5`` into ``out_dir`` as ``{name}.{format}``.

    Parameters
    ----------
    trajectory_path : path
        ``trajectory.h5`` from ``brainphase phases``.
    out_dir : path
        Folder for the :data:`FIGURE_NAMES` files (created if needed).
    formats : sequence of str
        Any of :data:`FORMATS`.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    list of Path
        Files written, each atomically (all figures are drawn before any file is written): the
        figures, then :data:`TABLE_NAME`.
    """
    data = load_figure_data(trajectory_path)
    written = save_figures({name: plot(data) for name, plot in PLOTS.items()}, out_dir, formats, dpi)
    from brainphase.phases.read import load_trajectory

    table = Path(out_dir) / TABLE_NAME
    with atomic_file(table, suffix=".tmp.tsv") as tmp:
        load_trajectory(trajectory_path).layer_roi_table().to_csv(tmp, sep="\t", index=False)
    written.append(table)
    logger.info("wrote %d figure files and %s to %s%s", len(written) - 1, TABLE_NAME, out_dir,
                " (SIMULATED fMRI)" if data.simulated else "")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase figures``."""
    parser.add_argument("--trajectory", required=True, type=Path, metavar="FILE", help="trajectory.h5 from `brainphase phases`")
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                        help=f"folder for {', '.join(FIGURE_NAMES)} (one file per format)")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], choices=FORMATS, help="file formats (default: png pdf)")


def main(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase figures``."""
    make_figures(args.trajectory, args.out_dir, args.formats)
