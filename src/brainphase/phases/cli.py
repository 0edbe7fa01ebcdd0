"""``brainphase phases`` and ``brainphase summary``: trajectory.h5 and what the user reads at the end.

``brainphase phases`` reads ``metrics.h5`` (from ``brainphase aggregate``) or a plain table of
alignment computed elsewhere (CSV/TSV with columns ``seed, step, tokens, alignment`` and any
task-metric columns), segments the seed-mean alignment over log10 tokens, names the phases with
bootstrap uncertainty (:func:`brainphase.phases.label.analyse_trajectory`) and writes
``trajectory.h5`` (layout: ``docs/hdf5_layout.md``). ``brainphase summary`` prints a short
account of a finished ``trajectory.h5``: alignment at the first, peak and last checkpoints, the
phases with their CIs, and where the outputs are.
"""

from __future__ import annotations

import argparse
import json
import logging
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import stats

from brainphase.config import schema_default
from brainphase.errors import InputError
from brainphase.io import atomic_h5, attr_text, open_h5, provenance, string_array
from brainphase.phases.aggregate import MEASURES
from brainphase.phases.label import TrajectoryPhases, analyse_trajectory
from brainphase.phases.naming import LABEL_NAMES
from brainphase.phases.noise import quiet_nanmean
from brainphase.phases.voxel_blocks import read_voxel_blocks
from brainphase.phases.read import metric_datasets
from brainphase.phases.seed_boundaries import boundary_spread, seed_boundaries

logger = logging.getLogger(__name__)

_TABLE_COLUMNS = ("seed", "step", "tokens", "alignment")
_SEGMENT_METHOD = (
    "continuous piecewise-linear least squares over log10(tokens), weighted by the measured noise; "
    "knots at or half-way between checkpoints (coordinate descent from DP and greedy starts); number of "
    "segments by chi2 + a knot cost = the (1 - false_boundary_rate) quantile of one knot's gain on simulated noise; "
    "segment trend by a likelihood-ratio test of a zero slope with the knots re-fitted; names after "
    "Nakagi et al. 2025 (brainphase.phases.label)"
)


def correlate(alignment: np.ndarray, metric: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation over checkpoints (NaN pairs left out; NaN when undefined).

    Parameters
    ----------
    alignment, metric : ndarray, shape (n_steps,)

    Returns
    -------
    dict
        ``pearson_r``, ``pearson_p``, ``spearman_rho``, ``spearman_p``.
    """
    keep = np.isfinite(alignment) & np.isfinite(metric)
    a, m = alignment[keep], metric[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(m) == 0:
        return {k: float("nan") for k in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p")}
    pearson, spearman = stats.pearsonr(a, m), stats.spearmanr(a, m)
    return {"pearson_r": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
            "spearman_rho": float(spearman.statistic), "spearman_p": float(spearman.pvalue)}


def read_table(path: Path, discontinuous: list[str], lower_is_better: list[str]) -> dict:
    """Read a CSV/TSV alignment table into the arrays of ``metrics.h5``.

    Parameters
    ----------
    path : path
        Columns ``seed, step, tokens, alignment`` (one row per seed and checkpoint) and optional
        numeric task-metric columns. Missing (seed, step) rows and empty cells become NaN gaps.
        ``.tsv``/``.tab`` files are tab-separated, others comma-separated.
    discontinuous, lower_is_better : list of str
        Metric columns that are discontinuous (e.g. accuracy) / where lower is better (e.g. loss).

    Returns
    -------
    dict
        ``seeds`` (S,), ``steps`` (T,), ``tokens`` (T,), ``alignment`` (S, T), ``metrics`` {name: (S, T)},
        ``kinds`` {name: str}, ``higher_is_better`` {name: bool}.
    """
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        table = pd.read_csv(path, sep=sep)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the table ({exc})") from exc
    missing = [c for c in _TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; a table needs {list(_TABLE_COLUMNS)} (+ optional metric "
                         f"columns), found {list(table.columns)}")
    for name in list(table.columns):
        if not pd.api.types.is_numeric_dtype(table[name]):
            raise InputError(f"{path}: column {name!r} is not numeric (e.g. {table[name].iloc[0]!r})")
    for name in (*discontinuous, *lower_is_better):
        if name not in table.columns or name in _TABLE_COLUMNS:
            raise InputError(f"{path}: --discontinuous/--lower-is-better name {name!r} is not a metric column of the table")
    if table[["seed", "step", "tokens"]].isna().any().any():
        raise InputError(f"{path}: seed, step and tokens must be filled in every row")
    duplicated = table.duplicated(["seed", "step"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise InputError(f"{path}: seed {int(row.seed)} step {int(row.step)} appears more than once")
    tokens_by_step = table.groupby("step")["tokens"].nunique()
    if (tokens_by_step > 1).any():
        raise InputError(f"{path}: step {int(tokens_by_step.index[tokens_by_step > 1][0])} has different tokens across seeds")
    seeds = np.sort(table.seed.unique()).astype(np.int64)
    steps = np.sort(table.step.unique()).astype(np.int64)
    tokens = table.groupby("step")["tokens"].first().loc[steps].to_numpy(dtype=np.int64)
    names = [c for c in table.columns if c not in _TABLE_COLUMNS]

    def grid(column: str) -> np.ndarray:
        return table.pivot(index="seed", columns="step", values=column).reindex(index=seeds, columns=steps).to_numpy(float)

    return {"seeds": seeds, "steps": steps, "tokens": tokens, "alignment": grid("alignment"),
            "metrics": {n: grid(n) for n in names},
            "kinds": {n: "discontinuous" if n in discontinuous else "continuous" for n in names},
            "higher_is_better": {n: n not in lower_is_better for n in names}}


def _write_table(group: h5py.Group, frame: pd.DataFrame) -> None:
    for column in frame.columns:
        values = frame[column].to_numpy()
        group[column] = string_array(values) if values.dtype == object else values


def _write_phases(handle: h5py.File, result: TrajectoryPhases, seeds: np.ndarray, settings: dict) -> None:
    group = handle.create_group("phases")
    for name in ("x", "curve", "fitted", "labels", "seed_labels", "seed_agreement", "sigma"):
        group[name] = getattr(result, name)
    group["label_names"] = string_array(LABEL_NAMES)
    _write_table(group.create_group("segments"), result.segments)
    _write_table(group.create_group("boundaries"), result.boundaries)
    seed_segments = result.seed_segments.copy()
    if len(seed_segments):
        seed_segments["seed"] = seeds[seed_segments["seed"].to_numpy()]
    _write_table(group.create_group("seed_segments"), seed_segments)
    matched = seed_boundaries(seed_segments, result.boundaries)
    _write_table(group.create_group("seed_boundaries"), matched)
    _write_table(group.create_group("boundary_spread"), boundary_spread(matched, result.boundaries, result.segments))
    boot = group.create_group("bootstrap")
    boot["knots_log10_tokens"] = result.bootstrap_knots
    probability = group.create_group("phase_probability")
    for name, value in result.phase_probability.items():
        probability[name] = value
    versions = {lib: metadata.version(lib) for lib in ("numpy", "scipy", "pandas")}
    group.attrs.update({
        "status": result.status, "summary": result.summary, "method": _SEGMENT_METHOD,
        "noise_source": result.noise_source, "bootstrap_kind": result.bootstrap_kind,
        "confidence": 0.95, "library_versions": json.dumps(versions), **settings,
    })


def phases(source: str | Path, out: str | Path, *, table: bool = False, measure: str | None = None,
           max_segments: int | None = None, min_points: int | None = None, false_boundary_rate: float | None = None,
           n_bootstrap: int | None = None, bootstrap_seed: int | None = None, voxel_blocks: int | None = None,
           discontinuous: list[str] = (),
           lower_is_better: list[str] = (), config: argparse.Namespace | dict | None = None) -> TrajectoryPhases:
    """Write ``trajectory.h5`` from ``metrics.h5`` (or a table) with the phase analysis.

    Parameters
    ----------
    source : path
        ``metrics.h5`` from ``brainphase aggregate``, or with ``table=True`` a CSV/TSV table
        (:func:`read_table`).
    out : path
        ``trajectory.h5`` to write (atomically).
    measure : str
        Which ``/brain/alignment_{measure}`` of ``metrics.h5`` is segmented (ignored for tables).
    max_segments, min_points, false_boundary_rate, n_bootstrap, bootstrap_seed
        See :func:`brainphase.phases.label.analyse_trajectory`; ``None`` = the schema's default.
    voxel_blocks : int, optional
        Resample the voxel blocks of metrics.h5 (:func:`brainphase.phases.voxel_blocks.read_voxel_blocks`;
        0 = no voxel resampling); ``None`` = the schema's default.
    discontinuous, lower_is_better : list of str
        Kinds of the table's metric columns.

    Returns
    -------
    TrajectoryPhases
    """
    settings = {key: schema_default(f"phases.{key}") if value is None else value for key, value in (
        ("measure", measure), ("max_segments", max_segments), ("min_points", min_points),
        ("false_boundary_rate", false_boundary_rate),
        ("n_bootstrap", n_bootstrap), ("bootstrap_seed", bootstrap_seed), ("voxel_blocks", voxel_blocks))}
    source = Path(source)
    if config is None:
        config = {"source": source, "out": out, "table": table, **settings}
    if table:
        data = read_table(source, list(discontinuous), list(lower_is_better))
        settings["measure"] = "table"
        subject_alignment = blocks = None
        attrs = provenance("phases", config, [source], model_id=source.stem, simulated=False,
                           n_seeds=len(data["seeds"]), n_steps=len(data["steps"]))
    else:
        with open_h5(source, stage="aggregate") as src:
            key = f"brain/alignment_{settings['measure']}"
            if key not in src:
                available = [m for m in MEASURES if f"brain/alignment_{m}" in src]
                raise InputError(f"{source}: no /{key}: phases.measure {settings['measure']!r} is not available in these "
                                 f"scores (available: {available}); choose another or re-run encode with what it needs")
            data = {"seeds": src["seeds"][()], "steps": src["steps"][()], "tokens": src["tokens"][()],
                    "alignment": src[key][()],
                    "metrics": {name: dataset[()] for name, dataset in metric_datasets(src).items()}}
            subject_key = f"{key}_subject"
            subject_alignment = src[subject_key][()] if subject_key in src else None
            blocks = read_voxel_blocks(src, settings["measure"], settings["voxel_blocks"])
            attrs = provenance("phases", config, [source], model_id=attr_text(src, "model_id"),
                               simulated=bool(src.attrs.get("simulated", False)), n_seeds=len(data["seeds"]),
                               n_steps=len(data["steps"]), aggregate_input_sha256=attr_text(src, "input_sha256"))
    result = analyse_trajectory(data["tokens"], data["alignment"], data["steps"], subject_alignment, data["metrics"],
                                settings["max_segments"], settings["min_points"], settings["false_boundary_rate"],
                                settings["n_bootstrap"], settings["bootstrap_seed"], voxel_blocks=blocks)
    if result.status != "labelled":
        logger.warning("%s", result.summary)
    curve = quiet_nanmean(data["alignment"], axis=0)
    correlations = {name: correlate(curve, quiet_nanmean(values, axis=0)) for name, values in sorted(data["metrics"].items())}
    with atomic_h5(out, attrs) as handle:
        if table:
            for name in ("seeds", "steps", "tokens"):
                handle[name] = data[name]
            handle["brain/alignment"] = data["alignment"]
            for name, values in data["metrics"].items():
                handle[f"metrics/{name}"] = values
                handle[f"metrics/{name}"].attrs.update(kind=data["kinds"][name], higher_is_better=data["higher_is_better"][name])
        else:
            with open_h5(source) as src:  # every group with its attrs: /brain, /metrics/{task}, /internal, ...
                for name in src:
                    src.copy(src[name], handle, name=name)
            handle["brain/alignment"] = data["alignment"]
        handle["brain/alignment"].attrs["measure"] = settings["measure"]
        _write_phases(handle, result, np.asarray(data["seeds"]), settings)
        corr = handle.create_group("correlations")
        corr.attrs["definition"] = ("correlation over checkpoints of the seed-mean brain/alignment with each seed-mean "
                                    "task metric (/metrics/{task}/{metric}, named task/metric; NaN when a series is "
                                    "constant or has < 3 points)")
        corr["metric_names"] = string_array(list(correlations))
        for key in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"):
            corr[key] = np.array([c[key] for c in correlations.values()], dtype=np.float64)
    logger.info("phases (%s): %s -> %s", settings["measure"], result.summary, out)
    return result


def add_phases_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase phases`` (defaults: config/schema.yaml, section ``phases``)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics", type=Path, metavar="FILE", help="metrics.h5 from `brainphase aggregate`")
    source.add_argument("--table", type=Path, metavar="FILE",
                        help="CSV/TSV with columns seed, step, tokens, alignment (+ optional task-metric columns), "
                             "e.g. alignment computed with another tool")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="trajectory.h5 to write")
    parser.add_argument("--measure", default=schema_default("phases.measure"),
                        help="alignment curve of metrics.h5 to segment (default %(default)s)")
    for key, kind, text in (("max_segments", int, "most linear segments"), ("min_points", int, "fewest checkpoints per segment"),
                            ("false_boundary_rate", float, "share of straight noisy lines allowed a spurious boundary"),
                            ("n_bootstrap", int, "bootstrap resamples (0 = none)"), ("bootstrap_seed", int, "bootstrap seed"),
                            ("voxel_blocks", int, "voxel blocks of metrics.h5 resampled too (0 = none)")):
        parser.add_argument("--" + key.replace("_", "-"), type=kind, default=schema_default(f"phases.{key}"),
                            help=f"{text} (default %(default)s)")
    parser.add_argument("--discontinuous", nargs="*", default=[], metavar="NAME",
                        help="--table: metric columns that are discontinuous (accuracy, exact match)")
    parser.add_argument("--lower-is-better", nargs="*", default=[], metavar="NAME",
                        help="--table: metric columns where lower is better (loss)")


def run_phases(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase phases``."""
    phases(args.table or args.metrics, args.out, table=args.table is not None, measure=args.measure,
           max_segments=args.max_segments, min_points=args.min_points,
           false_boundary_rate=args.false_boundary_rate,
           n_bootstrap=args.n_bootstrap, bootstrap_seed=args.bootstrap_seed, voxel_blocks=args.voxel_blocks,
           discontinuous=args.discontinuous,
           lower_is_better=args.lower_is_better, config=args)


def improving_metrics(traj, segment: pd.Series) -> list[str]:
    """Task metrics that improve over one segment: ``task/{name}/trend`` is ``rising`` (``falling``
    for a lower-is-better metric), i.e. the 95% CI of the change over seeds excludes 0."""
    names = []
    for name in traj.metrics:
        better = "rising" if traj.metric_higher_is_better.get(name, True) else "falling"
        if segment.get(f"task/{name}/trend") == better:
            names.append(name)
    return names


def summary_text(trajectory_path: str | Path, figures_dir: str | Path | None = None, report: str | Path | None = None) -> str:
    """A few lines a person reads at the end of a run (see ``brainphase summary``): alignment at the
    first, peak and last checkpoints, each phase with its CI and the task metrics that improve in it
    (discontinuous ones named, continuous ones counted)."""
    from brainphase.phases.read import load_trajectory

    traj = load_trajectory(trajectory_path)
    curve = traj.curve
    lines = [f"brainphase: {traj.model_id}" + (" (fMRI SIMULATED)" if traj.simulated else ""),
             f"  alignment ({traj.measure}), seed mean over {len(traj.seeds)} seed(s), {len(traj.steps)} checkpoint(s):"]
    if np.isfinite(curve).any():
        peak = int(np.nanargmax(curve))
        first, last = int(np.flatnonzero(np.isfinite(curve))[0]), int(np.flatnonzero(np.isfinite(curve))[-1])
        for label, i in (("first", first), ("peak", peak), ("last", last)):
            lines.append(f"    {label:5s} step {traj.steps[i]:>8d} ({traj.tokens[i]:.3g} tokens): {curve[i]:.4f}")
    lines.append("  phases: " + traj.phase_attrs.get("summary", ""))
    for _, row in traj.segments.iterrows():
        lines.append(f"    {row.phase:<20s} steps {row.start_step}-{row.end_step}  slope {row.slope:+.3g}/decade "
                     f"[{row.slope_ci_low:.3g}, {row.slope_ci_high:.3g}]  P(phase exists) {row.p_exists:.2f}")
        if traj.metrics and len(traj.seeds) < 2:
            lines.append("      tasks improving: unknown (one seed: no interval over seeds)")
        elif traj.metrics:
            improving = improving_metrics(traj, row)
            named = [n for n in improving if traj.metric_kinds.get(n) == "discontinuous"]
            lines.append(f"      tasks improving: {', '.join(named) or 'no discontinuous metric'}"
                         f" (+{len(improving) - len(named)} continuous metric(s) of {len(traj.metrics)} in all)")
    lines.append(f"  trajectory: {trajectory_path}")
    if figures_dir is not None:
        lines.append(f"  figures:    {figures_dir}")
    if report is not None:
        lines.append(f"  report:     {report}")
    return "\n".join(lines)


def add_summary_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase summary``."""
    parser.add_argument("--trajectory", required=True, nargs="+", type=Path, metavar="FILE", help="trajectory.h5 file(s)")
    parser.add_argument("--figures-dir", nargs="*", default=None, type=Path, metavar="DIR",
                        help="figure folder of each trajectory (printed)")
    parser.add_argument("--report", default=None, metavar="FILE", help="report file to mention (e.g. report.html)")


def run_summary(args: argparse.Namespace) -> None:
    """Entry point of ``brainphase summary``: print the summary of each trajectory.h5."""
    figures = list(args.figures_dir or [None] * len(args.trajectory))
    if len(figures) != len(args.trajectory):
        raise InputError("--figures-dir needs one folder per --trajectory file")
    for path, folder in zip(args.trajectory, figures):
        print(summary_text(path, folder, args.report))
