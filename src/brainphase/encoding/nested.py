"""Nested leave-one-group-out ridge with the inner fits shared between outer folds.

:func:`brainphase.encoding.ridge.nested_cv_predict` fits, for each held-out group (run) ``k``,
a :class:`~brainphase.encoding.ridge.RidgeCV` on the other groups whose inner
leave-one-group-out CV validates each other group ``j`` on a model trained on all groups but
``k`` and ``j``. That training set is the same for the pair ``(k, j)`` and ``(j, k)``: with
``G`` groups there are ``G (G - 1) / 2`` distinct inner training sets, not ``G (G - 1)``.
:func:`nested_logo_ridge` decomposes and projects each of them once and scores it on both of
its validation groups, then refits each outer fold and predicts its held-out group directly
from the spectral factors (``(X_test - mean) / scale @ R diag(1 / (lam + alpha)) M^T y +
mean(y)``, without forming the coefficients). The arithmetic of every inner fold is that of
``RidgeCV.fit`` (same rows, centring, scaling, decomposition, and validation R^2 summed over
inner folds in the same order), so the chosen alphas and the predictions equal the
one-fit-per-outer-fold loop up to floating-point rounding. Only one decomposition is held at
a time; the inner scores of all outer folds are, ``(n_groups, n_alphas, n_targets)`` float64
(``nested_cv_predict`` takes the loop of clones where that would outgrow ``Y``).

:func:`nested_logo_banded` does the same for :class:`~brainphase.encoding.banded.BandedRidgeCV`:
one shared-pair nested ridge per band-weight grid point, each outer fold keeping, per target,
the grid point with the best inner score (a later point only when strictly better, as
``BandedRidgeCV.fit``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from brainphase.encoding.ridge import RidgeCV, check_X
from brainphase.encoding.solver import (
    column_scale,
    solver_form,
    array_ops,
    Spectral,
    validation_r2,
    Workspace,
    auto_chunk_size,
)
from brainphase.errors import InputError

logger = logging.getLogger(__name__)


def _standardized(X_dev, train_i, other_i, fit_intercept: bool, standardize: bool):
    """Training rows and other rows of ``X_dev``, centred (and scaled) with training statistics only."""
    X_train, X_other = X_dev[train_i], X_dev[other_i]
    if fit_intercept:
        x_mean = X_train.mean(0)
        X_train, X_other = X_train - x_mean, X_other - x_mean
    if standardize:
        x_scale = column_scale(X_train)
        X_train, X_other = X_train / x_scale, X_other / x_scale
    return X_train, X_other


def nested_logo_ridge(estimator: RidgeCV, X: np.ndarray, Y: np.ndarray, groups: np.ndarray,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[Any], np.ndarray]:
    """Outer leave-one-group-out predictions of ``estimator`` (inner ``cv=None``), inner fits shared.

    Parameters
    ----------
    estimator : RidgeCV
        Its ``cv`` must be None (inner leave-one-group-out); its other settings are used.
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_targets)
    groups : ndarray of shape (n_samples,)
        At least 3 groups.
    progress : bool
        Show a tqdm bar over the fits.

    Returns
    -------
    predictions : ndarray of shape (n_samples, n_targets), ``estimator.dtype``
    best_alphas : ndarray of shape (n_groups, n_targets)
        Alpha chosen in each outer fold (outer folds in order of first appearance in ``groups``).
    held_out : list
        Group held out in each outer fold, in that order.
    best_scores : ndarray of shape (n_groups, n_targets)
        Mean inner validation R^2 of the chosen alpha (``RidgeCV.cv_scores_.max(0)``).
    """
    if estimator.cv is not None:
        raise InputError(f"nested_logo_ridge needs inner leave-one-group-out (cv=None), got cv={estimator.cv!r}")
    X, Y, alphas = estimator._validate(X, Y)
    groups = np.asarray(groups)
    held_out = list(dict.fromkeys(groups.tolist()))
    labels = np.unique(groups)  # LeaveOneGroupOut order: the inner folds of every outer fold follow it
    n_groups, (n_samples, n_features), n_targets = len(labels), X.shape, Y.shape[1]
    members = [np.flatnonzero(groups == label) for label in labels]
    ops = array_ops(estimator.backend, estimator.dtype, estimator.device)
    X_dev = ops.asarray(X)
    n_alphas = len(alphas)
    order = np.argsort(alphas)[::-1]  # argmax over this order: exact ties go to the larger alpha
    fit_intercept, standardize = estimator.fit_intercept, estimator.standardize
    chunks = list(estimator._chunks(n_targets, auto_chunk_size(n_samples, n_features, n_alphas,
                                                               max(len(m) for m in members))))
    work = Workspace(ops)
    scores = np.zeros((n_groups, n_alphas, n_targets))
    n_constant = 0
    from tqdm.auto import tqdm

    def load(chunk: slice):
        width = chunk.stop - chunk.start
        Y_dev = ops.load(Y[:, chunk], work.get("Y", (n_samples, width)))
        if not ops.all_finite(Y_dev):
            raise InputError(f"Y of shape {Y.shape} contains NaN/inf values (in targets {chunk.start}..{chunk.stop - 1})")
        return Y_dev, width

    def centred_train(Y_dev, train_i, width: int):
        y_train = ops.take_rows(Y_dev, train_i, work.get("train", (len(train_i), width)))
        y_mean = None
        if fit_intercept:
            y_mean = y_train.mean(0)
            y_train -= y_mean
        return y_train, y_mean

    pairs = [(a, b) for a in range(n_groups) for b in range(a + 1, n_groups)]
    bar = tqdm(total=len(pairs) + n_groups, desc="nested fits", disable=not progress, leave=False)
    # 1. inner folds: the model trained on all groups but a and b validates a (outer fold b) and b (outer fold a)
    for a, b in pairs:
        train = np.flatnonzero((groups != labels[a]) & (groups != labels[b]))
        train_i = ops.index(train)
        validations = []
        for val_group, outer in ((b, a), (a, b)):
            val_i = ops.index(members[val_group])
            X_train, X_val = _standardized(X_dev, train_i, val_i, fit_intercept, standardize)
            if not validations:
                spectral = Spectral(X_train, ops, solver_form(estimator.solver, len(train), n_features))
                shrink = spectral.shrink(alphas, ops)
            hat = ((X_val @ spectral.R)[None, :, :] * shrink[:, None, :]).reshape(-1, shrink.shape[1])
            validations.append((outer, val_i, hat))
        for chunk in chunks:
            Y_dev, width = load(chunk)
            y_train, y_mean = centred_train(Y_dev, train_i, width)
            projected = ops.matmul(spectral.M.T, y_train, work.get("projected", (spectral.M.shape[1], width)))
            for outer, val_i, hat in sorted(validations, key=lambda v: v[0]):
                y_val = ops.take_rows(Y_dev, val_i, work.get("val", (len(val_i), width)))
                if fit_intercept:
                    y_val -= y_mean
                r2, constant = validation_r2(ops, hat, projected, y_val, n_alphas, work)
                n_constant += constant
                scores[outer, :, chunk] += r2
        bar.update()
    if n_constant:
        logger.warning("%d (fold, target) pairs had constant validation targets; their R^2 was set to 0", n_constant)
    # 2. outer folds: refit on all groups but k with each target's alpha, predict group k
    scores /= n_groups - 1
    predictions = np.empty(Y.shape, dtype=np.dtype(estimator.dtype))
    best_alphas = np.empty((n_groups, n_targets))
    for k in range(n_groups):
        best_alphas[k] = alphas[order[np.argmax(scores[k][order], axis=0)]]
        train = np.flatnonzero(groups != labels[k])
        train_i, test_i = ops.index(train), ops.index(members[k])
        X_train, X_test = _standardized(X_dev, train_i, test_i, fit_intercept, standardize)
        full = Spectral(X_train, ops, solver_form(estimator.solver, len(train), n_features))
        test_factors = X_test @ full.R  # (n_test, rank)
        for chunk in chunks:
            Y_dev, width = load(chunk)
            y_train, y_mean = centred_train(Y_dev, train_i, width)
            projected = ops.matmul(full.M.T, y_train, work.get("projected", (full.M.shape[1], width)))
            projected *= full.shrink_targets(best_alphas[k, chunk], ops, work.get("shrink", (full.M.shape[1], width)))
            predicted = ops.matmul(test_factors, projected, work.get("predicted", (len(members[k]), width)))
            if fit_intercept:
                predicted += y_mean
            predictions[members[k], chunk] = ops.numpy(predicted)
        bar.update()
    bar.close()
    position = [held_out.index(label) for label in labels.tolist()]  # sorted-label order -> appearance order
    appearance = np.argsort(position)
    return predictions, best_alphas[appearance], held_out, scores.max(axis=1)[appearance]


def nested_logo_banded(estimator, X: np.ndarray, Y: np.ndarray, groups: np.ndarray,
                       progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Outer leave-one-group-out predictions of a ``BandedRidgeCV`` (inner ``cv=None``), inner fits shared.

    Parameters
    ----------
    estimator : BandedRidgeCV
    X : ndarray of shape (n_samples, sum(band_sizes))
    Y : ndarray of shape (n_samples, n_targets)
    groups : ndarray of shape (n_samples,)

    Returns
    -------
    predictions : ndarray of shape (n_samples, n_targets)
    best_alphas : ndarray of shape (n_groups, n_targets)
        Alpha of the grid point chosen in each outer fold (NaN where none scored above -inf).
    held_out : list
    """
    X, Y, band_of_column = estimator._check_bands(X, Y)
    grid = estimator._grid()
    eps = np.finfo(np.dtype(estimator.dtype)).eps
    predictions = np.zeros(Y.shape, dtype=np.dtype(estimator.dtype))
    best_alphas = None
    held_out: list[Any] = []
    for gamma in grid:
        column_scale = np.sqrt(gamma[band_of_column]).astype(X.dtype if X.dtype.kind == "f" else np.float64)
        ridge = RidgeCV(alphas=estimator.alphas, cv=estimator.cv, fit_intercept=estimator.fit_intercept,
                        backend=estimator.backend, device=estimator.device, dtype=estimator.dtype,
                        chunk_size=estimator.chunk_size)
        point, point_alphas, held_out, point_scores = nested_logo_ridge(ridge, check_X(X) * column_scale, Y, groups,
                                                                        progress)
        if best_alphas is None:
            best = np.full(point_scores.shape, -np.inf)
            best_alphas = np.full(point_scores.shape, np.nan)
        for k, group in enumerate(held_out):
            better = point_scores[k] > best[k] + eps
            if better.any():
                rows = np.flatnonzero(np.asarray(groups) == group)
                best[k, better] = point_scores[k, better]
                best_alphas[k, better] = point_alphas[k, better]
                predictions[np.ix_(rows, np.flatnonzero(better))] = point[np.ix_(rows, np.flatnonzero(better))]
    return predictions, best_alphas, held_out
