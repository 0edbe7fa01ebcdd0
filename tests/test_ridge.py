"""Tests of brainphase.encoding.ridge against scikit-learn, himalaya and planted truths."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold

from brainphase.encoding.ridge import RidgeCV, nested_cv_predict
from brainphase.encoding.scoring import pearson_columns
from brainphase.encoding.splits import grouped_splits
from brainphase.errors import InputError

ALPHAS = np.logspace(-1, 4, 11)


def planted(n_samples=180, n_features=23, n_targets=31, n_runs=5, seed=0):
    """Y = X W + offset + noise; half the targets carry no signal."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)) + rng.standard_normal(n_features)
    W = rng.standard_normal((n_features, n_targets)) * 0.4
    W[:, n_targets // 2 :] = 0
    Y = X @ W + rng.standard_normal((n_samples, n_targets)) + rng.standard_normal(n_targets) * 3
    groups = np.repeat([f"run{k}" for k in range(n_runs)], n_samples // n_runs)
    return X, Y, groups


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fixed_alpha_matches_sklearn(solver, fit_intercept):
    X, Y, groups = planted()
    ours = RidgeCV(alphas=[7.5], dtype="float64", solver=solver, fit_intercept=fit_intercept).fit(X, Y, groups)
    ref = Ridge(alpha=7.5, fit_intercept=fit_intercept).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_.T, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-10)
    X_new = np.random.default_rng(9).standard_normal((13, X.shape[1]))
    np.testing.assert_allclose(ours.predict(X_new), ref.predict(X_new), atol=1e-10)
    # float32 default stays close
    ours32 = RidgeCV(alphas=[7.5], solver=solver, fit_intercept=fit_intercept).fit(X, Y, groups)
    assert ours32.coef_.dtype == np.float32
    np.testing.assert_allclose(ours32.predict(X_new), ref.predict(X_new), atol=1e-4)


def test_1d_target_matches_sklearn():
    X, Y, groups = planted()
    ours = RidgeCV(alphas=[3.0], dtype="float64").fit(X, Y[:, 0], groups)
    ref = Ridge(alpha=3.0).fit(X, Y[:, 0])
    assert ours.coef_.shape == (X.shape[1],) and isinstance(ours.intercept_, float)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-10)
    assert ours.score(X, Y[:, 0]) == pytest.approx(ref.score(X, Y[:, 0]), abs=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cv_choice_matches_himalaya(dtype):
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import r2_score

    X_all, Y_all, groups_all = planted(n_samples=240, n_runs=6, seed=1)
    test = groups_all == "run5"
    X, Y, X_test, Y_test = (a.astype(dtype) for a in (X_all[~test], Y_all[~test], X_all[test], Y_all[test]))
    groups = groups_all[~test]
    ours = RidgeCV(alphas=ALPHAS, dtype=dtype).fit(X, Y, groups)
    ref = HimalayaRidgeCV(
        alphas=ALPHAS.astype(dtype), cv=ours.splits_, fit_intercept=True, solver_params={"score_func": r2_score}
    ).fit(X, Y)
    np.testing.assert_allclose(ours.best_alphas_, np.asarray(ref.best_alphas_), rtol=1e-5)
    np.testing.assert_allclose(ours.cv_scores_.max(0), np.asarray(ref.cv_scores_), atol=1e-5)
    r_ours = pearson_columns(Y_test, ours.predict(X_test))
    r_ref = pearson_columns(Y_test, ref.predict(X_test))
    assert np.max(np.abs(r_ours - r_ref)) <= 1e-4
    # signal targets are predicted, noise targets are not
    assert r_ours[:15].mean() > 0.8 and abs(r_ours[16:].mean()) < 0.2


def test_runs_never_in_both_train_and_validation():
    _, _, groups = planted(n_runs=6)
    for cv in (None, 3, GroupKFold(n_splits=4)):
        splits = grouped_splits(len(groups), groups, cv)
        covered = np.concatenate([val for _, val in splits])
        assert sorted(covered) == list(range(len(groups)))
        for train, val in splits:
            assert not set(groups[train]) & set(groups[val])
    assert len(grouped_splits(len(groups), groups)) == 6
    X, Y, groups = planted()
    model = RidgeCV(alphas=ALPHAS).fit(X, Y, groups)
    assert [sorted(set(groups[val])) for _, val in model.splits_] == [[g] for g in sorted(set(groups))]
    with pytest.raises(InputError, match="both training and validation"):
        RidgeCV(alphas=ALPHAS, cv=list(KFold(4, shuffle=True, random_state=0).split(X))).fit(X, Y, groups)


def test_kernel_form_equals_primal_when_features_outnumber_samples():
    X, Y, groups = planted(n_samples=40, n_features=97, n_runs=4)
    primal = RidgeCV(alphas=ALPHAS, solver="primal", dtype="float64").fit(X, Y, groups)
    dual = RidgeCV(alphas=ALPHAS, solver="dual", dtype="float64").fit(X, Y, groups)
    auto = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y, groups)
    np.testing.assert_allclose(dual.cv_scores_, primal.cv_scores_, atol=1e-9)
    np.testing.assert_array_equal(dual.best_alphas_, primal.best_alphas_)
    np.testing.assert_allclose(dual.coef_, primal.coef_, atol=1e-9)
    np.testing.assert_array_equal(auto.coef_, dual.coef_)


def test_chunked_equals_unchunked():
    X, Y, groups = planted()
    whole = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X, Y, groups)
    chunked = RidgeCV(alphas=ALPHAS, dtype="float64", chunk_size=4).fit(X, Y, groups)
    np.testing.assert_allclose(chunked.cv_scores_, whole.cv_scores_, atol=1e-12)
    np.testing.assert_allclose(chunked.coef_, whole.coef_, atol=1e-12)
    np.testing.assert_allclose(chunked.intercept_, whole.intercept_, atol=1e-12)


def test_torch_backend_equals_numpy():
    pytest.importorskip("torch")
    X, Y, groups = planted()
    ref = RidgeCV(alphas=ALPHAS).fit(X, Y, groups)
    got = RidgeCV(alphas=ALPHAS, backend="torch", chunk_size=10).fit(X, Y, groups)
    np.testing.assert_allclose(got.cv_scores_, ref.cv_scores_, atol=1e-5)
    np.testing.assert_array_equal(got.best_alphas_, ref.best_alphas_)
    np.testing.assert_allclose(got.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(got.intercept_, ref.intercept_, atol=1e-4)


def test_bad_inputs_are_input_errors():
    X, Y, groups = planted()
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(InputError, match=r"\(180, 23\).*NaN/inf"):
        RidgeCV().fit(bad, Y, groups)
    bad[3, 4] = np.inf
    with pytest.raises(InputError, match="NaN/inf"):
        RidgeCV().fit(bad, Y, groups)
    bad_y = Y.copy()
    bad_y[0, 30] = np.nan
    with pytest.raises(InputError, match=r"Y of shape \(180, 31\)"):
        RidgeCV().fit(X, bad_y, groups)
    with pytest.raises(InputError, match=r"X has shape \(180, 23\) but Y has shape \(179, 31\)"):
        RidgeCV().fit(X, Y[:-1], groups)
    with pytest.raises(InputError, match="one run"):
        RidgeCV().fit(X, Y, np.repeat("only", 180))
    with pytest.raises(InputError, match="3 samples"):
        RidgeCV(cv=5).fit(X[:3], Y[:3], ["a", "b", "c"])
    with pytest.raises(InputError, match="groups has shape"):
        RidgeCV().fit(X, Y, groups[:-2])
    with pytest.raises(InputError, match="groups is required"):
        RidgeCV().fit(X, Y)
    with pytest.raises(InputError, match="alphas"):
        RidgeCV(alphas=[0.0, 1.0]).fit(X, Y, groups)


def test_nested_cv_predict_holds_out_each_run():
    X, Y, groups = planted(n_runs=4)
    estimator = RidgeCV(alphas=ALPHAS, dtype="float64")
    predictions, alphas, held_out = nested_cv_predict(estimator, X, Y, groups)
    assert held_out == ["run0", "run1", "run2", "run3"] and alphas.shape == (4, Y.shape[1])
    test = groups == "run2"
    manual = RidgeCV(alphas=ALPHAS, dtype="float64").fit(X[~test], Y[~test], groups[~test])
    np.testing.assert_allclose(predictions[test], manual.predict(X[test]), atol=1e-10)
    np.testing.assert_array_equal(alphas[2], manual.best_alphas_)
    with pytest.raises(InputError, match="at least 3 runs"):
        nested_cv_predict(estimator, X[groups < "run2"], Y[groups < "run2"], groups[groups < "run2"])


@pytest.mark.parametrize("options", [
    {},
    {"standardize": True},
    {"fit_intercept": False, "solver": "dual", "chunk_size": 7},
    {"dtype": "float32"},
    {"backend": "torch", "chunk_size": 10},
])
def test_shared_inner_fits_equal_one_fit_per_outer_fold(options):
    if options.get("backend") == "torch":
        pytest.importorskip("torch")
    X, Y, groups = planted(n_samples=150, n_runs=5)
    order = np.concatenate([np.flatnonzero(groups == f"run{k}") for k in (3, 0, 4, 1, 2)])  # not in label order
    X, Y, groups = X[order], Y[order], groups[order]
    estimator = RidgeCV(alphas=ALPHAS, **{"dtype": "float64", **options})
    shared = nested_cv_predict(estimator, X, Y, groups)
    loop = nested_cv_predict(estimator, X, Y, groups, shared_inner_fits=False)
    assert shared[2] == loop[2] == ["run3", "run0", "run4", "run1", "run2"]
    np.testing.assert_array_equal(shared[1], loop[1])  # the same alpha in every outer fold
    tolerance = 1e-4 if options.get("dtype") == "float32" else 1e-10
    np.testing.assert_allclose(shared[0], loop[0], atol=tolerance)
    assert len(np.unique(shared[1])) > 1  # alphas differ between targets: the choice is exercised


def test_estimators_keep_the_scikit_learn_contract_without_importing_it():
    import subprocess
    import sys

    from sklearn.base import clone, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.metrics import r2_score

    from brainphase.encoding.banded import BandedRidgeCV

    estimator = RidgeCV(alphas=[1.0, 10.0], cv=GroupKFold(3), dtype="float64")
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params(deep=False).keys() == estimator.get_params(deep=False).keys()
    assert copy.alphas == [1.0, 10.0] and copy.cv.n_splits == 3 and copy.cv is not estimator.cv
    assert copy.set_params(dtype="float32").dtype == "float32" and estimator.dtype == "float64"
    assert repr(RidgeCV(dtype="float64")) == "RidgeCV(dtype='float64')"
    assert is_regressor(estimator) and is_regressor(BandedRidgeCV())
    with pytest.raises(InputError, match="no parameter 'alpha'"):
        estimator.set_params(alpha=1.0)
    with pytest.raises(NotFittedError):
        RidgeCV().predict(np.zeros((2, 3)))
    X, Y, groups = planted()
    banded = BandedRidgeCV((10, 13), [[0.5, 0.5]], ALPHAS, dtype="float64").fit(X, Y, groups)
    assert banded.score(X, Y) == pytest.approx(r2_score(Y, banded.predict(X)))
    # importing the encoding package (what `brainphase encode` loads) costs no scikit-learn, scipy or pandas
    code = ("import sys, brainphase.encoding.cli, brainphase.encoding.partition; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'pandas'}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
