"""Scores of held-out predictions: Pearson r, R^2, ROI means, noise normalisation, and a
block-permutation test with FDR control over voxels.

All functions take column-wise data: ``(n_samples, n_targets)``, one column per voxel.
Sums are accumulated in float64. An undefined score (a constant column) is NaN, never 0,
and is counted in a warning.
"""

from __future__ import annotations

import logging

import numpy as np

from brainphase.errors import InputError

logger = logging.getLogger(__name__)


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise InputError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 2-D arrays of the same shape")
    return y_true, y_pred


def pearson_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``y_true`` with the same column of ``y_pred``.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_targets)

    Returns
    -------
    ndarray of shape (n_targets,), float64
        NaN where either column is constant.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    a = y_true - y_true.mean(0)
    b = y_pred - y_pred.mean(0)
    denominator = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    undefined = denominator == 0
    if undefined.any():
        logger.warning("Pearson r undefined (constant column) for %d of %d targets: NaN", undefined.sum(), len(undefined))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(undefined, np.nan, (a * b).sum(0) / np.where(undefined, 1.0, denominator))


def r2_columns(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination ``1 - SSE / SST`` per column.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_targets)

    Returns
    -------
    ndarray of shape (n_targets,), float64
        NaN where ``y_true`` is constant.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    total = ((y_true - y_true.mean(0)) ** 2).sum(0)
    residual = ((y_true - y_pred) ** 2).sum(0)
    undefined = total == 0
    if undefined.any():
        logger.warning("R^2 undefined (constant target) for %d of %d targets: NaN", undefined.sum(), len(undefined))
    return np.where(undefined, np.nan, 1.0 - residual / np.where(undefined, 1.0, total))


def scores_by_fold(y_true: np.ndarray, y_pred: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson r and R^2 per column in both conventions, from one pass over each fold's rows.

    ``r_fold_mean`` / ``r2_fold_mean``: within each fold, averaged over folds (NaN when a
    fold's column is constant); ``r_concatenated`` / ``r2_concatenated``: over all rows at
    once (as :func:`pearson_columns` and :func:`r2_columns` of the whole arrays). The
    concatenated sums come from the per-fold ones (``S = sum_f [S_f + n_f (mean_f - mean)
    (mean_f - mean)']``), so each row is read once; the sums are float64 whatever the input.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_targets)
    folds : ndarray of shape (n_samples,)
        Fold label of each row.

    Returns
    -------
    dict of ndarray of shape (n_targets,), float64
        Keys ``r_fold_mean``, ``r2_fold_mean``, ``r_concatenated``, ``r2_concatenated``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    folds = np.asarray(folds)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise InputError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 2-D arrays of the same shape")
    if folds.shape != (y_true.shape[0],):
        raise InputError(f"folds has shape {folds.shape} but there are {y_true.shape[0]} rows")
    labels = np.unique(folds)
    sums = {key: np.empty((len(labels), y_true.shape[1])) for key in ("mt", "mp", "tt", "pp", "tp", "sse")}
    counts = np.empty(len(labels))
    for f, label in enumerate(labels):
        rows = np.flatnonzero(folds == label)
        t = y_true[rows].astype(np.float64)
        p = y_pred[rows].astype(np.float64)
        counts[f] = len(rows)
        sums["mt"][f], sums["mp"][f] = t.mean(0), p.mean(0)
        t -= sums["mt"][f]
        p -= sums["mp"][f]
        sums["tt"][f] = np.einsum("ij,ij->j", t, t)
        sums["pp"][f] = np.einsum("ij,ij->j", p, p)
        sums["tp"][f] = np.einsum("ij,ij->j", t, p)
        t -= p
        sums["sse"][f] = np.einsum("ij,ij->j", t, t) + counts[f] * (sums["mt"][f] - sums["mp"][f]) ** 2
    weights = counts[:, None]
    dt = sums["mt"] - (weights * sums["mt"]).sum(0) / counts.sum()
    dp = sums["mp"] - (weights * sums["mp"]).sum(0) / counts.sum()
    total = {
        "tt": (sums["tt"] + weights * dt * dt).sum(0),
        "pp": (sums["pp"] + weights * dp * dp).sum(0),
        "tp": (sums["tp"] + weights * dt * dp).sum(0),
    }
    # a column constant over all rows has exactly zero spread (rounding of the pooled mean must not hide it)
    total["tt"][((sums["tt"] == 0) & (dt == 0)).all(0)] = 0.0
    total["pp"][((sums["pp"] == 0) & (dp == 0)).all(0)] = 0.0

    def r_and_r2(tt, pp, tp, sse, where: str) -> tuple[np.ndarray, np.ndarray]:
        denominator = np.sqrt(tt * pp)
        undefined_r, undefined_r2 = denominator == 0, tt == 0
        if undefined_r.any():
            logger.warning("Pearson r undefined (constant column) for %d of %d targets (%s): NaN",
                           int(undefined_r.any(0).sum() if undefined_r.ndim == 2 else undefined_r.sum()),
                           tt.shape[-1], where)
        if undefined_r2.any():
            logger.warning("R^2 undefined (constant target) for %d of %d targets (%s): NaN",
                           int(undefined_r2.any(0).sum() if undefined_r2.ndim == 2 else undefined_r2.sum()),
                           tt.shape[-1], where)
        r = np.where(undefined_r, np.nan, tp / np.where(undefined_r, 1.0, denominator))
        r2 = np.where(undefined_r2, np.nan, 1.0 - sse / np.where(undefined_r2, 1.0, tt))
        return r, r2

    r_fold, r2_fold = r_and_r2(sums["tt"], sums["pp"], sums["tp"], sums["sse"], "within folds")
    r_all, r2_all = r_and_r2(total["tt"], total["pp"], total["tp"], sums["sse"].sum(0), "folds concatenated")
    return {"r_fold_mean": r_fold.mean(0), "r2_fold_mean": r2_fold.mean(0),
            "r_concatenated": r_all, "r2_concatenated": r2_all}


def roi_means(values: np.ndarray, labels: np.ndarray, n_rois: int) -> np.ndarray:
    """Mean of ``values`` over the voxels of each ROI (NaN values ignored).

    Parameters
    ----------
    values : ndarray of shape (..., n_voxels)
    labels : ndarray of shape (n_voxels,)
        ROI index + 1 of each voxel; 0 = in no ROI.
    n_rois : int

    Returns
    -------
    ndarray of shape (..., n_rois), float64
        NaN for an ROI without voxels (or only NaN values).
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.shape != (values.shape[-1],):
        raise InputError(f"ROI labels of shape {labels.shape} do not match {values.shape[-1]} voxels")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > n_rois:
        raise InputError(f"ROI labels must lie in 0..{n_rois} (found {labels.min()}..{labels.max()})")
    out = np.full(values.shape[:-1] + (n_rois,), np.nan)
    for k in range(n_rois):
        members = labels == k + 1
        if not members.any():
            logger.warning("ROI %d has no voxels: its mean is NaN", k)
            continue
        selected = values[..., members]
        finite = np.isfinite(selected)
        count = finite.sum(-1)
        total = np.where(finite, selected, 0.0).sum(-1)
        out[..., k] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def noise_normalized(r: np.ndarray, ceiling: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """``r / ceiling`` per voxel; NaN where the ceiling is NaN, not > 0 or below ``floor``.

    Parameters
    ----------
    r : ndarray of shape (..., n_voxels)
    ceiling : ndarray of shape (n_voxels,)
        Noise ceiling on Pearson r.
    floor : float
        Voxels whose ceiling is below it are excluded (NaN; counted in a log line): dividing
        by a small, noisy ceiling amplifies the noise of r by ``1 / ceiling``.

    Returns
    -------
    ndarray of shape (..., n_voxels), float64
    """
    ceiling = np.asarray(ceiling, dtype=np.float64)
    if ceiling.shape != (np.shape(r)[-1],):
        raise InputError(f"noise ceiling of shape {ceiling.shape} does not match {np.shape(r)[-1]} voxels")
    if floor < 0:
        raise InputError(f"ceiling floor must be >= 0 (got {floor})")
    usable = np.isfinite(ceiling) & (ceiling > 0) & (ceiling >= floor)
    if not usable.all():
        logger.info("noise ceiling NaN, <= 0 or below the floor %g for %d of %d voxels: r_normalized NaN there",
                    floor, (~usable).sum(), len(usable))
    return np.where(usable, np.asarray(r, dtype=np.float64) / np.where(usable, ceiling, 1.0), np.nan)


def run_blocks(run_lengths: np.ndarray, block_size: int) -> list[np.ndarray]:
    """Split the concatenated samples of consecutive runs into contiguous blocks.

    Parameters
    ----------
    run_lengths : ndarray of shape (n_runs,)
        Samples per run, in concatenation order.
    block_size : int
        Samples per block; the last block of a run may be shorter. Blocks never cross runs.

    Returns
    -------
    list of int ndarray
        Sample indices of each block.
    """
    if block_size < 1:
        raise InputError(f"permutation block size must be >= 1 (got {block_size})")
    blocks, start = [], 0
    for length in np.asarray(run_lengths, dtype=int):
        for offset in range(0, length, block_size):
            blocks.append(np.arange(start + offset, start + min(offset + block_size, length)))
        start += length
    return blocks


def block_permutation_pvalues(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    run_lengths: np.ndarray,
    n_permutations: int,
    block_size: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """One-sided p-value of each column's Pearson r under block permutation.

    The predicted time series is cut into contiguous blocks (within runs, so the
    autocorrelation inside a block is preserved), the blocks are shuffled, and r is
    recomputed; ``p = (1 + #{r_perm >= r}) / (1 + n_permutations)``. The same block order
    is used for all columns in a permutation (keeps the spatial correlation between voxels).

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_targets)
    run_lengths : ndarray of shape (n_runs,)
        Samples per run (sum = n_samples).
    n_permutations : int
    block_size : int
    seed : int

    Returns
    -------
    ndarray of shape (n_targets,), float64
        NaN where r is undefined.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    if int(np.sum(run_lengths)) != y_true.shape[0]:
        raise InputError(f"run lengths sum to {int(np.sum(run_lengths))} but there are {y_true.shape[0]} samples")
    if n_permutations < 1:
        raise InputError(f"n_permutations must be >= 1 (got {n_permutations})")

    def standardize(a: np.ndarray) -> np.ndarray:
        centred = a - a.mean(0)
        norm = np.sqrt((centred * centred).sum(0))
        return centred / np.where(norm == 0, np.nan, norm)

    z_true, z_pred = standardize(y_true), standardize(y_pred)
    observed = (z_true * z_pred).sum(0)
    blocks = run_blocks(run_lengths, block_size)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(y_true.shape[1])
    for _ in range(n_permutations):
        order = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
        exceed += (z_true * z_pred[order]).sum(0) >= observed
    p = (1.0 + exceed) / (1.0 + n_permutations)
    return np.where(np.isfinite(observed), p, np.nan)


def fdr_qvalues(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    Parameters
    ----------
    p_values : ndarray of shape (n_targets,)
        NaN entries are left NaN and excluded from the correction.

    Returns
    -------
    ndarray of shape (n_targets,), float64
    """
    from scipy.stats import false_discovery_control

    p_values = np.asarray(p_values, dtype=np.float64)
    q = np.full_like(p_values, np.nan)
    finite = np.isfinite(p_values)
    if finite.any():
        q[finite] = false_discovery_control(p_values[finite], method="bh")
    return q
