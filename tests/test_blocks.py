"""Blocked CV inside runs with a gap: split rules, no leakage on planted drifts, one-story encoding."""

import h5py
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from brainphase import cli
from brainphase.encoding import features as F
from brainphase.encoding.blocks import block_layout, blocked_cv_predict, gapped_splits, resolve_cv
from brainphase.encoding.ridge import RidgeCV
from brainphase.encoding.sentences import fold_mean_scores
from brainphase.errors import InputError
from brainphase.fmri.ceiling import ceiling_loso
from brainphase.io import atomic_h5, provenance, read_strings, string_array

ALPHAS = np.logspace(-2, 6, 17)


def test_block_layout_and_gapped_splits():
    run_index, position, block = block_layout(np.array([23, 17]), 4)
    assert block[:23].tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 5 and position[23] == 0 and run_index[23] == 1
    splits = gapped_splits(run_index, position, block, gap_trs=3)
    held = np.concatenate([test for _, test in splits])
    assert sorted(held.tolist()) == list(range(40))  # every row held out exactly once
    for train, test in splits:
        for i in train:  # brute force: no training row within 3 volumes of a held-out row of its run
            same_run = test[run_index[test] == run_index[i]]
            assert same_run.size == 0 or np.abs(position[same_run] - position[i]).min() > 3
        assert len(np.intersect1d(train, test)) == 0
    # block 1 of run 0 = rows 6..11: rows 3..5 and 12..14 are dropped from its training rows
    train1 = splits[1][0]
    assert not np.isin([3, 4, 5, 12, 13, 14], train1).any() and np.isin([2, 15], train1).all()
    with pytest.raises(InputError, match="leaves no training rows"):
        gapped_splits(*block_layout(np.array([12]), 3), gap_trs=20)
    with pytest.raises(InputError, match="at least 3"):
        block_layout(np.array([30]), 2)
    assert resolve_cv("auto", 1) == "blocks" and resolve_cv("auto", 3) == "runs" and resolve_cv("blocks", 5) == "blocks"
    with pytest.raises(InputError, match="--cv blocks"):
        resolve_cv("runs", 2)


def test_inner_splits_keep_the_gap():
    """The inner CV of each outer fold (captured from the fitted clone) keeps the gap too."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((90, 4)), rng.standard_normal((90, 2))
    run_index, position, block = block_layout(np.array([90]), 5)
    estimator = RidgeCV(alphas=[1.0, 10.0], dtype="float64")
    for train, _ in gapped_splits(run_index, position, block, 4):
        inner = gapped_splits(run_index[train], position[train], block[train], 4, "inner")
        model = RidgeCV(alphas=[1.0, 10.0], dtype="float64", cv=inner).fit(X[train], Y[train])
        for inner_train, inner_val in model.splits_:
            distance = np.abs(position[train][inner_train][:, None] - position[train][inner_val][None, :])
            assert distance.min() > 4
    predictions, alphas, held = blocked_cv_predict(estimator, X, Y, np.array([90]), 5, 4)
    assert predictions.shape == Y.shape and alphas.shape == (5, 2) and held == [0, 1, 2, 3, 4]


def _drift_problem(seed, signal=0.0, drift=True, n=400, d=300, n_targets=40):
    """Smooth features (no signal unless ``signal``), responses = slow drift + noise (+ planted signal)."""
    rng = np.random.default_rng(seed)
    X = gaussian_filter1d(rng.standard_normal((n, d)), 3, axis=0)
    X /= X.std(0)
    Y = 0.5 * rng.standard_normal((n, n_targets))
    if drift:
        slow = gaussian_filter1d(rng.standard_normal((n, n_targets)), 6, axis=0)
        Y += slow / slow.std(0)
    if signal:
        Y += signal * X[:, :5] @ rng.standard_normal((5, n_targets))
    return X, Y


def _fold_mean_r(X, Y, gap):
    estimator = RidgeCV(alphas=ALPHAS, standardize=True, dtype="float64")
    predictions, _, _ = blocked_cv_predict(estimator, X, Y, np.array([len(X)]), 5, gap)
    r, _ = fold_mean_scores(Y, predictions, block_layout(np.array([len(X)]), 5)[2])
    return r


def test_gap_stops_leakage_of_a_slow_drift_and_keeps_planted_signal():
    """A drift shared by neighbouring blocks, with features that carry no signal: without a gap
    the model memorises the drift next to each test block (r > 0); with a gap r is at the null
    level (the same features against drift-free responses); planted signal is still recovered."""
    r_no_gap, r_gap, r_null = [], [], []
    for seed in range(2):
        X, Y = _drift_problem(seed)
        r_no_gap.append(_fold_mean_r(X, Y, 0))
        r_gap.append(_fold_mean_r(X, Y, 10))
        r_null.append(_fold_mean_r(*_drift_problem(seed + 10, drift=False), 10))
    r_no_gap, r_gap, r_null = (np.concatenate(r) for r in (r_no_gap, r_gap, r_null))
    se = np.hypot(r_gap.std(), r_null.std()) / np.sqrt(len(r_gap))
    assert r_no_gap.mean() > 0.07, r_no_gap.mean()  # measured 0.11: leakage across adjacent blocks
    assert r_no_gap.mean() > r_gap.mean() + 0.05
    assert abs(r_gap.mean() - r_null.mean()) < 3 * se, (r_gap.mean(), r_null.mean(), se)
    assert abs(r_gap.mean()) < 0.06
    X, Y = _drift_problem(3, signal=0.6, d=30)
    assert _fold_mean_r(X, Y, 10).mean() > 0.4  # measured 0.53


# ---------------------------------------------------------------------------- one story, group, ceiling
TR, N_TRS, FVT, D_MODEL, N_LAYERS, N_VOXELS, N_SIGNAL = 2.0, 260, 0.0, 4, 3, 16, 8
SUBJECTS = ["sub-01", "sub-02", "sub-03"]
NOISE_SD = 0.8


def write_one_story(tmp_path, ceiling_method="loso", group_average=True, n_repeats=0):
    """One run; layer 1 drives voxels 0..7 (same signal in every subject, independent noise of SD 0.8).

    Returns the paths and the planted per-subject ceiling of each voxel on the trimmed rows
    (``sqrt(var(signal) / (var(signal) + var(noise)))``, shape (n_subjects, n_voxels)). With
    ``n_repeats``, each subject heard the story that many times: ``/runs/story/repeats`` holds
    the repeats, ``bold`` their mean, and the planted ceiling is that of the mean.
    """
    rng = np.random.default_rng(1)
    n_words = int(N_TRS * TR * 2.2)
    onset = np.sort(rng.uniform(0, N_TRS * TR, n_words))
    layers = [rng.standard_normal((n_words, D_MODEL)).astype(np.float32) for _ in range(N_LAYERS)]
    act = tmp_path / "act.h5"
    with atomic_h5(act, provenance("extract", {}, [], model_id="m", step=1, stimulus_kind="words")) as h5:
        for i, layer in enumerate(layers):
            h5.create_dataset(f"layer_{i}", data=layer)
        h5.create_dataset("words/run", data=string_array(["story"] * n_words))
        h5.create_dataset("words/word", data=string_array([f"w{k}" for k in range(n_words)]))
        h5.create_dataset("words/onset", data=onset)
        h5.create_dataset("words/offset", data=onset + 0.3)
    lanczos = F.lanczos_downsample(layers[1], onset, F.volume_times(N_TRS, TR, FVT), TR)
    weights = rng.standard_normal((D_MODEL * 4, N_VOXELS))
    weights[:, N_SIGNAL:] = 0
    signal = F.delay_features(lanczos, (1, 2, 3, 4)) @ weights
    signal[:, :N_SIGNAL] /= signal[5:-5, :N_SIGNAL].std(0)
    bolds, planted, repeats = {}, [], {}
    for sub in SUBJECTS:
        kept = slice(5, N_TRS - 5)
        if n_repeats:
            repeats[sub] = signal + NOISE_SD * rng.standard_normal((n_repeats, N_TRS, N_VOXELS)) + 50.0
            bolds[sub] = repeats[sub].mean(0)
            noise = bolds[sub] - signal - 50.0
        else:
            noise = NOISE_SD * rng.standard_normal((N_TRS, N_VOXELS))
            bolds[sub] = signal + noise + 50.0
        planted.append(np.sqrt(signal[kept].var(0) / (signal[kept].var(0) + noise[kept].var(0))))
    if group_average:
        bolds["average"] = np.mean([bolds[s] for s in SUBJECTS], axis=0)
    resp = tmp_path / "responses.h5"
    attrs = provenance("load-fmri", {}, [], tr=TR, simulated=True, subjects=list(bolds), ceiling_method=ceiling_method)
    with atomic_h5(resp, attrs) as h5:
        h5.create_dataset("rois/names", data=string_array(["signal", "noise"]))
        h5.create_dataset("rois/labels", data=np.repeat([1, 2], N_VOXELS // 2).astype(np.int16))
        for sub, bold in bolds.items():
            g = h5.create_group(f"subjects/{sub}/runs/story")
            g.create_dataset("bold", data=bold.astype(np.float32))
            g.attrs["first_volume_time"] = FVT
            if sub in repeats:
                g.create_dataset("repeats", data=repeats[sub].astype(np.float32))
            # a full-run ceiling that encode must not use with ceiling_method loso
            h5.create_dataset(f"subjects/{sub}/noise_ceiling", data=np.full(N_VOXELS, 0.99, np.float32))
    return act, resp, np.array(planted)


def encode(act, resp, out, *extra):
    return cli.main(["encode", "--activations", str(act), "--responses", str(resp), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def one_story(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one_story")
    act, resp, planted = write_one_story(tmp)
    out = tmp / "scores.h5"
    assert encode(act, resp, out, "--save-predictions") == 0
    return act, resp, out, planted


def test_one_story_is_encoded_with_blocks_and_recovers_the_planted_layer(one_story):
    _, _, out, _ = one_story
    with h5py.File(out, "r") as h5:
        attrs = dict(h5.attrs)
        assert (attrs["cv"], attrs["cv_blocks"], attrs["gap_trs"], attrs["r_convention"]) == ("blocks", 5, 10, "fold_mean")
        r = h5["r"][()]
        assert r.shape == (N_LAYERS, 3, N_VOXELS)
        assert r[1, :, :N_SIGNAL].mean() > 0.6 and abs(r[1, :, N_SIGNAL:].mean()) < 0.1
        assert abs(r[[0, 2]].mean()) < 0.1
        assert h5["r_fold_mean"].id == h5["r"].id  # hard link: the same dataset
        assert h5["r_concatenated"].shape == r.shape and h5["r2_concatenated"].shape == r.shape
        # held-out predictions give back both conventions
        pred, resp_rows, fold = h5["held_out/predictions"][()], h5["held_out/responses"][()], h5["held_out/fold"][()]
        assert pred.shape == (N_LAYERS, 3, N_TRS - 10, N_VOXELS) and resp_rows.shape == (3, N_TRS - 10, N_VOXELS)
        r_fold, _ = fold_mean_scores(resp_rows[2], pred[1, 2], fold)
        np.testing.assert_allclose(r_fold, r[1, 2], rtol=1e-4, atol=1e-5)
        from brainphase.encoding.scoring import pearson_columns

        np.testing.assert_allclose(pearson_columns(resp_rows[2], pred[1, 2]), h5["r_concatenated"][1, 2], rtol=1e-4,
                                   atol=1e-5)


def test_group_average_is_kept_apart_from_subjects(one_story):
    _, _, out, _ = one_story
    with h5py.File(out, "r") as h5:
        assert read_strings(h5["subjects"]) == SUBJECTS  # never 'average'
        assert h5.attrs["group_subject"] == "average"
        for key in ("r", "r2", "alpha", "r_normalized", "r_concatenated"):
            assert h5[f"group/{key}"].shape == (N_LAYERS, N_VOXELS), key
        assert h5["group/roi_mean_r"].shape == (N_LAYERS, 2) and h5["roi_mean_r"].shape == (N_LAYERS, 3, 2)
        assert h5["group/noise_ceiling"].shape == (N_VOXELS,) and h5["noise_ceiling"].shape == (3, N_VOXELS)
        # the average of 3 subjects is less noisy: group r above every subject's r on signal voxels
        assert (h5["group/r"][1, :N_SIGNAL] > h5["r"][1, :, :N_SIGNAL].max(0) - 0.02).mean() > 0.8
        assert h5["group/held_out/predictions"].shape == (N_LAYERS, N_TRS - 10, N_VOXELS)


def test_noise_ceiling_is_computed_on_the_scored_rows(one_story):
    """loso: the ceiling of the trimmed, z-scored rows (not load-fmri's stored 0.99), close to the
    planted one on signal voxels, below the floor on noise voxels, whose r_normalized is NaN."""
    _, resp, out, planted = one_story
    with h5py.File(resp, "r") as h5:
        rows = np.stack([F.prepare_responses(h5[f"subjects/{s}/runs/story/bold"][()], 5, 5) for s in SUBJECTS])
    with h5py.File(out, "r") as h5:
        ceiling, r, normalized = h5["noise_ceiling"][()], h5["r"][()], h5["r_normalized"][()]
        assert (h5.attrs["ceiling_method"], h5.attrs["ceiling_rows"], h5.attrs["ceiling_floor"]) == ("loso", "scored", 0.2)
        group_ceiling = h5["group/noise_ceiling"][()]
    np.testing.assert_allclose(ceiling, ceiling_loso(rows), rtol=1e-5)
    np.testing.assert_allclose(ceiling[:, :N_SIGNAL], planted[:, :N_SIGNAL], atol=0.06)
    kept = ceiling >= 0.2  # the floor
    assert kept[:, :N_SIGNAL].all() and (~kept[:, N_SIGNAL:]).mean() > 0.5
    np.testing.assert_allclose(normalized[:, kept], r[:, kept] / ceiling[kept], rtol=1e-5)
    assert np.isnan(normalized[:, ~kept]).all()
    # the group's ceiling from the mean of signed single-subject reliabilities on the same rows
    np.testing.assert_allclose(group_ceiling, ceiling_loso(rows, with_group=True)[1], rtol=1e-5)


def test_one_story_options_and_errors(tmp_path, capsys):
    act, resp, _ = write_one_story(tmp_path, ceiling_method="none", group_average=False)
    out = tmp_path / "scores.h5"
    assert encode(act, resp, out, "--cv", "runs") == 2
    assert "--cv blocks" in capsys.readouterr().err and not out.exists()
    assert encode(act, resp, out, "--permutations", "9") == 2
    assert "--cv runs only" in capsys.readouterr().err
    assert encode(act, resp, out, "--gap-trs", "200", "--layers", "1") == 2
    assert "leaves no training rows" in capsys.readouterr().err and not out.exists()
    assert encode(act, resp, out, "--cv-blocks", "4", "--gap-trs", "3", "--layers", "1") == 0
    with h5py.File(out, "r") as h5:
        assert (h5.attrs["cv_blocks"], h5.attrs["gap_trs"], h5.attrs["ceiling_method"]) == (4, 3, "none")
        assert "r_normalized" not in h5 and "noise_ceiling" not in h5 and "group" not in h5
        assert "held_out" not in h5 and h5["r"].shape == (1, 3, N_VOXELS)


def test_null_ceiling_level_matches_simulated_noise():
    """The level encode warns about: ~97.7th percentile of LOSO ceilings of pure-noise voxels."""
    from brainphase.encoding.noise_ceiling import null_ceiling_level

    rng = np.random.default_rng(2)
    for n_subjects, n_rows in ((3, 250), (10, 400)):
        ceilings = ceiling_loso(rng.standard_normal((n_subjects, n_rows, 3000)))
        assert abs(np.quantile(ceilings, 0.977) - null_ceiling_level(n_rows, n_subjects)) < 0.04


def test_repeat_ceiling_is_recomputed_from_stored_repeats(tmp_path):
    """ceiling_method repeats: with /runs/{run}/repeats the signal-power ceiling of the mean is
    recomputed on the trimmed, z-scored repeats (close to the planted one); without them the
    stored full-run ceiling is used and the file says so."""
    from brainphase.fmri.ceiling import ceiling_from_repeats

    act, resp, planted = write_one_story(tmp_path, ceiling_method="repeats", group_average=False, n_repeats=2)
    out = tmp_path / "scores.h5"
    assert encode(act, resp, out, "--layers", "1") == 0
    with h5py.File(resp, "r") as h5:
        prepared = np.stack([F.prepare_responses(rep, 5, 5) for rep in h5["subjects/sub-02/runs/story/repeats"][()]])
    with h5py.File(out, "r") as h5:
        assert (h5.attrs["ceiling_method"], h5.attrs["ceiling_rows"]) == ("repeats", "scored")
        ceiling = h5["noise_ceiling"][()]
    np.testing.assert_allclose(ceiling[1], ceiling_from_repeats(prepared), rtol=1e-5)
    np.testing.assert_allclose(ceiling[:, :N_SIGNAL], planted[:, :N_SIGNAL], atol=0.06)
    with h5py.File(resp, "a") as h5:
        del h5["subjects/sub-01/runs/story/repeats"]
    assert encode(act, resp, out, "--layers", "1") == 0
    with h5py.File(out, "r") as h5:
        assert (h5.attrs["ceiling_method"], h5.attrs["ceiling_rows"]) == ("repeats", "load-fmri full runs")
        np.testing.assert_allclose(h5["noise_ceiling"][()], 0.99, rtol=1e-6)
