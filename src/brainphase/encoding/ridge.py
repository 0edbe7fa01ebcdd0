"""Ridge regression with the penalty chosen per target by run-grouped cross-validation.

:class:`RidgeCV` follows scikit-learn's estimator contract (``fit`` / ``predict`` /
``score``, ``get_params``, ``clone``) without importing scikit-learn at module load
(:mod:`brainphase.encoding.estimator`). It solves, for every target ``y`` and alpha,
``(X^T X + alpha I) w = X^T y`` (as himalaya's ``RidgeCV``), with one eigendecomposition of
the training features per fold serving all alphas and targets
(:mod:`brainphase.encoding.solver`).

Folds are grouped: by default leave-one-group-out over ``groups`` (one group = one run or
story), so a run never contributes to both the training and the validation part of a fold
(:mod:`brainphase.encoding.splits`). :func:`nested_cv_predict` adds an outer
leave-one-run-out loop for held-out predictions.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

import numpy as np

from brainphase.encoding.estimator import RegressorParams
from brainphase.encoding.solver import (
    SOLVERS,
    column_scale,
    solver_form,
    array_ops,
    Spectral,
    validation_r2,
    Workspace,
    auto_chunk_size,
)
from brainphase.encoding.splits import grouped_splits
from brainphase.errors import InputError

logger = logging.getLogger(__name__)

#: default alpha grid: 10^0 .. 10^6 in half-decade steps (13 values)
DEFAULT_ALPHAS: tuple[float, ...] = tuple(np.logspace(0, 6, 13).tolist())


def check_X(X, name: str = "X") -> np.ndarray:
    """``X`` as a finite 2-D array, shape (n_samples, n_features); InputError naming ``name`` otherwise."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise InputError(f"{name} of shape {X.shape} has non-numeric dtype {X.dtype}")
    bad = X.size - int(np.isfinite(X).sum())
    if bad:
        raise InputError(f"{name} of shape {X.shape} contains {bad} NaN/inf values; remove or impute them first")
    return X


# ---------------------------------------------------------------------------- estimator
class RidgeCV(RegressorParams):
    """Ridge regression, alpha chosen per target by run-grouped cross-validation.

    Solves ``(X^T X + alpha I) w = X^T y`` for every target (as himalaya; alpha is not
    scaled by the number of samples). For each fold one eigendecomposition of the training
    features (primal ``X^T X`` or, when features outnumber samples, the kernel ``X X^T``)
    gives the solutions for every alpha and every target. The validation score is R^2 on
    the held-out fold, averaged over folds; each target keeps the alpha with the best mean
    score (exact ties go to the larger alpha). Coefficients are then refit on all samples
    with each target's alpha.

    Intercept: with ``fit_intercept=True`` features and targets are centred on the mean of
    the training part of each fold (and of all samples for the refit); the intercept is
    ``mean(Y) - mean(X) @ coef_``. No penalty applies to it.

    Standardization: with ``standardize=True`` every feature is also divided by its standard
    deviation (population, ``ddof=0``) over the training part of each inner fold (and over
    all samples for the refit), as a scikit-learn ``Pipeline(StandardScaler(), Ridge())``
    refit per fold: validation rows are scaled with training statistics only, so nothing
    leaks from them. ``coef_`` is expressed on the original feature scale
    (``coef_ = w_scaled / std``), so :meth:`predict` takes unscaled features. Constant
    features get a scale of 1 (they are 0 after centring).

    Parameters
    ----------
    alphas : sequence of float, shape (n_alphas,)
        Penalties to try (> 0), typically log-spaced.
    cv : None, int, scikit-learn splitter or iterable of (train, validation) index arrays
        ``None`` (default): leave-one-group-out over ``groups``; ``int k``:
        ``GroupKFold(k)``. Any splitter is checked: no group may be on both sides of a fold.
    fit_intercept : bool
        Centre features and targets (see above).
    standardize : bool
        Also scale features to unit variance on each training part (see above); needs
        ``fit_intercept``.
    backend : {"numpy", "torch"}
        ``"torch"`` runs on ``device`` (CUDA when available by default).
    device : str or None
        Torch device; ``None`` picks CUDA when available, else CPU.
    dtype : {"float32", "float64"}
        Working precision of everything that scales with the number of targets. (bf16 is not
        offered: ridge solutions need float32 accuracy.)
    chunk_size : int or None
        Targets processed at once; ``None`` sizes chunks to about 128 MiB of working memory.
    solver : {"auto", "primal", "dual"}
        ``"auto"`` uses the kernel (dual) form when features outnumber training samples.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_targets) or (n_features,)
    intercept_ : ndarray of shape (n_targets,) or float
    best_alphas_ : ndarray of shape (n_targets,) or float
    cv_scores_ : ndarray of shape (n_alphas, n_targets)
        Validation R^2 of each alpha, averaged over folds.
    splits_ : list of (train, validation) index arrays
    n_features_in_ : int
    """

    def __init__(
        self,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        cv: Any = None,
        fit_intercept: bool = True,
        standardize: bool = False,
        backend: str = "numpy",
        device: str | None = None,
        dtype: str = "float32",
        chunk_size: int | None = None,
        solver: str = "auto",
    ):
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.solver = solver

    # -------------------------------------------------------------- helpers
    def _chunks(self, n_targets: int, auto_size: int) -> Iterable[slice]:
        size = self.chunk_size or auto_size
        for start in range(0, n_targets, size):
            yield slice(start, min(start + size, n_targets))

    def _validate(self, X, Y):
        if self.standardize and not self.fit_intercept:
            raise InputError("standardize=True z-scores features, which centres them: it needs fit_intercept=True")
        if self.solver not in SOLVERS:
            raise InputError(f"solver {self.solver!r} is not one of {SOLVERS}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype {self.dtype!r} is not 'float32' or 'float64'")
        if self.chunk_size is not None and (not isinstance(self.chunk_size, (int, np.integer)) or self.chunk_size < 1):
            raise InputError(f"chunk_size must be a positive integer or None (got {self.chunk_size!r})")
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise InputError(f"alphas must be finite and > 0, got {alphas.tolist()}")
        X = check_X(X)
        Y = np.asarray(Y)
        if Y.ndim not in (1, 2):
            raise InputError(f"Y must be 1-D or 2-D (n_samples, n_targets), got shape {Y.shape}")
        if Y.shape[0] != X.shape[0]:
            raise InputError(
                f"X has shape {X.shape} but Y has shape {Y.shape}: they need the same number of samples (rows)"
            )
        return X, Y, alphas

    # -------------------------------------------------------------- API
    def fit(self, X, Y, groups=None) -> "RidgeCV":
        """Choose alpha per target by grouped cross-validation, then refit on all samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        Y : array-like of shape (n_samples, n_targets) or (n_samples,)
        groups : array-like of shape (n_samples,)
            Run (story) label of each sample; required unless ``cv`` gives explicit splits.

        Returns
        -------
        self
        """
        X, Y, alphas = self._validate(X, Y)
        ravel = Y.ndim == 1
        Y2 = Y[:, None] if ravel else Y
        n_samples, n_features = X.shape
        n_targets = Y2.shape[1]
        splits = grouped_splits(n_samples, groups, self.cv, X, Y2)
        ops = array_ops(self.backend, self.dtype, self.device)
        X_dev = ops.asarray(X)

        folds = []
        for train, val in splits:
            train_i, val_i = ops.index(train), ops.index(val)
            X_train, X_val = X_dev[train_i], X_dev[val_i]
            if self.fit_intercept:
                x_mean = X_train.mean(0)
                X_train, X_val = X_train - x_mean, X_val - x_mean
            if self.standardize:
                x_scale = column_scale(X_train)
                X_train, X_val = X_train / x_scale, X_val / x_scale
            spectral = Spectral(X_train, ops, solver_form(self.solver, len(train), n_features))
            shrink = spectral.shrink(alphas, ops)  # (n_alphas, rank)
            # validation "hat" factors for all alphas stacked: (n_alphas * n_val, rank)
            hat = ((X_val @ spectral.R)[None, :, :] * shrink[:, None, :]).reshape(-1, shrink.shape[1])
            folds.append((train_i, val_i, spectral.M, hat))
        x_mean = X_dev.mean(0) if self.fit_intercept else None
        X_full = X_dev - x_mean if self.fit_intercept else X_dev
        x_scale = column_scale(X_full) if self.standardize else None
        full = Spectral(X_full / x_scale if self.standardize else X_full, ops, solver_form(self.solver, n_samples, n_features))

        n_alphas = len(alphas)
        max_val = max(len(v) for _, v in splits)
        order = np.argsort(alphas)[::-1]  # argmax over this order: exact ties go to the larger alpha
        scores = np.zeros((n_alphas, n_targets))
        best_alphas = np.empty(n_targets)
        coef = np.empty((n_features, n_targets), dtype=self.dtype)
        intercept = np.zeros(n_targets, dtype=self.dtype)
        n_constant = 0
        work = Workspace(ops)
        for chunk in self._chunks(n_targets, auto_chunk_size(n_samples, n_features, n_alphas, max_val)):
            width = chunk.stop - chunk.start
            Y_dev = ops.load(Y2[:, chunk], work.get("Y", (n_samples, width)))
            if not ops.all_finite(Y_dev):
                raise InputError(
                    f"Y of shape {Y2.shape} contains NaN/inf values (in targets {chunk.start}..{chunk.stop - 1})"
                )
            for train_i, val_i, M, hat in folds:
                y_train = ops.take_rows(Y_dev, train_i, work.get("train", (len(train_i), width)))
                y_val = ops.take_rows(Y_dev, val_i, work.get("val", (len(val_i), width)))
                if self.fit_intercept:
                    y_mean = y_train.mean(0)
                    y_train -= y_mean
                    y_val -= y_mean
                projected = ops.matmul(M.T, y_train, work.get("projected", (M.shape[1], width)))
                r2, constant = validation_r2(ops, hat, projected, y_val, n_alphas, work)
                n_constant += constant
                scores[:, chunk] += r2
            scores[:, chunk] /= len(splits)
            best_alphas[chunk] = alphas[order[np.argmax(scores[order, chunk], axis=0)]]
            # refit this chunk on all samples with each target's alpha
            if self.fit_intercept:
                y_mean = Y_dev.mean(0)
                Y_dev -= y_mean
            projected = ops.matmul(full.M.T, Y_dev, work.get("projected", (full.M.shape[1], width)))
            projected *= full.shrink_targets(best_alphas[chunk], ops, work.get("shrink", (full.M.shape[1], width)))
            w = ops.matmul(full.R, projected, work.get("coef", (n_features, width)))
            if self.standardize:  # back to the original feature scale
                w /= x_scale[:, None]
            coef[:, chunk] = ops.numpy(w)
            if self.fit_intercept:
                intercept[chunk] = ops.numpy(y_mean - x_mean @ w)
        if n_constant:
            logger.warning("%d (fold, target) pairs had constant validation targets; their R^2 was set to 0", n_constant)
        self.cv_scores_, self.splits_, self.n_features_in_ = scores, splits, n_features
        if ravel:
            self.coef_, self.intercept_, self.best_alphas_ = coef[:, 0], float(intercept[0]), float(best_alphas[0])
        else:
            self.coef_, self.intercept_, self.best_alphas_ = coef, intercept, best_alphas
        return self

    def predict(self, X) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_targets) or (n_samples,)
        """
        self._check_fitted("coef_")
        X = check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise InputError(f"X has shape {X.shape} but the model was fit on {self.n_features_in_} features")
        return X.astype(self.coef_.dtype, copy=False) @ self.coef_ + self.intercept_

    def score(self, X, Y) -> np.ndarray | float:
        """R^2 of the predictions for each target (not averaged, unlike scikit-learn).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        Y : array-like of shape (n_samples, n_targets) or (n_samples,)

        Returns
        -------
        ndarray of shape (n_targets,), or float for 1-D ``Y``
        """
        from brainphase.encoding.scoring import r2_columns

        Y = np.asarray(Y)
        pred = self.predict(X)
        if Y.shape != pred.shape:
            raise InputError(f"Y has shape {Y.shape} but the predictions have shape {pred.shape}")
        if Y.ndim == 1:
            return float(r2_columns(Y[:, None], pred[:, None])[0])
        return r2_columns(Y, pred)


def nested_cv_predict(
    estimator: RidgeCV, X: np.ndarray, Y: np.ndarray, groups: np.ndarray, progress: bool = False,
    shared_inner_fits: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Held-out predictions by outer leave-one-group-out with inner grouped CV for alpha.

    For each group (run) in turn, a clone of ``estimator`` is fit on the other runs (its
    own ``cv`` chooses alpha per target among those runs only) and predicts the held-out run.
    With inner leave-one-group-out (``cv=None``) a :class:`RidgeCV` or
    :class:`~brainphase.encoding.banded.BandedRidgeCV` and 2-D ``Y`` take the same
    computation with each inner training set (all runs but two) fitted once for both outer
    folds that use it (:mod:`brainphase.encoding.nested`; about half the inner fits);
    ``shared_inner_fits=False`` forces the loop of clones (the reference of the tests).

    Parameters
    ----------
    estimator : RidgeCV
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_targets)
    groups : ndarray of shape (n_samples,)
    progress : bool
        Show a tqdm bar over outer folds.

    Returns
    -------
    predictions : ndarray of shape (n_samples, n_targets)
        Row ``i`` predicted by the model that did not see ``groups[i]``.
    best_alphas : ndarray of shape (n_outer_folds, n_targets)
    held_out_groups : list
        Group held out in each outer fold, in order.
    """
    groups = np.asarray(groups)
    Y = np.asarray(Y)
    if X.shape[0] != Y.shape[0] or groups.shape != (X.shape[0],):
        raise InputError(
            f"X {X.shape}, Y {Y.shape} and groups {groups.shape} need the same number of samples"
        )
    held_out = list(dict.fromkeys(groups.tolist()))
    if len(held_out) < 3:
        raise InputError(
            f"nested cross-validation needs at least 3 runs (outer leave-one-run-out, inner CV over "
            f"the rest); got {len(held_out)}: {held_out}"
        )
    from brainphase.encoding.banded import BandedRidgeCV
    from brainphase.encoding.nested import nested_logo_banded, nested_logo_ridge

    shared = shared_inner_fits and Y.ndim == 2 and getattr(estimator, "cv", 0) is None and type(estimator) in (
        RidgeCV, BandedRidgeCV)
    # the shared fits hold the inner scores of all outer folds at once, (n_groups, n_alphas, n_targets) float64:
    # allowed up to the size of Y in float32 or 256 MiB (more only with about as many outer folds as samples)
    score_bytes = len(held_out) * len(np.ravel(estimator.alphas)) * 8 * (Y.shape[1] if Y.ndim == 2 else 1)
    if shared and score_bytes > max(Y.size * 4, 1 << 28):
        logger.info("%d outer folds x %d alphas: inner fits not shared (their scores would outgrow Y)",
                    len(held_out), len(np.ravel(estimator.alphas)))
        shared = False
    if shared:
        # inner leave-one-group-out: the inner training sets of outer folds k and j coincide (encoding/nested.py)
        if isinstance(estimator, RidgeCV):
            return nested_logo_ridge(estimator, X, Y, groups, progress)[:3]
        return nested_logo_banded(estimator, X, Y, groups, progress)
    predictions = np.empty(Y.shape, dtype=np.dtype(estimator.dtype))
    alphas = np.empty((len(held_out), Y.shape[1]))
    from sklearn.base import clone
    from tqdm.auto import tqdm

    for k, group in enumerate(tqdm(held_out, desc="outer folds", disable=not progress, leave=False)):
        test = groups == group
        model = clone(estimator).fit(X[~test], Y[~test], groups[~test])
        predictions[test] = model.predict(X[test])
        alphas[k] = model.best_alphas_
    return predictions, alphas, held_out
