"""Tests of brainphase.phases.aggregate and .summary: scores + tasks files -> metrics.h5.

The inputs are small hand-built scores/tasks files; expected numbers are recomputed here with
explicit loops over layers, subjects and voxels.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from brainphase import cli
from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, read_strings, string_array
from brainphase.phases.aggregate import aggregate
from brainphase.phases.summary import checkpoint_summary

LAYERS = np.array([0, 2, 4])  # 3 layers (non-contiguous indices, so positions != indices)
SUBJECTS = ["sub-01", "sub-02"]
ROI_NAMES = ["AC", "IFG"]
LABELS = np.array([1, 0, 2, 2, 1, 0, 2], dtype=np.int16)  # 7 voxels, 2 of them outside any ROI
N_VOXELS = len(LABELS)


def write_scores(path, seed, step, tokens, r, *, model_id="tiny-neox", simulated=True, r_normalized=None,
                 labels=LABELS, roi_names=ROI_NAMES, subjects=SUBJECTS, group_r=None, unique_r2=None):
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
        if group_r is not None:
            handle["group/r"] = group_r.astype(np.float32)
        if unique_r2 is not None:
            handle["variance_partition/unique_r2"] = unique_r2.astype(np.float32)
        handle["layers"] = LAYERS
        handle["subjects"] = string_array(subjects)
        handle["roi_names"] = string_array(roi_names)


def write_tasks(path, seed, step, tokens, values, *, model_id="tiny-neox", versions=None, families=None,
                suite_sha256="abc"):
    """A tasks file as `brainphase tasks` writes it: ``values`` maps "task/metric" -> (value,
    higher_is_better, kind); task group attrs family (``families`` or "{task}_family"), version
    (``versions`` or "1"), n_items (7)."""
    attrs = provenance("tasks", {}, [], model_id=model_id, seed=seed, step=step, tokens=tokens, skipped="",
                       suite_sha256=suite_sha256)
    with atomic_h5(path, attrs) as handle:
        for name, (value, higher_is_better, kind) in values.items():
            task = name.split("/")[0]
            group = handle.require_group(f"metrics/{task}")
            group.attrs.update(family=(families or {}).get(task, f"{task}_family"), version=(versions or {}).get(task, "1"),
                               n_items=7, output_type="multiple_choice", source=f"{task}.yaml")
            handle[f"metrics/{name}"] = float(value)
            handle[f"metrics/{name}"].attrs["higher_is_better"] = higher_is_better
            handle[f"metrics/{name}"].attrs["kind"] = kind


def write_internal(path, seed, step, tokens, values, *, model_id="tiny-neox", layers=None):
    """An internal-metrics file as `brainphase internal` writes it: ``values`` maps name -> (n_layers,)."""
    attrs = provenance("internal", {}, [], model_id=model_id, seed=seed, step=step, tokens=tokens, n_words=100,
                       word_sample_seed=0, final_step=1000, previous_step=-1)
    with atomic_h5(path, attrs) as handle:
        for name, value in values.items():
            handle[f"metrics/{name}"] = np.asarray(value, dtype=np.float64)
            handle[f"metrics/{name}"].attrs["description"] = f"about {name}"
        if layers is not None:
            handle["layers"] = layers


def write_responses(path, labels=LABELS, names=ROI_NAMES):
    with atomic_h5(path, provenance("load-fmri", {}, [], simulated=True)) as handle:
        handle["rois/labels"] = labels
        handle["rois/names"] = string_array(names)




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
            write_tasks(tasks[-1], seed, step, step * 100, {"induction/acc": (accuracy[i, j], True, "discontinuous")})
    write_responses(tmp_path / "responses.h5")
    order = rng.permutation(len(scores))  # files in any order
    aggregate([scores[k] for k in order], tasks[::-1], tmp_path / "metrics.h5", responses_path=tmp_path / "responses.h5")

    r = r.astype(np.float32).astype(np.float64)  # as stored
    r_norm = r_norm.astype(np.float32).astype(np.float64)
    shape = (len(seeds), len(steps))
    heldout, heldout_norm, layer_mean = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    expected_layer = np.zeros(shape + (len(LAYERS),))
    chosen_layer = np.zeros(shape + (len(SUBJECTS),), dtype=int)
    roi_align = np.zeros(shape + (len(ROI_NAMES),))
    for i in range(len(seeds)):
        for j in range(len(steps)):
            per_layer = np.zeros((len(LAYERS), len(SUBJECTS)))
            per_layer_norm = np.zeros((len(LAYERS), len(SUBJECTS)))
            for s in range(len(SUBJECTS)):
                for li in range(len(LAYERS)):
                    vals = [r[i, j, li, s, v] for v in range(N_VOXELS) if LABELS[v] > 0]
                    vals_norm = [r_norm[i, j, li, s, v] for v in range(N_VOXELS) if LABELS[v] > 0 and v != 2]
                    per_layer[li, s] = sum(vals) / len(vals)
                    per_layer_norm[li, s] = sum(vals_norm) / len(vals_norm)
            for s in range(len(SUBJECTS)):
                other = 1 - s  # two subjects: the layer is chosen on the other one
                best = int(np.argmax(per_layer[:, other]))
                chosen_layer[i, j, s] = LAYERS[best]
                heldout[i, j] += per_layer[best, s] / len(SUBJECTS)
                heldout_norm[i, j] += per_layer_norm[best, s] / len(SUBJECTS)
                layer_mean[i, j] += per_layer[:, s].mean() / len(SUBJECTS)
                for k in range(len(ROI_NAMES)):
                    voxels = [v for v in range(N_VOXELS) if LABELS[v] == k + 1]
                    roi_align[i, j, k] += r[i, j, best, s, voxels].mean() / len(SUBJECTS)
            expected_layer[i, j] = per_layer.mean(axis=1)

    with h5py.File(tmp_path / "metrics.h5", "r") as f:
        assert f.attrs["stage"] == "aggregate" and f.attrs["model_id"] == "tiny-neox" and bool(f.attrs["simulated"])
        np.testing.assert_array_equal(f["seeds"][()], seeds)
        np.testing.assert_array_equal(f["steps"][()], steps)
        np.testing.assert_array_equal(f["tokens"][()], np.array(steps) * 100)
        np.testing.assert_array_equal(f["layers"][()], LAYERS)
        assert read_strings(f["subjects"]) == SUBJECTS and read_strings(f["roi_names"]) == ROI_NAMES
        assert "leave-one-subject-out" in f["brain"].attrs["layer_selection"]
        np.testing.assert_allclose(f["brain/alignment_heldout_layer"][()], heldout, rtol=1e-12)
        np.testing.assert_allclose(f["brain/alignment_heldout_layer_normalized"][()], heldout_norm, rtol=1e-12)
        np.testing.assert_allclose(f["brain/alignment_layer_mean"][()], layer_mean, rtol=1e-12)
        np.testing.assert_allclose(f["brain/alignment_layer"][()], expected_layer, rtol=1e-12)
        np.testing.assert_array_equal(f["brain/heldout_layer_subject"][()], chosen_layer)
        assert f["brain/alignment_heldout_layer_subject"].shape == (2, 4, 2)
        assert f["brain/roi_mean_r"].shape == (2, 4, 3, 2, 2)
        np.testing.assert_allclose(f["brain/alignment_roi"][()], roi_align, rtol=1e-5)  # roi_mean_r stored float32
        np.testing.assert_array_equal(f["metrics/induction/acc"][()], accuracy)
        assert f["metrics/induction/acc"].attrs["kind"] == "discontinuous"
        assert bool(f["metrics/induction/acc"].attrs["higher_is_better"])
        assert "alignment" not in f["brain"]  # `brainphase phases` picks the measure


def test_heldout_layer_removes_selection_bias(tmp_path):
    """Pure-noise layers: the best-of-layers value is biased up, the held-out choice is not."""
    rng = np.random.default_rng(11)
    n_layers, n_subjects, n_voxels = 12, 4, 50
    biased, heldout = [], []
    for _ in range(200):
        r = rng.normal(0.0, 0.05, (n_layers, n_subjects, n_voxels))
        summary = checkpoint_summary(r, None)
        biased.append(summary["layer_subject"].max(axis=0).mean())
        heldout.append(summary["heldout_layer_subject"].mean())
    se = 0.05 / np.sqrt(n_voxels * n_subjects * 200)
    assert np.mean(biased) > 10 * se  # max over 12 noisy layers
    assert abs(np.mean(heldout)) < 4 * se


def test_one_subject_chooses_the_layer_on_the_other_half_of_the_voxels():
    r = np.zeros((3, 1, 6))
    r[1, 0, 0::2] = 0.5  # layer 1 is best on even voxels only
    r[2, 0, 1::2] = 0.3  # layer 2 best on odd voxels only
    summary = checkpoint_summary(r, None)
    # chosen on even (layer 1) reported on odd (0.0); chosen on odd (layer 2) reported on even (0.0)
    assert summary["heldout_layer_subject"][0] == 0.0 and "split-half" in summary["method"]
    r[2, 0, 0::2] = 0.6  # layer 2 now best on both halves: 0.3 on odd, 0.6 on even
    assert checkpoint_summary(r, None)["heldout_layer_subject"][0] == pytest.approx((0.3 + 0.6) / 2)


def test_group_average_and_unique_variance_are_separate_quantities(tmp_path):
    rng = np.random.default_rng(3)
    scores = []
    for step in (0, 10):
        r = rng.uniform(0.0, 0.1, (len(LAYERS), len(SUBJECTS), N_VOXELS))
        group_r = np.full((len(LAYERS), N_VOXELS), 0.35)
        unique = np.full((len(LAYERS), len(SUBJECTS), N_VOXELS), 0.01 * (step + 1))
        scores.append(tmp_path / f"s{step}.h5")
        write_scores(scores[-1], 0, step, step, r, group_r=group_r, unique_r2=unique)
    write_responses(tmp_path / "responses.h5")
    aggregate(scores, [], tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")  # no tasks files
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f["brain/alignment_heldout_layer"][()].max() < 0.1  # the group's 0.35 is never mixed in
        np.testing.assert_allclose(f["brain/alignment_group"][()], 0.35, rtol=1e-6)
        np.testing.assert_allclose(f["brain/alignment_beyond_baselines"][()], [[0.01, 0.11]], rtol=1e-5)
        assert len(f["metrics"]) == 0


def test_skipped_tasks_and_missing_seed_label(tmp_path):
    scores, tasks = _grid_files(tmp_path, [(0, 1), (0, 10)])
    for path in tasks:
        with h5py.File(path, "a") as f:
            del f["metrics"]
            f.attrs["skipped"] = "encoder model without a trained LM head"
    aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert len(f["metrics"]) == 0
    with h5py.File(scores[0], "a") as f:
        f.attrs["seed"] = ""
    with pytest.raises(InputError, match="attribute 'seed' is '', not an integer.*--seed"):
        aggregate(scores, tasks, tmp_path / "m2.h5", responses_path=tmp_path / "responses.h5")


def test_one_checkpoint_aggregates(tmp_path):
    scores, tasks = _grid_files(tmp_path, [(0, 5)])
    aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f["brain/alignment_heldout_layer"].shape == (1, 1)


def test_aggregate_all_voxels_without_rois(tmp_path):
    rng = np.random.default_rng(2)
    r = rng.normal(0.1, 0.05, (2, len(LAYERS), len(SUBJECTS), N_VOXELS))
    scores, tasks = [], []
    for j, step in enumerate([0, 8]):
        scores.append(tmp_path / f"s{step}.h5")
        write_scores(scores[-1], 0, step, step, r[j], labels=np.zeros(N_VOXELS), roi_names=[])
        tasks.append(tmp_path / f"t{step}.h5")
        write_tasks(tasks[-1], 0, step, step, {"heldout_text/loss": (1.0, False, "continuous")})
    aggregate(scores, tasks, tmp_path / "m.h5")
    r32 = r.astype(np.float32).astype(np.float64)
    expected = r32.mean(axis=3).mean(axis=1).mean(axis=1)  # voxels, then layers, then subjects
    with h5py.File(tmp_path / "m.h5", "r") as f:
        np.testing.assert_allclose(f["brain/alignment_layer_mean"][0], expected, rtol=1e-12)
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
        write_tasks(tasks[-1], seed, step, step, {"induction/acc": (0.5, True, "discontinuous")}, model_id=model_for(seed, step))
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




def test_beyond_baselines_falls_back_to_the_partitioned_layer(tmp_path):
    """encode.partition_layers: best partitions one layer; the others are NaN."""
    rng = np.random.default_rng(4)
    scores = []
    for step in (0, 10):
        r = rng.uniform(0.0, 0.1, (len(LAYERS), len(SUBJECTS), N_VOXELS))
        r[0] += 0.2  # layer position 0 is best for every subject
        unique = np.full((len(LAYERS), len(SUBJECTS), N_VOXELS), np.nan)
        unique[2] = 0.05  # only the last layer was partitioned
        scores.append(tmp_path / f"s{step}.h5")
        write_scores(scores[-1], 0, step, step, r, unique_r2=unique)
    write_responses(tmp_path / "responses.h5")
    aggregate(scores, [], tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        np.testing.assert_allclose(f["brain/alignment_beyond_baselines"][()], 0.05, rtol=1e-6)
    bad = tmp_path / "bad.h5"
    write_scores(bad, 0, 20, 20, rng.uniform(size=(len(LAYERS), len(SUBJECTS), N_VOXELS)),
                 unique_r2=np.zeros((len(LAYERS), len(SUBJECTS) + 1, N_VOXELS)))
    with pytest.raises(InputError, match="group-average pseudo-subject belongs under /group"):
        aggregate([*scores, bad], [], tmp_path / "m2.h5", responses_path=tmp_path / "responses.h5")


TASK_VALUES = {"induction/acc": (True, "discontinuous"), "induction/logprob": (True, "continuous"),
               "blimp_agreement/acc": (True, "discontinuous"), "blimp_agreement/brier": (False, "continuous")}


def _task_and_internal_grid(tmp_path, seeds=(1, 2), steps=(0, 10, 100), n_layers=4):
    """Scores, tasks and internal files of a seeds x steps grid with planted values.

    Task metric value = 1000 * seed + step + 0.1 * k (k = position in TASK_VALUES); internal
    metric ``m`` at layer l = seed + step / 1000 + l / 10 + m_offset.
    """
    rng = np.random.default_rng(8)
    scores, tasks, internal = [], [], []
    for seed in seeds:
        for step in steps:
            r = rng.uniform(0, 0.3, (len(LAYERS), len(SUBJECTS), N_VOXELS))
            scores.append(tmp_path / f"s{seed}_{step}.h5")
            write_scores(scores[-1], seed, step, step * 10, r)
            tasks.append(tmp_path / f"t{seed}_{step}.h5")
            write_tasks(tasks[-1], seed, step, step * 10,
                        {name: (1000 * seed + step + 0.1 * k, better, kind)
                         for k, (name, (better, kind)) in enumerate(TASK_VALUES.items())},
                        families={"induction": "induction", "blimp_agreement": "formal"})
            internal.append(tmp_path / f"i{seed}_{step}.h5")
            layer_values = seed + step / 1000 + np.arange(n_layers) / 10
            write_internal(internal[-1], seed, step, step * 10,
                           {"twonn_dimension": layer_values, "cka_final": layer_values + 5})
    write_responses(tmp_path / "responses.h5")
    return scores, tasks, internal


def test_nested_task_metrics_and_internal_metrics_are_stacked(tmp_path):
    seeds, steps = (1, 2), (0, 10, 100)
    scores, tasks, internal = _task_and_internal_grid(tmp_path, seeds, steps)
    order = np.random.default_rng(0).permutation(len(tasks))
    aggregate(scores, [tasks[k] for k in order], tmp_path / "m.h5", responses_path=tmp_path / "responses.h5",
              internal_paths=internal[::-1])
    expected_base = 1000 * np.array(seeds)[:, None] + np.array(steps)[None, :]  # (S, T)
    with h5py.File(tmp_path / "m.h5") as f:
        assert sorted(f["metrics"]) == ["blimp_agreement", "induction"]
        assert f["metrics"].attrs["suite_sha256"] == "abc"
        group = f["metrics/blimp_agreement"]
        assert (group.attrs["family"], group.attrs["version"], int(group.attrs["n_items"])) == ("formal", "1", 7)
        assert group.attrs["source"] == "blimp_agreement.yaml"
        for k, (name, (better, kind)) in enumerate(TASK_VALUES.items()):
            assert f[f"metrics/{name}"].shape == (2, 3)
            np.testing.assert_allclose(f[f"metrics/{name}"][()], expected_base + 0.1 * k)
            assert f[f"metrics/{name}"].attrs["kind"] == kind and bool(f[f"metrics/{name}"].attrs["higher_is_better"]) == better
        assert sorted(f["internal"]) == ["cka_final", "twonn_dimension"]
        np.testing.assert_array_equal(f["internal"].attrs["layers"], np.arange(4))
        twonn = f["internal/twonn_dimension"][()]
        assert twonn.shape == (2, 3, 4)
        for i, seed in enumerate(seeds):
            for j, step in enumerate(steps):
                np.testing.assert_allclose(twonn[i, j], seed + step / 1000 + np.arange(4) / 10)
        np.testing.assert_allclose(f["internal/cka_final"][()], twonn + 5)
        assert f["internal/cka_final"].attrs["description"] == "about cka_final"
    # through the CLI
    argv = ["aggregate", "--scores", *map(str, scores), "--tasks", *map(str, tasks), "--internal", *map(str, internal),
            "--responses", str(tmp_path / "responses.h5"), "--out", str(tmp_path / "cli.h5")]
    assert cli.main(argv) == 0
    with h5py.File(tmp_path / "cli.h5") as f:
        assert f["internal/twonn_dimension"].shape == (2, 3, 4) and f["metrics/induction/logprob"].shape == (2, 3)


def test_tasks_with_other_tasks_versions_or_layout_are_refused(tmp_path):
    scores, tasks, _ = _task_and_internal_grid(tmp_path)
    values = {name: (0.5, better, kind) for name, (better, kind) in TASK_VALUES.items()}
    responses = tmp_path / "responses.h5"
    families = {"induction": "induction", "blimp_agreement": "formal"}
    write_tasks(tasks[2], 1, 100, 1000, values, versions={"induction": "2"}, families=families)
    with pytest.raises(InputError, match=f"{tasks[2].name}: its tasks differ.*task induction: version '2' here, '1' there"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses)
    write_tasks(tasks[2], 1, 100, 1000, {k: v for k, v in values.items() if not k.startswith("blimp")}, families=families)
    with pytest.raises(InputError, match=f"{tasks[2].name}: its tasks differ"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses)
    write_tasks(tasks[2], 1, 100, 1000, {**values, "induction/extra": (1.0, True, "continuous")}, families=families)
    with pytest.raises(InputError, match=f"{tasks[2].name}: its metrics differ"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses)
    write_tasks(tasks[2], 1, 100, 1000, values, suite_sha256="other", families=families)
    with pytest.raises(InputError, match="suite_sha256"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses)
    with atomic_h5(tasks[2], provenance("tasks", {}, [], model_id="tiny-neox", seed=1, step=100, tokens=1000)) as handle:
        handle["metrics/acc"] = 0.5  # the older flat layout
    with pytest.raises(InputError, match=f"{tasks[2].name}: /metrics/acc is a dataset.*re-run `brainphase tasks`"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses)
    assert not (tmp_path / "m.h5").exists()


def test_internal_files_must_match_each_other_and_the_grid(tmp_path):
    scores, tasks, internal = _task_and_internal_grid(tmp_path)
    responses = tmp_path / "responses.h5"
    with pytest.raises(InputError, match="--internal cover seeds \\[1\\] x steps"):  # seed 2 left out
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses, internal_paths=internal[:3])
    with pytest.raises(InputError, match="--internal: .*missing: seed 2 step 100"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses, internal_paths=internal[:-1])
    with pytest.raises(InputError, match="expected a file written by `brainphase internal`"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses, internal_paths=tasks)
    write_internal(internal[1], 1, 10, 100, {"twonn_dimension": np.ones(4)})
    with pytest.raises(InputError, match=f"{internal[1].name}: internal metrics \\['twonn_dimension'\\] differ"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses, internal_paths=internal)
    write_internal(internal[1], 1, 10, 100, {"twonn_dimension": np.ones(3), "cka_final": np.ones(3)})
    with pytest.raises(InputError, match=f"{internal[1].name}: layers"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses, internal_paths=internal)
    write_internal(internal[1], 1, 10, 100, {"twonn_dimension": np.ones(4), "cka_final": np.ones((4, 2))})
    with pytest.raises(InputError, match="shape \\(n_layers,\\)"):
        aggregate(scores, tasks, tmp_path / "m.h5", responses_path=responses, internal_paths=internal)
    assert not (tmp_path / "m.h5").exists()
