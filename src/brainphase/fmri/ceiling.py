"""Noise ceilings on the Pearson r of an encoding model, per voxel.

Two estimators, both returning the highest correlation a perfect model of the
stimulus-driven signal could reach with the response it is evaluated on.

**Repeated presentations** (:func:`ceiling_from_repeats`), the signal-power estimate of
Sahani & Linden (2003) as used by Schoppe et al. (2016). With ``N`` repeats
``r_i = s + n_i`` (independent noise of equal variance) and their mean ``m``::

    SP  = (N * var(m) - mean_i var(r_i)) / (N - 1)        # unbiased signal power
    ceiling_r = sqrt(clip(SP / var(m), 0, 1))             # for predicting the mean m

because ``N var(m) - mean var(r_i) = N (S + σ²/N) - (S + σ²) = (N - 1) S``.

**Leave-one-subject-out inter-subject correlation** (:func:`ceiling_loso`), for a stimulus
heard once by several subjects. ``isc_s = corr(x_s, mean of the other N - 1 subjects)``.
Assuming a shared signal and equal noise across subjects (single-subject reliability
``c²``), the mean of the others has Spearman–Brown reliability
``R = (N - 1) c² / (1 + (N - 2) c²)`` and ``isc_s² = c² R``. Solving this quadratic in ``c²``::

    c² = ((N - 2) isc² + sqrt((N - 2)² isc⁴ + 4 (N - 1) isc²)) / (2 (N - 1))

gives the per-subject ceiling ``c = sqrt(c²)`` (``c² = isc`` for two subjects), set to 0
where ``isc_s <= 0``. For the average over ``N`` subjects the ceiling is
``sqrt(N ρ / (1 + (N - 1) ρ))`` with ``ρ`` the mean single-subject ``c²``
(:func:`ceiling_of_average`). Estimates on voxels without shared signal are noisy and
positively biased by the square root (about ``sqrt(1 / sqrt(n_trs))``): use them as a
ceiling only where the ceiling itself is well above that level.
"""

from __future__ import annotations

import numpy as np

from brainphase.errors import InputError


def columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of ``a`` and ``b``, each (n_samples, n_columns) -> (n_columns,).

    Columns with zero variance give NaN.
    """
    a = np.asarray(a, np.float64) - np.mean(a, axis=0)
    b = np.asarray(b, np.float64) - np.mean(b, axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=0) / denominator, np.nan)


def ceiling_from_repeats(repeats: np.ndarray) -> np.ndarray:
    """Ceiling on r for predicting the mean over repeated presentations.

    Parameters
    ----------
    repeats : ndarray, shape (n_repeats, n_trs, n_voxels)
        Responses to the same stimulus, time-aligned.

    Returns
    -------
    ndarray, shape (n_voxels,)
        ``sqrt(clip(SP / var(mean), 0, 1))`` (module docstring); NaN where the mean is constant.
    """
    repeats = np.asarray(repeats, np.float64)
    if repeats.ndim != 3 or repeats.shape[0] < 2:
        raise InputError(f"repeat ceiling needs (n_repeats >= 2, n_trs, n_voxels) responses, got shape {repeats.shape}")
    n_repeats = repeats.shape[0]
    var_mean = repeats.mean(axis=0).var(axis=0, ddof=1)
    mean_var = repeats.var(axis=1, ddof=1).mean(axis=0)
    signal_power = (n_repeats * var_mean - mean_var) / (n_repeats - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(var_mean > 0, signal_power / var_mean, np.nan)
    return np.sqrt(np.clip(ratio, 0.0, 1.0))


def reliability_from_isc(isc: np.ndarray, n_subjects: int) -> np.ndarray:
    """Single-subject reliability ``c²`` from the leave-one-out ISC (module docstring), shape of ``isc``."""
    if n_subjects < 2:
        raise InputError(f"a leave-one-subject-out ceiling needs at least 2 subjects, got {n_subjects}")
    r2 = np.clip(np.asarray(isc, np.float64), 0.0, 1.0) ** 2
    k = n_subjects - 2
    return (k * r2 + np.sqrt(k**2 * r2**2 + 4 * (n_subjects - 1) * r2)) / (2 * (n_subjects - 1))


def ceiling_loso(responses: np.ndarray, with_group: bool = False):
    """Per-subject ceiling from the leave-one-subject-out inter-subject correlation.

    Parameters
    ----------
    responses : ndarray, shape (n_subjects, n_trs, n_voxels)
        Every subject's response to the same stimulus (runs concatenated in the same order).

    with_group : bool
        Also return the ceiling of the mean over subjects, from the mean of the *signed*
        single-subject reliabilities (``sign(isc) c²(|isc|)``), clipped at 0 only after averaging:
        averaging reliabilities clipped per subject (:func:`ceiling_of_average`) biases voxels
        without shared signal upward (0.3-0.4 seen with 27 subjects), past any ceiling floor.

    Returns
    -------
    ndarray, shape (n_subjects, n_voxels)
        ``sqrt(c²)`` with ``c²`` from :func:`reliability_from_isc` (0 where isc <= 0); NaN where a response is constant.
    ndarray, shape (n_voxels,)
        With ``with_group``: ``sqrt(N ρ / (1 + (N - 1) ρ))``, ``ρ`` = max(0, mean signed ``c²``).
    """
    responses = np.asarray(responses, np.float64)
    if responses.ndim != 3:
        raise InputError(f"LOSO ceiling needs (n_subjects, n_trs, n_voxels) responses, got shape {responses.shape}")
    n_subjects = responses.shape[0]
    total = responses.sum(axis=0)
    ceilings = np.empty((n_subjects, responses.shape[2]))
    signed = np.empty_like(ceilings)
    for s in range(n_subjects):
        isc = columnwise_pearson(responses[s], (total - responses[s]) / (n_subjects - 1))
        reliability = reliability_from_isc(np.abs(np.nan_to_num(isc, nan=0.0)), n_subjects)
        ceilings[s] = np.where(isc > 0, np.sqrt(reliability), 0.0)
        ceilings[s][np.isnan(isc)] = np.nan
        signed[s] = np.sign(isc) * reliability
    if not with_group:
        return ceilings
    rho = np.clip(np.mean(signed, axis=0), 0.0, 1.0)
    return ceilings, np.sqrt(n_subjects * rho / (1 + (n_subjects - 1) * rho))


def ceiling_of_average(subject_ceilings: np.ndarray) -> np.ndarray:
    """Ceiling for the mean response over subjects, from per-subject ceilings (n_subjects, n_voxels) -> (n_voxels,)."""
    n_subjects = subject_ceilings.shape[0]
    rho = np.mean(np.asarray(subject_ceilings, np.float64) ** 2, axis=0)
    return np.sqrt(n_subjects * rho / (1 + (n_subjects - 1) * rho))
