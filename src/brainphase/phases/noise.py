"""Noise of a seed-mean alignment curve: the standard error each segmentation is weighted with.

:func:`noise_sigma` estimates the standard error of the seed-mean curve at each checkpoint from
the seed (or subject) x checkpoint interaction, or from the curve's own pseudo-residuals
(:func:`~brainphase.phases.segment.pseudo_residual_sigma`); :func:`noise_dof` gives the degrees
of freedom of that estimate, which :func:`~brainphase.phases.segment.knot_cost` takes into account.
"""

from __future__ import annotations

import warnings

import numpy as np

from brainphase.phases.segment import pseudo_residual_sigma

#: the seed spread is replaced by the curve's own pseudo-residual noise when that is this much larger
_RESIDUAL_EXCESS = 1.5


def quiet_nanmean(values: np.ndarray, axis) -> np.ndarray:
    """``np.nanmean`` that returns NaN for all-NaN slices (gaps) without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def noise_sigma(x: np.ndarray, alignment: np.ndarray, subject_alignment: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Standard error of the seed-mean curve at each checkpoint, and where it came from.

    With >= 2 seeds: the seed x checkpoint interaction variance (each seed's deviation from the
    seed mean, minus that seed's mean deviation, so constant seed offsets do not count), pooled
    over checkpoints, divided by the number of finite seeds at each checkpoint. With one seed and
    >= 2 subjects: the same over subjects. Otherwise: the curve's pseudo-residuals
    (:func:`~brainphase.phases.segment.pseudo_residual_sigma`). When the curve's own
    pseudo-residual noise exceeds the seed/subject estimate by more than 1.5x (noise shared by
    all seeds, e.g. from the same fMRI data), the larger value is used.

    Parameters
    ----------
    x : ndarray, shape (n_steps,)
    alignment : ndarray, shape (n_seeds, n_steps)
    subject_alignment : ndarray, shape (n_seeds, n_steps, n_subjects), or None

    Returns
    -------
    sigma : ndarray, shape (n_steps,)
    source : str
    """
    curve = quiet_nanmean(alignment, axis=0)
    finite = np.isfinite(curve)
    units, source = None, "curve pseudo-residuals"
    if alignment.shape[0] >= 2:
        units, source = alignment, "seed spread"
    elif subject_alignment is not None and subject_alignment.shape[2] >= 2:
        units, source = subject_alignment[0].T, "subject spread"
    residual_sigma = pseudo_residual_sigma(x[finite], curve[finite])
    if units is not None:
        dev = units - quiet_nanmean(units, axis=0)[None, :]
        dev = dev - quiet_nanmean(dev, axis=1)[:, None]
        count = np.isfinite(units).sum(axis=0)
        n_units, n_points = units.shape[0], int(finite.sum())
        dof = max((n_units - 1) * (n_points - 1), 1)
        unit_var = np.nansum(dev ** 2) / dof
        sigma = np.sqrt(unit_var / np.maximum(count, 1))
        typical = float(np.nanmedian(sigma[finite])) if finite.any() else np.nan
        if np.isfinite(residual_sigma) and residual_sigma > _RESIDUAL_EXCESS * typical:
            # identical seeds (typical 0): the curve's own noise is all there is
            sigma = sigma * (residual_sigma / typical) if typical > 0 else np.full(len(x), residual_sigma)
            source += f", scaled up to the curve's pseudo-residual noise ({residual_sigma:.3g} > {_RESIDUAL_EXCESS} x {typical:.3g})"
    else:
        sigma = np.full(len(x), residual_sigma)
    if not np.isfinite(sigma[finite]).all() or not (sigma[finite] > 0).all():
        floor = max(float(np.nanmax(np.abs(curve))) * 1e-6, 1e-12) if finite.any() else 1e-12
        sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, floor)
        source += " (no measurable spread: floored)"
    return sigma, source


def noise_dof(x: np.ndarray, alignment: np.ndarray, subject_alignment: np.ndarray | None) -> float:
    """Degrees of freedom of :func:`noise_sigma`'s estimate (seeds x checkpoints interaction, or subjects,
    or about 0.6 n for the median of pseudo-residuals)."""
    finite = int(np.isfinite(quiet_nanmean(alignment, axis=0)).sum())
    if alignment.shape[0] >= 2:
        return float((alignment.shape[0] - 1) * (finite - 1))
    if subject_alignment is not None and subject_alignment.shape[2] >= 2:
        return float((subject_alignment.shape[2] - 1) * (finite - 1))
    return max(0.6 * (finite - 2), 1.0)
