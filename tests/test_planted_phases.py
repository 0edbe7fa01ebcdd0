"""The phase segmentation recovers planted trajectories (issue 10, item 7).

Cases come from :mod:`brainphase.phases.planted` (continuous piecewise-linear alignment over
log10 tokens on log, linear, Pythia, dense-late and uneven schedules, 1-4 segments, 3-10
seeds, seed offsets, NaN gaps), never from the project's simulator. A case is correct when the
number of segments is right and every boundary is within one checkpoint of the planted one.

Two planted sets:

- the *plain* set follows the issue's definition of noise alone (``ratio`` = smallest slope
  change per decade / seed-mean standard error; moderate = 4-8). Its table is printed next to
  an *oracle*: the best fit that knows the true number of segments and the true noise. Many
  plain cases cannot be solved by any estimator (a slope change of 4 SE per decade on a
  linear schedule is not located to +-1 of 100+ checkpoints): the oracle shows that bound;
- the *resolvable* set keeps the noise ratio >= 4 and redraws each case until every boundary
  is detectable (slope change >= 6 of its standard errors) and locatable (asymptotic standard
  error of the knot <= half a checkpoint spacing, so +-1 checkpoint is +-2 standard errors),
  both in closed form from the truth (:func:`planted.identifiability`). The issue's
  thresholds are asserted there: >= 90 % correct, and on the plain set >= 95 % of
  one-segment cases without a spurious boundary.

The accuracy tables are printed (visible without ``-s``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from brainphase.phases import planted
from brainphase.phases.label import analyse_trajectory, segment_trajectory
from brainphase.phases.segment import log_token_axis, segment_curve

SEED = 2026
#: conditions of the resolvable set (see the module docstring)
MIN_CHANGE_Z = 6.0
MAX_KNOT_SE = 0.5


def seed_mean(alignment: np.ndarray) -> np.ndarray:
    """Mean over seeds, NaN where every seed is NaN (a gap)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(alignment, axis=0)


def estimated_knots(case: dict) -> np.ndarray:
    """Knots found by the method with the noise estimate :func:`analyse_trajectory` uses
    (checked equal to analyse_trajectory's in :func:`test_harness_matches_analyse_trajectory`)."""
    return segment_trajectory(case["x"], case["alignment"])[0].knots


def oracle_knots(case: dict) -> np.ndarray:
    """Best fit with the true number of segments and the true seed-mean standard error."""
    if case["n_segments"] == 1:
        return np.empty(0)
    forced = segment_curve(case["x"], seed_mean(case["alignment"]), case["seed_mean_se"],
                           max_segments=case["n_segments"], cost=-1e9)
    assert forced.n_segments == case["n_segments"]
    return forced.knots


def print_table(title: str, table: pd.DataFrame, capsys) -> None:
    with capsys.disabled():
        print(f"\n{title}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def run_set(cases: list[dict], with_oracle: bool) -> tuple[pd.DataFrame, list[dict]]:
    scores = [planted.score_case(case, estimated_knots(case)) for case in cases]
    table = planted.accuracy_table(cases, scores)
    if with_oracle:
        oracle = planted.accuracy_table(cases, [planted.score_case(case, oracle_knots(case)) for case in cases])
        table["oracle_correct"] = oracle["correct"].to_numpy()
    return table, scores


# ---------------------------------------------------------------------------------------------
# the generator itself, against its definition


def test_generator_plants_what_it_reports():
    rng = np.random.default_rng(0)
    for schedule in planted.SCHEDULES:
        for pattern in ("up", "up-down", "up-flat-up", "up-down-up-flat", "flat-up-down-up"):
            case = planted.planted_case(rng, schedule, pattern, noise=5.0, n_seeds=4, seed_offset_sd=2.0,
                                        nan_fraction=0.08)
            x, knots, truth = case["x"], case["knots"], case["truth"]
            np.testing.assert_allclose(x, log_token_axis(case["tokens"]))
            assert np.all(np.diff(case["steps"]) > 0) and case["steps"][0] == 0
            edges = np.concatenate([[x[0]], knots, [x[-1]]])
            assert np.diff(edges).min() >= 0.3
            for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
                inside = (x > lo) & (x < hi)
                assert np.count_nonzero((x >= lo) & (x <= hi) & ~case["gap"]) >= 3
                if inside.sum() >= 2:  # straight inside each segment, with the reported slope
                    slope, _ = np.polyfit(x[inside], truth[inside], 1)
                    assert slope == pytest.approx(case["slopes"][j], abs=1e-9)
            # continuous: the curve at each knot is the same from both sides
            for j, knot in enumerate(knots):
                left = truth[x <= knot][-1] + case["slopes"][j] * (knot - x[x <= knot][-1])
                right = truth[x > knot][0] - case["slopes"][j + 1] * (x[x > knot][0] - knot)
                assert left == pytest.approx(right, abs=1e-9)
            trends = {"up": "rising", "down": "falling", "flat": "flat"}
            assert case["trends"] == [trends[part] for part in pattern.split("-")]
            if len(knots):
                assert np.abs(np.diff(case["slopes"])).min() / case["seed_mean_se"] == pytest.approx(5.0)
            assert case["seed_mean_se"] == pytest.approx(case["sigma_seed"] / 2)
            assert np.isnan(case["alignment"][:, case["gap"]]).all()
            assert np.isfinite(case["alignment"][:, ~case["gap"]]).all()
            assert case["gap"].any() and not case["gap"][[0, -1]].any()


def test_pythia_schedule():
    steps = planted.schedule_steps(np.random.default_rng(0), "pythia")
    assert len(steps) == 154
    assert list(steps[:12]) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    assert steps[-1] == 143000 and set(np.diff(steps[11:])) == {1000}


def test_identifiability_matches_monte_carlo():
    """The closed-form standard error of a slope change equals its spread over noise draws."""
    rng = np.random.default_rng(1)
    case = planted.planted_case(rng, "pythia", "up-down-up", noise=6.0, n_seeds=4)
    x, knots, se = case["x"], case["knots"], case["seed_mean_se"]
    design = np.column_stack([np.ones_like(x), x] + [np.maximum(0, x - k) for k in knots])
    draws = case["truth"][:, None] + rng.normal(0, se, (len(x), 4000))
    coefficients = np.linalg.lstsq(design, draws, rcond=None)[0]
    empirical_se = coefficients[2:].std(axis=1)
    expected_z = np.abs(np.diff(case["slopes"])) / empirical_se
    np.testing.assert_allclose(case["change_z"], expected_z, rtol=0.05)


def test_search_reaches_the_planted_fit():
    """With the true number of segments, the knot search fits at least as well as the planted
    knots (weighted least squares at the planted knots by numpy, independently)."""
    for case in planted.planted_set(SEED, 2, segment_counts=(2, 3, 4), noise_levels=("moderate",)):
        x, curve = case["x"], seed_mean(case["alignment"])
        finite = np.isfinite(curve)
        design = np.column_stack([np.ones_like(x), x] + [np.maximum(0, x - k) for k in case["knots"]])[finite]
        residual = curve[finite] - design @ np.linalg.lstsq(design, curve[finite], rcond=None)[0]
        chi2_planted = float(np.sum((residual / case["seed_mean_se"]) ** 2))
        forced = segment_curve(x, curve, case["seed_mean_se"], max_segments=case["n_segments"], cost=-1e9)
        assert forced.chi2[case["n_segments"] - 1] <= chi2_planted + 1e-6, (case["schedule"], case["pattern"])


def test_harness_matches_analyse_trajectory():
    """The accuracy harness finds the same knots as analyse_trajectory (same noise estimate)."""
    for case in planted.planted_set(SEED, 1, segment_counts=(1, 3), noise_levels=("moderate",)):
        result = analyse_trajectory(case["tokens"], case["alignment"], steps=case["steps"], n_bootstrap=0)
        found = np.log10(result.boundary_tokens)
        np.testing.assert_allclose(found, estimated_knots(case), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# accuracy on planted sets


def check_accuracy(n_per_cell: int, capsys) -> None:
    plain = planted.planted_set(SEED, n_per_cell)
    table, scores = run_set(plain, with_oracle=True)
    print_table(f"plain planted set (issue's noise definition), {len(plain)} cases: fraction correct "
                "(segments and every boundary +-1 checkpoint); oracle = true K and noise", table, capsys)
    one = [score for case, score in zip(plain, scores) if case["n_segments"] == 1]
    no_spurious = 1 - np.mean([score["spurious"] for score in one])

    resolvable = planted.planted_set(SEED + 1, n_per_cell, noise_levels=("moderate", "low"),
                                     min_change_z=MIN_CHANGE_Z, max_knot_se=MAX_KNOT_SE)
    table, scores = run_set(resolvable, with_oracle=False)
    print_table(f"resolvable planted set (ratio >= 4, slope changes >= {MIN_CHANGE_Z:g} SE, knot SE <= "
                f"{MAX_KNOT_SE:g} checkpoint), {len(resolvable)} cases", table, capsys)
    by_level = {level: np.mean([score["correct"] for case, score in zip(resolvable, scores) if case["noise"] == level])
                for level in ("moderate", "low")}
    with capsys.disabled():
        print(f"one-segment cases without a spurious boundary: {no_spurious:.3f} of {len(one)}; "
              f"resolvable correct: {by_level}")
    assert no_spurious >= 0.95
    assert by_level["moderate"] >= 0.90
    assert by_level["low"] >= 0.90


def test_planted_accuracy(capsys):
    check_accuracy(3, capsys)


@pytest.mark.slow
def test_planted_accuracy_large(capsys):
    check_accuracy(20, capsys)


# ---------------------------------------------------------------------------------------------
# naming


def test_saturated_task_metric_does_not_create_a_phase():
    """A steadily rising alignment beside an accuracy that saturates early is one rising segment."""
    for index in range(6):
        case = planted.planted_case(np.random.default_rng([SEED, index]), "pythia", "up", noise=6.0,
                                    n_seeds=5, with_metrics=True)
        assert np.all(case["metrics"]["saturated_accuracy"][:, -100:] == 1.0)  # flat for the last 100 checkpoints
        result = analyse_trajectory(case["tokens"], case["alignment"], steps=case["steps"], metrics=case["metrics"],
                                    n_bootstrap=0)
        assert list(result.segments["trend"]) == ["rising"]
        assert list(result.segments["phase"]) == ["alignment"]
        assert "task/saturated_accuracy/change" in result.segments


def test_four_segments_end_on_a_plateau():
    """up-down-up-flat is alignment, detachment, realignment, plateau (not folded into realignment)."""
    expected = ["alignment", "detachment", "realignment", "plateau"]
    named = []
    for index, schedule in enumerate(["pythia", "log", "dense_late", "uneven", "pythia"] * 4):
        case = planted.planted_case(np.random.default_rng([SEED, 7, index]), schedule, "up-down-up-flat", noise="low",
                                    n_seeds=6, min_change_z=MIN_CHANGE_Z, max_knot_se=MAX_KNOT_SE)
        result = analyse_trajectory(case["tokens"], case["alignment"], steps=case["steps"], n_bootstrap=0)
        names = list(result.segments["phase"])
        named.append(names == expected)
    # a truly flat segment is called flat unless the 95 % test rejects flatness: ~5 % misnamed per case
    assert np.mean(named) >= 0.9, named
