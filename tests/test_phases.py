"""Tests of the phase analysis: segmentation (brainphase.phases.segment), names and uncertainty
(brainphase.phases.label), trajectory.h5 (brainphase.phases.cli, .read).

References: closed-form piecewise-linear curves, pwlf's global optimiser for the fit, scipy for
correlations and t intervals. The planted-trajectory accuracy study is in test_planted_phases.py.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainphase import cli
from brainphase.errors import InputError
from brainphase.phases.aggregate import aggregate
from brainphase.phases.cli import correlate, phases
from brainphase.phases.label import analyse_trajectory
from brainphase.phases.naming import LABEL_NAMES, name_segments, slope_trend, task_changes
from brainphase.phases.noise import noise_sigma
from brainphase.phases.read import load_trajectory
from brainphase.phases.segment import log_token_axis, pseudo_residual_sigma, segment_curve

PYTHIA_STEPS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512] + list(range(1000, 143001, 1000)))


def piecewise(x, knots, slopes, start=0.0):
    """Continuous piecewise-linear curve with the given knots and slopes (closed form)."""
    y = start + slopes[0] * (x - x[0])
    for knot, before, after in zip(knots, slopes[:-1], slopes[1:]):
        y = y + (after - before) * np.maximum(0.0, x - knot)
    return y


def test_log_token_axis_places_step_zero_one_spacing_before():
    x = log_token_axis(np.array([0, 100, 1000, 10000]))
    np.testing.assert_allclose(x, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(log_token_axis(np.array([0, 100])), [1.0, 2.0])
    with pytest.raises(InputError, match="strictly increasing"):
        log_token_axis(np.array([0, 10, 10]))
    with pytest.raises(InputError, match=">= 0"):
        log_token_axis(np.array([-1, 10]))


def test_noiseless_three_segments_recovered_exactly():
    x = log_token_axis(PYTHIA_STEPS * 2097152)
    y = piecewise(x, [8.0, 10.5], [0.02, -0.03, 0.02])
    seg = segment_curve(x, y, 1e-4)
    assert seg.n_segments == 3
    np.testing.assert_allclose(seg.knots, [8.0, 10.5], atol=0.16)  # at or half-way between checkpoints
    np.testing.assert_allclose(seg.slopes, [0.02, -0.03, 0.02], atol=2e-3)


@pytest.mark.parametrize("n_segments", [2, 3])
def test_fit_is_as_good_as_pwlf_global_optimum(n_segments):
    """Our knots (restricted to checkpoints and midpoints) fit as well as pwlf's continuous optimum."""
    pwlf = pytest.importorskip("pwlf")
    rng = np.random.default_rng(n_segments)
    x = np.sort(rng.uniform(0, 5, 40))
    y = piecewise(x, [1.5, 3.2][:n_segments - 1], [1.0, -1.0, 0.5][:n_segments]) + rng.normal(0, 0.05, len(x))
    ours = segment_curve(x, y, 0.05, max_segments=n_segments, min_points=3, cost=-1e9)
    assert ours.n_segments == n_segments
    reference = pwlf.PiecewiseLinFit(x, y, seed=1)
    reference.fit(n_segments)
    pwlf_chi2 = np.sum(((reference.predict(x) - y) / 0.05) ** 2)
    assert ours.chi2[n_segments - 1] <= pwlf_chi2 * 1.02 + 0.5
    np.testing.assert_allclose(np.sort(ours.knots), reference.fit_breaks[1:-1], atol=0.2)


def test_slope_standard_errors_match_ols_on_one_segment():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 3, 30)
    y = 0.1 + 0.2 * x + rng.normal(0, 0.01, 30)
    seg = segment_curve(x, y, 0.01, max_segments=1)
    fit = stats.linregress(x, y)
    assert seg.slopes[0] == pytest.approx(fit.slope, rel=1e-9)
    # known sigma: SE = sigma / sqrt(sum (x - mean)^2)
    assert seg.slope_se[0] == pytest.approx(0.01 / np.sqrt(np.sum((x - x.mean()) ** 2)), rel=1e-9)


def test_pseudo_residual_sigma_recovers_noise_of_a_kinked_curve():
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0, 5, 2000))
    y = piecewise(x, [2.0], [1.0, -2.0]) + rng.normal(0, 0.03, len(x))
    assert pseudo_residual_sigma(x, y) == pytest.approx(0.03, rel=0.08)


def test_noise_sigma_ignores_constant_seed_offsets():
    rng = np.random.default_rng(2)
    x = np.linspace(6, 11, 60)
    truth = piecewise(x, [8.0], [0.02, -0.01])
    alignment = truth + rng.normal(0, 0.01, (5, 60)) + np.array([0.05, -0.05, 0.0, 0.1, -0.1])[:, None]
    sigma, source = noise_sigma(x, alignment, None)
    assert source.startswith("seed spread")
    assert np.median(sigma) == pytest.approx(0.01 / np.sqrt(5), rel=0.15)


def test_noise_sigma_rises_to_noise_shared_by_all_seeds():
    rng = np.random.default_rng(3)
    x = np.linspace(6, 11, 80)
    shared = rng.normal(0, 0.02, 80)  # e.g. the same fMRI data scored for every seed
    alignment = piecewise(x, [], [0.01]) + shared + rng.normal(0, 0.001, (3, 80))
    sigma, source = noise_sigma(x, alignment, None)
    assert "scaled up" in source and np.median(sigma) == pytest.approx(0.02, rel=0.25)


def test_noise_sigma_of_identical_seeds_is_the_curves_own_noise():
    rng = np.random.default_rng(4)
    x = np.linspace(6, 11, 80)
    curve = piecewise(x, [], [0.01]) + rng.normal(0, 0.02, 80)
    alignment = np.tile(curve, (3, 1))  # e.g. one seed copied three times: no seed spread at all
    with np.errstate(all="raise"):
        sigma, source = noise_sigma(x, alignment, None)
    assert "scaled up" in source and np.allclose(sigma, pseudo_residual_sigma(x, curve))
    assert np.median(sigma) == pytest.approx(0.02, rel=0.25)


@pytest.mark.parametrize("trends, names", [
    (["rising"], ["alignment"]),
    (["rising", "falling", "rising"], ["alignment", "detachment", "realignment"]),
    (["rising", "flat", "rising"], ["alignment", "detachment", "realignment"]),
    (["rising", "falling", "rising", "flat"], ["alignment", "detachment", "realignment", "plateau"]),
    (["rising", "falling", "rising", "falling", "rising"],
     ["alignment", "detachment", "realignment", "second detachment", "second realignment"]),
    (["flat", "rising", "rising", "falling"], ["initial plateau", "alignment", "alignment", "detachment"]),
    (["falling", "rising"], ["initial decline", "alignment"]),
])
def test_phase_names(trends, names):
    assert name_segments(trends) == names
    assert set(names) <= set(LABEL_NAMES)


def test_slope_trend_uses_the_confidence_interval():
    assert slope_trend(0.1, 0.04, 1.96) == "rising"
    assert slope_trend(0.1, 0.06, 1.96) == "flat"
    assert slope_trend(-0.1, 0.04, 1.96) == "falling"


def _three_phase_case(seed=0, n_seeds=4, noise=0.004):
    rng = np.random.default_rng(seed)
    tokens = PYTHIA_STEPS * 2097152
    x = log_token_axis(tokens)
    truth = piecewise(x, [8.0, 10.5], [0.02, -0.03, 0.02], start=0.02)
    alignment = truth + rng.normal(0, noise, (n_seeds, len(x)))
    return tokens, alignment


def test_analysis_names_phases_with_cis_and_is_deterministic():
    tokens, alignment = _three_phase_case()
    rng = np.random.default_rng(1)
    accuracy = np.clip((log_token_axis(tokens) - 6) / 1.5, 0, 1) + rng.normal(0, 0.002, (4, len(tokens)))  # saturated from 10^7.5
    first = analyse_trajectory(tokens, alignment, PYTHIA_STEPS, metrics={"acc": accuracy}, n_bootstrap=40, seed=7)
    again = analyse_trajectory(tokens, alignment, PYTHIA_STEPS, metrics={"acc": accuracy}, n_bootstrap=40, seed=7)
    pd.testing.assert_frame_equal(first.segments, again.segments)
    assert list(first.segments.phase) == ["alignment", "detachment", "realignment"]
    for knot, (_, row) in zip([8.0, 10.5], first.boundaries.iterrows()):
        assert row.tokens_ci_low <= row.tokens <= row.tokens_ci_high
        assert np.log10(row.tokens_ci_low) - 0.3 <= knot <= np.log10(row.tokens_ci_high) + 0.3
    assert (first.segments.p_exists > 0.9).all()
    # the saturated accuracy is stagnant during detachment and realignment: read from the table
    assert list(first.segments["task/acc/trend"])[1:] == ["stagnant", "stagnant"]
    assert first.summary.startswith("alignment (until")
    assert (first.seed_agreement > 0.8).all()


def test_rising_curve_with_saturated_task_is_one_phase():
    rng = np.random.default_rng(4)
    tokens = PYTHIA_STEPS * 2097152
    x = log_token_axis(tokens)
    alignment = piecewise(x, [], [0.01]) + rng.normal(0, 0.003, (3, len(x)))
    result = analyse_trajectory(tokens, alignment, metrics={"acc": np.ones((3, len(x)))}, n_bootstrap=0)
    assert list(result.segments.phase) == ["alignment"]
    assert result.summary.startswith("alignment only; no detachment detected, 95% CI of the slope of the last segment [")


def test_gaps_are_left_out_and_short_curves_are_not_labelled():
    tokens, alignment = _three_phase_case(seed=5)
    alignment[:, 40:50] = np.nan
    result = analyse_trajectory(tokens, alignment, n_bootstrap=10)
    assert result.status == "labelled" and np.isnan(result.curve[40:50]).all()
    assert list(result.segments.phase) == ["alignment", "detachment", "realignment"]
    short = analyse_trajectory(np.array([0, 10, 100]), np.ones((2, 3)), n_bootstrap=10)
    assert short.status.startswith("skipped: 3 checkpoint(s)") and (short.labels == -1).all()
    assert len(short.segments) == 0


def test_task_changes_t_interval_over_seeds():
    x = np.linspace(0, 2, 21)
    rng = np.random.default_rng(6)
    slopes = rng.normal(0.5, 0.1, 4)
    values = slopes[:, None] * x[None, :]
    table = task_changes(x, np.array([0.0, 1.0, 2.0]), values)
    half = stats.t.ppf(0.975, 3) * np.std(slopes, ddof=1) / 2
    assert table.change[0] == pytest.approx(slopes.mean(), rel=1e-9)
    assert table.change_ci_high[0] - table.change[0] == pytest.approx(half, rel=1e-9)
    assert list(table.trend) == ["rising", "rising"]


def test_correlate_matches_scipy():
    rng = np.random.default_rng(8)
    a, m = rng.normal(size=20), rng.normal(size=20)
    result = correlate(a, m)
    assert result["pearson_r"] == pytest.approx(stats.pearsonr(a, m).statistic)
    assert result["spearman_rho"] == pytest.approx(stats.spearmanr(a, m).statistic)
    assert np.isnan(correlate(a, np.ones(20))["pearson_r"])


def _write_metrics(path, tokens, alignment, steps, accuracy):
    n_seeds, n_steps = alignment.shape
    with h5py.File(path, "w") as f:
        f.attrs.update(stage="aggregate", model_id="m", simulated=True)
        f["seeds"], f["steps"], f["tokens"] = np.arange(n_seeds) + 1, steps, tokens
        f["layers"] = np.array([0, 1])
        f["brain/alignment_heldout_layer"] = alignment
        f["brain/alignment_heldout_layer_subject"] = alignment[:, :, None] + np.array([-0.01, 0.01])
        f["brain/alignment_layer"] = np.stack([alignment, alignment / 2], axis=2)
        f["metrics/acc"] = accuracy
        f["metrics/acc"].attrs.update(kind="discontinuous", higher_is_better=True)


def test_phases_cli_writes_the_documented_layout(tmp_path, capsys):
    tokens, alignment = _three_phase_case(seed=9)
    accuracy = np.clip(alignment * 5, 0, 1)
    _write_metrics(tmp_path / "metrics.h5", tokens, alignment, PYTHIA_STEPS, accuracy)
    out = tmp_path / "trajectory.h5"
    assert cli.main(["phases", "--metrics", str(tmp_path / "metrics.h5"), "--out", str(out), "--n-bootstrap", "20"]) == 0
    with h5py.File(out) as f:
        assert f["phases"].attrs["status"] == "labelled" and f["brain/alignment"].attrs["measure"] == "heldout_layer"
        for name in ("x", "curve", "fitted", "labels", "label_names", "seed_labels", "seed_agreement",
                     "segments/phase", "segments/start_tokens_ci_low", "segments/slope_ci_high", "segments/task/acc/change",
                     "boundaries/tokens_ci_high", "seed_segments/seed", "bootstrap/knots_log10_tokens",
                     "phase_probability/detachment", "correlations/spearman_rho"):
            assert name in f["phases"] or name in f, name
    traj = load_trajectory(out)
    assert isinstance(traj.segments, pd.DataFrame) and list(traj.segments.phase) == ["alignment", "detachment", "realignment"]
    assert set(traj.seed_segments.seed) == {1, 2, 3, 4}
    assert traj.frame().phase.iloc[0] == "alignment" and traj.simulated
    assert cli.main(["summary", "--trajectory", str(out), "--figures-dir", str(tmp_path / "figs")]) == 0
    printed = capsys.readouterr().out
    assert "fMRI SIMULATED" in printed and "peak" in printed and "realignment" in printed and "figs" in printed


def test_phases_from_a_table_with_gaps(tmp_path):
    tokens, alignment = _three_phase_case(seed=10, n_seeds=3)
    rows = [{"seed": s, "step": int(step), "tokens": int(t), "alignment": alignment[s, j], "accuracy": 0.5, "loss": 3.0}
            for s in range(3) for j, (step, t) in enumerate(zip(PYTHIA_STEPS, tokens)) if not (s == 1 and j == 30)]
    pd.DataFrame(rows).to_csv(tmp_path / "curve.tsv", sep="\t", index=False)
    out = tmp_path / "t.h5"
    assert cli.main(["phases", "--table", str(tmp_path / "curve.tsv"), "--out", str(out), "--n-bootstrap", "10",
                     "--discontinuous", "accuracy", "--lower-is-better", "loss"]) == 0
    traj = load_trajectory(out)
    assert np.isnan(traj.alignment[1, 30]) and traj.metric_kinds == {"accuracy": "discontinuous", "loss": "continuous"}
    assert list(traj.segments.phase) == ["alignment", "detachment", "realignment"]
    pd.DataFrame([{"seed": 0, "step": 1}]).to_csv(tmp_path / "bad.csv", index=False)
    assert cli.main(["phases", "--table", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "bad.h5")]) == 2
    assert not (tmp_path / "bad.h5").exists()


def test_one_checkpoint_is_not_labelled_but_written(tmp_path):
    _write_metrics(tmp_path / "m.h5", np.array([1000]), np.array([[0.1], [0.12]]), np.array([5]), np.array([[0.3], [0.3]]))
    result = phases(tmp_path / "m.h5", tmp_path / "t.h5", n_bootstrap=5)
    assert result.status.startswith("skipped")
    traj = load_trajectory(tmp_path / "t.h5")
    assert not traj.labelled and len(traj.segments) == 0 and (traj.labels == -1).all()


def test_unavailable_measure_names_the_available_ones(tmp_path):
    tokens, alignment = _three_phase_case(seed=11)
    _write_metrics(tmp_path / "m.h5", tokens, alignment, PYTHIA_STEPS, alignment)
    with pytest.raises(InputError, match="beyond_baselines.*available: \\['heldout_layer'\\]"):
        phases(tmp_path / "m.h5", tmp_path / "t.h5", measure="beyond_baselines")
    assert not (tmp_path / "t.h5").exists()


def test_aggregate_then_phases_end_to_end(tmp_path):
    """Scores files -> aggregate -> phases: the planted rise-fall-rise comes back."""
    from tests.test_aggregate import LABELS, LAYERS, SUBJECTS, write_responses, write_scores

    rng = np.random.default_rng(12)
    steps = np.array([0] + [int(2 ** k) for k in range(0, 16)])
    tokens = steps * 1000
    x = log_token_axis(tokens)
    curve = piecewise(x, [5.0, 7.0], [0.05, -0.05, 0.05], start=0.05)
    scores = []
    for seed in (1, 2, 3):
        for j, step in enumerate(steps):
            r = np.empty((len(LAYERS), len(SUBJECTS), len(LABELS)))
            r[:] = curve[j] + rng.normal(0, 0.003)
            r[0] -= 0.02  # layer 0 is worse for everyone
            scores.append(tmp_path / f"s{seed}_{step}.h5")
            write_scores(scores[-1], seed, int(step), int(tokens[j]), r)
    write_responses(tmp_path / "responses.h5")
    aggregate(scores, [], tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    result = phases(tmp_path / "m.h5", tmp_path / "t.h5", n_bootstrap=20)
    assert list(result.segments.phase) == ["alignment", "detachment", "realignment"]
    np.testing.assert_allclose(np.log10(result.boundary_tokens), [5.0, 7.0], atol=0.31)


def test_nested_task_and_internal_metrics_reach_trajectory_and_tables(tmp_path):
    """aggregate (nested /metrics/{task}/{metric}, /internal) -> phases -> load_trajectory: long tables,
    group attrs carried, segment columns task/{task}/{metric}/{column} split right."""
    from tests.test_aggregate import TASK_VALUES, _task_and_internal_grid

    seeds, steps = (1, 2), (0, 1, 2, 4, 8, 16)
    scores, tasks, internal = _task_and_internal_grid(tmp_path, seeds, steps, n_layers=3)
    aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5", internal_paths=internal)
    result = phases(tmp_path / "m.h5", tmp_path / "t.h5", n_bootstrap=5)
    assert result.status == "labelled"
    traj = load_trajectory(tmp_path / "t.h5")
    assert sorted(traj.metrics) == sorted(TASK_VALUES)
    assert traj.metric_families == {"induction/acc": "induction", "induction/logprob": "induction",
                                    "blimp_agreement/acc": "formal", "blimp_agreement/brier": "formal"}
    assert traj.task_attrs["induction"]["version"] == "1" and traj.task_attrs["induction"]["n_items"] == 7
    assert traj.metric_higher_is_better["blimp_agreement/brier"] is False
    table = traj.tasks
    assert list(table.columns) == ["seed", "step", "tokens", "task", "family", "metric", "kind", "value"]
    assert len(table) == len(seeds) * len(steps) * len(TASK_VALUES)
    for k, (name, (_, kind)) in enumerate(TASK_VALUES.items()):
        task, metric = name.split("/")
        rows = table[(table.task == task) & (table.metric == metric)]
        assert set(rows.kind) == {kind} and len(rows) == len(seeds) * len(steps)
        np.testing.assert_allclose(rows.value, 1000 * rows.seed + rows.step + 0.1 * k)
        np.testing.assert_array_equal(rows.tokens, rows.step * 10)
    inner = traj.internal
    assert list(inner.columns) == ["seed", "step", "tokens", "layer", "metric", "value"]
    assert len(inner) == len(seeds) * len(steps) * 3 * 2
    twonn = inner[inner.metric == "twonn_dimension"]
    np.testing.assert_allclose(twonn.value, twonn.seed + twonn.step / 1000 + twonn.layer / 10)
    # the segment table's task columns: one per metric, named task/{task}/{metric}/{column}
    for name in TASK_VALUES:
        for column in ("change", "change_ci_low", "change_ci_high", "trend"):
            assert f"task/{name}/{column}" in traj.segments.columns, (name, column)
    assert set(traj.correlations.metric) == set(TASK_VALUES)
    assert set(traj.frame().columns) >= set(TASK_VALUES)


def test_trajectory_without_task_or_internal_metrics_has_empty_tables(tmp_path):
    tokens, alignment = _three_phase_case(seed=13, n_seeds=2)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.attrs.update(stage="aggregate", model_id="m", simulated=True)
        f["seeds"], f["steps"], f["tokens"] = np.arange(2), PYTHIA_STEPS, tokens
        f["brain/alignment_heldout_layer"] = alignment
    phases(tmp_path / "m.h5", tmp_path / "t.h5", n_bootstrap=0)
    traj = load_trajectory(tmp_path / "t.h5")
    assert traj.tasks.empty and traj.internal.empty and not traj.metrics and not traj.internal_metrics
    assert list(traj.tasks.columns)[-1] == "value" and len(traj.internal_layers) == 0


def test_summary_names_the_task_metrics_improving_in_each_phase(tmp_path):
    """Planted: every task metric rises with the step in every seed, so the higher-is-better ones
    improve in every phase and the lower-is-better brier does not."""
    from brainphase.phases.cli import summary_text
    from tests.test_aggregate import _task_and_internal_grid

    scores, tasks, _ = _task_and_internal_grid(tmp_path, (1, 2), (0, 1, 2, 4, 8, 16), n_layers=2)
    aggregate(scores, tasks, tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    phases(tmp_path / "m.h5", tmp_path / "t.h5", n_bootstrap=5)
    text = summary_text(tmp_path / "t.h5")
    lines = [line for line in text.splitlines() if "tasks improving" in line]
    assert lines and len(lines) == len(load_trajectory(tmp_path / "t.h5").segments)
    for line in lines:
        assert "induction/acc, blimp_agreement/acc" in line or "blimp_agreement/acc, induction/acc" in line
        assert "(+1 continuous metric(s) of 4 in all)" in line  # induction/logprob; brier rises = worsens
