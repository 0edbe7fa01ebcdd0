"""Tests of brainphase.figures on a planted rise-fall-rise trajectory (see test_phases)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from brainphase import cli
from brainphase.figures import (FIGURE_NAMES, metric_order, phase_spans, plot_alignment, plot_layers,
                                plot_tasks)
from brainphase.phases.aggregate import load_trajectory
from test_phases import planted_trajectory


@pytest.fixture(scope="module")
def trajectory_path(tmp_path_factory):
    path, _ = planted_trajectory(tmp_path_factory.mktemp("traj"))
    return path


def _by_gid(artists):
    return {a.get_gid(): a for a in artists if a.get_gid() is not None}


def _spans(ax):
    """Shaded phase spans of an axes as {label: (x_start, x_end)}."""
    out = {}
    for gid, patch in _by_gid(ax.patches).items():
        if gid.startswith("phase-"):
            out[int(gid.split("-")[1])] = (patch.get_x(), patch.get_x() + patch.get_width())
    return out


def test_phase_spans_touch_at_boundaries():
    labels = np.array([-1, 0, 0, 1, 1, 1, 2, 2])
    x = np.array([0.0, 1, 2, 4, 8, 16, 32, 64])
    assert phase_spans(labels, x) == [(0, 1.0, 2.0), (1, 2.0, 16.0), (2, 16.0, 64.0)]
    assert phase_spans(np.full(4, -1), x[:4]) == []
    assert phase_spans(np.zeros(3, dtype=int), x[:3]) == [(0, 0.0, 2.0)]


def test_alignment_figure_shows_the_trajectory(trajectory_path):
    traj = load_trajectory(trajectory_path)
    figure = plot_alignment(traj)
    ax = figure.axes[0]
    lines = _by_gid(ax.get_lines())
    for seed, row in zip(traj.seeds, traj.alignment):
        np.testing.assert_array_equal(lines[f"seed-{seed}"].get_xdata(), traj.tokens)
        np.testing.assert_array_equal(lines[f"seed-{seed}"].get_ydata(), row)
    np.testing.assert_allclose(lines["mean"].get_ydata(), traj.alignment.mean(axis=0))
    np.testing.assert_array_equal(lines["smoothed"].get_ydata(), traj.alignment_smoothed)
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0  # step 0 (0 tokens) on the axis
    peak, trough = traj.phase_attrs["peak_tokens"], traj.phase_attrs["trough_tokens"]
    assert _spans(ax) == {0: (0, peak), 1: (peak, trough), 2: (trough, traj.tokens[-1])}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"1. alignment", "2. detachment", "3. realignment"} <= set(legend)
    assert figure._suptitle.get_text().startswith("SIMULATED fMRI")


def test_tasks_figure_panels(trajectory_path):
    traj = load_trajectory(trajectory_path)
    figure = plot_tasks(traj)
    names = metric_order(traj)
    assert names == ["next_token_accuracy", "loss"]  # discontinuous first
    assert len(figure.axes) == 2
    peak = traj.phase_attrs["peak_tokens"]
    for ax, name in zip(figure.axes, names):
        assert ax.get_title().startswith(name)
        lines = _by_gid(ax.get_lines())
        for seed, row in zip(traj.seeds, traj.metrics[name]):
            np.testing.assert_array_equal(lines[f"seed-{seed}"].get_ydata(), row)
        np.testing.assert_allclose(lines["mean"].get_ydata(), traj.metrics[name].mean(axis=0))
        assert _spans(ax)[0] == (0, peak) and _spans(ax)[1][0] == peak
    assert "SIMULATED fMRI" in figure._suptitle.get_text()


def test_layers_heatmap(trajectory_path):
    traj = load_trajectory(trajectory_path)
    figure = plot_layers(traj)
    ax = figure.axes[0]
    heat = ax.get_images()[0].get_array()
    assert heat.shape == (len(traj.layers), len(traj.steps))
    np.testing.assert_allclose(heat, traj.alignment_layer.mean(axis=0).T)
    lines = _by_gid(ax.get_lines())
    assert lines["boundary-peak"].get_xdata()[0] == traj.phase_attrs["peak_index"]
    assert lines["boundary-trough"].get_xdata()[0] == traj.phase_attrs["trough_index"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(layer) for layer in traj.layers]


def test_not_simulated_has_no_simulated_label(trajectory_path, tmp_path):
    copy = tmp_path / "real.h5"
    copy.write_bytes(trajectory_path.read_bytes())
    with h5py.File(copy, "r+") as f:
        f.attrs["simulated"] = False
    assert "SIMULATED" not in plot_alignment(load_trajectory(copy))._suptitle.get_text()


def test_cli_writes_every_file(trajectory_path, tmp_path):
    out = tmp_path / "figs"
    assert cli.main(["figures", "--trajectory", str(trajectory_path), "--out-dir", str(out)]) == 0
    expected = {f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in ("png", "pdf")}
    assert {p.name for p in out.iterdir()} == expected
    for name in expected:
        data = (out / name).read_bytes()
        assert len(data) > 1000 and data[:4] in (b"\x89PNG", b"%PDF")
    # a metrics.h5 is not a trajectory: one-line error, nothing written
    bad = tmp_path / "bad"
    assert cli.main(["figures", "--trajectory", str(trajectory_path.parent / "metrics.h5"), "--out-dir", str(bad)]) == 2
    assert not bad.exists()
