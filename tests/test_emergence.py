"""Emergence statistics (brainphase.emergence) on planted data and against scipy/numpy references."""

from __future__ import annotations

import warnings

import diptest
import numpy as np
import pytest
from scipy import stats

from brainphase.emergence import (bimodality, clopper_pearson, crossing, mirage_check, seed_distribution,
                                  sharpness, success_probability, tracking_table, wasserstein_between,
                                  wasserstein_steps)
from brainphase.emergence.sharpness import SHARP_IN_BOTH, SHARP_ONLY_DISCONTINUOUS, SMOOTH
from brainphase.errors import InputError

N_STEPS = 30
SWITCH_STEPS = np.arange(10, 20)  # each seed switches at one of these, uniformly


def switching_seeds(n_seeds: int, rng: np.random.Generator, noise: float = 0.05):
    """Seeds at ~0.1 that jump to ~0.9 at a step drawn uniformly from SWITCH_STEPS.

    Returns values (n_seeds, N_STEPS), the switch step per seed (n_seeds,), and the planted
    population probability of having switched by each step (N_STEPS,).
    """
    switch = rng.choice(SWITCH_STEPS, size=n_seeds)
    steps = np.arange(N_STEPS)
    values = np.where(steps[None, :] >= switch[:, None], 0.9, 0.1) + rng.normal(0, noise, (n_seeds, N_STEPS))
    planted_p = np.clip((steps - SWITCH_STEPS[0] + 1) / len(SWITCH_STEPS), 0, 1)
    return values, switch, planted_p


def test_seed_distribution_matches_numpy_and_counts_nan():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 5))
    values[0, 1] = np.nan
    values[:, 4] = np.nan
    result = seed_distribution(values)
    np.testing.assert_allclose(result.mean[:4], np.nanmean(values[:, :4], axis=0))
    np.testing.assert_array_equal(result.n_finite, [7, 6, 7, 7, 0])
    for step in range(4):
        column = values[np.isfinite(values[:, step]), step]
        np.testing.assert_allclose(result.quantiles[:, step], np.quantile(column, [0.05, 0.25, 0.5, 0.75, 0.95]))
    assert np.isnan(result.mean[4]) and np.isnan(result.quantiles[:, 4]).all()


def test_clopper_pearson_matches_scipy_binomtest():
    for n, k in [(5, 0), (5, 2), (5, 5), (40, 13), (40, 39), (1, 1)]:
        low, high = clopper_pearson(k, n, 0.9)
        reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
        assert low == pytest.approx(reference.low, abs=1e-10)
        assert high == pytest.approx(reference.high, abs=1e-10)


def test_success_probability_recovers_planted_probability():
    rng = np.random.default_rng(1)
    values, switch, planted_p = switching_seeds(40, rng)
    result = success_probability(values, threshold=0.5)
    # the point estimate is the share of seeds that have switched (noise 0.05 never crosses 0.5)
    np.testing.assert_array_equal(result.n_success, (np.arange(N_STEPS)[None, :] >= switch[:, None]).sum(0))
    assert ((result.ci_low <= planted_p) & (planted_p <= result.ci_high)).all()
    # coverage over many planted replicates is at least nominal (Clopper-Pearson is conservative)
    covered = []
    for _ in range(200):
        values, _, planted_p = switching_seeds(20, rng)
        result = success_probability(values, threshold=0.5, confidence=0.9)
        mixed = (planted_p > 0) & (planted_p < 1)
        covered.append((result.ci_low[mixed] <= planted_p[mixed]) & (planted_p[mixed] <= result.ci_high[mixed]))
    assert np.mean(covered) >= 0.9
    # a loss-like metric: success is being at or below the threshold
    loss = success_probability(-values, threshold=-0.5, higher_is_better=False)
    np.testing.assert_array_equal(loss.probability, success_probability(values, 0.5).probability)


def test_success_probability_skips_nan_and_rejects_bad_input():
    values = np.array([[1.0, np.nan], [0.0, np.nan], [1.0, 1.0]])
    result = success_probability(values, threshold=0.5)
    np.testing.assert_allclose(result.probability, [2 / 3, 1.0])
    np.testing.assert_array_equal(result.n_finite, [3, 1])
    with pytest.raises(InputError, match="n_seeds, n_steps"):
        success_probability(np.ones(4), threshold=0.5)
    with pytest.raises(InputError, match="threshold"):
        success_probability(values, threshold=np.nan)


def test_bimodality_positive_only_where_planted():
    rng = np.random.default_rng(2)
    values, switch, planted_p = switching_seeds(40, rng)
    result = bimodality(values)
    # both groups hold at least a quarter of the seeds: the mixture is called bimodal (a smaller
    # minority, here 3-9 of 40 seeds 16 SD away, is found only sometimes: the dip test's power limit)
    n_switched = (np.arange(N_STEPS)[None, :] >= switch[:, None]).sum(0)
    planted_mixture = (n_switched >= 10) & (n_switched <= 30)
    assert planted_mixture.sum() >= 5
    assert result.bimodal[planted_mixture].all()
    # all seeds on one side: unimodal (Gaussian noise), never called bimodal
    one_group = (n_switched == 0) | (n_switched == 40)
    assert not result.bimodal[one_group].any()
    np.testing.assert_allclose(result.dip[0], diptest.diptest(values[:, 0])[0])


def test_bimodality_power_limit_with_five_seeds():
    """The documented power: 40 seeds find a 6-SD split, 5 seeds mostly do not even at 10 SD."""
    rng = np.random.default_rng(3)

    def detection_rate(n_seeds, separation, n_repeats=150):
        groups = np.arange(n_seeds) < n_seeds // 2
        values = rng.normal(size=(n_seeds, n_repeats)) + separation * groups[:, None]
        return bimodality(values).bimodal.mean()

    assert detection_rate(40, 6.0) > 0.9
    assert detection_rate(5, 10.0) < 0.6
    assert detection_rate(40, 0.0) < 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # too few seeds: NaN, not diptest's warning
        few = bimodality(np.ones((3, 4)))
    assert np.isnan(few.p_value).all() and not few.bimodal.any()


def test_wasserstein_steps_equals_scipy():
    rng = np.random.default_rng(4)
    values = np.cumsum(rng.normal(size=(9, 12)), axis=1)
    values[2, 3] = np.nan
    values[[0, 5], 7] = np.nan
    values[:, 10] = np.nan
    distances = wasserstein_steps(values)
    assert distances.shape == (11,)
    for step in range(11):
        a, b = values[:, step], values[:, step + 1]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) and len(b):
            assert distances[step] == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12, abs=1e-12)
        else:
            assert np.isnan(distances[step])
    other_size = rng.normal(1.0, 2.0, size=(4, 12))
    between = wasserstein_between(values, other_size)
    for step in (0, 3):
        a = values[np.isfinite(values[:, step]), step]
        assert between[step] == pytest.approx(stats.wasserstein_distance(a, other_size[:, step]), rel=1e-12)
    assert np.isnan(between[10])
    switched, _, _ = switching_seeds(40, rng, noise=0.0)
    # a seed that switches moves 0.8: W1 = 0.8 * (share of seeds switching at that step)
    share = np.diff((switched > 0.5).mean(axis=0))
    np.testing.assert_allclose(wasserstein_steps(switched), 0.8 * share, atol=1e-12)


LOG_TOKENS = np.concatenate([[0], np.round(10 ** np.arange(6.0, 10.01, 0.1))]).astype(np.int64)


def test_sharpness_of_a_logistic_matches_closed_form():
    tokens = np.round(10 ** np.arange(3.0, 13.0, 0.01)).astype(np.int64)
    x = np.log10(tokens)
    for scale in (0.1, 0.3, 0.6):
        curve = 1 / (1 + np.exp(-(x - 8.0) / scale))
        assert sharpness(tokens, curve) == pytest.approx(np.tanh(0.5 / (4 * scale)), abs=2e-3)


def test_sharpness_limited_by_checkpoint_spacing():
    tokens = np.array([10**6, 10**7, 10**8, 10**9])
    assert sharpness(tokens, [0.0, 0.0, 1.0, 1.0]) == pytest.approx(0.5)  # jump inside a 1-decade gap
    assert sharpness(tokens, [0.0, 1.0, 2.0, 3.0]) == pytest.approx(0.5 / 3)  # even over 3 decades
    assert np.isnan(sharpness(tokens, [3.0, 2.0, 1.0, 0.0]))  # never rises
    with pytest.raises(InputError, match="span"):
        sharpness([10**6, 2 * 10**6], [0.0, 1.0])


def test_mirage_check_separates_step_from_thresholded_sigmoid():
    x = np.log10(np.maximum(LOG_TOKENS, 1))
    x[0] = 5.9  # where log_token_axis puts step 0
    smooth = 1 / (1 + np.exp(-(x - 8.0) / 0.5))  # rises over ~4 decades
    step = (x >= 8.0).astype(float)
    # a genuine jump: sharp in the continuous metric too
    real = mirage_check(LOG_TOKENS, discontinuous=step, continuous=1 / (1 + np.exp(-(x - 8.0) / 0.05)))
    assert real.verdict == SHARP_IN_BOTH
    # smooth progress seen through a threshold (accuracy of the argmax) looks like a jump
    mirage = mirage_check(LOG_TOKENS, discontinuous=(smooth >= 0.5).astype(float), continuous=smooth)
    assert mirage.verdict == SHARP_ONLY_DISCONTINUOUS
    assert mirage.sharpness_discontinuous == pytest.approx(1.0)
    assert mirage.sharpness_continuous < 0.3
    # a smooth exact-match curve (probability that 4 tokens are all right) stays smooth
    assert mirage_check(LOG_TOKENS, smooth**4, smooth).verdict == SMOOTH


def test_crossing_recovers_planted_points_in_tokens_and_loss():
    rng = np.random.default_rng(5)
    x = np.log10(LOG_TOKENS[1:])
    planted = rng.uniform(7.0, 9.0, size=12)
    values = 0.5 + 0.3 * (x[None, :] - planted[:, None])  # linear: interpolation is exact
    values[3] = 0.0  # this seed never crosses
    values[4, 5] = np.nan  # a missing checkpoint is skipped
    result = crossing(x, values, threshold=0.5)
    expected = planted.copy()
    expected[3] = np.nan
    np.testing.assert_allclose(result.per_seed, expected, atol=1e-12)
    assert result.n_crossed == 11
    crossed = expected[np.isfinite(expected)]
    assert result.median == pytest.approx(np.median(crossed))
    assert result.iqr == pytest.approx(np.subtract(*np.quantile(crossed, [0.75, 0.25])))
    # against a per-seed validation loss that falls over training; the metric is linear in loss
    loss = 4.0 - 0.2 * x[None, :] + rng.uniform(-0.3, 0.3, size=(12, 1))
    planted_loss = rng.uniform(2.35, 2.45, size=12)  # below every start (>= 2.5), above every end (<= 2.3)
    metric = 1.0 - (loss - planted_loss[:, None])
    in_loss = crossing(loss, metric, threshold=1.0)
    np.testing.assert_allclose(in_loss.per_seed, planted_loss, atol=1e-12)
    # a loss-like metric crosses downwards; already past the threshold at step 0 gives x[0]
    assert crossing(x, -values[:1], threshold=-0.5, higher_is_better=False).per_seed[0] == pytest.approx(planted[0])
    assert crossing(x, np.ones((1, len(x))), threshold=0.5).per_seed[0] == x[0]
    with pytest.raises(InputError, match="x must have shape"):
        crossing(x[:-1], values, threshold=0.5)


def test_tracking_table_ranks_planted_metrics():
    rng = np.random.default_rng(6)
    n_seeds, n_steps = 6, 25
    alignment = np.cumsum(rng.normal(0.1, 1.0, size=(n_seeds, n_steps)), axis=1)
    metrics = {
        "noise": rng.normal(size=(n_seeds, n_steps)),
        "noisy_linear": alignment + rng.normal(0, 2.0, size=(n_seeds, n_steps)),
        "monotone": np.exp(alignment / 3.0),
    }
    table = tracking_table(alignment, metrics, seed=0)
    assert list(table["metric"]) == ["monotone", "noisy_linear", "noise"]
    assert table.loc[0, "mean_rho"] == pytest.approx(1.0)
    noise = table.iloc[-1]
    assert noise.ci_low < 0 < noise.ci_high
    assert (table["ci_low"] <= table["mean_rho"]).all() and (table["mean_rho"] <= table["ci_high"]).all()
    # per-seed correlations equal Pearson's r of the ranks
    seed = 2
    ranks = stats.rankdata(alignment[seed]), stats.rankdata(metrics["noisy_linear"][seed])
    row = table.set_index("metric").loc["noisy_linear"]
    assert row.rho_per_seed[seed] == pytest.approx(np.corrcoef(*ranks)[0, 1])
    # same bootstrap seed, same table
    again = tracking_table(alignment, metrics, seed=0)
    np.testing.assert_array_equal(again["ci_low"], table["ci_low"])
    with pytest.raises(InputError, match="shape"):
        tracking_table(alignment, {"short": alignment[:, :-1]})
