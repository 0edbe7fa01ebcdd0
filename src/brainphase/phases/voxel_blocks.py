"""Voxel blocks: the alignment of each (seed, step, subject) split into means over blocks of voxels.

The segmented alignment measures that are voxel means (``heldout_layer``, ``layer_mean``,
``heldout_layer_normalized``, ``beyond_baselines``) are stored by ``brainphase aggregate`` also as
block means, so that the phase bootstrap (:func:`brainphase.phases.label.analyse_trajectory`) can
resample voxels as well as seeds and subjects (issue 10, point 4).

Partition
    The selected voxels (ROI voxels, or all), in voxel order, are cut into ``n_blocks``
    *contiguous* blocks of (almost) equal size (``numpy.array_split``). Voxel order is the
    order of the brain mask (C order of the volume), so consecutive voxels are spatial
    neighbours and a block is a compact slab of the brain. Neighbouring voxels share noise
    (smoothing, vasculature, the same subject-level artefacts); keeping them inside one block
    makes the block means close to independent, as a block bootstrap needs. A seeded random
    partition would spread each correlated neighbourhood over every block, make the block means
    look more alike than independent samples of the brain are, and understate the voxel
    uncertainty. Blocks are only formed "where there are many" voxels: at least
    ``2 * n_blocks`` selected voxels (each block has >= 2 voxels); otherwise nothing is stored and
    the bootstrap resamples seeds and subjects only. The same voxel indices form the same blocks in
    every subject and checkpoint (one voxel grid, e.g. MNI space), so one resample of blocks is
    applied to all of them.

Exactness
    Each block stores a mean ``M[b]`` and a weight ``W[b]`` such that
    ``sum_b W[b] M[b] / sum_b W[b]`` is exactly the stored per-subject value
    (:func:`weighted_value`). For a plain voxel mean ``W[b]`` is the number of finite voxels in
    the block (the block size when no voxel is NaN). Measures that are not plain voxel means
    keep this property with other weights: the mean over layers (``layer_mean``) weights each
    block by its average share of the finite voxels over layers, and the split-half held-out
    layer of a single subject (:func:`split_half_blocks`) weights the even and the odd voxels
    so that each half counts one half. Resampling conditions on the layer choices made on all
    voxels (the chosen layer is not re-chosen per resample).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from brainphase.errors import InputError

#: measures of /brain that are voxel means and get /brain/alignment_{measure}_blocks
BLOCK_MEASURES = ("heldout_layer", "layer_mean", "heldout_layer_normalized", "beyond_baselines")
#: per-layer voxel scores of a scores file whose blocks are collected (``r`` is /r)
_LAYER_SOURCES = ("r", "r_normalized", "variance_partition/unique_r2")


def block_starts(n_selected: int, n_blocks: int) -> np.ndarray | None:
    """Start offsets of ``n_blocks`` contiguous blocks of ``n_selected`` voxels (sizes differ by <= 1).

    Parameters
    ----------
    n_selected : int
        Number of selected voxels.
    n_blocks : int
        Blocks wanted (0 = none).

    Returns
    -------
    ndarray of int, shape (n_blocks,), or None
        None when ``n_blocks`` is 0 or there are fewer than ``2 * n_blocks`` voxels.
    """
    if n_blocks < 0:
        raise InputError(f"voxel_blocks must be >= 0, got {n_blocks}")
    if n_blocks == 0 or n_selected < 2 * n_blocks:
        return None
    sizes = np.full(n_blocks, n_selected // n_blocks)
    sizes[: n_selected % n_blocks] += 1
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def block_sizes(starts: np.ndarray, n_selected: int) -> np.ndarray:
    """Number of voxels in each block, shape (n_blocks,)."""
    return np.diff(np.append(starts, n_selected)).astype(np.int64)


def _selected(values: np.ndarray, voxels: np.ndarray | None) -> np.ndarray:
    return (values if voxels is None else values[..., voxels]).astype(np.float64)


def _reduce(weights: np.ndarray, values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted block means over the last axis; NaN values must carry weight 0."""
    block_weight = np.add.reduceat(weights, starts, axis=-1)
    block_sum = np.add.reduceat(np.where(weights > 0, values, 0.0) * weights, starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(block_weight > 0, block_sum / np.where(block_weight > 0, block_weight, 1.0), np.nan)
    return means, block_weight


def layer_blocks(values: np.ndarray, voxels: np.ndarray | None, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block means of voxel scores per layer and subject (NaN voxels left out).

    Parameters
    ----------
    values : ndarray, shape (n_layers, n_subjects, n_voxels)
    voxels : ndarray of bool, shape (n_voxels,), or None (every voxel)
    starts : ndarray of int, shape (n_blocks,)
        From :func:`block_starts` for the number of selected voxels.

    Returns
    -------
    means, weights : ndarray, shape (n_layers, n_subjects, n_blocks)
        Mean over the finite voxels of each block (NaN when none) and their count.
    """
    selected = _selected(values, voxels)
    finite = np.isfinite(selected)
    return _reduce(finite.astype(np.float64), np.where(finite, selected, 0.0), starts)


def split_half_blocks(r: np.ndarray, voxels: np.ndarray | None, starts: np.ndarray, on_even: int,
                      on_odd: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of the split-half held-out layer of one subject.

    The value is ``(mean_odd r[on_even] + mean_even r[on_odd]) / 2`` (odd/even = position among
    the selected voxels, see :func:`brainphase.phases.summary.heldout_layers`): each voxel is
    taken at the layer chosen on the other half, and weighted ``1 / (2 n_half)``.

    Parameters
    ----------
    r : ndarray, shape (n_layers, 1, n_voxels)
    voxels : ndarray of bool, shape (n_voxels,), or None
    starts : ndarray of int, shape (n_blocks,)
    on_even, on_odd : int
        Layer positions chosen on the even and on the odd selected voxels.

    Returns
    -------
    means, weights : ndarray, shape (1, n_blocks)
    """
    selected = _selected(r[:, 0], voxels)  # (n_layers, n_selected)
    even = np.arange(selected.shape[1]) % 2 == 0
    values = np.where(even, selected[on_odd], selected[on_even])
    finite = np.isfinite(values)
    n_even, n_odd = int((finite & even).sum()), int((finite & ~even).sum())
    if not n_even or not n_odd:
        raise InputError("the split-half held-out layer needs a finite score in each half of the selected voxels")
    weights = np.where(even, 0.5 / n_even, 0.5 / n_odd) * finite
    means, block_weight = _reduce(weights, np.where(finite, values, 0.0), starts)
    return means[None], block_weight[None]


def layer_average(means: np.ndarray, weights: np.ndarray, layer_axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of the mean over layers of the per-layer voxel means (layers without any finite voxel left out).

    Parameters
    ----------
    means, weights : ndarray, shape (..., n_layers, n_subjects, n_blocks)
        From :func:`layer_blocks` (``layer_axis`` says where the layer axis is).

    Returns
    -------
    means, weights : ndarray, shape (..., n_subjects, n_blocks)
        ``weighted_value`` of them equals ``nanmean`` over layers of ``weighted_value`` per layer.
    """
    total = weights.sum(axis=-1, keepdims=True)
    valid = total > 0
    share = np.where(valid, weights / np.where(valid, total, 1.0), 0.0)
    n_valid = valid.sum(axis=layer_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        block_weight = share.sum(axis=layer_axis) / n_valid
        weighted = (share * np.where(share > 0, means, 0.0)).sum(axis=layer_axis) / n_valid
        block_mean = np.where(block_weight > 0, weighted / np.where(block_weight > 0, block_weight, 1.0), np.nan)
    return block_mean, np.nan_to_num(block_weight)


def weighted_value(means: np.ndarray, weights: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """``sum_b c_b W_b M_b / sum_b c_b W_b`` over the last axis (NaN where the weights sum to 0).

    Parameters
    ----------
    means, weights : ndarray, shape (..., n_blocks)
    counts : ndarray, shape (n_blocks,), optional
        How often each block was drawn (a bootstrap resample); default once each.

    Returns
    -------
    ndarray, shape (...)
    """
    counts = np.ones(means.shape[-1]) if counts is None else counts
    total = weights @ counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.where(weights > 0, means, 0.0) * weights) @ counts / np.where(total > 0, total, 1.0),
                        np.nan)


class BlockCollector:
    """Collects the blocks of every checkpoint during ``brainphase aggregate``.

    Parameters
    ----------
    shape : tuple of int
        ``(n_seeds, n_steps)``.
    n_layers, n_subjects : int
    starts : ndarray of int, shape (n_blocks,)
    sources : iterable of str
        Per-layer voxel scores present in the scores files (``r``, ``r_normalized``,
        ``variance_partition/unique_r2``).
    """

    def __init__(self, shape: tuple[int, int], n_layers: int, n_subjects: int, starts: np.ndarray, sources) -> None:
        self.starts = starts
        n_blocks = len(starts)
        self.layers = {name: (np.full(shape + (n_layers, n_subjects, n_blocks), np.nan),
                              np.zeros(shape + (n_layers, n_subjects, n_blocks)))
                       for name in _LAYER_SOURCES if name in sources}
        self.heldout = (np.full(shape + (n_subjects, n_blocks), np.nan), np.zeros(shape + (n_subjects, n_blocks)))

    def add(self, i_seed: int, i_step: int, scores: dict[str, np.ndarray], voxels: np.ndarray | None,
            heldout: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Add one checkpoint: ``scores`` maps each source to (n_layers, n_subjects, n_voxels);
        ``heldout`` is the split-half blocks (one subject) or None (the chosen layer's blocks)."""
        for name, (means, weights) in self.layers.items():
            means[i_seed, i_step], weights[i_seed, i_step] = layer_blocks(scores[name], voxels, self.starts)
        if heldout is not None:
            self.heldout[0][i_seed, i_step], self.heldout[1][i_seed, i_step] = heldout

    def datasets(self, at_chosen, split_half: bool) -> dict[str, np.ndarray]:
        """``/brain`` datasets: ``alignment_{measure}_blocks`` and ``_block_weights`` (n_seeds, n_steps, n_subjects,
        n_blocks); ``at_chosen`` maps (S, T, L, N, B) to (S, T, N, B) at each subject's held-out-chosen layer;
        ``split_half``: the held-out layer is the split-half one collected by :meth:`add`."""
        out = {}
        r_means, r_weights = self.layers["r"]
        out["heldout_layer"] = self.heldout if split_half else (at_chosen(r_means), at_chosen(r_weights))
        out["layer_mean"] = layer_average(r_means, r_weights, layer_axis=2)
        if "r_normalized" in self.layers:
            means, weights = self.layers["r_normalized"]
            out["heldout_layer_normalized"] = (at_chosen(means), at_chosen(weights))
        if "variance_partition/unique_r2" in self.layers:
            # as aggregate: at the chosen layer, or the mean over the partitioned layers where it was not partitioned
            means, weights = self.layers["variance_partition/unique_r2"]
            chosen_means, chosen_weights = at_chosen(means), at_chosen(weights)
            mean_means, mean_weights = layer_average(means, weights, layer_axis=2)
            use_chosen = (chosen_weights.sum(axis=-1, keepdims=True) > 0)
            out["beyond_baselines"] = (np.where(use_chosen, chosen_means, mean_means),
                                       np.where(use_chosen, chosen_weights, mean_weights))
        datasets = {}
        for measure, (means, weights) in out.items():
            datasets[f"alignment_{measure}_blocks"] = means
            datasets[f"alignment_{measure}_block_weights"] = weights
        return datasets


@dataclass
class VoxelBlocks:
    """Block means of one alignment measure, resampled by the phase bootstrap.

    Attributes
    ----------
    means, weights : ndarray, shape (n_seeds, n_steps, n_subjects, n_blocks)
        ``weighted_value(means, weights)`` is the per-subject alignment.
    """

    means: np.ndarray
    weights: np.ndarray

    @property
    def n_blocks(self) -> int:
        return self.means.shape[-1]

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        """Per-subject alignment (n_seeds, n_steps, n_subjects) over ``n_blocks`` blocks drawn with replacement."""
        counts = np.bincount(rng.integers(self.n_blocks, size=self.n_blocks), minlength=self.n_blocks).astype(np.float64)
        return weighted_value(self.means, self.weights, counts)


def read_voxel_blocks(handle: h5py.File, measure: str, n_blocks: int) -> VoxelBlocks | None:
    """The blocks of ``/brain/alignment_{measure}`` in a ``metrics.h5``, or None.

    Parameters
    ----------
    handle : h5py.File
        ``metrics.h5`` (from ``brainphase aggregate``).
    measure : str
    n_blocks : int
        ``phases.voxel_blocks``: 0 = do not resample voxels (returns None); otherwise the file's
        blocks (when it has any) must be this many.

    Returns
    -------
    VoxelBlocks or None
        None when ``n_blocks`` is 0, or the file has no blocks for this measure (too few voxels,
        the group measure, or an older file).
    """
    key = f"brain/alignment_{measure}_blocks"
    if n_blocks == 0 or key not in handle:
        return None
    means = handle[key][()]
    weights = handle[f"brain/alignment_{measure}_block_weights"][()]
    if means.shape[-1] != n_blocks:
        raise InputError(f"{handle.filename}: /{key} has {means.shape[-1]} voxel blocks but phases.voxel_blocks is "
                         f"{n_blocks}; re-run `brainphase aggregate --voxel-blocks {n_blocks}` or set voxel_blocks to "
                         f"{means.shape[-1]} (0 = no voxel resampling)")
    return VoxelBlocks(means, weights)
