"""Baseline feature spaces from the stimulus words, user regressors, and the encode wiring."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from brainphase.encoding import baselines
from brainphase.encoding.features import run_design
from brainphase.errors import InputError


def test_word_measures_match_hand_values_and_the_reference_packages():
    import pronouncing
    from wordfreq import zipf_frequency

    words = ["The", "dog,", "Xqzzyv", "don't", "--"]
    assert [baselines.normalise_word(w) for w in words] == ["the", "dog", "xqzzyv", "don't", "--"]
    assert [baselines.letter_count(w) for w in words] == [3, 3, 6, 4, 2]
    np.testing.assert_allclose(baselines.zipf_frequency(words[:2]), [zipf_frequency("the", "en"), zipf_frequency("dog", "en")])
    assert baselines.zipf_frequency(["xqzzyv"])[0] == 0.0  # unknown: wordfreq's floor
    # CMU: the = DH AH0, dog = D AO1 G; an unknown word counts its letters
    np.testing.assert_allclose(baselines.phoneme_count(["The", "dog,", "Xqzzyv"]), [2, 3, 6])
    assert len(pronouncing.phones_for_word("dog")[0].split()) == 3
    counts = Counter({"the": 3, "dog": 1})
    np.testing.assert_allclose(baselines.corpus_log_probability(["the", "cat"], counts), np.log([4 / 7, 1 / 7]))


def test_cmu_lookup_matches_pronouncing_first_pronunciation():
    import pronouncing

    # words with variants (permit, read, the), an apostrophe, a name, and keys absent from the dictionary
    keys = {"permit", "read", "the", "don't", "shakespeare", "thou", "xqzzyv", "(2)"}
    found = baselines.cmu_first_pronunciations(keys)
    expected = {key: pronouncing.phones_for_word(key)[0] for key in keys if pronouncing.phones_for_word(key)}
    assert found == expected
    assert found["permit"] == "P ER0 M IH1 T" and "xqzzyv" not in found


def test_word_baselines_columns_and_centring(tmp_path):
    words = ["The", "cat", "sat", "quietly"]
    features = baselines.word_baselines(words)
    assert features.shape == (4, 4)
    np.testing.assert_allclose(features[:, 0], 1.0)  # word rate
    np.testing.assert_allclose(features[:, 1], np.array([3, 3, 3, 7]) - 4.0)  # centred length
    assert abs(features[:, 2].mean()) < 1e-12  # centred log frequency
    assert np.all(features[:, 3] > 0)  # phoneme count (not centred: a rate)
    corpus = tmp_path / "train.txt"
    corpus.write_text("the cat the\n")
    from_corpus = baselines.word_baselines(words, ["log_frequency"], "corpus", corpus)
    expected = np.log(np.array([3, 2, 1, 1]) / (3 + 2 + 1))
    np.testing.assert_allclose(from_corpus[:, 0], expected - expected.mean())
    with pytest.raises(InputError, match="frequency-corpus"):
        baselines.word_baselines(words, ["log_frequency"], "corpus", None)
    with pytest.raises(InputError, match="not among"):
        baselines.word_baselines(words, ["pitch"])


def test_regressors_resampled_like_words(tmp_path):
    """A constant regressor sampled at 10 Hz has a constant Lanczos value c away from the edges,
    and a design equal to that of words carrying the same values (weighted by dt / tr)."""
    tr, n_trs = 2.0, 60
    times = np.arange(0, n_trs * tr, 0.1)
    envelope = 1.0 + np.sin(2 * np.pi * times / 40.0)
    table = pd.DataFrame({"run": "a", "time": times, "envelope": envelope})
    path = tmp_path / "regressors.tsv"
    table.to_csv(path, sep="\t", index=False)
    table, names = baselines.read_regressors(path)
    assert names == ["envelope"]
    design = baselines.regressor_run_design(table, names, "a", n_trs, tr, 0.0, path, delays=[0], trim_start=0, trim_end=0)
    from brainphase.encoding.features import lanczos_downsample, volume_times, zscore_columns

    smooth = lanczos_downsample(envelope[:, None] * 0.1 / tr, times, volume_times(n_trs, tr, 0.0), tr)
    middle = slice(5, n_trs - 5)
    # a slow sine passes the low-pass almost unchanged
    np.testing.assert_allclose(smooth[middle, 0], 1.0 + np.sin(2 * np.pi * volume_times(n_trs, tr, 0.0)[middle] / 40.0),
                               atol=0.03)
    np.testing.assert_allclose(design, zscore_columns(smooth), atol=1e-5)
    expected = run_design(envelope[:, None] * 0.1 / tr, times, times, n_trs, tr, 0.0, delays=[1, 2])
    got = baselines.regressor_run_design(table, names, "a", n_trs, tr, 0.0, path, delays=[1, 2])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    bad = tmp_path / "bad.tsv"
    pd.DataFrame({"run": ["a"], "t": [0.0], "v": [1.0]}).to_csv(bad, sep="\t", index=False)
    with pytest.raises(InputError, match="'run', 'time'"):
        baselines.read_regressors(bad)
    with pytest.raises(InputError, match="run 'b'"):
        baselines.regressor_run_design(table, names, "b", n_trs, tr, 0.0, path)


# ---------------------------------------------------------------------------- encode end to end
TR = 2.0
RUNS = {"r1": 90, "r2": 80, "r3": 85, "r4": 95}
N_VOXELS = 12  # 0..3 word-rate driven, 4..7 layer-1 driven, 8..11 noise


def _write_encode_inputs(tmp_path):
    import h5py  # noqa: F401

    from brainphase.encoding import features as F
    from brainphase.io import atomic_h5, provenance, string_array

    rng = np.random.default_rng(1)
    vocabulary = ["the", "a", "house", "river", "quickly", "under", "stone", "bright", "walked", "of"]
    words = {"run": [], "word_index": [], "word": [], "onset": [], "offset": []}
    for run, n_trs in RUNS.items():
        # bursts of speech and pauses so that the word rate varies
        rate = 1.0 + 2.0 * (np.sin(np.arange(n_trs) / 4.0 + rng.uniform(0, 6)) > 0)
        onset = np.sort(np.concatenate([k * TR + rng.uniform(0, TR, rng.poisson(rate[k] * TR)) for k in range(n_trs)]))
        words["run"] += [run] * len(onset)
        words["word_index"] += list(range(len(onset)))
        words["word"] += list(rng.choice(vocabulary, len(onset)))
        words["onset"] += onset.tolist()
        words["offset"] += (onset + 0.2).tolist()
    run_col = np.array(words["run"])
    layers = [rng.standard_normal((len(run_col), 4)).astype(np.float32) for _ in range(3)]
    act = tmp_path / "act.h5"
    with atomic_h5(act, provenance("extract", {}, [])) as h5:
        for i, layer in enumerate(layers):
            h5.create_dataset(f"layer_{i}", data=layer)
        for key, values in words.items():
            h5.create_dataset(f"words/{key}", data=string_array(values) if key in ("run", "word") else np.asarray(values))
    resp = tmp_path / "responses.h5"
    w_layer = rng.standard_normal((16, 4))
    with atomic_h5(resp, provenance("load-fmri", {}, [], tr=TR, subjects=["sub-01"])) as h5:
        h5.create_dataset("rois/names", data=string_array(["rate_roi", "layer_roi"]))
        h5.create_dataset("rois/labels", data=np.repeat(np.array([1, 2, 0], dtype=np.int16), 4))
        for run, n_trs in RUNS.items():
            rows = run_col == run
            times = F.volume_times(n_trs, TR, 0.0)
            onset = np.asarray(words["onset"])[rows]
            rate = F.delay_features(F.lanczos_downsample(np.ones((rows.sum(), 1)), onset, times, TR), (1, 2, 3, 4))
            layer = F.delay_features(F.lanczos_downsample(layers[1][rows], onset, times, TR), (1, 2, 3, 4))
            bold = rng.standard_normal((n_trs, N_VOXELS))
            bold[:, :4] += 1.5 * (rate @ [1.0, 0.8, 0.5, 0.2] - (rate @ [1.0, 0.8, 0.5, 0.2]).mean())[:, None] / rate.std()
            bold[:, 4:8] += 0.6 * layer @ w_layer
            g = h5.create_group(f"subjects/sub-01/runs/{run}")
            g.create_dataset("bold", data=bold.astype(np.float32))
            g.attrs["first_volume_time"] = 0.0
    return act, resp


@pytest.fixture(scope="module")
def encode_inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baselines")
    return tmp, *_write_encode_inputs(tmp)


def _encode(tmp, act, resp, name, *extra):
    import h5py

    from brainphase import cli

    out = tmp / f"{name}.h5"
    argv = ["encode", "--activations", str(act), "--responses", str(resp), "--out", str(out), "--trim-start", "3",
            "--trim-end", "2", "--alphas", "1", "10", "100", "1000", *extra]
    assert cli.main(argv) == 0
    with h5py.File(out, "r") as h5:
        return {key: h5[key][()] for key in ("r", "r2", "baselines/names", "baselines/r", "baselines/r2",
                                            "variance_partition/unique_r2", "variance_partition/shared_r2",
                                            "variance_partition/joint_r2", "variance_partition/partitioned",
                                            "baselines/roi_mean_r", "variance_partition/roi_mean_unique_r2")
                if key in h5}


def test_encode_partitions_planted_baseline_and_layer_voxels(encode_inputs):
    tmp, act, resp = encode_inputs
    scores = _encode(tmp, act, resp, "all", "--partition-layers", "all")
    assert [n.decode() for n in scores["baselines/names"]] == list(baselines.WORD_BASELINES)
    assert scores["baselines/r"].shape == (1, N_VOXELS)
    assert scores["variance_partition/unique_r2"].shape == (3, 1, N_VOXELS)
    assert scores["variance_partition/partitioned"].all()
    base_r2 = scores["baselines/r2"][0]
    unique = scores["variance_partition/unique_r2"][1, 0]
    assert base_r2[:4].min() > 0.3 and np.abs(base_r2[8:]).max() < 0.1
    assert unique[4:8].min() > 0.3  # layer 1 explains its voxels beyond the baselines
    assert np.abs(unique[:4]).max() < 0.1 and np.abs(unique[8:]).max() < 0.1
    np.testing.assert_allclose(scores["variance_partition/unique_r2"] + scores["variance_partition/shared_r2"],
                               scores["r2"], atol=1e-5)
    np.testing.assert_allclose(scores["variance_partition/roi_mean_unique_r2"][1, 0],
                               [unique[:4].mean(), unique[4:8].mean()], rtol=1e-5)
    np.testing.assert_allclose(scores["baselines/roi_mean_r"][0], [scores["baselines/r"][0, :4].mean(),
                                                                   scores["baselines/r"][0, 4:8].mean()], rtol=1e-5)


def test_encode_best_layer_only_and_no_baselines(encode_inputs):
    tmp, act, resp = encode_inputs
    best = _encode(tmp, act, resp, "best")
    assert best["variance_partition/partitioned"].tolist() == [False, True, False]
    assert np.isnan(best["variance_partition/unique_r2"][[0, 2]]).all()
    none = _encode(tmp, act, resp, "none", "--baselines", "none")
    assert "baselines/r" not in none and "variance_partition/unique_r2" not in none


def test_encode_extra_regressors_and_blocked_cv(encode_inputs):
    tmp, act, resp = encode_inputs
    table = pd.concat([pd.DataFrame({"run": run, "time": np.arange(0, n * TR, 0.5),
                                     "envelope": np.random.default_rng(0).random(int(n * TR / 0.5))})
                       for run, n in RUNS.items()])
    path = tmp / "envelope.tsv"
    table.to_csv(path, sep="\t", index=False)
    scores = _encode(tmp, act, resp, "extra", "--baselines", "word_rate", "--extra-regressors", str(path),
                     "--cv", "blocks", "--cv-blocks", "3", "--gap-trs", "3")
    assert [n.decode() for n in scores["baselines/names"]] == ["word_rate", "envelope"]
    assert scores["variance_partition/unique_r2"][1, 0, 4:8].min() > 0.2
