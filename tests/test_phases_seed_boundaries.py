"""Per-seed phase boundaries, their spread around the pooled boundaries, and the model size in
trajectory.h5 (brainphase.phases.seed_boundaries, brainphase.phases.model_size).

Ground truth: planted seeds whose alignment bends at known, different checkpoints (noise far
below the bends, so each seed's own segmentation finds its knot exactly); the spread must equal
numpy's statistics of the planted knots. The size comes from a safetensors file written here.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from brainphase import cli
from brainphase.phases.model_size import folder_size, model_size
from brainphase.phases.read import load_trajectory
from brainphase.phases.seed_boundaries import boundary_spread, seed_boundaries
from brainphase.phases.segment import log_token_axis

#: step 0, then 8 checkpoints per decade from 1e4 to 1e9 tokens
TOKENS = np.concatenate([[0], np.round(10 ** np.arange(4.0, 9.001, 0.125))]).astype(np.int64)
X = log_token_axis(TOKENS)


def _curve(knots, slopes):
    """Continuous piecewise-linear in X with the given knots and slopes per decade."""
    y = 0.05 + slopes[0] * (X - X[0])
    for knot, before, after in zip(knots, slopes[:-1], slopes[1:]):
        y = y + (after - before) * np.clip(X - knot, 0, None)
    return y


def _run_table(tmp_path, seed_knots, slopes, max_segments):
    """`brainphase phases --table` on planted seeds; returns the trajectory."""
    rng = np.random.default_rng(0)
    rows = []
    for s, knots in enumerate(seed_knots):
        y = _curve(knots, slopes) + rng.normal(0, 1e-5, len(X))
        rows += [{"seed": s + 1, "step": j, "tokens": int(t), "alignment": y[j]} for j, t in enumerate(TOKENS)]
    pd.DataFrame(rows).to_csv(tmp_path / "curve.csv", index=False)
    out = tmp_path / "trajectory.h5"
    assert cli.main(["phases", "--table", str(tmp_path / "curve.csv"), "--out", str(out), "--n-bootstrap", "0",
                     "--max-segments", str(max_segments)]) == 0
    return load_trajectory(out), out


def test_one_boundary_spread_equals_the_planted_spread(tmp_path):
    planted = X[[17, 19, 20, 23, 26]]  # knots on checkpoints, 0.25 to 1.1 decades apart
    traj, out = _run_table(tmp_path, [[k] for k in planted], [0.05, -0.05], max_segments=2)
    assert len(traj.boundaries) == 1 and len(traj.seed_boundaries) == 5
    table = traj.seed_boundaries.sort_values("seed")
    np.testing.assert_allclose(table["log10_tokens"], planted, atol=1e-3)  # each seed's own knot, found
    np.testing.assert_allclose(table["tokens"], 10 ** table["log10_tokens"])
    assert list(table["step"]) == [17, 19, 20, 23, 26] and (table["pooled_boundary"] == 0).all()
    assert list(table["from_phase"]) == ["alignment"] * 5 and list(table["to_phase"]) == ["detachment"] * 5
    row = traj.boundary_spread.iloc[0]
    assert row["n_seeds"] == 5 and (row["from_phase"], row["to_phase"]) == ("alignment", "detachment")
    tokens = 10 ** planted  # the planted spread, to the knots' estimation error (< 1e-3 decades)
    assert row["tokens_min"] == pytest.approx(tokens.min(), rel=3e-3) and row["tokens_max"] == pytest.approx(tokens.max(), rel=3e-3)
    assert row["tokens_median"] == pytest.approx(np.median(tokens), rel=3e-3)
    assert row["tokens_std"] == pytest.approx(np.std(tokens, ddof=1), rel=3e-3)
    assert row["log10_tokens_std"] == pytest.approx(np.std(planted, ddof=1), abs=1e-3)
    assert row["log10_tokens"] == pytest.approx(traj.boundaries["log10_tokens"].iloc[0])
    with h5py.File(out) as f:  # stored, not only derived by the reader
        assert {"seed_boundaries/pooled_boundary", "boundary_spread/tokens_std"} <= set(
            name for group in ("seed_boundaries", "boundary_spread") for name in
            [f"{group}/{column}" for column in f["phases"][group]])
        assert "model" not in f  # a table says nothing about the model's size


def test_two_boundaries_each_seed_matched_to_its_own(tmp_path):
    first, second = X[[12, 14, 16]], X[[28, 30, 31]]
    traj, _ = _run_table(tmp_path, list(zip(first, second)), [0.06, -0.06, 0.06], max_segments=3)
    assert len(traj.boundaries) == 2
    spread = traj.boundary_spread.set_index("pooled_boundary")
    for k, planted in enumerate((first, second)):
        assert spread.loc[k, "n_seeds"] == 3
        assert spread.loc[k, "log10_tokens_min"] == pytest.approx(planted.min(), abs=1e-3)
        assert spread.loc[k, "log10_tokens_median"] == pytest.approx(np.median(planted), abs=1e-3)
        assert spread.loc[k, "log10_tokens_max"] == pytest.approx(planted.max(), abs=1e-3)
    assert list(spread["to_phase"]) == ["detachment", "realignment"]


def test_matching_rule_nearest_pooled_and_one_per_seed():
    """Seed 1 has two boundaries nearest pooled boundary 0 (only the nearer counts); seed 2 none near 1."""
    segments = pd.DataFrame({"seed": [1, 1, 1, 1, 2, 2], "phase": ["a", "b", "c", "d", "a", "b"],
                             "end_log10_tokens": [5.9, 6.3, 8.1, 9.0, 6.6, 9.0],
                             "end_tokens": 10 ** np.array([5.9, 6.3, 8.1, 9.0, 6.6, 9.0]),
                             "end_step": [1, 2, 3, 4, 5, 6]})
    pooled = pd.DataFrame({"log10_tokens": [6.2, 8.0], "tokens": [10 ** 6.2, 1e8]})
    matched = seed_boundaries(segments, pooled)
    assert list(matched["seed"]) == [1, 1, 1, 2] and list(matched["boundary"]) == [0, 1, 2, 0]
    assert list(matched["pooled_boundary"]) == [-1, 0, 1, 0]  # 6.3 is nearer 6.2 than 5.9; 6.6 -> 6.2
    assert list(matched["to_phase"]) == ["b", "c", "d", "b"]
    spread = boundary_spread(matched, pooled, pd.DataFrame({"phase": ["a", "b", "c"]}))
    assert list(spread["n_seeds"]) == [2, 1] and np.isnan(spread.loc[1, "tokens_std"])
    assert spread.loc[0, "log10_tokens_median"] == pytest.approx(6.45)
    assert seed_boundaries(segments, pooled.iloc[:0])["pooled_boundary"].eq(-1).all()
    assert len(boundary_spread(seed_boundaries(pd.DataFrame(), pooled.iloc[:0]), pooled.iloc[:0], pd.DataFrame())) == 0


def _checkpoint(folder):
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file({"embed": np.zeros((10, 4), np.float32), "head": np.zeros((4, 10), np.float32)},
              str(folder / "model-00001-of-00002.safetensors"))
    save_file({"bias": np.zeros(7, np.float32)}, str(folder / "model-00002-of-00002.safetensors"))
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 3, "hidden_size": 4, "n_layer": 9}))


def test_model_size_from_the_checkpoint_the_scores_name(tmp_path):
    _checkpoint(tmp_path / "ckpt" / "step8")
    assert folder_size(tmp_path / "ckpt" / "step8") == {"n_parameters": 87, "n_layers": 3, "hidden_size": 4}
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.attrs["config_json"] = json.dumps({"checkpoint": str(tmp_path / "ckpt"), "checkpoint_revision": "step8"})
        assert model_size(f) == {"checkpoint": str(tmp_path / "ckpt"), "checkpoint_revision": "step8",
                                 "n_parameters": 87, "n_layers": 3, "hidden_size": 4}
        f.attrs["config_json"] = json.dumps({"checkpoint": str(tmp_path / "missing")})
        assert model_size(f) == {"checkpoint": str(tmp_path / "missing"), "checkpoint_revision": ""}  # never guessed
        f.attrs["config_json"] = json.dumps({})
        assert model_size(f) == {}


def test_aggregate_records_the_model_and_phases_carries_it(tmp_path):
    from brainphase.phases.aggregate import aggregate
    from brainphase.phases.cli import phases
    from test_aggregate import LABELS, LAYERS, SUBJECTS, write_responses, write_scores

    _checkpoint(tmp_path / "ckpt" / "step3")
    rng = np.random.default_rng(3)
    scores = []
    for seed in (1, 2):
        for step in range(4):
            scores.append(tmp_path / f"s{seed}_{step}.h5")
            write_scores(scores[-1], seed, step, step * 1000, 0.1 + rng.normal(0, 0.01, (len(LAYERS), len(SUBJECTS), len(LABELS))))
            with h5py.File(scores[-1], "a") as f:  # as the encode rule writes it: the checkpoint of this step
                f.attrs["config_json"] = json.dumps({"checkpoint": str(tmp_path / "ckpt"), "checkpoint_revision": f"step{step}"})
    write_responses(tmp_path / "responses.h5")
    aggregate(scores, [], tmp_path / "m.h5", responses_path=tmp_path / "responses.h5")
    phases(tmp_path / "m.h5", tmp_path / "t.h5", n_bootstrap=0)
    size = load_trajectory(tmp_path / "t.h5").model_size
    assert size["n_parameters"] == 87 and size["n_layers"] == 3 and size["checkpoint_revision"] == "step3"
