"""Noise-ceiling estimators against planted signal and noise of known variance."""

import numpy as np
import pytest
from scipy.stats import pearsonr

from brainphase.errors import InputError
from brainphase.fmri.ceiling import (ceiling_from_repeats, ceiling_loso, ceiling_of_average, columnwise_pearson,
                                     reliability_from_isc)

N_TRS, N_VOXELS = 3000, 7
SIGNAL_VAR = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0])  # noise variance 1 -> reliabilities 0 ... 0.8


def _signal(rng):
    return rng.standard_normal((N_TRS, N_VOXELS)) * np.sqrt(SIGNAL_VAR)


def test_columnwise_pearson_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 3)), rng.standard_normal((40, 3))
    b[:, 1] += 2 * a[:, 1]
    expected = [pearsonr(a[:, j], b[:, j])[0] for j in range(3)]
    np.testing.assert_allclose(columnwise_pearson(a, b), expected, rtol=1e-10)
    assert np.isnan(columnwise_pearson(a, np.ones((40, 3)))).all()


@pytest.mark.parametrize("n_repeats", [2, 4])
def test_repeat_ceiling_recovers_planted_reliability(n_repeats):
    rng = np.random.default_rng(n_repeats)
    signal = _signal(rng)
    repeats = signal[None] + rng.standard_normal((n_repeats, N_TRS, N_VOXELS))
    planted = np.sqrt(SIGNAL_VAR / (SIGNAL_VAR + 1.0 / n_repeats))  # ceiling for the mean of the repeats
    estimate = ceiling_from_repeats(repeats)
    np.testing.assert_allclose(estimate[1:], planted[1:], atol=0.04)
    assert estimate[0] < 0.15
    # a perfect model of the signal reaches the estimate on this realisation
    realised = columnwise_pearson(signal, repeats.mean(axis=0))
    np.testing.assert_allclose(estimate[1:], realised[1:], atol=0.04)


@pytest.mark.parametrize("n_subjects", [2, 3, 5])
def test_loso_ceiling_recovers_single_subject_reliability(n_subjects):
    rng = np.random.default_rng(10 + n_subjects)
    signal = _signal(rng)
    responses = signal[None] + rng.standard_normal((n_subjects, N_TRS, N_VOXELS))
    planted = np.sqrt(SIGNAL_VAR / (SIGNAL_VAR + 1.0))
    estimate = ceiling_loso(responses)
    assert estimate.shape == (n_subjects, N_VOXELS)
    np.testing.assert_allclose(estimate[:, 1:], np.broadcast_to(planted[1:], (n_subjects, N_VOXELS - 1)), atol=0.05)
    average = ceiling_of_average(estimate)
    realised = columnwise_pearson(signal, responses.mean(axis=0))
    np.testing.assert_allclose(average[1:], realised[1:], atol=0.05)


def test_reliability_from_isc_inverts_the_spearman_brown_model():
    c2 = np.array([0.05, 0.3, 0.7, 1.0])
    for n in (2, 3, 6):
        reliability_of_others = (n - 1) * c2 / (1 + (n - 2) * c2)
        isc = np.sqrt(c2 * reliability_of_others)
        np.testing.assert_allclose(reliability_from_isc(isc, n), c2, rtol=1e-10)
    assert reliability_from_isc(np.array([-0.2]), 3)[0] == 0.0


def test_bad_shapes_are_input_errors():
    with pytest.raises(InputError, match="n_repeats >= 2"):
        ceiling_from_repeats(np.zeros((1, 10, 3)))
    with pytest.raises(InputError, match="at least 2 subjects"):
        reliability_from_isc(np.zeros(3), 1)


def test_group_ceiling_is_not_biased_up_on_voxels_without_shared_signal():
    """27 subjects, 300 volumes: noise voxels get a group ceiling near 0 (clipped-then-averaged gives ~0.3)."""
    rng = np.random.default_rng(5)
    n_subjects, n_trs = 27, 300
    signal = rng.normal(size=(n_trs, 100))
    noise_voxels = rng.normal(size=(n_subjects, n_trs, 100))
    signal_voxels = signal[None] + rng.normal(0, 2.0, (n_subjects, n_trs, 100))  # single-subject reliability 0.2
    subjects, group = ceiling_loso(np.concatenate([noise_voxels, signal_voxels], axis=2), with_group=True)
    clipped_then_averaged = ceiling_of_average(subjects[:, :100])
    assert clipped_then_averaged.mean() > 0.2  # the bias this estimator avoids
    assert np.median(group[:100]) < 0.05
    planted = np.sqrt(n_subjects * 0.2 / (1 + (n_subjects - 1) * 0.2))
    assert np.median(group[100:]) == pytest.approx(planted, abs=0.03)
