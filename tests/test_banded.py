"""Banded ridge: agreement with himalaya on the same grid, band selection, variance partitioning."""

import numpy as np
import pytest

from brainphase.encoding.banded import BandedRidgeCV, ratio_grid, variance_partition
from brainphase.encoding.ridge import nested_cv_predict
from brainphase.encoding.splits import grouped_splits
from brainphase.encoding.scoring import r2_columns
from brainphase.errors import InputError

ALPHAS = np.logspace(-1, 4, 11)


def planted(seed=0, n_runs=4, n_per_run=60, p0=5, p1=30, n_targets=12):
    """Two bands; half the targets load on band 0 only (strongly), the others on both."""
    rng = np.random.default_rng(seed)
    n = n_runs * n_per_run
    X0, X1 = rng.standard_normal((n, p0)), rng.standard_normal((n, p1))
    W0, W1 = rng.standard_normal((p0, n_targets)), rng.standard_normal((p1, n_targets)) * 0.3
    W1[:, : n_targets // 2] = 0.0
    Y = X0 @ W0 + X1 @ W1 + 2.0 * rng.standard_normal((n, n_targets))
    groups = np.repeat(np.arange(n_runs), n_per_run)
    return np.hstack([X0, X1]).astype(np.float64), Y, groups, (p0, p1)


def test_matches_himalaya_banded_ridge_cv_on_the_same_grid():
    from himalaya.backend import set_backend
    from himalaya.ridge import BandedRidgeCV as HimalayaBandedRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy")
    X, Y, groups, sizes = planted()
    grid = ratio_grid([0.01, 0.1, 1.0, 10.0, 100.0])
    train = groups < 3
    splits = grouped_splits(int(train.sum()), groups[train])
    ours = BandedRidgeCV(sizes, grid, ALPHAS, cv=splits, dtype="float64").fit(X[train], Y[train], groups[train])
    theirs = HimalayaBandedRidgeCV(
        groups=np.repeat([0, 1], sizes), fit_intercept=True,
        solver_params=dict(n_iter=grid, alphas=ALPHAS, score_func=r2_score, progress_bar=False),
        cv=splits,
    ).fit(X[train], Y[train])
    np.testing.assert_allclose(ours.cv_scores_, theirs.cv_scores_, atol=1e-8)
    np.testing.assert_allclose(ours.best_alphas_, theirs.best_alphas_, rtol=1e-10)
    np.testing.assert_allclose(np.log(ours.best_band_weights_), theirs.deltas_ + np.log(theirs.best_alphas_), atol=1e-8)
    test = ~train
    np.testing.assert_allclose(ours.predict(X[test]), theirs.predict(X[test]), atol=1e-6)
    np.testing.assert_allclose(r2_columns(Y[test], ours.predict(X[test])),
                               r2_columns(Y[test], theirs.predict(X[test])), atol=1e-8)


def test_one_grid_point_equals_plain_ridge_on_scaled_features():
    from brainphase.encoding.ridge import RidgeCV

    X, Y, groups, sizes = planted(seed=1)
    gamma = np.array([[0.8, 0.2]])
    banded = BandedRidgeCV(sizes, gamma, ALPHAS, dtype="float64").fit(X, Y, groups)
    scale = np.sqrt(np.repeat(gamma[0], sizes))
    plain = RidgeCV(ALPHAS, dtype="float64").fit(X * scale, Y, groups)
    np.testing.assert_allclose(banded.predict(X), plain.predict(X * scale), atol=1e-8)


def test_band_weights_favour_the_informative_band():
    X, Y, groups, sizes = planted(seed=2, n_per_run=120)
    model = BandedRidgeCV(sizes, ratio_grid([0.01, 1.0, 100.0]), ALPHAS, dtype="float64").fit(X, Y, groups)
    # targets 0..5 depend on band 0 only: the grid point that shrinks band 1 most wins for most of them
    assert np.mean(model.best_band_weights_[0, :6] > 0.9) >= 0.5
    assert np.mean(model.best_band_weights_[0, :6]) > np.mean(model.best_band_weights_[0, 6:])


def test_variance_partition_recovers_planted_unique_shares():
    """Independent bands A (share a) and B (share b): unique_B ~ b, shared ~ 0, joint ~ a + b."""
    rng = np.random.default_rng(3)
    n_runs, n_per_run, n_targets = 4, 250, 6
    n = n_runs * n_per_run
    groups = np.repeat(np.arange(n_runs), n_per_run)
    A, B = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    a, b = 0.3, 0.2
    sa = A @ rng.standard_normal((3, n_targets))
    sb = B @ rng.standard_normal((3, n_targets))
    Y = np.sqrt(a) * sa / sa.std(0) + np.sqrt(b) * sb / sb.std(0) + np.sqrt(1 - a - b) * rng.standard_normal((n, n_targets))
    from brainphase.encoding.ridge import RidgeCV

    r2 = {}
    for name, features, estimator in [
        ("baselines", A, RidgeCV(ALPHAS, dtype="float64")),
        ("layer", B, RidgeCV(ALPHAS, dtype="float64")),
        ("joint", np.hstack([A, B]), BandedRidgeCV((3, 3), ratio_grid([0.1, 1.0, 10.0]), ALPHAS, dtype="float64")),
    ]:
        predictions, _, _ = nested_cv_predict(estimator, features, Y, groups)
        r2[name] = r2_columns(Y, predictions)
    parts = variance_partition(r2["layer"], r2["baselines"], r2["joint"])
    np.testing.assert_allclose(parts["unique_r2"], b, atol=0.05)
    np.testing.assert_allclose(parts["shared_r2"], 0.0, atol=0.05)
    np.testing.assert_allclose(parts["joint_r2"], a + b, atol=0.06)
    np.testing.assert_allclose(parts["unique_r2"] + parts["shared_r2"], r2["layer"], atol=1e-6)


def test_banded_shared_inner_fits_equal_one_fit_per_outer_fold():
    X, Y, groups, sizes = planted()
    estimator = BandedRidgeCV(sizes, ratio_grid([0.1, 1.0, 10.0]), ALPHAS, dtype="float64")
    shared = nested_cv_predict(estimator, X, Y, groups)
    loop = nested_cv_predict(estimator, X, Y, groups, shared_inner_fits=False)
    assert shared[2] == loop[2]
    np.testing.assert_array_equal(shared[1], loop[1])
    np.testing.assert_allclose(shared[0], loop[0], atol=1e-10)


def test_bad_inputs_are_refused():
    X, Y, groups, sizes = planted()
    with pytest.raises(InputError, match="band_sizes"):
        BandedRidgeCV((3, 3), None, ALPHAS).fit(X, Y, groups)
    with pytest.raises(InputError, match="shape"):
        BandedRidgeCV(sizes, np.ones((2, 3)), ALPHAS).fit(X, Y, groups)
    with pytest.raises(InputError, match="> 0"):
        ratio_grid([1.0, 0.0])
    with pytest.raises(InputError, match="shape"):
        variance_partition(np.zeros(3), np.zeros(3), np.zeros(4))
