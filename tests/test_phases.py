"""Tests of brainphase.phases: aggregation, phase labels, correlations, file layouts.

The inputs are small hand-built scores/tasks files with planted trajectories; expected
numbers are recomputed here with explicit loops (aggregation), scipy/numpy (correlations)
or are the planted boundaries themselves (phases).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import stats

from brainphase import cli
from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, read_strings, string_array
from brainphase.phases.aggregate import aggregate, correlate, label_phases, load_trajectory, phases, smooth

LAYERS = np.array([0, 2, 4])  # 3 layers (non-contiguous indices, so positions != indices)
SUBJECTS = ["sub-01", "sub-02"]
ROI_NAMES = ["AC", "IFG"]
LABELS = np.array([1, 0, 2, 2, 1, 0, 2], dtype=np.int16)  # 7 voxels, 2 of them outside any ROI
N_VOXELS = len(LABELS)


def write_scores(path, seed, step, tokens, r, *, model_id="tiny-neox", simulated=True, r_normalized=None,
                 labels=LABELS, roi_names=ROI_NAMES):
    """A scores file as `brainphase encode` writes it; roi_mean_r from ``labels``."""
    roi_mean_r = np.zeros(r.shape[:2] + (len(roi_names),))
    for k in range(len(roi_names)):
        roi_mean_r[:, :, k] = r[:, :, labels == k + 1].mean(axis=2)
    attrs = provenance("encode", {}, [], model_id=model_id, seed=seed, step=step, tokens=tokens, simulated=simulated)
    with atomic_h5(path, attrs) as handle:
        handle["r"] = r.astype(np.float32)
        handle["roi_mean_r"] = roi_mean_r.astype(np.float32)
        if r_normalized is not None:
            handle["r_normalized"] = r_normalized.astype(np.float32)
        handle["layers"] = LAYERS
        handle["subjects"] = string_array(SUBJECTS)
        handle["roi_names"] = string_array(roi_names)


def write_tasks(path, seed, step, tokens, values, *, model_id="tiny-neox"):
    """A tasks file: ``values`` maps name -> (value, higher_is_better, kind)."""
    attrs = provenance("tasks", {}, [], model_id=model_id, seed=seed, step=step, tokens=tokens)
    with atomic_h5(path, attrs) as handle:
        for name, (value, higher_is_better, kind) in values.items():
            handle[f"metrics/{name}"] = float(value)
            handle[f"metrics/{name}"].attrs["higher_is_better"] = higher_is_better
            handle[f"metrics/{name}"].attrs["kind"] = kind


def write_responses(path, labels=LABELS, names=ROI_NAMES):
    with atomic_h5(path, provenance("load-fmri", {}, [], simulated=True)) as handle:
        handle["rois/labels"] = labels
        handle["rois/names"] = string_array(names)


def tokens_of(steps):
    return [step * 2048 for step in steps]


def planted_r(rng, alignment):
    """Scores whose alignment is exactly ``alignment``: layer position 1 is best for every subject.

    r[l, s, v] = alignment - 0.03 * |l - 1| + zero-mean voxel noise (zero mean over the ROI voxels).
    """
    r = np.empty((len(LAYERS), len(SUBJECTS), N_VOXELS))
    roi = LABELS > 0
    for i_layer in range(len(LAYERS)):
        for i_subject in range(len(SUBJECTS)):
            noise = rng.normal(0, 0.02, N_VOXELS)
            noise[roi] -= noise[roi].mean()
            r[i_layer, i_subject] = alignment - 0.03 * abs(i_layer - 1) + noise
    return r


def rise_fall_rise(n_steps=20, peak=7, trough=12):
    """Planted seed-mean alignment: rise to ``peak``, fall to ``trough``, rise to the end."""
    curve = np.empty(n_steps)
    curve[:peak + 1] = np.linspace(0.05, 0.20, peak + 1)
    curve[peak:trough + 1] = np.linspace(0.20, 0.10, trough - peak + 1)
    curve[trough:] = np.linspace(0.10, 0.25, n_steps - trough)
    return curve


def write_planted(tmp_path, curve, accuracy, loss, seeds=(0, 1), noise=0.001, seed=0):
    """Write scores + tasks files for ``curve`` (per step) with small per-seed noise; return the paths."""
    rng = np.random.default_rng(seed)
    steps = [0] + [int(round(s)) for s in np.geomspace(1, 5000, len(curve) - 1)]
    scores, tasks = [], []
    for s in seeds:
        for step, tokens, value, acc, lo in zip(steps, tokens_of(steps), curve, accuracy, loss):
            path = tmp_path / f"scores_s{s}_{step}.h5"
            write_scores(path, s, step, tokens, planted_r(rng, value + rng.normal(0, noise)))
            scores.append(path)
            path = tmp_path / f"tasks_s{s}_{step}.h5"
            write_tasks(path, s, step, tokens, {"next_token_accuracy": (acc, True, "discontinuous"),
                                                "loss": (lo, False, "continuous")})
            tasks.append(path)
    responses = tmp_path / "responses.h5"
    write_responses(responses)
    return scores, tasks, responses, steps


def planted_trajectory(tmp_path, **phase_kwargs):
    """metrics.h5 and trajectory.h5 of a planted rise-fall-rise curve; return (trajectory path, steps)."""
    curve = rise_fall_rise()
    n = len(curve)
    accuracy = np.concatenate([np.linspace(0.0, 0.3, 8), np.full(5, 0.3), np.linspace(0.3, 0.5, n - 13)])
    loss = np.linspace(8.0, 3.0, n)
    scores, tasks, responses, steps = write_planted(tmp_path, curve, accuracy, loss)
    aggregate(scores, tasks, tmp_path / "metrics.h5", responses_path=responses)
    phases(tmp_path / "metrics.h5", tmp_path / "trajectory.h5", **phase_kwargs)
    return tmp_path / "trajectory.h5", steps


# --------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------


def test_aggregate_matches_explicit_loops(tmp_path):
    rng = np.random.default_rng(1)
    seeds, steps = [3, 5], [0, 10, 100, 1000]
    r = rng.uniform(-0.1, 0.4, (len(seeds), len(steps), len(LAYERS), len(SUBJECTS), N_VOXELS))
    r_norm = r / 0.5
    r_norm[..., 2] = np.nan  # a voxel without noise ceiling
    scores, tasks, accuracy = [], [], rng.uniform(0, 1, (len(seeds), len(steps)))
    for i, seed in enumerate(seeds):
        for j, step in enumerate(steps):
            scores.append(tmp_path / f"s{seed}_{step}.h5")
            write_scores(scores[-1], seed, step, step * 100, r[i, j], r_normalized=r_norm[i, j])
            tasks.append(tmp_path / f"t{seed}_{step}.h5")
            write_tasks(tasks[-1], seed, step, step * 100, {"acc": (accuracy[i, j], True, "discontinuous")})
    write_responses(tmp_path / "responses.h5")
    order = rng.permutation(len(scores))  # files in any order
    aggregate([scores[k] for k in order], tasks[::-1], tmp_path / "metrics.h5", responses_path=tmp_path / "responses.h5")

    r = r.astype(np.float32).astype(np.float64)  # as stored
    r_norm = r_norm.astype(np.float32).astype(np.float64)
    expected = np.zeros((len(seeds), len(steps)))
    expected_norm = np.zeros((len(seeds), len(steps)))
    expected_layer = np.zeros((len(seeds), len(steps), len(LAYERS)))
    expected_best_subject = np.zeros((len(seeds), len(steps), len(SUBJECTS)), dtype=int)
    for i in range(len(seeds)):
        for j in range(len(steps)):
            for s in range(len(SUBJECTS)):
                per_layer, per_layer_norm = [], []
                for li in range(len(LAYERS)):
                    vals = [r[i, j, li, s, v] for v in range(N_VOXELS) if LABELS[v] > 0]
                    vals_norm = [r_norm[i, j, li, s, v] for v in range(N_VOXELS) if LABELS[v] > 0 and v != 2]
                    per_layer.append(sum(vals) / len(vals))
                    per_layer_norm.append(sum(vals_norm) / len(vals_norm))
                    expected_layer[i, j, li] += per_layer[-1] / len(SUBJECTS)
                expected[i, j] += max(per_layer) / len(SUBJECTS)
                expected_norm[i, j] += max(per_layer_norm) / len(SUBJECTS)
                expected_best_subject[i, j, s] = LAYERS[int(np.argmax(per_layer))]

    with h5py.File(tmp_path / "metrics.h5", "r") as f:
        assert f.attrs["stage"] == "aggregate" and f.attrs["model_id"] == "tiny-neox" and bool(f.attrs["simulated"])
        np.testing.assert_array_equal(f["seeds"][()], seeds)
        np.testing.assert_array_equal(f["steps"][()], steps)
        np.testing.assert_array_equal(f["tokens"][()], np.array(steps) * 100)
        np.testing.assert_array_equal(f["layers"][()], LAYERS)
        assert read_strings(f["subjects"]) == SUBJECTS and read_strings(f["roi_names"]) == ROI_NAMES
        np.testing.assert_allclose(f["brain/alignment"][()], expected, rtol=1e-12)
        np.testing.assert_allclose(f["brain/alignment_normalized"][()], expected_norm, rtol=1e-12)
        np.testing.assert_allclose(f["brain/alignment_layer"][()], expected_layer, rtol=1e-12)
        np.testing.assert_array_equal(f["brain/best_layer_subject"][()], expected_best_subject)
        np.testing.assert_array_equal(f["brain/best_layer"][()], LAYERS[expected_layer.argmax(axis=2)])
        assert f["brain/roi_mean_r"].shape == (2, 4, 3, 2, 2)
        roi_align = np.zeros((2, 4, 2))
        for i in range(len(seeds)):
            for j in range(len(steps)):
                for k in range(len(ROI_NAMES)):
                    voxels = [v for v in range(N_VOXELS) if LABELS[v] == k + 1]
                    roi_align[i, j, k] = np.mean([max(r[i, j, li, s, voxels].mean() for li in range(3)) for s in range(2)])
        np.testing.assert_allclose(f["brain/alignment_roi"][()], roi_align, rtol=1e-5)  # roi_mean_r stored float32
        np.testing.assert_array_equal(f["metrics/acc"][()], accuracy)
        assert f["metrics/acc"].attrs["kind"] == "discontinuous" and bool(f["metrics/acc"].attrs["higher_is_better"])


def test_aggregate_all_voxels_without_rois(tmp_path):
    rng = np.random.default_rng(2)
    r = rng.normal(0.1, 0.05, (2, len(LAYERS), len(SUBJECTS), N_VOXELS))
    scores, tasks = [], []
    for j, step in enumerate([0, 8]):
        scores.append(tmp_path / f"s{step}.h5")
        write_scores(scores[-1], 0, step, step, r[j], labels=np.zeros(N_VOXELS), roi_names=[])
        tasks.append(tmp_path / f"t{step}.h5")
        write_tasks(tasks[-1], 0, step, step, {"loss": (1.0, False, "continuous")})
    aggregate(scores, tasks, tmp_path / "m.h5")
    r32 = r.astype(np.float32).astype(np.float64)
    expected = r32.mean(axis=3).max(axis=1).mean(axis=1)  # voxels, then layers, then subjects
    with h5py.File(tmp_path / "m.h5", "r") as f:
        np.testing.assert_allclose(f["brain/alignment"][0], expected, rtol=1e-12)
        assert f["brain"].attrs["voxel_selection"] == "all_voxels"
        assert f["brain/roi_mean_r"].shape == (1, 2, 3, 2, 0)


def _grid_files(tmp_path, grid, model_for=lambda seed, step: "tiny-neox"):
    rng = np.random.default_rng(6)
    scores, tasks = [], []
    for seed, step in grid:
        r = rng.uniform(0, 0.3, (len(LAYERS), len(SUBJECTS), N_VOXELS))
        scores.append(tmp_path / f"s{seed}_{step}.h5")
        write_scores(scores[-1], seed, step, step, r, model_id=model_for(seed, step))
        tasks.append(tmp_path / f"t{seed}_{step}.h5")
        write_tasks(tasks[-1], seed, step, step, {"acc": (0.5, True, "discontinuous")}, model_id=model_for(seed, step))
    write_responses(tmp_path / "responses.h5")
    return scores, tasks


def test_aggregate_missing_step_is_input_error(tmp_path):
    scores, tasks = _grid_files(tmp_path, [(0, 1), (0, 10), (0, 100), (1, 1), (1, 100)])
    with pytest.raises(InputError, match="seed 1 step 10"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    assert not (tmp_path / "m.h5").exists()
    # through the CLI: one-line error, exit 2, no output
    argv = ["aggregate", "--scores", *map(str, scores), "--tasks", *map(str, tasks),
            "--responses", str(tmp_path / "responses.h5"), "--out", str(tmp_path / "m.h5")]
    assert cli.main(argv) == 2
    assert not (tmp_path / "m.h5").exists()
    assert not list(tmp_path.glob(".m.h5*"))  # no temporary left behind


def test_aggregate_mixed_models_is_input_error(tmp_path):
    scores, tasks = _grid_files(tmp_path, [(0, 1), (0, 10)], model_for=lambda seed, step: f"model-{step}")
    with pytest.raises(InputError, match="different models"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    assert not (tmp_path / "m.h5").exists()


def test_aggregate_other_bad_inputs(tmp_path):
    scores, tasks = _grid_files(tmp_path, [(0, 1), (0, 10)])
    with pytest.raises(InputError, match="--responses"):  # ROIs but no labels
        aggregate(scores, tasks, tmp_path / "m.h5")
    with pytest.raises(InputError, match="tasks files of the same checkpoints"):
        aggregate(scores, tasks[:1], tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    with pytest.raises(InputError, match="both seed 0, step 1"):
        aggregate(scores + scores[:1], tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    write_responses(tmp_path / "other.h5", labels=LABELS[::-1].copy())  # labels of another mask
    with pytest.raises(InputError, match="roi_mean_r"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "other.h5")
    with pytest.raises(InputError, match="expected a file written by `brainphase encode`"):
        aggregate(tasks, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    assert not (tmp_path / "m.h5").exists()


# --------------------------------------------------------------------------------------
# the phase rule
# --------------------------------------------------------------------------------------

FLAT_TASK = np.zeros(20)


def test_smooth_preserves_linear_trend_and_averages():
    line = np.arange(9) * 0.5 + 2
    np.testing.assert_allclose(smooth(line, 5), line)
    values = np.array([0.0, 3.0, 0.0, 6.0, 0.0])
    np.testing.assert_allclose(smooth(values, 3), [0.0, 1.0, 3.0, 2.0, 0.0])
    with pytest.raises(InputError, match="odd"):
        smooth(values, 4)


def test_rise_fall_rise_gives_three_phases():
    result = label_phases(rise_fall_rise(peak=7, trough=12), FLAT_TASK, 0.01, 3, 0.01)
    assert (result.peak_index, result.trough_index, result.detachment_kind) == (7, 12, "fall")
    np.testing.assert_array_equal(result.labels, [0] * 8 + [1] * 5 + [2] * 7)


def test_smoothed_noisy_rise_fall_rise_boundaries_within_one_step():
    rng = np.random.default_rng(3)
    for peak, trough in [(5, 11), (7, 12), (9, 15)]:
        curve = smooth(rise_fall_rise(peak=peak, trough=trough) + rng.normal(0, 0.002, 20), 3)
        result = label_phases(curve, FLAT_TASK, 0.01, 3, 0.01)
        assert abs(result.peak_index - peak) <= 1 and abs(result.trough_index - trough) <= 1
        assert set(result.labels) == {0, 1, 2}


def test_monotone_rise_is_alignment_only():
    curve = np.log1p(np.arange(20)) * 0.05  # saturating but strictly rising
    result = label_phases(curve, FLAT_TASK, 0.01, 3, 0.01)
    assert result.detachment_kind == "none" and result.peak_index == -1
    np.testing.assert_array_equal(result.labels, np.zeros(20))


def test_noise_below_min_change_gives_no_phase():
    rng = np.random.default_rng(4)
    curve = 0.1 + rng.uniform(-0.004, 0.004, 20)  # range < 0.01
    result = label_phases(curve, FLAT_TASK, 0.01, 3, 0.01)
    np.testing.assert_array_equal(result.labels, np.full(20, -1))


def test_stall_needs_a_stagnating_task():
    curve = np.concatenate([np.linspace(0.05, 0.2, 6), np.full(6, 0.2), np.linspace(0.2, 0.3, 8)])
    curve[6:12] -= np.array([0.001, 0.002, 0.001, 0.003, 0.002, 0.004])  # plateau just below the peak at 5
    flat_task = np.concatenate([np.linspace(0, 0.4, 6), np.full(14, 0.4)])
    result = label_phases(curve, flat_task, 0.01, 3, 0.01)
    assert (result.peak_index, result.detachment_kind) == (5, "stall")
    assert result.trough_index == 11  # lowest plateau point, before the rise by >= 0.01
    np.testing.assert_array_equal(result.labels, [0] * 6 + [1] * 6 + [2] * 8)
    rising_task = np.linspace(0, 1, 20)  # task still improving: no detachment
    assert set(label_phases(curve, rising_task, 0.01, 3, 0.01).labels) == {0}


def test_correlate_matches_numpy_and_ranks():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=12), rng.normal(size=12)
    corr = correlate(a, b)
    assert corr["pearson_r"] == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert corr["spearman_rho"] == pytest.approx(np.corrcoef(stats.rankdata(a), stats.rankdata(b))[0, 1])
    assert np.isnan(correlate(a, np.ones(12))["pearson_r"])


# --------------------------------------------------------------------------------------
# end to end: metrics.h5 -> trajectory.h5
# --------------------------------------------------------------------------------------


def test_phases_end_to_end_layout_and_boundaries(tmp_path):
    trajectory, steps = planted_trajectory(tmp_path, smooth_window=3, min_change=0.01)
    with h5py.File(tmp_path / "metrics.h5", "r") as metrics, h5py.File(trajectory, "r") as f:
        def same(name, obj):  # everything in metrics.h5 is copied unchanged
            if isinstance(obj, h5py.Dataset):
                np.testing.assert_array_equal(f[name][()], obj[()])
                assert dict(f[name].attrs) == dict(obj.attrs)
        metrics.visititems(same)
        assert f.attrs["stage"] == "phases" and bool(f.attrs["simulated"]) and f.attrs["model_id"] == "tiny-neox"
        assert f.attrs["aggregate_config_json"] == metrics.attrs["config_json"]
        n_seeds, n_steps = 2, 20
        shapes = {"phases/labels": (n_steps,), "phases/alignment_smoothed": (n_steps,),
                  "phases/seed_labels": (n_seeds, n_steps), "phases/seed_alignment_smoothed": (n_seeds, n_steps),
                  "phases/seed_peak_step": (n_seeds,), "phases/seed_trough_tokens": (n_seeds,),
                  "phases/seed_detachment_kind": (n_seeds,), "correlations/metric_names": (2,),
                  "correlations/pearson_r": (2,), "correlations/seed_spearman_rho": (n_seeds, 2),
                  "brain/alignment": (n_seeds, n_steps), "brain/alignment_layer": (n_seeds, n_steps, 3),
                  "metrics/loss": (n_seeds, n_steps)}
        for name, shape in shapes.items():
            assert f[name].shape == shape, name
        attrs = f["phases"].attrs
        assert (attrs["smooth_window"], attrs["min_change"], attrs["primary_metric"]) == (3, 0.01, "next_token_accuracy")
        assert abs(attrs["peak_index"] - 7) <= 1 and abs(attrs["trough_index"] - 12) <= 1
        assert attrs["peak_step"] == steps[attrs["peak_index"]] and attrs["trough_tokens"] == tokens_of(steps)[attrs["trough_index"]]
        labels = f["phases/labels"][()]
        np.testing.assert_array_equal(labels[:attrs["peak_index"] + 1], 0)
        np.testing.assert_array_equal(labels[attrs["peak_index"] + 1:attrs["trough_index"] + 1], 1)
        np.testing.assert_array_equal(labels[attrs["trough_index"] + 1:], 2)
        for i in range(n_seeds):
            peak = steps.index(f["phases/seed_peak_step"][i])
            assert abs(peak - 7) <= 1 and set(f["phases/seed_labels"][i]) == {0, 1, 2}
        # planted alignment recovered by the aggregation (noise 0.001 per seed)
        np.testing.assert_allclose(f["brain/alignment"][()].mean(0), rise_fall_rise(), atol=0.003)
        np.testing.assert_array_equal(f["brain/best_layer"][()], 2)  # layer position 1 = index 2
        alignment = f["brain/alignment"][()].mean(0)
        names = read_strings(f["correlations/metric_names"])
        for k, name in enumerate(names):
            metric = f[f"metrics/{name}"][()].mean(0)
            assert f["correlations/pearson_r"][k] == pytest.approx(np.corrcoef(alignment, metric)[0, 1])
            assert f["correlations/spearman_rho"][k] == pytest.approx(stats.spearmanr(alignment, metric).statistic)
    loaded = load_trajectory(trajectory)
    assert loaded.simulated and loaded.labels.shape == (20,) and set(loaded.metrics) == {"loss", "next_token_accuracy"}


def test_phases_cli_and_bad_arguments(tmp_path):
    trajectory, _ = planted_trajectory(tmp_path)
    out = tmp_path / "t2.h5"
    assert cli.main(["phases", "--metrics", str(tmp_path / "metrics.h5"), "--out", str(out),
                     "--smooth-window", "1", "--min-change", "0.02"]) == 0
    with h5py.File(out, "r") as f:
        assert (f["phases"].attrs["smooth_window"], f["phases"].attrs["min_change"]) == (1, 0.02)
    bad = tmp_path / "bad.h5"
    for extra in (["--smooth-window", "2"], ["--min-change", "0"], ["--primary-metric", "nope"]):
        assert cli.main(["phases", "--metrics", str(tmp_path / "metrics.h5"), "--out", str(bad), *extra]) == 2
        assert not bad.exists()
    assert cli.main(["phases", "--metrics", str(trajectory), "--out", str(bad)]) == 2  # not a metrics.h5
    assert not bad.exists()
