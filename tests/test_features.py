"""Tests of brainphase.encoding.features against direct loops and closed forms."""

import logging
import math

import numpy as np
import pytest

from brainphase.encoding import features as F
from brainphase.errors import InputError


def lanczos_loop(x, a):
    """Direct scalar Lanczos kernel."""
    if x == 0:
        return 1.0
    if abs(x) > a:
        return 0.0
    return a * math.sin(math.pi * x) * math.sin(math.pi * x / a) / (math.pi**2 * x**2)


def downsample_loop(values, times, tr_times, tr, window, cutoff_mult):
    out = np.zeros((len(tr_times), values.shape[1]))
    for k, t in enumerate(tr_times):
        for j, s in enumerate(times):
            out[k] += lanczos_loop(cutoff_mult / tr * (t - s), window) * values[j]
    return out


def test_lanczos_kernel_closed_form():
    x = np.array([0.0, 0.5, -0.5, 1.0, 2.999, 3.0, 3.001, -4.0, 1.7])
    expected = [lanczos_loop(v, 3) for v in x]
    np.testing.assert_allclose(F.lanczos_kernel(x, 3), expected, atol=1e-15)
    assert F.lanczos_kernel(np.array([0.0]))[0] == 1.0
    # zero at every non-zero integer (sinc property) and outside the window
    np.testing.assert_allclose(F.lanczos_kernel(np.array([1.0, 2.0, -2.0, 5.0]), 3), 0.0, atol=1e-15)
    np.testing.assert_allclose(F.lanczos_kernel(np.array([2.5]), 2), 0.0)


@pytest.mark.parametrize("window,cutoff_mult,anchor", [(3, 1.0, "onset"), (2, 0.8, "midpoint"), (4, 1.3, "onset")])
def test_lanczos_downsample_matches_direct_loop(window, cutoff_mult, anchor):
    rng = np.random.default_rng(1)
    n_words, n_features, n_trs, tr = 37, 5, 19, 1.7
    onset = np.sort(rng.uniform(0, n_trs * tr, n_words))
    offset = onset + rng.uniform(0.1, 0.6, n_words)
    values = rng.standard_normal((n_words, n_features))
    times = F.word_times(onset, offset, anchor)
    expected_times = onset if anchor == "onset" else (onset + offset) / 2
    np.testing.assert_allclose(times, expected_times)
    tr_times = F.volume_times(n_trs, tr, 0.9)
    np.testing.assert_allclose(tr_times, [0.9 + k * tr for k in range(n_trs)])
    got = F.lanczos_downsample(values, times, tr_times, tr, window, cutoff_mult)
    assert got.shape == (n_trs, n_features)
    np.testing.assert_allclose(got, downsample_loop(values, times, tr_times, tr, window, cutoff_mult), atol=1e-12)


def test_lanczos_weights_are_computed_once_per_run_and_read_only():
    rng = np.random.default_rng(2)
    onsets, times = np.sort(rng.uniform(0, 60, 50)), F.volume_times(30, 2.0, 0.5)
    features = rng.standard_normal((50, 3))
    first = F.lanczos_downsample(features, onsets, times, 2.0)
    cached = F._cached_lanczos_weights(onsets, times, 2.0, 3, 1.0)
    assert F._cached_lanczos_weights(onsets.copy(), times, 2.0, 3, 1.0) is cached and not cached.flags.writeable
    np.testing.assert_array_equal(cached, F.lanczos_weights(onsets, times, 2.0))
    np.testing.assert_allclose(F.lanczos_downsample(2 * features, onsets, times, 2.0), 2 * first, rtol=1e-12)
    assert F._cached_lanczos_weights(onsets, times, 2.0, 2, 1.0) is not cached  # another window: another matrix


def test_lanczos_words_on_volume_times_are_passed_through():
    # cutoff 1/TR and words exactly at volume times: L(integer) = 0 except L(0) = 1
    tr, n_trs = 2.0, 8
    values = np.arange(24, dtype=float).reshape(8, 3)
    tr_times = F.volume_times(n_trs, tr, 4.0)
    np.testing.assert_allclose(F.lanczos_downsample(values, tr_times, tr_times, tr), values, atol=1e-12)


def test_delay_features_direct():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 4))
    delays = [1, 3, 0, -2]
    out = F.delay_features(x, delays)
    assert out.shape == (9, 16)
    for i, d in enumerate(delays):
        for k in range(9):
            src = k - d
            expected = x[src] if 0 <= src < 9 else np.zeros(4)
            np.testing.assert_array_equal(out[k, 4 * i : 4 * i + 4], expected)
    # a delay longer than the run gives zeros
    assert not F.delay_features(x, [12]).any()
    with pytest.raises(InputError):
        F.delay_features(x, [])


def test_zscore_and_trim(caplog):
    rng = np.random.default_rng(3)
    a = rng.normal(3.0, 2.0, (20, 3))
    a[:, 1] = 7.0
    with caplog.at_level(logging.WARNING):
        z = F.zscore_columns(a, name="probe")
    assert "probe: 1 of 3 columns are constant" in caplog.text
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, [0, 2]].mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(z[:, [0, 2]].std(0), 1, atol=1e-5)
    np.testing.assert_array_equal(z[:, 1], 0)
    np.testing.assert_array_equal(F.trim(a, 2, 3), a[2:17])
    with pytest.raises(InputError, match="story_x"):
        F.trim(a, 10, 9, name="story_x")


def test_run_design_order_of_operations():
    """Lanczos -> delays on the whole run -> trim -> z-score, checked by a direct pipeline."""
    rng = np.random.default_rng(4)
    n_words, d, n_trs, tr, fvt = 60, 3, 30, 2.0, 1.5
    onset = np.sort(rng.uniform(0, 58, n_words))
    offset = onset + 0.25
    values = rng.standard_normal((n_words, d))
    got = F.run_design(values, onset, offset, n_trs, tr, fvt, delays=(1, 2), trim_start=4, trim_end=3)
    direct = downsample_loop(values, onset, [fvt + k * tr for k in range(n_trs)], tr, 3, 1.0)
    delayed = np.hstack([np.vstack([np.zeros((1, d)), direct[:-1]]), np.vstack([np.zeros((2, d)), direct[:-2]])])
    kept = delayed[4 : n_trs - 3]
    expected = (kept - kept.mean(0)) / kept.std(0)
    assert got.shape == (n_trs - 7, 2 * d)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    bold = rng.standard_normal((n_trs, 5)) * 3 + 1
    y = F.prepare_responses(bold, 4, 3)
    np.testing.assert_allclose(y, (bold[4:27] - bold[4:27].mean(0)) / bold[4:27].std(0), atol=1e-5)
    onset_bad = onset.copy()
    onset_bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        F.run_design(values, onset_bad, offset, n_trs, tr, fvt)
    with pytest.raises(InputError, match="anchor"):
        F.run_design(values, onset, offset, n_trs, tr, fvt, anchor="offset")


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_sentence_features(pooling):
    rng = np.random.default_rng(5)
    ids = np.array(["s2", "s2", "s0", "s0", "s0", "s9", "s1", "s1"])
    values = rng.standard_normal((8, 3))
    sentences, pooled = F.sentence_features(values, ids, pooling)
    assert sentences.tolist() == ["s2", "s0", "s9", "s1"]
    for k, s in enumerate(sentences):
        rows = values[ids == s]
        expected = rows.mean(0) if pooling == "mean" else rows[-1]
        np.testing.assert_allclose(pooled[k], expected, rtol=1e-6)
    with pytest.raises(InputError):
        F.sentence_features(values, ids[:5], pooling)
    with pytest.raises(InputError):
        F.sentence_features(values, ids, "max")
