"""Banded ridge regression (one penalty per feature space) and variance partitioning.

Banded ridge minimises, for every target ``y``,

    ||y - sum_b X_b w_b||^2 + sum_b (alpha / gamma_b) ||w_b||^2,

i.e. ordinary ridge with penalty ``alpha`` on the scaled features ``Z_b = sqrt(gamma_b) X_b``
(the parametrisation of himalaya's ``BandedRidgeCV``: ``deltas = log(gamma)``). The band
weights ``gamma`` come from a fixed grid of points on the simplex (``sum_b gamma_b = 1``),
and for each point :class:`~brainphase.encoding.ridge.RidgeCV` scores every alpha of its
grid with *one* eigendecomposition per inner fold. Each target keeps the (gamma, alpha) with
the best mean validation R^2 (a later grid point replaces an earlier one only when strictly
better, as himalaya does); its coefficients are the refit on all training samples at that
point, mapped back to the unscaled features (``w_b = sqrt(gamma_b) w_scaled_b``).

For two bands ``[baselines, layer]`` the grid is given as ratios ``rho = gamma_baselines /
gamma_layer`` (:func:`ratio_grid`): ``rho = 1`` penalises both bands alike, ``rho = 100``
penalises the baselines 100 times less than the layer.

Variance partitioning (held-out R^2 of three models fitted with the same outer CV):

* ``unique = R2_joint - R2_baselines``: what the layer explains beyond the baselines;
* ``shared = R2_layer + R2_baselines - R2_joint``: what both explain;
* the baselines' own unique part is ``R2_joint - R2_layer``.

With held-out R^2 these need not be >= 0 (a model can overfit); they are stored as computed.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from brainphase.encoding.estimator import RegressorParams
from brainphase.encoding.ridge import DEFAULT_ALPHAS, RidgeCV
from brainphase.errors import InputError

logger = logging.getLogger(__name__)

#: default baseline-to-layer band-weight ratios (gamma_baselines / gamma_layer)
DEFAULT_RATIOS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)


def ratio_grid(ratios: Sequence[float]) -> np.ndarray:
    """Two-band simplex points from ratios ``gamma_0 / gamma_1``, shape (n_ratios, 2).

    ``gamma = (rho / (1 + rho), 1 / (1 + rho))``.
    """
    ratios = np.asarray(ratios, dtype=np.float64).ravel()
    if ratios.size == 0 or not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        raise InputError(f"band ratios must be finite and > 0, got {ratios.tolist()}")
    return np.stack([ratios / (1.0 + ratios), 1.0 / (1.0 + ratios)], axis=1)


class BandedRidgeCV(RegressorParams):
    """Banded ridge with band weights and alpha chosen per target by grouped CV (grid search).

    Parameters
    ----------
    band_sizes : sequence of int, shape (n_bands,)
        Number of columns of each band; the bands are consecutive column blocks of ``X``.
    band_weights : array-like of shape (n_candidates, n_bands)
        Grid of band weights ``gamma`` (> 0; rows are normalised to sum to 1).
    alphas : sequence of float
        Ridge penalties tried at every grid point.
    cv, fit_intercept, backend, device, dtype, chunk_size
        As :class:`~brainphase.encoding.ridge.RidgeCV` (used at every grid point).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_targets)
        On the unscaled features.
    intercept_ : ndarray of shape (n_targets,)
    best_alphas_ : ndarray of shape (n_targets,)
    best_band_weights_ : ndarray of shape (n_bands, n_targets)
    cv_scores_ : ndarray of shape (n_candidates, n_targets)
        Best mean validation R^2 over alphas at each grid point.
    """

    def __init__(
        self,
        band_sizes: Sequence[int] = (1, 1),
        band_weights: Any = None,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        cv: Any = None,
        fit_intercept: bool = True,
        backend: str = "numpy",
        device: str | None = None,
        dtype: str = "float32",
        chunk_size: int | None = None,
    ):
        self.band_sizes = band_sizes
        self.band_weights = band_weights
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size

    def _check_bands(self, X, Y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``X`` (n_samples, sum(band_sizes)) and ``Y`` (n_samples, n_targets) as arrays, and the band
        of each column of ``X`` (sum(band_sizes),); InputError when the shapes do not fit."""
        X = np.asarray(X)
        Y = np.asarray(Y)
        sizes = [int(s) for s in self.band_sizes]
        if X.ndim != 2 or X.shape[1] != sum(sizes) or min(sizes, default=0) < 1:
            raise InputError(f"X has shape {X.shape} but band_sizes {sizes} need {sum(sizes)} columns, each band >= 1")
        if Y.ndim != 2:
            raise InputError(f"Y must be 2-D (n_samples, n_targets), got shape {Y.shape}")
        return X, Y, np.repeat(np.arange(len(sizes)), sizes)

    def _grid(self) -> np.ndarray:
        sizes = [int(s) for s in self.band_sizes]
        grid = ratio_grid(DEFAULT_RATIOS) if self.band_weights is None else np.asarray(self.band_weights, float)
        if grid.ndim != 2 or grid.shape[1] != len(sizes):
            raise InputError(f"band_weights must have shape (n_candidates, {len(sizes)}), got {grid.shape}")
        if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise InputError("band_weights must be finite and > 0")
        return grid / grid.sum(axis=1, keepdims=True)

    def fit(self, X, Y, groups=None) -> "BandedRidgeCV":
        """Grid search over band weights; alpha per target by grouped CV at each point.

        Parameters
        ----------
        X : ndarray of shape (n_samples, sum(band_sizes))
        Y : ndarray of shape (n_samples, n_targets)
        groups : ndarray of shape (n_samples,)
            Run label of each sample (see :class:`RidgeCV`).
        """
        X, Y, band_of_column = self._check_bands(X, Y)
        grid = self._grid()
        n_targets = Y.shape[1]
        best = np.full(n_targets, -np.inf)
        eps = np.finfo(np.dtype(self.dtype)).eps
        self.cv_scores_ = np.empty((len(grid), n_targets))
        self.coef_ = np.zeros((X.shape[1], n_targets), dtype=self.dtype)
        self.intercept_ = np.zeros(n_targets, dtype=self.dtype)
        self.best_alphas_ = np.full(n_targets, np.nan)
        self.best_band_weights_ = np.full((len(self.band_sizes), n_targets), np.nan)
        for k, gamma in enumerate(grid):
            column_scale = np.sqrt(gamma[band_of_column]).astype(X.dtype if X.dtype.kind == "f" else np.float64)
            ridge = RidgeCV(alphas=self.alphas, cv=self.cv, fit_intercept=self.fit_intercept, backend=self.backend,
                            device=self.device, dtype=self.dtype, chunk_size=self.chunk_size)
            ridge.fit(X * column_scale, Y, groups)
            score = ridge.cv_scores_.max(axis=0)
            self.cv_scores_[k] = score
            better = score > best + eps
            if not better.any():
                continue
            best[better] = score[better]
            self.coef_[:, better] = ridge.coef_[:, better] * column_scale[:, None].astype(self.dtype)
            self.intercept_[better] = ridge.intercept_[better]
            self.best_alphas_[better] = ridge.best_alphas_[better]
            self.best_band_weights_[:, better] = gamma[:, None]
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions, shape (n_samples, n_targets)."""
        self._check_fitted("coef_")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InputError(f"X has shape {X.shape} but the model was fit on {self.n_features_in_} features")
        return X.astype(self.coef_.dtype, copy=False) @ self.coef_ + self.intercept_


def variance_partition(r2_layer: np.ndarray, r2_baselines: np.ndarray, r2_joint: np.ndarray) -> dict[str, np.ndarray]:
    """Unique and shared held-out R^2 of a layer and the baselines (arrays of one shape).

    Returns
    -------
    dict with ``unique_r2 = r2_joint - r2_baselines``, ``shared_r2 = r2_layer + r2_baselines -
    r2_joint`` and ``joint_r2``, all float32 of the input shape.
    """
    r2_layer, r2_baselines, r2_joint = (np.asarray(a, dtype=np.float64) for a in (r2_layer, r2_baselines, r2_joint))
    if not (r2_layer.shape == r2_baselines.shape == r2_joint.shape):
        raise InputError(f"R^2 arrays differ in shape: {r2_layer.shape}, {r2_baselines.shape}, {r2_joint.shape}")
    return {
        "unique_r2": (r2_joint - r2_baselines).astype(np.float32),
        "shared_r2": (r2_layer + r2_baselines - r2_joint).astype(np.float32),
        "joint_r2": r2_joint.astype(np.float32),
    }
