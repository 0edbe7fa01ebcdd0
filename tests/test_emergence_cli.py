"""`brainphase emergence` on planted trajectory.h5 files: seeds that switch at known checkpoints,
metrics that cross their thresholds at planted tokens and validation losses, two sizes that
collapse onto one curve in loss, planted per-seed phase boundaries, and a metric that tracks
alignment exactly. Every expectation comes from the planted numbers or an independent reference
(scipy's exact binomial interval, scipy's Wasserstein distance)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import stats

from brainphase import cli
from brainphase.emergence.read import load_emergence
from brainphase.emergence.sharpness import SHARP_ONLY_DISCONTINUOUS

#: checkpoints: step 0, then one per half decade from 1e5 to 1e9 tokens
TOKENS = np.concatenate([[0], np.round(10 ** np.arange(5.0, 9.01, 0.5))]).astype(np.int64)
X = np.concatenate([[4.5], np.arange(5.0, 9.01, 0.5)])  # log10 tokens, step 0 one spacing before 1e5
N_SEEDS = 20
#: seed s switches (discontinuous metric 0.1 -> 0.9) at checkpoint 4 + s % 4
SWITCH = 4 + np.arange(N_SEEDS) % 4
#: the continuous metric of seed s crosses 0 at log10 tokens CROSS_X[s] (small model)
CROSS_X = 6.1 + 0.05 * np.arange(N_SEEDS)


def _strings(values):
    return np.array(list(values), dtype=h5py.string_dtype())


def write_trajectory(path, *, model_id: str, loss: np.ndarray, tasks: dict, alignment: np.ndarray,
                     knots: dict | None = None, internal: np.ndarray | None = None, seeds=None, size=None):
    """A trajectory.h5 with what ``load_trajectory`` reads.

    ``tasks``: ``"{task}/{metric}" -> (values (S, T), kind, higher_is_better)``; the loss is task
    heldout_text metric loss. ``knots``: seed -> list of (log10 tokens, step) of its phase boundaries
    (``/phases/seed_boundaries`` is left to ``load_trajectory`` to derive, as for an older file).
    ``size``: attrs of ``/model``.
    """
    n_seeds, n_steps = alignment.shape
    seeds = np.arange(1, n_seeds + 1) if seeds is None else np.asarray(seeds)
    tasks = {"heldout_text/loss": (loss, "continuous", False), **tasks}
    with h5py.File(path, "w") as f:
        f.attrs.update(stage="phases", simulated=True, model_id=model_id)
        f["seeds"], f["steps"], f["tokens"] = seeds, np.arange(n_steps) * 10, TOKENS[:n_steps]
        f["brain/alignment"] = alignment
        f["brain/alignment"].attrs["measure"] = "heldout_layer"
        if size is not None:
            f.create_group("model").attrs.update(size)
        for name, (values, kind, higher) in tasks.items():
            f.require_group(f"metrics/{name.split('/')[0]}").attrs["family"] = "planted"
            f[f"metrics/{name}"] = values
            f[f"metrics/{name}"].attrs.update(kind=kind, higher_is_better=higher)
        if internal is not None:  # (S, T, L)
            f["internal/cka_final"] = internal
            f["internal"].attrs["layers"] = np.arange(internal.shape[2])
        g = f.create_group("phases")
        g.attrs["status"] = "labelled"
        for name in ("x", "curve", "fitted"):
            g[name] = X[:n_steps]
        g["labels"] = np.zeros(n_steps, np.int8)
        g["label_names"] = _strings(["alignment", "detachment", "realignment"])
        segments, boundaries = g.create_group("segments"), g.create_group("boundaries")
        if knots:  # pooled boundaries: the median over seeds of each seed's k-th knot
            pooled = np.median([[knot for knot, _ in seed_knots] for seed_knots in knots.values()], axis=0)
            segments["phase"] = _strings(["alignment", "detachment", "realignment"][:len(pooled) + 1])
            boundaries["log10_tokens"], boundaries["tokens"] = pooled, 10.0 ** pooled
        rows = []
        for seed, seed_knots in (knots or {}).items():
            edges = [(X[0], 0)] + list(seed_knots) + [(X[n_steps - 1], int(f["steps"][-1]))]
            names = ["alignment", "detachment", "realignment"][:len(edges) - 1]
            rows += [(seed, names[k], edges[k + 1][0], edges[k + 1][1]) for k in range(len(edges) - 1)]
        s = g.create_group("seed_segments")
        s["seed"] = np.array([r[0] for r in rows], dtype=np.int64)
        s["phase"] = _strings(r[1] for r in rows)
        s["end_log10_tokens"] = np.array([r[2] for r in rows], dtype=float)
        s["end_tokens"] = 10.0 ** s["end_log10_tokens"][()]
        s["end_step"] = np.array([r[3] for r in rows], dtype=np.int64)
        g["seed_labels"] = np.zeros((n_seeds, n_steps), np.int8)
        g["seed_agreement"] = np.ones(n_seeds)
        g.create_group("phase_probability")
        c = f.create_group("correlations")
        c["metric_names"] = _strings([])
        for column in ("pearson_r", "pearson_p", "spearman_rho", "spearman_p"):
            c[column] = np.zeros(0)
    return path


def planted_small(path, rng):
    """20 seeds; loss = 11 - x; switch metric; `cont/value` = x - CROSS_X[s] = 5 - loss - ... ."""
    t = np.arange(len(TOKENS))
    switch = np.where(t[None, :] >= SWITCH[:, None], 0.9, 0.1) + rng.normal(0, 0.005, (N_SEEDS, len(TOKENS)))
    loss = np.broadcast_to(11.0 - X, (N_SEEDS, len(X))).copy()
    continuous = X[None, :] - CROSS_X[:, None]
    step_function = np.where(X[None, :] >= 7.2, 1.0, 0.0) * np.ones((N_SEEDS, 1))  # all seeds jump at 10^7.2
    smooth = 1 / (1 + np.exp(-(X[None, :] - 7.0) / 1.0)) * np.ones((N_SEEDS, 1))  # over ~4 decades
    alignment = 0.01 * X[None, :] + rng.normal(0, 1e-4, (N_SEEDS, len(X)))
    collapse = 8.0 - loss  # crosses 2.5 at loss 5.5
    internal = rng.normal(0, 1, (N_SEEDS, len(X), 2))
    tasks = {"switch/acc": (switch, "discontinuous", True), "cont/value": (continuous, "continuous", True),
             "jump/acc": (step_function, "discontinuous", True), "jump/prob": (smooth, "continuous", True),
             "collapse/value": (collapse, "continuous", True),
             "tracks/value": (3 * alignment + 1, "continuous", True)}
    knots = {seed: [(6.0 + 0.1 * seed, 20), (8.0, 70)] for seed in range(1, 4)}
    return write_trajectory(path, model_id="small", loss=loss, tasks=tasks, alignment=alignment, knots=knots,
                            internal=internal, size={"checkpoint": "models/small", "n_parameters": 1000, "n_layers": 2})


def planted_large(path, rng):
    """4 seeds; loss = 13 - 1.5 x, so `collapse/value` = 8 - loss crosses 2.5 at loss 5.5 = x 5."""
    n = 4
    loss = np.broadcast_to(13.0 - 1.5 * X, (n, len(X))).copy()
    alignment = 0.02 * X[None, :] + rng.normal(0, 1e-4, (n, len(X)))
    tasks = {"collapse/value": (8.0 - loss, "continuous", True),
             "cont/value": (X[None, :] - np.median(CROSS_X) * np.ones((n, 1)), "continuous", True)}
    return write_trajectory(path, model_id="large", loss=loss, tasks=tasks, alignment=alignment)


@pytest.fixture(scope="module")
def emergence(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emergence")
    rng = np.random.default_rng(0)
    small, large = planted_small(folder / "small.h5", rng), planted_large(folder / "large.h5", rng)
    out = folder / "emergence.h5"
    code = cli.main(["emergence", "--trajectories", str(small), str(large), "--out", str(out), "--n-bootstrap", "500",
                     "--thresholds", "switch/acc=0.5", "cont/value=0", "collapse/value=2.5"])
    assert code == 0
    return load_emergence(out), out


def test_success_probability_is_the_planted_share_inside_the_exact_interval(emergence):
    result = emergence[0].results["small"].metrics["switch/acc"]
    planted = (np.arange(len(TOKENS))[None, :] >= SWITCH[:, None]).mean(axis=0)
    np.testing.assert_allclose(result.success_probability, planted)
    for t, share in enumerate(planted):
        ci = stats.binomtest(int(round(share * N_SEEDS)), N_SEEDS).proportion_ci(0.95, method="exact")
        assert result.success_ci_low[t] == pytest.approx(ci.low, abs=1e-9)
        assert result.success_ci_high[t] == pytest.approx(ci.high, abs=1e-9)
        assert ci.low <= share <= ci.high
    assert result.threshold == 0.5 and result.threshold_source == "config"


def test_bimodal_only_where_seeds_are_split(emergence):
    bimodal = emergence[0].results["small"].metrics["switch/acc"].bimodal
    share = (np.arange(len(TOKENS))[None, :] >= SWITCH[:, None]).mean(axis=0)
    assert bimodal[share == 0.5].all()  # 10 seeds at 0.1, 10 at 0.9
    assert not bimodal[(share == 0) | (share == 1)].any()


def test_w1_between_checkpoints_equals_scipy(emergence):
    result = emergence[0].results["small"].metrics["switch/acc"]
    expected = [stats.wasserstein_distance(result.values[:, t], result.values[:, t + 1])
                for t in range(len(TOKENS) - 1)]
    np.testing.assert_allclose(result.w1_steps, expected, atol=1e-12)


def test_crossings_at_planted_tokens_and_loss(emergence):
    small = emergence[0].results["small"].metrics["cont/value"]
    np.testing.assert_allclose(np.log10(small.crossing_tokens), CROSS_X, atol=1e-9)
    np.testing.assert_allclose(small.crossing_loss, 11.0 - CROSS_X, atol=1e-9)
    never = emergence[0].results["small"].metrics["switch/acc"].crossing_tokens
    assert np.isfinite(never).all()  # every seed switches within training


def test_sizes_collapse_in_loss_only_where_planted(emergence):
    result = emergence[0]
    collapse, same_tokens = result.sizes["collapse/value"], result.sizes["cont/value"]
    np.testing.assert_allclose(collapse["median_crossing_loss"], [5.5, 5.5], atol=1e-9)
    np.testing.assert_allclose(np.log10(collapse["median_crossing_tokens"]), [5.5, 5.0], atol=1e-9)
    assert collapse["collapse_in_loss"] and collapse["crossing_loss_spread"] == pytest.approx(0, abs=1e-9)
    assert collapse["crossing_tokens_spread_log10"] == pytest.approx(0.5)
    assert not same_tokens["collapse_in_loss"]  # same median tokens in both models, different loss
    assert same_tokens["crossing_tokens_spread_log10"] == pytest.approx(0, abs=1e-3)  # medians of 20 vs 4 seeds in tokens
    small, large = (result.results[m].metrics["collapse/value"].values[:, -1] for m in ("small", "large"))
    assert same_tokens["w1_final"].shape == (2, 2)
    assert collapse["w1_final"][0, 1] == pytest.approx(stats.wasserstein_distance(small, large))


def test_mirage_verdict_and_default_threshold(emergence):
    small = emergence[0].results["small"]
    row = small.mirage["jump"]
    assert row["verdict"] == SHARP_ONLY_DISCONTINUOUS
    assert row["sharpness_discontinuous"] == pytest.approx(1.0) and row["sharpness_continuous"] < 0.5
    alignment = small.metrics["alignment"]
    pooled = [np.r_[small.metrics["alignment"].values[:, i], emergence[0].results["large"].metrics["alignment"].values[:, i]].mean()
              for i in (0, -1)]
    assert alignment.threshold == pytest.approx(sum(pooled) / 2)
    assert alignment.threshold_source.startswith("default")


def test_phase_boundaries_per_seed_with_loss(emergence):
    table = emergence[0].results["small"].phase_boundaries
    assert len(table) == 6 and list(table["boundary"][:2]) == [0, 1]
    first = table[table["boundary"] == 0].sort_values("seed")
    np.testing.assert_allclose(first["log10_tokens"], [6.1, 6.2, 6.3])
    np.testing.assert_allclose(first["loss"], 11.0 - np.array([6.1, 6.2, 6.3]))
    assert list(first["to_phase"]) == ["detachment"] * 3 and list(first["pooled_boundary"]) == [0] * 3
    spread = emergence[0].results["small"].phase_boundary_spread.set_index("to_phase")
    assert spread.loc["detachment", "log10_tokens_median"] == pytest.approx(6.2)
    assert spread.loc["detachment", "n_seeds"] == 3
    assert spread.loc["detachment", "loss_min"] == pytest.approx(11.0 - 6.3)
    assert spread.loc["detachment", "loss_max"] == pytest.approx(11.0 - 6.1)
    assert spread.loc["detachment", "loss_std"] == pytest.approx(np.std([6.1, 6.2, 6.3], ddof=1))
    assert spread.loc["realignment", "tokens_std"] == pytest.approx(0.0, abs=1e-6)
    assert emergence[0].results["large"].phase_boundaries.empty


def test_tracking_ranks_the_exact_tracker_first(emergence):
    table = emergence[0].tracking
    small = table[table["model"] == "small"].reset_index(drop=True)
    assert small.loc[0, "metric"] in ("tracks/value", "cont/value", "collapse/value")  # all monotone in x
    tracker = small.set_index("metric").loc["tracks/value"]
    assert tracker["spearman_mean"] == pytest.approx(1.0) and tracker["n_seeds"] == N_SEEDS
    noise = small.set_index("metric").loc["internal/cka_final/layer0"]
    assert abs(noise["spearman_mean"]) < 0.3 and noise["ci_low"] < 0 < noise["ci_high"]
    assert {"internal/cka_final", "internal/cka_final/layer1"} <= set(small["metric"])
    assert (np.diff(small["spearman_mean"].abs().to_numpy()) <= 1e-12).all()


def test_root_attrs_and_loss_axis(emergence):
    result, path = emergence
    assert result.names == ["small", "large"] and result.simulated
    assert result.loss_metric == "heldout_text/loss" and result.attrs["stage"] == "emergence"
    np.testing.assert_allclose(result.results["large"].loss[0], 13.0 - 1.5 * X)
    assert result.results["small"].n_parameters == 1000 and result.results["large"].n_parameters is None


def test_labels_replace_model_names_and_bad_inputs_exit_2(emergence, tmp_path, capsys):
    _, path = emergence
    source = path.parent / "small.h5"
    out = tmp_path / "labelled.h5"
    assert cli.main(["emergence", "--trajectories", str(source), "--labels", "eps=0.25", "--out", str(out)]) == 0
    labelled = load_emergence(out)
    assert labelled.names == ["eps=0.25"] and not labelled.sizes
    bad = [["--trajectories", str(source), str(source), "--out", str(out)],  # same model twice
           ["--trajectories", str(source), "--labels", "a", "b", "--out", str(out)],  # label count
           ["--trajectories", str(source), "--labels", "a/b", "--out", str(out)],
           ["--trajectories", str(source), "--thresholds", "nosuch/metric=1", "--out", str(out)],
           ["--trajectories", str(source), "--thresholds", "switch/acc", "--out", str(out)],
           ["--trajectories", str(tmp_path / "missing.h5"), "--out", str(out)]]
    for args in bad:
        assert cli.main(["emergence", *args]) == 2
    assert "--labels" in capsys.readouterr().err


def test_model_size_read_from_the_trajectory(tmp_path):
    from brainphase.emergence.series import load_series

    rng = np.random.default_rng(1)
    loss = np.ones((2, len(TOKENS)))
    write_trajectory(tmp_path / "a.h5", model_id="a", loss=loss, tasks={}, alignment=rng.normal(0, 1, (2, len(TOKENS))))
    assert load_series(tmp_path / "a.h5").size == {}  # an older trajectory: no /model, nothing guessed
    write_trajectory(tmp_path / "b.h5", model_id="b", loss=loss, tasks={}, alignment=rng.normal(0, 1, (2, len(TOKENS))),
                     size={"checkpoint": "models/b", "n_parameters": 17, "hidden_size": 4})
    assert load_series(tmp_path / "b.h5").size == {"n_parameters": 17, "hidden_size": 4}


def test_emergence_and_latent_intent_configs_validate_with_their_seeds():
    from pathlib import Path

    import yaml

    from brainphase.config import check_config
    from snakemake.utils import update_config

    config_dir = Path(__file__).resolve().parent.parent / "config"
    emergence = check_config(yaml.safe_load((config_dir / "emergence.yaml").read_text()), ["emergence.yaml"])
    seeds = sorted((len(m["seeds"]) for m in emergence["models"].values()), reverse=True)
    assert seeds[0] >= 5 and len(seeds) >= 3 and seeds[2] >= 3  # >= 5 seeds of one size, >= 3 of two more
    epsilons = set()
    for overlay in [None, *sorted((config_dir / "latent_intent").glob("eps*.yaml"))]:
        config = yaml.safe_load((config_dir / "latent_intent.yaml").read_text())
        if overlay is not None:
            update_config(config, yaml.safe_load(overlay.read_text()))
        config = check_config(config, ["latent_intent.yaml", str(overlay)])
        assert config["corpus"]["source"] == "latent-intent"
        assert config["tasks"]["suite"] == [f"{config['results']}/corpus/tasks"]  # the run's own task folder
        assert all(len(m["seeds"]) >= 3 for m in config["models"].values())
        epsilons.add(config["corpus"]["latent_epsilon"])
    assert len(epsilons) >= 3


def test_a_metric_without_values_gets_nan_statistics(tmp_path):
    rng = np.random.default_rng(2)
    path = planted_small(tmp_path / "small.h5", rng)
    with h5py.File(path, "a") as f:
        f["metrics/cont/value"][...] = np.nan
        f["metrics/jump/acc"][...] = 0.0  # constant: no threshold, and with jump/prob flat no rise at all
        f["metrics/jump/prob"][...] = 0.5
    out = tmp_path / "e.h5"
    assert cli.main(["emergence", "--trajectories", str(path), "--out", str(out), "--n-bootstrap", "10"]) == 0
    data = load_emergence(out).results["small"].metrics["cont/value"]
    assert np.isnan(data.threshold) and np.isnan(data.success_probability).all()
    assert np.isnan(data.crossing_tokens).all() and np.isnan(data.sharpness)
    small = load_emergence(out).results["small"]
    constant = small.metrics["jump/acc"]
    assert np.isnan(constant.threshold) and constant.threshold_source.startswith("default: none")
    assert np.isnan(constant.success_probability).all()
    assert small.mirage["jump"]["verdict"] == "no rise in either metric"
