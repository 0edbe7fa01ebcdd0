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
