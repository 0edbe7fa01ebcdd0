"""brainphase simulate: planted features, BIDS derivatives layout, confounds and ground truth."""

import argparse
import json
from collections import Counter

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainphase.errors import InputError
from brainphase.fmri import simulate

VOCAB = ["the", "dog", "ran", "home", "quickly", "a", "cat", "sat", "on", "mat", "under", "bright", "stars"] + [
    "".join("bcdfgklmnprst"[(7 * i + 3 * k) % 13] + "aeiou"[(i + k) % 5] for k in range(1 + i % 4)) for i in range(30)]


def make_stimulus(tmp_path, n_words, runs=("1", "2"), seed=0):
    """Write stim.tsv (run, word_index, word, onset, offset) and corpus/train.txt; return their paths."""
    rng = np.random.default_rng(seed)
    rows = []
    for run in runs:
        onset = 0.5
        for index in range(n_words):
            duration = rng.uniform(0.2, 0.45)
            rows.append((run, index, VOCAB[rng.integers(len(VOCAB))], round(onset, 3), round(onset + duration, 3)))
            onset += duration + rng.uniform(0.05, 0.5)
    stimulus = tmp_path / "stim.tsv"
    pd.DataFrame(rows, columns=["run", "word_index", "word", "onset", "offset"]).to_csv(stimulus, sep="\t", index=False)
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    lines = [" ".join(VOCAB[j] for j in rng.integers(len(VOCAB), size=10)) for _ in range(200)]
    (corpus / "train.txt").write_text("\n".join(lines) + "\n")
    return stimulus, corpus


def simulate_args(stimulus, corpus, out_dir, **overrides):
    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    args = parser.parse_args(["--stimulus", str(stimulus), "--corpus-dir", str(corpus), "--out-dir", str(out_dir),
                              "--resolution-mm", "8", "--n-subjects", "2"])
    vars(args).update(overrides)
    return args


def test_word_features_match_hand_computed_counts():
    unigrams, bigrams = simulate.word_statistics("The dog ran\nthe dog sat\n")
    assert unigrams == Counter({"the": 2, "dog": 2, "ran": 1, "sat": 1})
    assert bigrams[("the", "dog")] == 2 and bigrams[("ran", "the")] == 0  # no bigram across lines
    words = pd.DataFrame({"run": ["1", "1", "2"], "word": ["The", "dog,", "cat"]})
    features = simulate.word_features(words, unigrams, bigrams, seed=3)
    n_tokens, n_types = 6, 4
    log_freq = np.log(np.array([3, 3, 1]) / (n_tokens + n_types + 1))
    surprisal = np.array([-log_freq[0], -np.log(3 / (2 + n_types + 1)), -log_freq[2]])  # run 2 restarts context
    lengths = np.array([3.0, 3.0, 3.0])
    np.testing.assert_allclose(features[:, 0], 1.0)
    np.testing.assert_allclose(features[:, 1], lengths - lengths.mean())
    np.testing.assert_allclose(features[:, 2], log_freq - log_freq.mean())
    np.testing.assert_allclose(features[:, 3], surprisal - surprisal.mean())
    semantic = np.stack([simulate.semantic_vector(w, 3) for w in ["the", "dog", "cat"]])
    phonemes = np.array([2.0, 3.0, 3.0])  # CMU: the = DH AH0, dog = D AO1 G, cat = K AE1 T
    np.testing.assert_allclose(features[:, 4], phonemes - phonemes.mean())
    np.testing.assert_allclose(features[:, 5:], semantic - semantic.mean(axis=0))
    assert not np.allclose(simulate.semantic_vector("the", 3), simulate.semantic_vector("the", 4))


def test_bin_and_convolve_places_a_shifted_hrf():
    from nilearn.glm.first_level import spm_hrf

    design = simulate.bin_and_convolve(np.array([4.1, 4.5, 9.9]), np.array([[1.0, 2.0], [1.0, -1.0], [1.0, 0.0]]),
                                       n_trs=30, tr=2.0)
    hrf = spm_hrf(2.0, oversampling=1)  # 16 samples of 2 s
    expected = np.zeros((30, 2))
    expected[2:18, 0] += 2 * hrf  # two words in bin 2
    expected[4:20, 0] += hrf  # one word in bin 4
    expected[2:18, 1] += 1 * hrf
    np.testing.assert_allclose(design, expected, atol=1e-12)


def test_simulate_writes_bids_derivatives_and_ground_truth(tmp_path):
    from nilearn.interfaces.fmriprep import load_confounds

    stimulus, corpus = make_stimulus(tmp_path, 200)
    out = tmp_path / "bids"
    args = simulate_args(stimulus, corpus, out)
    simulate.main(args)
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["SIMULATED"] is True
    assert "SIMULATED" in description["Name"].upper() and description["GeneratedBy"][0]["Name"] == "brainphase simulate"
    words = pd.read_csv(stimulus, sep="\t", dtype={"run": str})
    func = out / "sub-02" / "func"
    prefix = func / "sub-02_task-listening_run-2_space-MNI152NLin2009cAsym_res-8mm"
    bold = nib.load(f"{prefix}_desc-preproc_bold.nii.gz")
    n_trs = int(np.ceil((words[words.run == "2"].offset.max() + simulate.TAIL_SECONDS) / 2.0))
    mask_img = nib.load(f"{prefix}_desc-brain_mask.nii.gz")
    assert bold.shape == mask_img.shape + (n_trs,) and bold.header.get_zooms()[3] == 2.0
    assert json.loads(open(f"{prefix}_desc-preproc_bold.json").read())["RepetitionTime"] == 2.0
    events = pd.read_csv(func / "sub-02_task-listening_run-2_events.tsv", sep="\t")
    np.testing.assert_allclose(events.onset, words[words.run == "2"].onset)
    assert set(events.trial_type) == {"word"}

    confounds, sample_mask = load_confounds(f"{prefix}_desc-preproc_bold.nii.gz", strategy=("motion", "wm_csf"))
    assert confounds.shape == (n_trs, 26) and sample_mask is None
    # the motion regressors are really in the BOLD: voxel loadings fitted in two runs agree
    mask = np.asarray(mask_img.dataobj) > 0
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]

    def loadings(run, motion_run):
        data = nib.load(str(prefix).replace("run-2", f"run-{run}") + "_desc-preproc_bold.nii.gz").get_fdata()[mask].T
        motion = pd.read_csv(func / f"sub-02_task-listening_run-{motion_run}_desc-confounds_timeseries.tsv", sep="\t")
        n = min(len(data), len(motion))
        design = np.column_stack([np.ones(n), np.linspace(-1, 1, n), motion[names].to_numpy()[:n]])
        return np.linalg.lstsq(design, data[:n], rcond=None)[0][2:]  # (6, n_voxels)

    run1, run2, null = loadings("1", "1"), loadings("2", "2"), loadings("1", "2")
    agreement = [np.corrcoef(run1[k], run2[k])[0, 1] for k in range(6)]
    chance = [np.corrcoef(null[k], run2[k])[0, 1] for k in range(6)]
    assert np.mean(agreement) > 0.75 and np.mean(agreement) > np.mean(np.abs(chance)) + 0.3, (agreement, chance)

    atlas = nib.load(out / "atlas-simulated_dseg.nii.gz")
    names = pd.read_csv(out / "atlas-simulated_dseg.tsv", sep="\t")
    assert list(names["name"]) == [r[0] for r in simulate.REGIONS]
    assert set(np.unique(np.asarray(atlas.dataobj))) == set(range(len(simulate.REGIONS) + 1))

    with h5py.File(out / "ground_truth.h5", "r") as truth:
        assert bool(truth.attrs["simulated"]) and truth.attrs["stage"] == "simulate"
        ev = truth["subjects/sub-02/explainable_variance"][()]
        signal_mask = truth["subjects/sub-02/signal_mask"][()] > 0
        np.testing.assert_allclose(truth["subjects/sub-02/ceiling_r"][()], np.sqrt(ev), rtol=1e-6)
        assert (ev[~signal_mask] == 0).all() and (ev[signal_mask] > 0).all()
        peak = args.snr**2 / (1 + args.snr**2)  # centre of a full-amplitude region
        assert 0.7 * peak < ev.max() < 1.4 * peak  # realised variances of ~100 volumes scatter around it
        labels = truth["subjects/sub-02/region_labels"][()]
        left, right = ev[(labels >= 1) & (labels <= 3)], ev[labels >= 4]
        assert left.mean() > 2 * right.mean()  # right homologues are planted at half amplitude
        n_signal = int(signal_mask.sum())
        assert truth["subjects/sub-02/weights"].shape == (n_signal, len(simulate.FEATURE_NAMES))
        assert truth["subjects/sub-02/signal_voxel_ijk"].shape == (n_signal, 3)
        assert not np.array_equal(truth["subjects/sub-01/signal_mask"][()], signal_mask)  # subject-specific


def test_simulate_rejects_bad_inputs(tmp_path):
    stimulus, corpus = make_stimulus(tmp_path, 10)
    (corpus / "train.txt").unlink()
    with pytest.raises(InputError, match="train.txt"):
        simulate.main(simulate_args(stimulus, corpus, tmp_path / "out"))
    stimulus, corpus = make_stimulus(tmp_path, 10, runs=("story_a",))
    with pytest.raises(InputError, match="BIDS run labels"):
        simulate.main(simulate_args(stimulus, corpus, tmp_path / "out"))
    with pytest.raises(InputError, match="whole number"):
        simulate.main(simulate_args(*make_stimulus(tmp_path, 10), tmp_path / "out", resolution_mm=2.5))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("share", [0.0, 0.3, 0.9])
def test_split_variance_gives_the_lexical_block_its_share(share):
    from brainphase.fmri.simulate import N_LEXICAL, split_variance

    rng = np.random.default_rng(11)
    design = rng.standard_normal((400, 20))
    weights = split_variance(rng.standard_normal((7, 20)), design, share)
    lexical = design[:, :N_LEXICAL] @ weights[:, :N_LEXICAL].T
    semantic = design[:, N_LEXICAL:] @ weights[:, N_LEXICAL:].T
    realised = lexical.var(axis=0) / (lexical.var(axis=0) + semantic.var(axis=0))
    np.testing.assert_allclose(realised, share, atol=1e-12)


def test_variance_partitioning_recovers_planted_baseline_and_unique_shares(tmp_path):
    """baseline_share split: encoder baselines (from the words) + an oracle layer (the learnable
    features) recover the planted unique explainable variance within 0.05 (mean over voxels)."""
    from brainphase.encoding.banded import BandedRidgeCV, ratio_grid, variance_partition
    from brainphase.encoding.baselines import word_baselines
    from brainphase.encoding.features import prepare_responses, run_design
    from brainphase.encoding.ridge import RidgeCV, nested_cv_predict
    from brainphase.encoding.scoring import r2_columns
    from brainphase.stimuli import read_stimulus

    stimulus_path, corpus = make_stimulus(tmp_path, n_words=700, runs=("1", "2", "3", "4"))
    stimulus = read_stimulus(stimulus_path)
    unigrams, bigrams = simulate.word_statistics((corpus / "train.txt").read_text())
    tr, share, snr = 2.0, 0.4, 1.5
    designs = simulate.residualise_learnable(simulate.design_matrices(stimulus, unigrams, bigrams, tr, seed=0))
    runs = list(designs)
    design_all = np.concatenate([designs[r] for r in runs])
    rng = np.random.default_rng(0)
    weights = simulate.split_shares(rng.standard_normal((24, len(simulate.FEATURE_NAMES))), design_all,
                                    simulate.BASELINE_COLUMNS, share)
    weights *= (snr / (design_all @ weights.T).std(axis=0))[:, None]
    bold = {r: designs[r] @ weights.T + simulate._ar1_noise(len(designs[r]), 24, simulate.NOISE_AR1, rng) for r in runs}
    total_var = np.concatenate(list(bold.values())).var(axis=0)
    signal_all = design_all @ weights.T
    planted_baseline = simulate.baseline_variance(signal_all, design_all) / total_var
    planted_unique = signal_all.var(axis=0) / total_var - planted_baseline
    # by construction the baseline part carries `share` of the signal and the rest is unique
    np.testing.assert_allclose(planted_baseline / (planted_baseline + planted_unique), share, atol=0.02)

    words = stimulus["word"].astype(str).tolist()
    baseline_words = word_baselines(words, frequency_source="corpus", frequency_corpus=corpus / "train.txt")
    oracle_words = simulate.word_features(stimulus, unigrams, bigrams, seed=0)[:, simulate.LEARNABLE_COLUMNS]

    def design(features):
        blocks = []
        for r in runs:
            rows = (stimulus["run"] == r).to_numpy()
            blocks.append(run_design(features[rows], stimulus["onset"].to_numpy(float)[rows],
                                     stimulus["offset"].to_numpy(float)[rows], len(designs[r]), tr, 0.0, name=r))
        return np.vstack(blocks)

    Y = np.vstack([prepare_responses(bold[r], name=r) for r in runs])
    groups = np.repeat(np.arange(len(runs)), [len(designs[r]) - 10 for r in runs])
    B, X = design(baseline_words), design(oracle_words)
    alphas = np.logspace(0, 5, 11)
    r2 = {}
    for name, features, estimator in [
        ("baselines", B, RidgeCV(alphas)), ("layer", X, RidgeCV(alphas)),
        ("joint", np.hstack([B, X]), BandedRidgeCV((B.shape[1], X.shape[1]), ratio_grid([0.1, 1.0, 10.0]), alphas)),
    ]:
        predictions, _, _ = nested_cv_predict(estimator, features, Y, groups)
        r2[name] = r2_columns(Y, predictions)
    parts = variance_partition(r2["layer"], r2["baselines"], r2["joint"])
    # unique share: within 0.05 (measured 0.376 vs 0.418 planted). The baselines alone lose more
    # (0.18 vs 0.28): the encoder's Lanczos + 4 FIR delays + per-run z-scoring only approximate
    # the simulator's TR binning + SPM HRF, which matters most for the slow word-rate signal
    assert abs(np.mean(parts["unique_r2"]) - np.mean(planted_unique)) < 0.05
    assert abs(np.mean(r2["baselines"]) - np.mean(planted_baseline)) < 0.12
    assert np.mean(planted_unique) > 0.2  # the test has something to recover
