"""Voxel blocks of metrics.h5 (brainphase.phases.voxel_blocks via ``brainphase aggregate``).

The block means weighted by their stored weights must reproduce each stored per-subject
alignment exactly, for every measure and for the split-half (one subject) held-out layer; the
heldout-layer blocks are recomputed here with explicit loops over contiguous voxel ranges.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, string_array
from brainphase.phases.aggregate import aggregate
from brainphase.phases.cli import phases
from brainphase.phases.label import _resample, analyse_trajectory
from brainphase.phases.voxel_blocks import (VoxelBlocks, block_sizes, block_starts, layer_average, layer_blocks,
                                            read_voxel_blocks, weighted_value)

LAYERS = np.array([0, 2, 4])


def _write_scores(path, seed, step, r, labels, subjects, r_normalized=None, unique_r2=None):
    roi_mean_r = np.stack([r[:, :, labels == 1].mean(axis=2)], axis=2)
    attrs = provenance("encode", {}, [], model_id="m", seed=seed, step=step, tokens=step * 100 + 1, simulated=True)
    with atomic_h5(path, attrs) as handle:
        handle["r"] = r.astype(np.float32)
        handle["roi_mean_r"] = roi_mean_r.astype(np.float32)
        if r_normalized is not None:
            handle["r_normalized"] = r_normalized.astype(np.float32)
        if unique_r2 is not None:
            handle["variance_partition/unique_r2"] = unique_r2.astype(np.float32)
        handle["layers"] = LAYERS
        handle["subjects"] = string_array(subjects)
        handle["roi_names"] = string_array(["ROI"])


def _aggregate(tmp_path, n_subjects, n_voxels, n_blocks=5, seed=0, n_steps=3):
    """metrics.h5 of 2 seeds x ``n_steps`` steps; voxels 0, 5, 9 outside the ROI; returns (path, r, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.ones(n_voxels, dtype=np.int16)
    labels[[0, 5, 9]] = 0
    subjects = [f"sub-{i:02d}" for i in range(n_subjects)]
    r = rng.uniform(-0.1, 0.4, (2, n_steps, len(LAYERS), n_subjects, n_voxels)).astype(np.float32).astype(np.float64)
    r_norm = r * 2.0
    r_norm[..., 7] = np.nan  # a voxel below the ceiling floor
    unique = r ** 2
    unique[:, :, 1] = np.nan  # layer 2 not partitioned
    paths = []
    for i in range(2):
        for j in range(n_steps):
            paths.append(tmp_path / f"s{i}_{j}.h5")
            _write_scores(paths[-1], i, j * 10, r[i, j], labels, subjects, r_norm[i, j], unique[i, j])
    with atomic_h5(tmp_path / "responses.h5", provenance("load-fmri", {}, [], simulated=True)) as handle:
        handle["rois/labels"] = labels
        handle["rois/names"] = string_array(["ROI"])
    out = tmp_path / "metrics.h5"
    aggregate(paths, [], out, responses_path=tmp_path / "responses.h5", voxel_blocks=n_blocks)
    return out, r, labels


def test_block_starts_are_contiguous_and_need_two_voxels_per_block():
    starts = block_starts(23, 5)
    np.testing.assert_array_equal(block_sizes(starts, 23), [5, 5, 5, 4, 4])
    np.testing.assert_array_equal(starts, [0, 5, 10, 15, 19])
    assert block_starts(9, 5) is None and block_starts(10, 5) is not None and block_starts(100, 0) is None
    with pytest.raises(InputError):
        block_starts(10, -1)


def test_layer_average_equals_nanmean_over_layers_of_voxel_means():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(4, 2, 30))
    values[0, :, 3:9] = np.nan  # different NaN voxels per layer
    values[2] = np.nan  # a layer without any finite voxel
    starts = block_starts(30, 6)
    means, weights = layer_blocks(values, None, starts)
    with pytest.warns(RuntimeWarning, match="empty slice"):
        per_layer = np.nanmean(values, axis=2)  # NaN for the empty layer
    np.testing.assert_allclose(weighted_value(means, weights), per_layer, rtol=1e-12)
    averaged = layer_average(means, weights)
    expected = np.nanmean(per_layer, axis=0)
    np.testing.assert_allclose(weighted_value(*averaged), expected, rtol=1e-12)


@pytest.mark.parametrize("n_subjects", [2, 1])
def test_block_means_reproduce_every_voxel_mean_measure(tmp_path, n_subjects):
    out, r, labels = _aggregate(tmp_path, n_subjects, n_voxels=40)
    selected = np.flatnonzero(labels > 0)  # 37 ROI voxels -> blocks of 8, 8, 7, 7, 7
    with h5py.File(out, "r") as f:
        brain = f["brain"]
        assert brain.attrs["voxel_blocks"] == 5
        sizes = brain["voxel_block_sizes"][()]
        np.testing.assert_array_equal(sizes, [8, 8, 7, 7, 7])
        for measure in ("heldout_layer", "layer_mean", "heldout_layer_normalized", "beyond_baselines"):
            means = brain[f"alignment_{measure}_blocks"][()]
            weights = brain[f"alignment_{measure}_block_weights"][()]
            assert means.shape == (2, 3, n_subjects, 5), measure
            np.testing.assert_allclose(weighted_value(means, weights), brain[f"alignment_{measure}_subject"][()],
                                       rtol=1e-12, err_msg=measure)
        position = np.searchsorted(LAYERS, brain["heldout_layer_subject"][()])  # (S, T, N)
        plain = brain["alignment_layer_mean_block_weights"][()]
        heldout_means = brain["alignment_heldout_layer_blocks"][()]
    # the shares of a layer mean without NaN voxels are the block sizes over the voxel count
    np.testing.assert_allclose(plain, np.broadcast_to(sizes / sizes.sum(), plain.shape), rtol=1e-12)
    if n_subjects == 2:  # heldout blocks = plain means over contiguous ranges of ROI voxels at the chosen layer
        edges = np.append(block_starts(len(selected), 5), len(selected))
        for i in range(2):
            for j in range(3):
                for s in range(2):
                    for b in range(5):
                        block = selected[edges[b]:edges[b + 1]]
                        expected = r[i, j, position[i, j, s], s, block].mean()
                        assert heldout_means[i, j, s, b] == pytest.approx(expected, rel=1e-12)


def test_no_blocks_where_voxels_are_few(tmp_path):
    out, _, _ = _aggregate(tmp_path, 2, n_voxels=12, n_blocks=5)  # 9 ROI voxels < 2 x 5
    with h5py.File(out, "r") as f:
        assert f["brain"].attrs["voxel_blocks"] == 0
        assert not [name for name in f["brain"] if "block" in name]
        assert read_voxel_blocks(f, "heldout_layer", 5) is None


def test_read_voxel_blocks_checks_the_count(tmp_path):
    out, _, _ = _aggregate(tmp_path, 2, n_voxels=40, n_blocks=5)
    with h5py.File(out, "r") as f:
        blocks = read_voxel_blocks(f, "layer_mean", 5)
        assert isinstance(blocks, VoxelBlocks) and blocks.n_blocks == 5
        assert read_voxel_blocks(f, "layer_mean", 0) is None
        with pytest.raises(InputError, match="voxel_blocks"):
            read_voxel_blocks(f, "layer_mean", 20)


def test_bootstrap_resample_matches_explicit_draws():
    """One resample = mean over drawn seeds and subjects of the weighted mean over drawn blocks."""
    rng = np.random.default_rng(5)
    means, weights = rng.normal(size=(3, 4, 2, 6)), rng.integers(1, 5, size=(3, 4, 2, 6)).astype(float)
    subject = weighted_value(means, weights)
    curve, kind = _resample(np.random.default_rng(1), subject.mean(axis=2), subject, None, None,
                            VoxelBlocks(means, weights), np.random.default_rng(2))
    assert kind == "seeds, subjects, voxel blocks (6)"
    draw, block_draw = np.random.default_rng(1), np.random.default_rng(2)
    blocks = block_draw.integers(6, size=6)
    seeds, subjects = draw.integers(3, size=3), draw.integers(2, size=2)
    expected = np.zeros(4)
    for t in range(4):
        values = [sum(weights[i, t, n, b] * means[i, t, n, b] for b in blocks) / sum(weights[i, t, n, b] for b in blocks)
                  for i in seeds for n in subjects]
        expected[t] = np.mean(values)
    np.testing.assert_allclose(curve, expected, rtol=1e-12)


def _planted(n_seeds, n_subjects, seed=0):
    """Up-down alignment (n_seeds, 14, n_subjects) over log10 tokens 6..10 with seed and subject noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(6, 10, 14)
    truth = np.where(x < 8, 0.05 * (x - 6), 0.1 - 0.05 * (x - 8))
    subject = (truth[None, :, None] + rng.normal(0, 0.004, (n_seeds, 14, 1)) + rng.normal(0, 0.004, (1, 14, n_subjects))
               + rng.normal(0, 0.01, (1, 1, n_subjects)))
    return np.round(10 ** x).astype(np.int64), subject


@pytest.mark.parametrize("n_seeds, n_subjects", [(3, 2), (1, 1)])
def test_identical_blocks_give_the_seed_subject_bootstrap(n_seeds, n_subjects):
    tokens, subject = _planted(n_seeds, n_subjects)
    blocks = VoxelBlocks(np.repeat(subject[..., None], 8, axis=3), np.full(subject.shape + (8,), 3.0))
    plain = analyse_trajectory(tokens, subject.mean(axis=2), subject_alignment=subject, n_bootstrap=25, seed=4)
    voxels = analyse_trajectory(tokens, subject.mean(axis=2), subject_alignment=subject, n_bootstrap=25, seed=4,
                                voxel_blocks=blocks)
    assert voxels.bootstrap_kind == plain.bootstrap_kind + ", voxel blocks (8)"
    np.testing.assert_allclose(voxels.bootstrap_knots, plain.bootstrap_knots, atol=1e-9)
    assert voxels.phase_probability == plain.phase_probability
    assert len(plain.boundaries) == 1
    np.testing.assert_allclose(voxels.boundaries[["tokens_ci_low", "tokens_ci_high"]].to_numpy(),
                               plain.boundaries[["tokens_ci_low", "tokens_ci_high"]].to_numpy(), rtol=1e-9)


def _one_seed_one_subject(block_curves, noise_seed=0):
    """(tokens, alignment, subject, blocks) of one seed and one subject whose blocks follow ``block_curves`` (T, B)
    plus checkpoint noise shared by every block."""
    rng = np.random.default_rng(noise_seed)
    means = (block_curves + rng.normal(0, 0.003, (block_curves.shape[0], 1)))[None, :, None, :]
    weights = np.ones_like(means)
    subject = weighted_value(means, weights)
    return subject.mean(axis=2), subject, VoxelBlocks(means, weights)


def test_voxel_variation_widens_the_boundary_ci():
    """Blocks peak at different tokens (7..9 decades): the pooled curve has the same boundaries with and without
    voxel resampling, and their CIs are wider with it."""
    x = np.linspace(6, 10, 16)
    tokens = np.round(10 ** x).astype(np.int64)
    peaks = np.linspace(7, 9, 6)
    curves = np.stack([np.where(x < k, 0.05 * (x - 6), 0.05 * (k - 6) - 0.05 * (x - k)) for k in peaks], axis=1)
    alignment, subject, blocks = _one_seed_one_subject(curves)
    plain = analyse_trajectory(tokens, alignment, subject_alignment=subject, n_bootstrap=40, seed=0)
    voxels = analyse_trajectory(tokens, alignment, subject_alignment=subject, n_bootstrap=40, seed=0, voxel_blocks=blocks)
    assert len(plain.boundaries) >= 1
    np.testing.assert_array_equal(voxels.boundary_tokens, plain.boundary_tokens)

    def width(result):
        return np.log10(result.boundaries.tokens_ci_high.to_numpy()) - np.log10(result.boundaries.tokens_ci_low.to_numpy())

    assert (width(voxels) > width(plain) + 0.1).all(), (width(plain), width(voxels))


def test_voxel_variation_reports_a_spurious_phase():
    """A straight rising mean whose blocks bend up or down late: the pooled labels say alignment only; with voxel
    resampling some resamples end in a detachment, and its probability is reported (0 without)."""
    x = np.linspace(6, 10, 16)
    tokens = np.round(10 ** x).astype(np.int64)
    bend = np.where(x > 8.5, x - 8.5, 0.0)[:, None] * np.tile([0.06, -0.06], 3)[None, :]
    alignment, subject, blocks = _one_seed_one_subject(0.03 * (x - 6)[:, None] + bend)
    plain = analyse_trajectory(tokens, alignment, subject_alignment=subject, n_bootstrap=40, seed=0)
    voxels = analyse_trajectory(tokens, alignment, subject_alignment=subject, n_bootstrap=40, seed=0, voxel_blocks=blocks)
    assert list(plain.segments.phase) == list(voxels.segments.phase) == ["alignment"]
    assert plain.phase_probability["detachment"] == 0.0
    assert voxels.phase_probability["detachment"] >= 0.05


def test_blocks_that_do_not_match_the_subject_alignment_are_refused():
    tokens, subject = _planted(2, 2)
    blocks = VoxelBlocks(np.repeat(subject[..., None], 4, axis=3) + 0.01, np.ones(subject.shape + (4,)))
    with pytest.raises(InputError, match="differ from the per-subject alignment"):
        analyse_trajectory(tokens, subject.mean(axis=2), subject_alignment=subject, n_bootstrap=2, voxel_blocks=blocks)
    with pytest.raises(InputError, match="per-subject"):
        analyse_trajectory(tokens, subject.mean(axis=2), n_bootstrap=2, voxel_blocks=blocks)


def test_phases_resamples_the_blocks_of_metrics_h5(tmp_path):
    metrics, _, _ = _aggregate(tmp_path, 2, n_voxels=40, n_steps=5)
    phases(metrics, tmp_path / "trajectory.h5", n_bootstrap=3, voxel_blocks=5)
    phases(metrics, tmp_path / "no_voxels.h5", n_bootstrap=3, voxel_blocks=0)
    with h5py.File(tmp_path / "trajectory.h5", "r") as f, h5py.File(tmp_path / "no_voxels.h5", "r") as g:
        assert f["phases"].attrs["bootstrap_kind"] == "seeds, subjects, voxel blocks (5)"
        assert f["phases"].attrs["voxel_blocks"] == 5 and "alignment_heldout_layer_blocks" in f["brain"]
        assert g["phases"].attrs["bootstrap_kind"] == "seeds, subjects"
    with pytest.raises(InputError, match="voxel_blocks"):
        phases(metrics, tmp_path / "wrong.h5", n_bootstrap=3, voxel_blocks=20)
