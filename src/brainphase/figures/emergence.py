"""Figures of emergence across seeds and sizes, drawn only from ``emergence.h5``.

``brainphase emergence-figures --emergence emergence.h5 --out-dir DIR [--formats png pdf]``
writes ``DIR/{name}.{format}`` for every name of :data:`EMERGENCE_FIGURES`:

``seed_distributions``
    One row per shown metric (:func:`chosen_metrics`), one column per model: the seed
    distribution at each checkpoint as a violin (Gaussian kernel) over bands of the stored seed
    quantiles (5–95 %, 25–75 %), every seed as a point, the
    seed mean, the threshold, and a star where the dip test called the distribution bimodal.
``success_probability``
    P(metric passes its threshold) over seeds with its confidence band, against tokens (left)
    and against the seed-mean validation loss (right), one colour per model.
``mirage``
    Per task with a mirage check: its discontinuous and continuous metric against tokens (seeds
    thin, mean thick), the sharpness of each in the legend, and the verdict per model.
``w1``
    Wasserstein-1 distance between the seed distributions of consecutive checkpoints, drawn at
    the later checkpoint, one line per model; with two or more models, a heatmap per metric of
    W1 between the sizes at their final checkpoints.
``abilities_vs_loss``
    Each shown metric against validation loss (every seed at every checkpoint as a point, the
    seed mean as a line), colour = model (size), the threshold and each model's median
    crossing loss; the panel title says whether sizes collapse onto one curve in loss.
``latent_intent``
    Task ``latent_intent``: its discontinuous and continuous metric against tokens (top) and
    loss (bottom), one colour per model or run label (e.g. ``eps=0.25``).

Models are the size axis in file order; their colours run along viridis. A figure whose data
is absent (no latent-intent task, no loss, one checkpoint) draws a panel saying what is
missing (:func:`brainphase.figures.style.no_data_panel`) and is still written.
"""

from __future__ import annotations

import argparse
import logging
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from brainphase.config import schema_default
from brainphase.figures import FORMATS
from brainphase.figures.curves import seed_mean
from brainphase.emergence.read import ALIGNMENT, Emergence, ModelResult, load_emergence
from brainphase.figures.emergence_panels import (figure_grid, loss_axis, quantile_bands, seed_lines, sharpness_text,
                                                 violins, w1_final_heatmap)
from brainphase.figures.style import no_data_panel, save_figures, title, token_axis
from brainphase.figures.tasks import metric_key
from brainphase.tasks.spec import FAMILIES

logger = logging.getLogger(__name__)

EMERGENCE_FIGURES = ("seed_distributions", "success_probability", "mirage", "w1", "abilities_vs_loss", "latent_intent")
#: most metrics a figure shows (alignment, then one per task family)
MAX_METRICS = 5
#: name of the latent-intent task (brainphase.corpus.latent_intent.TASK_NAME)
LATENT_TASK = "latent_intent"
NO_LOSS_TEXT = "no validation loss in {path} (root attribute loss_metric is empty): {what} needs /models/{{model}}/loss"


def size_colors(data: Emergence) -> dict[str, str]:
    """Colour of each model: viridis along the size axis (``C0`` for a single model)."""
    n = len(data.models)
    colors = colormaps["viridis"](np.linspace(0.0, 0.85, n)) if n > 1 else ["C0"]
    return {model.name: to_hex(color) for model, color in zip(data.models, colors)}


def chosen_metrics(data: Emergence, limit: int = MAX_METRICS) -> list[str]:
    """The metrics the per-metric figures show, at most ``limit``: brain alignment, then one
    metric per task family (families in :data:`brainphase.tasks.spec.FAMILIES` order, unknown
    ones by name; within a family tasks with a discontinuous metric first, then by name), then
    one per further task in the same order; a task's metric is its preferred discontinuous one,
    continuous when it has none (:func:`~brainphase.figures.tasks.metric_key`). The validation
    loss (root attribute ``loss_metric``) is the x axis of other figures and is not shown."""
    names = data.metric_names()
    tasks: dict[str, list[str]] = {}
    for name in names:
        if name not in (ALIGNMENT, data.loss_metric):
            tasks.setdefault(name.rpartition("/")[0], []).append(name)
    family = {task: data.metric(metrics[0]).family for task, metrics in tasks.items()}

    def preferred(task: str) -> str:
        kinds = {name: data.metric(name).kind for name in tasks[task]}
        return min(kinds, key=lambda n: (kinds[n] != "discontinuous", metric_key(n, kinds[n])))

    first, rest = [], []
    for task in sorted(tasks, key=lambda t: (FAMILIES.index(family[t]) if family[t] in FAMILIES else len(FAMILIES),
                                             family[t], data.metric(preferred(t)).kind != "discontinuous", t)):
        (rest if any(family[t] == family[task] for t in first) else first).append(task)
    chosen = [ALIGNMENT] if ALIGNMENT in names else []
    return (chosen + [preferred(task) for task in first + rest])[:limit]


def mean_loss(model: ModelResult) -> np.ndarray:
    """Seed-mean validation loss per checkpoint, shape (n_steps,) (NaN where no seed has one)."""
    return seed_mean(model.loss)


def plot_seed_distributions(data: Emergence) -> Figure:
    """Seed distribution per checkpoint, one row per metric of :func:`chosen_metrics`, one
    column per model. Artists (gid prefix ``{metric}-{model}``): ``-seeds`` (scatter, one point
    per finite seed value, offsets = (token position, value) in ``values`` order), ``-mean``,
    ``-violin-{t}``, ``-q5-95`` / ``-q25-75`` (:func:`~brainphase.figures.emergence_panels.quantile_bands`), ``-bimodal`` (stars),
    ``-threshold``; panel titles ``"{model}: {metric}"``."""
    metrics, colors = chosen_metrics(data), size_colors(data)
    caption = ("Violin: seed distribution at each checkpoint (Gaussian kernel); shaded bands behind it: the seed "
               "quantiles stored in emergence.h5 (5–95 %, and 25–75 % darker where the two overlap); dots: single "
               "seeds; line: seed mean; dotted: the success threshold; ★: bimodal by the dip test. Metrics: brain "
               "alignment, one per task "
               f"family, then further tasks (at most {MAX_METRICS}; all metrics are in emergence.h5).")
    n_cols = max(len(data.models), 1)
    figure, grid, axes = figure_grid(len(metrics) * n_cols, n_cols, caption, panel=(3.8, 2.4))
    if not metrics:
        no_data_panel(figure.add_subplot(grid[0, 0]), f"no metrics in {data.path.name}", "no-metrics")
    for k, ax in enumerate(axes):
        name, model = metrics[k // n_cols], data.models[k % n_cols]
        if name not in model.metrics:
            no_data_panel(ax, f"{model.name} has no {name}", f"missing-{name}-{model.name}")
            continue
        metric, gid, x = model.metrics[name], f"{name}-{model.name}", data.position(model.tokens)
        quantile_bands(ax, x, metric, colors[model.name], gid)
        violins(ax, x, metric.values, colors[model.name], gid)
        points = np.isfinite(metric.values)
        ax.scatter(np.broadcast_to(x, metric.values.shape)[points], metric.values[points], s=6, color="black",
                   alpha=0.6, linewidths=0, zorder=3, gid=f"{gid}-seeds")
        ax.plot(x, seed_mean(metric.values), color=colors[model.name], linewidth=1.4, zorder=4, gid=f"{gid}-mean")
        if np.isfinite(metric.threshold):
            ax.axhline(metric.threshold, color="0.3", linestyle=":", linewidth=1.0, gid=f"{gid}-threshold")
        if metric.bimodal.any():
            ax.plot(x[metric.bimodal], np.full(int(metric.bimodal.sum()), 0.95), linestyle="none", marker="*",
                    color="tab:red", transform=blended_transform_factory(ax.transData, ax.transAxes), gid=f"{gid}-bimodal")
        token_axis(ax, data, label=k >= len(axes) - n_cols)
        ax.set_title(f"{model.name}: {name}", fontsize=9)
        ax.tick_params(labelsize=7)
    title(figure, data, "seed distributions over training")
    return figure


def plot_success_probability(data: Emergence) -> Figure:
    """P(success) with its CI vs tokens (left) and vs seed-mean loss (right, decreasing to the
    right), one row per metric of :func:`chosen_metrics` with a threshold. Gids
    ``{metric}-{model}-success`` / ``-success-loss`` (lines), ``-ci`` / ``-ci-loss`` (bands)."""
    metrics = [name for name in chosen_metrics(data) if np.isfinite(data.metric(name).threshold)]
    colors = size_colors(data)
    caption = ("Success probability: fraction of seeds whose metric passes the threshold (title), band: its "
               "confidence interval (Clopper-Pearson). Right: against the mean validation loss over seeds"
               + (f" ({data.loss_metric})." if data.loss_metric else "."))
    figure, grid, axes = figure_grid(2 * len(metrics), 2, caption)
    if not metrics:
        no_data_panel(figure.add_subplot(grid[0, :]), f"no metric with a success threshold in {data.path.name}",
                      "no-metrics")
    for row, name in enumerate(metrics):
        ax_tokens, ax_loss = axes[2 * row], axes[2 * row + 1]
        for model in data.models:
            if name not in model.metrics:
                continue
            metric, gid = model.metrics[name], f"{name}-{model.name}"
            for ax, x, suffix in ((ax_tokens, data.position(model.tokens), ""), (ax_loss, mean_loss(model), "-loss")):
                ax.fill_between(x, metric.success_ci_low, metric.success_ci_high, color=colors[model.name], alpha=0.2,
                                linewidth=0, gid=f"{gid}-ci{suffix}")
                ax.plot(x, metric.success_probability, color=colors[model.name], marker="o", markersize=3, linewidth=1.5,
                        label=model.label, gid=f"{gid}-success{suffix}")
        reference = data.metric(name)
        for ax in (ax_tokens, ax_loss):
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("P(success)", fontsize=8)
            ax.set_title(f"{name} {'≥' if reference.higher_is_better else '≤'} {reference.threshold:.3g}", fontsize=9)
            ax.tick_params(labelsize=7)
        token_axis(ax_tokens, data, label=row == len(metrics) - 1)
        ax_tokens.legend(fontsize=7)
        if data.has_loss:
            loss_axis(ax_loss, data)
        else:
            no_data_panel(ax_loss, NO_LOSS_TEXT.format(path=data.path.name, what="success vs loss"), f"no-loss-{name}")
    title(figure, data, "success probability over seeds")
    return figure


def plot_mirage(data: Emergence) -> Figure:
    """Per task of ``/models/*/mirage``: its discontinuous (left) and continuous (middle) metric
    vs tokens, legend = model and sharpness; right: the verdict per model (text gid
    ``verdict-{task}``). Line gids ``{metric}-{model}-mean`` / ``-seed-{i}``."""
    tasks = list(dict.fromkeys(task for model in data.models for task in model.mirage))
    colors = size_colors(data)
    caption = ("Mirage check (Schaeffer et al. 2023): sharpness = largest rise of the seed-mean curve within half a "
               "decade of tokens relative to its total rise (1 = a jump; n/a: the curve never rises). A jump in the "
               "discontinuous metric that the continuous metric does not show is likely a metric artefact.")
    figure, grid, axes = figure_grid(3 * len(tasks), 3, caption, panel=(3.8, 2.8), width_ratios=[1.0, 1.0, 0.8])
    if not tasks:
        no_data_panel(figure.add_subplot(grid[0, :]), f"no mirage check in {data.path.name}: no task has both a "
                      "discontinuous and a continuous metric", "no-mirage")
    for row, task in enumerate(tasks):
        verdicts = []
        for model in data.models:
            check = model.mirage.get(task)
            if check is None:
                continue
            for col, kind in enumerate(("discontinuous", "continuous")):
                name, value = check[f"{kind}_metric"], check[f"sharpness_{kind}"]
                if name in model.metrics:
                    seed_lines(axes[3 * row + col], data.position(model.tokens), model.metrics[name].values,
                                colors[model.name], f"{name}-{model.name}", f"{model.label}, sharpness {sharpness_text(value)}")
                axes[3 * row + col].set_title(f"{name} ({kind})", fontsize=9)
            verdicts.append(f"{model.name}: {check['verdict']} (sharpness {sharpness_text(check['sharpness_discontinuous'])}"
                            f" vs {sharpness_text(check['sharpness_continuous'])})")
        for col in range(2):
            token_axis(axes[3 * row + col], data, label=row == len(tasks) - 1)
            axes[3 * row + col].legend(fontsize=6.5)
            axes[3 * row + col].tick_params(labelsize=7)
        axes[3 * row + 2].set_axis_off()
        axes[3 * row + 2].text(0.0, 0.5, f"{task}\n" + "\n".join(textwrap.fill(v, 44, subsequent_indent="  ") for v in verdicts),
                               fontsize=7.5, va="center", transform=axes[3 * row + 2].transAxes, gid=f"verdict-{task}")
    title(figure, data, "mirage check: discontinuous vs continuous metric")
    return figure


def plot_w1(data: Emergence) -> Figure:
    """Per metric of :func:`chosen_metrics`: ``w1_steps`` at the later checkpoint of each pair,
    one line per model (gid ``{metric}-{model}-w1``); then, with >= 2 models, one heatmap per
    such metric of ``/sizes/{metric}/w1_final`` (:func:`~brainphase.figures.emergence_panels.w1_final_heatmap`)."""
    metrics, colors = chosen_metrics(data), size_colors(data)
    caption = ("W1: Wasserstein-1 distance between the seed distributions of consecutive checkpoints, drawn at the "
               "later one: how far the distribution moved (in the metric's units). Heatmaps: W1 between the seed "
               "distributions of two sizes at their final checkpoints (/sizes/{metric}/w1_final; only with 2 or more "
               "models).")
    has_w1 = any(np.isfinite(model.metrics[name].w1_steps).any() for model in data.models for name in metrics
                 if name in model.metrics)
    shown = metrics if has_w1 else []
    final = [name for name in metrics if name in data.sizes]
    n_cols = min(max(len(shown) + len(final), 1), 3)
    figure, grid, axes = figure_grid(len(shown) + len(final), n_cols, caption)
    if not has_w1:
        no_data_panel(figure.add_subplot(grid[0, :]), f"no W1 in {data.path.name}: every model has fewer than 2 "
                      "checkpoints or no metrics", "no-w1")
    for k, (ax, name) in enumerate(zip(axes, shown)):
        for model in data.models:
            if name in model.metrics:
                ax.plot(data.position(model.tokens[1:]), model.metrics[name].w1_steps, color=colors[model.name],
                        marker="o", markersize=3, label=model.label, gid=f"{name}-{model.name}-w1")
        token_axis(ax, data, label=k >= len(shown) - n_cols)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("W1, consecutive checkpoints", fontsize=8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    for ax, name in zip(axes[len(shown):], final):
        w1_final_heatmap(ax, data, name)
    title(figure, data, "how far the seed distribution moves per checkpoint and between sizes")
    return figure


def plot_abilities_vs_loss(data: Emergence) -> Figure:
    """Each metric of :func:`chosen_metrics` against validation loss, colour = model: points
    (gid ``{metric}-{model}-seeds``, every seed at every checkpoint with both values), the seed
    means (``-mean``: x = seed-mean loss), the threshold and each model's median crossing loss
    (``-crossing``). Titles say whether sizes collapse in loss (``/sizes/{metric}``)."""
    metrics, colors = chosen_metrics(data), size_colors(data)
    caption = ("Abilities against validation loss (decreasing to the right): dots are single seeds at single "
               "checkpoints, lines the seed means; dotted: threshold; dashed: median loss at which the seeds first "
               "cross it. Sizes 'collapse' when they cross at a more similar loss than at similar tokens.")
    shown = metrics if data.has_loss else []
    figure, grid, axes = figure_grid(len(shown), min(max(len(shown), 1), 3), caption)
    if not data.has_loss:
        no_data_panel(figure.add_subplot(grid[0, :]), NO_LOSS_TEXT.format(path=data.path.name, what="abilities vs loss"),
                      "no-loss")
    elif len(data.models) == 1:
        figure.supxlabel(f"one model ({data.models[0].name}): no comparison of sizes", fontsize=8)
    for ax, name in zip(axes, shown):
        for model in data.models:
            if name not in model.metrics:
                continue
            metric, gid = model.metrics[name], f"{name}-{model.name}"
            both = np.isfinite(model.loss) & np.isfinite(metric.values)
            ax.scatter(model.loss[both], metric.values[both], s=7, color=colors[model.name], alpha=0.4, linewidths=0,
                       gid=f"{gid}-seeds")
            ax.plot(mean_loss(model), seed_mean(metric.values), color=colors[model.name], linewidth=1.6, marker="o",
                    markersize=3, label=model.label, gid=f"{gid}-mean")
            if np.isfinite(metric.crossing_loss).any():
                ax.axvline(float(np.nanmedian(metric.crossing_loss)), color=colors[model.name], linestyle="--",
                           linewidth=1.0, gid=f"{gid}-crossing")
        threshold = data.metric(name).threshold
        if np.isfinite(threshold):
            ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1.0, gid=f"{name}-threshold")
        collapse = data.sizes.get(name, {}).get("collapse_in_loss")
        ax.set_title(name + ("" if collapse is None else f"\nsizes {'collapse' if collapse else 'do not collapse'} "
                                                         "in loss"), fontsize=9)
        loss_axis(ax, data)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    title(figure, data, "abilities against validation loss, by size")
    return figure


def latent_metrics(data: Emergence) -> list[str]:
    """Discontinuous then continuous metric of task ``latent_intent``: the mirage check's pair
    when a model has one, else the preferred metric of each kind present; ``[]`` without the task."""
    for model in data.models:
        if LATENT_TASK in model.mirage:
            check = model.mirage[LATENT_TASK]
            return [check["discontinuous_metric"], check["continuous_metric"]]
    names = [name for name in data.metric_names() if name.startswith(f"{LATENT_TASK}/")]
    chosen = []
    for kind in ("discontinuous", "continuous"):
        of_kind = [name for name in names if data.metric(name).kind == kind]
        chosen += [min(of_kind, key=lambda n: metric_key(n, kind))] if of_kind else []
    return chosen


def plot_latent_intent(data: Emergence) -> Figure:
    """Task ``latent_intent`` (:func:`latent_metrics`) vs tokens (top row) and vs seed-mean loss
    (bottom row), one colour per model or run label; line gids ``{metric}-{model}-mean`` /
    ``-seed-{i}`` (tokens) and ``{metric}-{model}-loss`` (loss)."""
    names, colors = latent_metrics(data), size_colors(data)
    caption = ("Latent-intent task (continue in the intent shown by in-context examples; Jiang 2023): one colour per "
               "run (e.g. the corpus's ambiguity eps); thin lines: seeds, thick: seed mean.")
    figure, grid, axes = figure_grid(2 * len(names), max(len(names), 1), caption)
    if not names:
        no_data_panel(figure.add_subplot(grid[0, 0]), f"no {LATENT_TASK} task in {data.path.name} (train on the "
                      "latent-intent corpus, e.g. config/latent_intent.yaml)", "no-latent-intent")
    for col, name in enumerate(names):
        ax_tokens, ax_loss = axes[col], axes[len(names) + col]
        for model in data.models:
            if name in model.metrics:
                values, gid = model.metrics[name].values, f"{name}-{model.name}"
                seed_lines(ax_tokens, data.position(model.tokens), values, colors[model.name], gid, model.label)
                ax_loss.plot(mean_loss(model), seed_mean(values), color=colors[model.name], marker="o", markersize=3,
                             linewidth=1.6, label=model.label, gid=f"{gid}-loss")
        token_axis(ax_tokens, data)
        for ax in (ax_tokens, ax_loss):
            ax.set_title(f"{name} ({data.metric(name).kind})", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7)
        if data.has_loss:
            loss_axis(ax_loss, data)
        else:
            no_data_panel(ax_loss, NO_LOSS_TEXT.format(path=data.path.name, what="the ability vs loss"),
                          f"no-loss-{name}")
    title(figure, data, "latent-intent ability by run")
    return figure


PLOTS = dict(zip(EMERGENCE_FIGURES, (plot_seed_distributions, plot_success_probability, plot_mirage, plot_w1,
                                     plot_abilities_vs_loss, plot_latent_intent)))


def make_emergence_figures(emergence_path: str | Path, out_dir: str | Path, formats: Sequence[str] | None = None,
                           dpi: int = 150) -> list[Path]:
    """Draw every figure of :data:`EMERGENCE_FIGURES` from ``emergence.h5`` into ``out_dir``.

    Returns
    -------
    list of Path
        ``out_dir/{name}.{format}``, each written atomically after all figures are drawn.
    """
    data = load_emergence(emergence_path)
    formats = schema_default("figures.formats") if formats is None else formats
    written = save_figures({name: plot(data) for name, plot in PLOTS.items()}, out_dir, formats, dpi)
    logger.info("wrote %d emergence figure files to %s%s", len(written), out_dir, " (SIMULATED fMRI)" if data.simulated else "")
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase emergence-figures``."""
    parser.add_argument("--emergence", required=True, type=Path, metavar="FILE", help="emergence.h5 from `brainphase emergence`")
    parser.add_argument("--out-dir", required=True, type=Path, metavar="DIR",
                        help=f"folder for {', '.join(EMERGENCE_FIGURES)} (one file per format)")
    parser.add_argument("--formats", nargs="+", default=None, choices=FORMATS,
                        help="file formats (default: figures.formats of the schema, png pdf)")


def main(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase emergence-figures``."""
    make_emergence_figures(args.emergence, args.out_dir, args.formats)
