"""Tests of brainphase.figures on synthetic trajectory.h5 files written here from the layout
of docs/hdf5_layout.md (planted piecewise-linear alignment, known boundaries and CIs)."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from brainphase import cli
from brainphase.figures import (FIGURE_NAMES, PLOTS, TABLE_NAME, load_figure_data, make_figures, metric_order, phase_spans,
                                plot_alignment, plot_alignment_vs_tasks, plot_brain_maps, plot_internal, plot_layers,
                                plot_tasks)
from brainphase.figures.brain import NO_MAPS_TEXT, map_checkpoints
from brainphase.figures.curves import fitted_path, spearman_rho
from brainphase.figures.internal import NO_INTERNAL_TEXT
from brainphase.figures.tasks import NO_METRICS_TEXT, alignment_task_metrics, family_panels
from brainphase.figures.data import token_positions
from brainphase.figures.layers import layer_means

PHASE_CODES = {"alignment": 0, "detachment": 1, "realignment": 2, "plateau": 3}
SEGMENT_COLUMNS = ("start_step", "end_step", "start_tokens", "end_tokens", "start_tokens_ci_low",
                   "start_tokens_ci_high", "end_tokens_ci_low", "end_tokens_ci_high", "slope", "slope_ci_low",
                   "slope_ci_high", "p_exists")


#: (name, family, kind) of the planted task metrics: 3 families, several tasks and metrics each
TASKS = (("heldout_text/acc", "next_token", "discontinuous"), ("heldout_text/loss", "next_token", "continuous"),
         ("heldout_text/brier", "next_token", "continuous"),
         ("induction/acc", "induction", "discontinuous"), ("induction/logprob", "induction", "continuous"),
         ("blimp_agreement/acc", "formal", "discontinuous"), ("blimp_word_order/acc", "formal", "discontinuous"),
         ("blimp_agreement/logprob", "formal", "continuous"), ("blimp_word_order/logprob", "formal", "continuous"))
INTERNAL = ("twonn_dimension", "cka_final", "anisotropy")


def _strings(values):
    return np.array(list(values), dtype=h5py.string_dtype())


def write_trajectory(path, *, tokens, knots=(), slopes=(0.05,), phases=("alignment",), n_seeds=3, n_layers=4,
                     nan_steps=(), simulated=True, voxel_shape=None, status="labelled", store_x=True, seed=0,
                     task_layout="families", internal=True):
    # store_x=False writes /phases/x as NaN (the figures place checkpoints themselves)
    """Write a trajectory.h5 with the datasets of the phases spec and a planted curve.

    Alignment is piecewise linear in log10 tokens (``x``: step 0 one log-spacing before the
    first positive checkpoint) with breakpoints ``knots`` and ``slopes`` per decade; seeds add
    noise; ``/phases/fitted`` is the planted curve; each boundary's CI is ±0.15 decade.
    ``nan_steps``: checkpoint indices set to NaN in every alignment and metric dataset.
    ``voxel_shape``: (X, Y, Z) of a tiny mask (a ball) for ``/brain/voxel_r``.
    ``task_layout``: "families" (``/metrics/{task}/{metric}`` of :data:`TASKS`, group attrs),
    "flat" (three ``/metrics/{name}`` as older files) or "none" (no ``/metrics``).
    ``internal``: write ``/internal/{name}`` (S, T, L) of :data:`INTERNAL` (value = planted formula).
    """
    rng = np.random.default_rng(seed)
    tokens = np.asarray(tokens, dtype=np.int64)
    n_steps = len(tokens)
    steps = tokens // 2_097_152
    positive = np.log10(tokens[tokens > 0].astype(float))
    spacing = positive[1] - positive[0] if positive.size > 1 else 1.0
    x = np.where(tokens > 0, np.log10(np.maximum(tokens, 1).astype(float)), (positive[0] if positive.size else 0.0) - spacing)
    curve = 0.02 + slopes[0] * (x - x[0])
    for knot, before, after in zip(knots, slopes[:-1], slopes[1:]):
        curve += (after - before) * np.maximum(x - knot, 0)
    alignment = curve + rng.normal(0, 0.004, (n_seeds, n_steps))
    layer_profile = np.exp(-0.5 * ((np.arange(n_layers) - n_layers * 0.6) / 1.5) ** 2)
    alignment_layer = alignment[:, :, None] * (0.5 + layer_profile) + rng.normal(0, 0.002, (n_seeds, n_steps, n_layers))
    accuracy = 0.05 + 0.3 / (1 + np.exp(-6 * (x - x.mean()))) + rng.normal(0, 0.005, (n_seeds, n_steps))
    loss = 8 - 1.2 * (x - x[0]) + rng.normal(0, 0.05, (n_seeds, n_steps))
    probability = np.exp(-loss) * 50
    arrays = [alignment, alignment_layer, accuracy, loss, probability]
    for values in arrays:
        values[:, list(nan_steps)] = np.nan
    labelled = status == "labelled"
    segment_of = np.searchsorted(np.asarray(knots, dtype=float), x, side="right")
    labels = np.array([PHASE_CODES[phases[s]] for s in segment_of], dtype=np.int8) if labelled else np.full(n_steps, -1, np.int8)
    with h5py.File(path, "w") as f:
        f.attrs.update(stage="phases", simulated=simulated, model_id="tiny-test")
        f["seeds"], f["steps"], f["tokens"] = np.arange(1, n_seeds + 1), steps, tokens
        f["layers"], f["subjects"] = np.arange(n_layers), _strings(["sub-01", "sub-02"])
        f["brain/alignment"] = alignment
        f["brain/alignment"].attrs["measure"] = "held-out-layer r, mean over ROI voxels and subjects"
        f["brain/alignment_heldout_layer"] = alignment
        f["brain/alignment_layer_mean"] = alignment_layer.mean(axis=2)
        f["brain/alignment_beyond_baselines"] = alignment * 0.4
        f["brain/alignment_layer"] = alignment_layer
        f["roi_names"] = _strings(["IFG", "pSTG"])
        roi_mean_r = alignment_layer[:, :, :, None, None] * np.array([1.0, 0.5])[None, None, None, None, :] * np.ones((1, 1, 1, 2, 1))
        f["brain/roi_mean_r"] = roi_mean_r
        f["brain/alignment_roi"] = roi_mean_r[:, :, -1].mean(axis=2)
        if task_layout == "flat":
            for name, values, kind in (("next_token_accuracy", accuracy, "discontinuous"), ("loss", loss, "continuous"),
                                       ("correct_token_probability", probability, "continuous")):
                f[f"metrics/{name}"] = values
                f[f"metrics/{name}"].attrs.update(kind=kind, higher_is_better=name != "loss")
        elif task_layout == "families":
            for k, (name, family, kind) in enumerate(TASKS):
                task = name.split("/")[0]
                f.require_group(f"metrics/{task}").attrs.update(family=family, version="1", n_items=20)
                base = {"acc": accuracy, "loss": loss, "logprob": -loss, "brier": 1 - accuracy}[name.split("/")[1]]
                f[f"metrics/{name}"] = base + 0.01 * k
                f[f"metrics/{name}"].attrs.update(kind=kind, higher_is_better=not name.endswith(("loss", "brier")))
        if internal:
            for k, name in enumerate(INTERNAL):
                values = (k + 1) * alignment_layer + np.arange(n_layers)  # layer l offset by l
                f[f"internal/{name}"] = values
                f[f"internal/{name}"].attrs["description"] = f"planted {name}"
            f["internal"].attrs["layers"] = np.arange(n_layers)
        if voxel_shape is not None:
            grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in voxel_shape], indexing="ij"))
            mask = (grid ** 2).sum(axis=0) <= 0.8
            affine = np.diag([150.0 / voxel_shape[0], 180.0 / voxel_shape[1], 150.0 / voxel_shape[2], 1.0])
            affine[:3, 3] = [-75, -110, -60]
            weights = grid[0][mask]  # left-right gradient, scaled by the curve
            f["brain/voxel_r"] = (np.nanmean(alignment, axis=0)[:, None] * (1 + 4 * weights[None, :])).astype(np.float32)
            f["mask/mask"], f["mask/affine"] = mask.astype(np.uint8), affine
        g = f.create_group("phases")
        g.attrs.update(status=status, summary=" -> ".join(phases) + "; planted" if labelled else "",
                       method="planted", max_segments=5, min_points=3)
        g["x"] = x if store_x else np.full(n_steps, np.nan)  # no finite axis: every checkpoint at 0 tokens
        counts = np.isfinite(alignment).sum(axis=0)
        g["curve"] = np.where(counts > 0, np.nansum(alignment, axis=0) / np.maximum(counts, 1), np.nan)
        g["fitted"] = curve if labelled else np.full(n_steps, np.nan)
        g["labels"] = labels
        g["label_names"] = _strings(PHASE_CODES)
        n_seg = len(knots) + 1 if labelled else 0
        edges = np.concatenate([[x[0]], knots, [x[-1]]])
        seg = g.create_group("segments")
        seg["phase"] = _strings(phases[:n_seg])
        seg["trend"] = _strings(["rising" if s > 0 else "falling" for s in slopes[:n_seg]])
        for column in SEGMENT_COLUMNS:
            seg[column] = np.zeros(n_seg)
        seg["slope"][...] = np.asarray(slopes[:n_seg], dtype=float)
        seg["start_tokens"][...] = (10 ** edges[:-1])[:n_seg]
        b = g.create_group("boundaries")
        knots_used = np.asarray(knots if labelled else [], dtype=float)
        b["log10_tokens"], b["tokens"] = knots_used, 10 ** knots_used
        b["step"] = np.array([steps[np.argmin(np.abs(x - k))] for k in knots_used], dtype=np.int64)
        b["tokens_ci_low"], b["tokens_ci_high"] = 10 ** (knots_used - 0.15), 10 ** (knots_used + 0.15)
        g["seed_labels"] = np.repeat(labels[None], n_seeds, axis=0)
        g["seed_agreement"] = np.ones(n_seeds)
        g["seed_segments/seed"] = np.repeat(np.arange(1, n_seeds + 1), n_seg)
        g.create_group("phase_probability")
        for name in phases[:n_seg]:
            g[f"phase_probability/{name}"] = 1.0
        corr = f.create_group("correlations")
        corr["metric_names"] = _strings(["loss"])
        for column in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"):
            corr[column] = np.array([np.nan])
    return path


PYTHIA_LIKE = np.concatenate([[0], 2 ** np.arange(0, 10), np.arange(1000, 6001, 1000)]) * 2_097_152
THREE_PHASES = dict(tokens=PYTHIA_LIKE, knots=(9.2, 9.9), slopes=(0.08, -0.1, 0.06),
                    phases=("alignment", "detachment", "realignment"))


@pytest.fixture(scope="module")
def three_phase(tmp_path_factory):
    return write_trajectory(tmp_path_factory.mktemp("traj") / "trajectory.h5", **THREE_PHASES)


@pytest.fixture(scope="module")
def with_voxel_maps(tmp_path_factory):
    return write_trajectory(tmp_path_factory.mktemp("traj") / "voxels.h5", voxel_shape=(9, 11, 9), **THREE_PHASES)


def _by_gid(artists):
    return {a.get_gid(): a for a in artists if a.get_gid() is not None}


def _curve_axes(figure):
    """The first axes with lines (the caption row is an axes without any)."""
    return next(ax for ax in figure.axes if ax.get_lines())


def _texts(figure):
    return " ".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))


def test_token_positions_put_step_zero_one_spacing_left():
    x = token_positions(np.array([0, 100, 1000, 100_000]))
    np.testing.assert_allclose(x, [1.0, 2.0, 3.0, 5.0])
    np.testing.assert_allclose(token_positions(np.array([0])), [-1.0])


def test_phase_spans_meet_at_knots_and_skip_unlabelled():
    labels = np.array([-1, 0, 0, 1, 1, 1, 2, 2])
    x = np.array([0.0, 1, 2, 3, 4, 5, 6, 7])
    # knot 2.4 lies between checkpoints 2 and 3; no knot between 5 and 6 -> midpoint 5.5
    assert phase_spans(labels, x, np.array([2.4])) == [(0, 1.0, 2.4), (1, 2.4, 5.5), (2, 5.5, 7.0)]
    assert phase_spans(np.full(4, -1), x[:4], np.array([])) == []
    # an unlabelled gap splits a phase without sharing edges
    assert phase_spans(np.array([0, -1, 0]), x[:3], np.array([])) == [(0, 0.0, 0.0), (0, 2.0, 2.0)]


def test_alignment_figure_draws_the_stored_curves(three_phase):
    data = load_figure_data(three_phase)
    figure = plot_alignment(data)
    ax = _curve_axes(figure)
    lines = _by_gid(ax.get_lines())
    for seed, row in zip(data.seeds, data.alignment):
        np.testing.assert_array_equal(lines[f"alignment-seed-{seed}"].get_ydata(), row)
        np.testing.assert_array_equal(lines[f"alignment-seed-{seed}"].get_xdata(), data.x)
    np.testing.assert_allclose(lines["alignment-mean"].get_ydata(), data.alignment.mean(axis=0))
    assert "alt-alignment_layer_mean" in lines and "alt-alignment_beyond_baselines" in lines
    assert "alt-alignment_heldout_layer" not in lines  # identical to the main curve: not drawn twice
    # the fit has its corners at the planted knots (between checkpoints), on the planted line
    fx, fy = lines["fitted"].get_xdata(), lines["fitted"].get_ydata()
    for knot in THREE_PHASES["knots"]:
        assert knot in fx
    planted = 0.02 + 0.08 * (fx - data.x[0]) - 0.18 * np.maximum(fx - 9.2, 0) + 0.16 * np.maximum(fx - 9.9, 0)
    np.testing.assert_allclose(fy, planted, atol=1e-12)
    spans = {gid: p for gid, p in _by_gid(ax.patches).items() if gid.startswith("phase-")}
    assert set(spans) == {"phase-0", "phase-1", "phase-2"}
    detachment = spans["phase-1"]
    np.testing.assert_allclose([detachment.get_x(), detachment.get_x() + detachment.get_width()], [9.2, 9.9])
    # boundary CI bar spans ±0.15 decade around each knot
    for k, knot in enumerate(THREE_PHASES["knots"]):
        np.testing.assert_allclose(lines[f"boundary-ci-{k}"].get_xdata(), [knot - 0.15, knot + 0.15])
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "0"  # step 0 on the log axis
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"alignment", "detachment", "realignment", "piecewise-linear fit"} <= legend
    assert "alignment -> detachment -> realignment" in _texts(figure)
    assert figure._suptitle.get_text().startswith("SIMULATED fMRI")


def _panels(figure):
    return {ax.get_title(): ax for ax in figure.axes if ax.get_title()}


def test_tasks_one_row_per_family_discontinuous_left(three_phase):
    data = load_figure_data(three_phase)
    assert data.metric_families["blimp_word_order/acc"] == "formal"
    assert metric_order(data)[:3] == ["heldout_text/acc", "heldout_text/loss", "heldout_text/brier"]
    rows = family_panels(data)
    assert [family for family, _, _ in rows] == ["next_token", "induction", "formal"]
    assert rows[2][1] == ["blimp_agreement/acc", "blimp_word_order/acc"]
    assert rows[2][2] == [("logprob", ["blimp_agreement/logprob", "blimp_word_order/logprob"])]
    figure = plot_tasks(data)
    panels = _panels(figure)
    assert set(panels) == {"next_token: discontinuous", "next_token: loss (lower is better)",
                           "next_token: brier (lower is better)", "induction: discontinuous", "induction: logprob",
                           "formal: discontinuous", "formal: logprob"}
    position = {t: ax.get_position() for t, ax in panels.items()}
    # rows top to bottom in family order; the discontinuous panel left of every continuous one in its row
    assert position["next_token: discontinuous"].y0 > position["induction: discontinuous"].y0 > position["formal: discontinuous"].y0
    for family in ("next_token", "induction", "formal"):
        left = position[f"{family}: discontinuous"]
        for t, p in position.items():
            if t.startswith(family) and "discontinuous" not in t:
                assert p.x0 > left.x0 and abs(p.y0 - left.y0) < 1e-6, t
    # one line per task metric in its panel: seed mean = the data, seeds thin
    lines = _by_gid(panels["formal: logprob"].get_lines())
    for name in ("blimp_agreement/logprob", "blimp_word_order/logprob"):
        np.testing.assert_allclose(lines[f"{name}-mean"].get_ydata(), data.metrics[name].mean(axis=0))
        for seed, row in zip(data.seeds, data.metrics[name]):
            np.testing.assert_array_equal(lines[f"{name}-seed-{seed}"].get_ydata(), row)
    assert "heldout_text/acc-mean" not in lines
    assert {"phase-0", "phase-1", "phase-2"} <= set(_by_gid(panels["induction: logprob"].patches))


def test_tasks_of_an_older_flat_file_form_one_row(tmp_path):
    data = load_figure_data(write_trajectory(tmp_path / "flat.h5", task_layout="flat", **THREE_PHASES))
    assert set(data.metric_families.values()) == {""}
    panels = _panels(plot_tasks(data))
    assert set(panels) == {"other metrics: discontinuous", "other metrics: correct_token_probability",
                           "other metrics: loss (lower is better)"}
    figure = plot_alignment_vs_tasks(data)
    assert [line.get_gid() for ax in figure.axes for line in ax.get_lines()] == ["path-next_token_accuracy",
                                                                                 "path-loss"]  # preferred metrics


def test_alignment_vs_tasks_one_metric_of_each_kind_per_family(three_phase):
    data = load_figure_data(three_phase)
    chosen = alignment_task_metrics(data)
    assert chosen == [("next_token", ["heldout_text/acc", "heldout_text/loss"]),
                      ("induction", ["induction/acc", "induction/logprob"]),
                      ("formal", ["blimp_agreement/acc", "blimp_agreement/logprob"])]
    figure = plot_alignment_vs_tasks(data)
    paths = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines()}
    assert set(paths) == {f"path-{name}" for _, names in chosen for name in names}
    for _, names in chosen:
        for name in names:
            np.testing.assert_allclose(paths[f"path-{name}"].get_xdata(), data.metrics[name].mean(axis=0))
            np.testing.assert_allclose(paths[f"path-{name}"].get_ydata(), data.alignment.mean(axis=0))
    colorbar = figure.axes[-1]
    assert colorbar.get_yticklabels()[0].get_text() == "0"
    assert "6 of 9 task metrics shown" in figure._supxlabel.get_text()


def test_internal_one_panel_per_metric_one_line_per_layer(three_phase):
    data = load_figure_data(three_phase)
    figure = plot_internal(data)
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_title()}
    assert set(panels) == {"twonn_dimension", "cka_final", "anisotropy"}
    with h5py.File(three_phase) as f:
        planted = f["internal/cka_final"][()]
    lines = _by_gid(panels["cka_final"].get_lines())
    for layer in range(planted.shape[2]):
        np.testing.assert_allclose(lines[f"cka_final-layer-{layer}"].get_ydata(), planted[:, :, layer].mean(axis=0))
        np.testing.assert_array_equal(lines[f"cka_final-layer-{layer}"].get_xdata(), data.x)
    assert {"phase-0", "phase-1", "phase-2"} <= set(_by_gid(panels["anisotropy"].patches))
    assert "planted twonn_dimension" in _texts(figure)


def test_no_tasks_and_no_internal_metrics_get_a_note_panel(tmp_path):
    path = write_trajectory(tmp_path / "bare.h5", task_layout="none", internal=False, **THREE_PHASES)
    data = load_figure_data(path)
    assert not data.metrics and not data.internal_metrics
    assert NO_METRICS_TEXT in _texts(plot_tasks(data)) and NO_METRICS_TEXT in _texts(plot_alignment_vs_tasks(data))
    assert NO_INTERNAL_TEXT in _texts(plot_internal(data))
    make_figures(path, tmp_path / "out", ["png"])
    _assert_written(tmp_path / "out", ["png"])


def test_layers_heatmap_is_the_seed_mean(three_phase):
    data = load_figure_data(three_phase)
    figure = plot_layers(data)
    heat = next(im for ax in figure.axes for im in ax.get_images() if im.get_gid() == "heatmap")
    np.testing.assert_allclose(heat.get_array(), data.alignment_layer.mean(axis=0).T)
    assert heat.get_array().shape == (len(data.layers), len(data.steps))
    strip = next(im for ax in figure.axes for im in ax.get_images() if im.get_gid() == "phase-strip")
    np.testing.assert_array_equal(strip.get_array()[0], data.labels + 1)


def test_spearman_rho_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=30), rng.normal(size=30)
    a[5:9] = a[4]  # ties
    assert spearman_rho(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman_rho(a, 2 * a + 1) == pytest.approx(1.0)
    assert np.isnan(spearman_rho(np.ones(5), b[:5]))


def test_brain_maps_at_first_boundaries_last(with_voxel_maps, tmp_path):
    data = load_figure_data(with_voxel_maps)
    chosen = map_checkpoints(data)
    nearest = [int(np.argmin(np.abs(data.x - k))) for k in THREE_PHASES["knots"]]
    assert [i for i, _ in chosen] == sorted({0, *nearest, len(data.steps) - 1})
    assert "alignment → detachment" in dict(chosen)[nearest[0]]
    figure = plot_brain_maps(data)
    assert len([a for a in figure.axes if a.get_gid() and a.get_gid().startswith("map-")]) == len(chosen)
    for fmt in ("png", "pdf"):
        figure.savefig(tmp_path / f"brain_maps.{fmt}", dpi=60)
        assert (tmp_path / f"brain_maps.{fmt}").stat().st_size > 5000


def _assert_written(out, formats=("png", "pdf")):
    expected = {f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in formats}
    assert {p.name for p in out.iterdir()} == expected | {TABLE_NAME}
    table = pd.read_csv(out / TABLE_NAME, sep="\t")
    assert list(table.columns) == ["seed", "step", "tokens", "layer", "roi", "alignment"]
    for name in expected:
        data = (out / name).read_bytes()
        assert len(data) > 5000 and data[:4] in (b"\x89PNG", b"%PDF"), name


def test_cli_writes_every_file_and_rejects_a_non_trajectory(three_phase, tmp_path):
    out = tmp_path / "figs"
    assert cli.main(["figures", "--trajectory", str(three_phase), "--out-dir", str(out)]) == 0
    _assert_written(out)
    bad_file = tmp_path / "metrics.h5"
    with h5py.File(bad_file, "w") as f:
        f.attrs["stage"] = "aggregate"
    assert cli.main(["figures", "--trajectory", str(bad_file), "--out-dir", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_one_checkpoint_renders_with_a_note(tmp_path):
    path = write_trajectory(tmp_path / "one.h5", tokens=[0], status="skipped: 1 checkpoint(s); at least 4 are needed",
                            store_x=False, n_seeds=2)
    make_figures(path, tmp_path / "out", ["png"])
    _assert_written(tmp_path / "out", ["png"])
    data = load_figure_data(path)
    assert not data.labelled
    figure = plot_alignment(data)
    assert "Phases not labelled: 1 checkpoint(s); at least 4 are needed" in _texts(figure)
    assert "fitted" not in _by_gid(_curve_axes(figure).get_lines())
    assert not [p for p in _curve_axes(figure).patches if (p.get_gid() or "").startswith("phase-")]


def test_skipped_status_draws_no_phases(tmp_path):
    path = write_trajectory(tmp_path / "skip.h5", tokens=PYTHIA_LIKE, status="skipped: no finite alignment")
    figure = plot_tasks(load_figure_data(path))
    assert "Phases not labelled: no finite alignment." in _texts(figure)
    assert not [p for ax in figure.axes for p in ax.patches if (p.get_gid() or "").startswith("phase-")]


def test_nan_steps_are_gaps(tmp_path):
    path = write_trajectory(tmp_path / "gap.h5", nan_steps=(5, 6), **THREE_PHASES)
    data = load_figure_data(path)
    mean = _by_gid(_curve_axes(plot_alignment(data)).get_lines())["alignment-mean"].get_ydata()
    assert np.isnan(mean[[5, 6]]).all() and np.isfinite(np.delete(mean, [5, 6])).all()
    heat = layer_means(data)
    assert np.isnan(heat[:, [5, 6]]).all()
    make_figures(path, tmp_path / "out", ["png"])
    _assert_written(tmp_path / "out", ["png"])


def test_not_simulated_says_nothing_and_no_maps_panel(tmp_path):
    path = write_trajectory(tmp_path / "real.h5", simulated=False, **THREE_PHASES)
    data = load_figure_data(path)
    for plot in (plot_alignment, plot_layers, plot_tasks, plot_alignment_vs_tasks, plot_internal, plot_brain_maps):
        assert "SIMULATED" not in _texts(plot(data)), plot.__name__
    assert NO_MAPS_TEXT in _texts(plot_brain_maps(data))
    simulated = load_figure_data(write_trajectory(tmp_path / "sim.h5", **THREE_PHASES))
    for plot in (plot_alignment, plot_layers, plot_tasks, plot_alignment_vs_tasks, plot_internal, plot_brain_maps):
        assert "SIMULATED" in _texts(plot(simulated)), plot.__name__


def test_fitted_path_without_segments_is_the_checkpoints(tmp_path):
    path = write_trajectory(tmp_path / "one_segment.h5", tokens=PYTHIA_LIKE)
    data = load_figure_data(path)
    fx, fy = fitted_path(data)
    np.testing.assert_array_equal(fx, data.x)
    np.testing.assert_array_equal(fy, data.fitted)


def test_figures_of_a_real_phases_run(tmp_path):
    """End to end with the phases stage: a planted 3-phase table -> `brainphase phases` -> figures."""
    rng = np.random.default_rng(5)
    x = np.log10(PYTHIA_LIKE[1:].astype(float))
    rows = ["seed,step,tokens,alignment,accuracy"]
    for seed in (1, 2, 3):
        curve = 0.02 + 0.08 * (x - x[0]) - 0.18 * np.maximum(x - 9.2, 0) + 0.16 * np.maximum(x - 9.9, 0)
        for tokens, value in zip(PYTHIA_LIKE[1:], curve + rng.normal(0, 0.003, len(x))):
            rows.append(f"{seed},{tokens // 2_097_152},{tokens},{value},{rng.uniform(0.1, 0.2)}")
    table = tmp_path / "alignment.csv"
    table.write_text("\n".join(rows) + "\n")
    trajectory = tmp_path / "trajectory.h5"
    assert cli.main(["phases", "--table", str(table), "--out", str(trajectory), "--n-bootstrap", "20",
                     "--discontinuous", "accuracy"]) == 0
    data = load_figure_data(trajectory)
    assert data.labelled and data.n_boundaries == 2
    figure = plot_alignment(data)
    lines = _by_gid(_curve_axes(figure).get_lines())
    assert {"fitted", "boundary-0", "boundary-1", "boundary-ci-0", "boundary-ci-1"} <= set(lines)
    assert data.summary and data.summary[:40] in _texts(figure).replace("\n", " ")
    make_figures(trajectory, tmp_path / "out", ["png"])
    _assert_written(tmp_path / "out", ["png"])


def test_workflow_declares_every_figure_with_a_caption():
    """rules/common.smk FIGURES (the figures rule's outputs) = FIGURE_NAMES, each with report/{name}.rst."""
    import ast
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    declared = re.search(r"^FIGURES = (\[.*?\])", (repo / "rules" / "common.smk").read_text(), re.M)
    assert declared and ast.literal_eval(declared.group(1)) == list(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        caption = repo / "report" / f"{name}.rst"
        assert caption.is_file() and "SIMULATED" in caption.read_text(), name


def test_rois_figure_and_table_hold_the_roi_values(three_phase, tmp_path):
    data = load_figure_data(three_phase)
    figure = PLOTS["rois"](data)
    lines = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()}
    with h5py.File(three_phase) as f:
        per_roi = np.nanmean(f["brain/alignment_roi"][()], axis=0)
        n_rows = f["brain/alignment_layer"].size * 3  # all ROIs + 2 ROIs
    np.testing.assert_allclose(lines["roi-1"].get_ydata(), per_roi[:, 1], equal_nan=True)
    make_figures(three_phase, tmp_path / "figs", ["png"])
    table = pd.read_csv(tmp_path / "figs" / TABLE_NAME, sep="\t")
    assert len(table) == n_rows and set(table.roi) == {"all ROIs", "IFG", "pSTG"}
