"""Shared input checks for the emergence statistics: metric arrays are (n_seeds, n_steps)."""

from __future__ import annotations

import numpy as np

from brainphase.errors import InputError


def seed_step_array(values, name: str = "values") -> np.ndarray:
    """Check and convert a metric array of shape (n_seeds, n_steps) to float64.

    Parameters
    ----------
    values : array_like, shape (n_seeds, n_steps)
        One row per seed, one column per checkpoint; NaN marks a missing value.
    name : str
        What the array is, for the error message.

    Returns
    -------
    ndarray of float64, shape (n_seeds, n_steps)
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise InputError(f"{name} must be a 2-D array of shape (n_seeds, n_steps) with at least one "
                         f"seed and one step, got shape {array.shape}; pass one row per seed")
    if np.isinf(array).any():
        raise InputError(f"{name} contains infinite values; use NaN for a missing value")
    return array
