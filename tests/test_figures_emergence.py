"""Emergence figures (brainphase.figures.emergence) drawn from a planted emergence.h5."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from brainphase import cli
from brainphase.figures.data import token_positions
from brainphase.figures.emergence import (EMERGENCE_FIGURES, PLOTS, chosen_metrics, latent_metrics,
                                          make_emergence_figures)
from brainphase.emergence.read import load_emergence

TOKENS = np.array([0, 10**5, 10**6, 10**7, 10**8, 10**9])
#: (name, kind, family, threshold) of the planted metrics
METRICS = (("alignment", "brain", "brain", 0.05), ("arith/exact_match", "discontinuous", "formal", 0.5),
           ("arith/logprob", "continuous", "formal", -2.0), ("latent_intent/acc", "discontinuous", "latent_intent", 0.6),
           ("latent_intent/prob_mass", "continuous", "latent_intent", 0.5), ("copy/acc", "discontinuous", "formal", 0.5),
           ("heldout_text/loss", "continuous", "next_token", 3.0))
#: the quantile levels emergence.h5 stores
LEVELS = [0.05, 0.25, 0.5, 0.75, 0.95]
VERDICT = "sharp only in the discontinuous metric (likely a metric artefact)"


def planted_values(name: str, n_seeds: int, size: int) -> np.ndarray:
    """(S, T) values: seeds switch from low to high at planted checkpoints (discontinuous) or
    rise smoothly; a larger ``size`` switches earlier."""
    t = np.arange(len(TOKENS))
    switch = (np.arange(n_seeds) % 3) + 3 - size  # seed s switches at checkpoint 3 - size + s % 3
    if name == "alignment":
        return 0.01 * t[None, :] + 0.001 * np.arange(n_seeds)[:, None]
    if name.endswith(("exact_match", "acc")):
        return (t[None, :] >= switch[:, None]).astype(float)
    return (t[None, :] / len(t) - 1.0 + 0.01 * np.arange(n_seeds)[:, None]) * (3.0 if name.endswith("logprob") else -0.5)


def write_emergence(path: Path, models=(("small", 5, 0), ("large", 3, 1)), loss: bool = True, latent: bool = True,
                    mirage: bool = True, tokens: np.ndarray = TOKENS) -> Path:
    """emergence.h5 in the layout of docs/hdf5_layout.md (what `brainphase emergence` writes).
    Statistics are computed here from the planted values (success, quantiles, W1 with scipy);
    the CI is success ± 0.1, the bimodal flag is planted at the middle checkpoint of each model,
    crossing losses at 4 - size - 0.1 * seed."""
    metrics = [m for m in METRICS if latent or not m[0].startswith("latent_intent")]
    with h5py.File(path, "w") as f:
        f.attrs["stage"] = "emergence"
        f.attrs["models"] = np.array([name for name, _, _ in models], dtype=h5py.string_dtype())
        f.create_group("tracking")["model"] = np.array([], dtype=h5py.string_dtype())
        f.attrs["simulated"] = True
        f.attrs["loss_metric"] = "heldout_text/loss" if loss else ""
        n_steps = len(tokens)
        for name, n_seeds, size in models:
            g = f.create_group(f"models/{name}")
            g.attrs["n_parameters"] = 10**6 * (size + 1)
            g["seeds"], g["steps"], g["tokens"] = np.arange(n_seeds), tokens // 1000, tokens
            g.create_group("phase_boundaries")["seed"] = np.zeros(0, dtype=np.int64)
            g.create_group("phase_boundary_spread")["boundary"] = np.zeros(0, dtype=np.int64)
            g.create_group("mirage")
            curve = 5.0 - np.arange(n_steps) * (0.5 + 0.2 * size)
            g["loss"] = curve[None, :] + 0.01 * np.arange(n_seeds)[:, None] if loss else np.full((n_seeds, n_steps), np.nan)
            for metric, kind, family, threshold in metrics:
                values = planted_values(metric, n_seeds, size)[:, :n_steps]
                m = g.create_group(f"metrics/{metric}")
                m.attrs.update(kind=kind, family=family, threshold=threshold, higher_is_better=True,
                               threshold_source="config", sharpness=0.9)
                success = (values >= threshold).mean(axis=0)
                m["values"], m["mean"] = values, values.mean(axis=0)
                m["quantiles"] = np.quantile(values, LEVELS, axis=0)
                m["quantiles"].attrs["levels"] = LEVELS
                m["success_probability"] = success
                m["success_ci_low"], m["success_ci_high"] = np.clip(success - 0.1, 0, 1), np.clip(success + 0.1, 0, 1)
                m["bimodal"] = np.arange(n_steps) == n_steps // 2
                m["w1_steps"] = [wasserstein_distance(values[:, t], values[:, t + 1]) for t in range(n_steps - 1)]
                m["crossing_loss"] = 4.0 - 0.1 * np.arange(n_seeds) - size if loss else np.full(n_seeds, np.nan)
                m["crossing_tokens"] = np.full(n_seeds, 1e7)
            for task in ("arith", "latent_intent") if mirage else ():
                if task == "latent_intent" and not latent:
                    continue
                disc, cont = [m[0] for m in metrics if m[0].startswith(f"{task}/")]
                c = g.create_group(f"mirage/{task}")
                c.attrs.update(discontinuous_metric=disc, continuous_metric=cont, sharpness_discontinuous=0.91,
                               sharpness_continuous=0.12 + 0.1 * size, verdict=VERDICT)
        if len(models) > 1:
            sizes = f.create_group("sizes/alignment")
            sizes.attrs.update(collapse_in_loss=True, crossing_loss_spread=0.1, crossing_tokens_spread_log10=1.0)
            final = [planted_values("alignment", n_seeds, size)[:, n_steps - 1] for _, n_seeds, size in models]
            sizes["w1_final"] = [[wasserstein_distance(a, b) for b in final] for a in final]
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = write_emergence(tmp_path_factory.mktemp("emergence") / "emergence.h5")
    return path, load_emergence(path)


def _gids(figure):
    return {a.get_gid(): a for a in figure.findobj(lambda a: a.get_gid() is not None)}


def _texts(figure):
    return " ".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))


def test_cli_writes_every_figure(planted, tmp_path):
    path, _ = planted
    assert cli.main(["emergence-figures", "--emergence", str(path), "--out-dir", str(tmp_path / "figs"),
                     "--formats", "png"]) == 0
    for name in EMERGENCE_FIGURES:
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000, name
    assert not list((tmp_path / "figs").glob("*.pdf"))


def test_chosen_metrics_alignment_then_one_discontinuous_per_family_then_other_tasks(planted):
    """formal has arith and copy, latent_intent one task; heldout_text/loss is the loss axis."""
    _, data = planted
    assert chosen_metrics(data) == ["alignment", "arith/exact_match", "latent_intent/acc", "copy/acc"]
    assert chosen_metrics(data, limit=2) == ["alignment", "arith/exact_match"]
    assert latent_metrics(data) == ["latent_intent/acc", "latent_intent/prob_mass"]


def test_seed_distributions_draw_every_seed_value_and_the_planted_bimodal_checkpoint(planted):
    path, data = planted
    artists = _gids(PLOTS["seed_distributions"](data))
    x = token_positions(TOKENS)
    with h5py.File(path) as f:
        for model in ("small", "large"):
            values = f[f"models/{model}/metrics/arith/exact_match/values"][()]
            offsets = artists[f"arith/exact_match-{model}-seeds"].get_offsets()
            np.testing.assert_allclose(offsets[:, 1], values.ravel())
            np.testing.assert_allclose(offsets[:, 0], np.broadcast_to(x, values.shape).ravel())
            np.testing.assert_allclose(artists[f"arith/exact_match-{model}-bimodal"].get_xdata(), [x[len(TOKENS) // 2]])
            assert f"alignment-{model}-violin-{len(TOKENS) - 1}" in artists
    constant = write_emergence(path.parent / "constant.h5", models=(("flat", 3, 0),), latent=False)
    with h5py.File(constant, "a") as f:
        f["models/flat/metrics/arith/exact_match/values"][...] = 0.0
    artists = _gids(PLOTS["seed_distributions"](load_emergence(constant)))
    assert "arith/exact_match-flat-seeds" in artists and not any("exact_match-flat-violin" in gid for gid in artists)


def test_quantile_bands_are_the_stored_quantiles(planted):
    path, data = planted
    artists = _gids(PLOTS["seed_distributions"](data))
    x = token_positions(TOKENS)
    with h5py.File(path) as f:
        quantiles = f["models/small/metrics/alignment/quantiles"][()]
    for band, (low, high) in {"q5-95": (0, 4), "q25-75": (1, 3)}.items():
        vertices = artists[f"alignment-small-{band}"].get_paths()[0].vertices
        for t, position in enumerate(x):  # the band spans [low, high] quantile at every checkpoint
            at = vertices[np.isclose(vertices[:, 0], position), 1]
            assert at.min() == pytest.approx(quantiles[low, t]) and at.max() == pytest.approx(quantiles[high, t])
    assert not any(gid.endswith("q50-50") for gid in artists)


def test_w1_between_sizes_at_the_final_checkpoint_is_the_stored_matrix(planted, tmp_path):
    path, data = planted
    artists = _gids(PLOTS["w1"](data))
    small, large = planted_values("alignment", 5, 0)[:, -1], planted_values("alignment", 3, 1)[:, -1]
    expected = wasserstein_distance(small, large)
    assert expected > 0
    np.testing.assert_allclose(artists["alignment-w1-final"].get_array(), [[0, expected], [expected, 0]], atol=1e-12)
    assert artists["alignment-w1-final-0-1"].get_text() == f"{expected:.2g}"
    assert not any(gid.startswith("arith") and gid.endswith("w1-final") for gid in artists)  # no /sizes for it
    one = write_emergence(tmp_path / "one.h5", models=(("only", 3, 0),))
    assert not any(gid.endswith("w1-final") for gid in _gids(PLOTS["w1"](load_emergence(one))))


def test_success_probability_vs_tokens_and_loss_equals_the_file(planted):
    path, data = planted
    artists = _gids(PLOTS["success_probability"](data))
    with h5py.File(path) as f:
        group = f["models/large/metrics/latent_intent/acc"]
        loss = f["models/large/loss"][()].mean(axis=0)
        planted_success = (group["values"][()] >= 0.6).mean(axis=0)
        np.testing.assert_allclose(group["success_probability"][()], planted_success)
    tokens_line = artists["latent_intent/acc-large-success"]
    np.testing.assert_allclose(tokens_line.get_ydata(), planted_success)
    np.testing.assert_allclose(tokens_line.get_xdata(), token_positions(TOKENS))
    loss_line = artists["latent_intent/acc-large-success-loss"]
    np.testing.assert_allclose(loss_line.get_xdata(), loss)
    assert loss_line.axes.xaxis_inverted()
    band = artists["latent_intent/acc-large-ci"].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(max(planted_success.min() - 0.1, 0)) and band.max() == pytest.approx(
        min(planted_success.max() + 0.1, 1))


def test_w1_is_scipy_wasserstein_between_consecutive_checkpoints(planted):
    path, data = planted
    line = _gids(PLOTS["w1"](data))["arith/exact_match-small-w1"]
    values = planted_values("arith/exact_match", 5, 0)
    expected = [wasserstein_distance(values[:, t], values[:, t + 1]) for t in range(len(TOKENS) - 1)]
    np.testing.assert_allclose(line.get_ydata(), expected)
    assert max(expected) > 0
    np.testing.assert_allclose(line.get_xdata(), np.log10(TOKENS[1:]))


def test_abilities_vs_loss_points_crossings_and_collapse(planted):
    path, data = planted
    figure = PLOTS["abilities_vs_loss"](data)
    artists = _gids(figure)
    with h5py.File(path) as f:
        loss = f["models/small/loss"][()]
        values = f["models/small/metrics/alignment/values"][()]
        crossing = f["models/small/metrics/alignment/crossing_loss"][()]
    offsets = artists["alignment-small-seeds"].get_offsets()
    np.testing.assert_allclose(offsets, np.column_stack([loss.ravel(), values.ravel()]))
    np.testing.assert_allclose(artists["alignment-small-crossing"].get_xdata(), [np.median(crossing)] * 2)
    np.testing.assert_allclose(artists["alignment-large-mean"].get_ydata(), planted_values("alignment", 3, 1).mean(axis=0))
    assert "sizes collapse in loss" in _texts(figure)


def test_mirage_shows_both_metrics_their_sharpness_and_the_verdict(planted):
    path, _ = planted
    data = load_emergence(path)  # changed below
    figure = PLOTS["mirage"](data)
    artists = _gids(figure)
    verdicts = " ".join(artists["verdict-arith"].get_text().split())
    assert f"large: {VERDICT} (sharpness 0.91 vs 0.22)" in verdicts
    np.testing.assert_allclose(artists["arith/logprob-large-mean"].get_ydata(),
                               planted_values("arith/logprob", 3, 1).mean(axis=0))
    assert "large (2M), sharpness 0.22" in _texts(figure)
    assert "latent_intent/acc-small-seed-4" in artists
    data.models[0].mirage["arith"]["sharpness_continuous"] = np.nan  # a curve that never rises
    assert "small: " + VERDICT + " (sharpness 0.91 vs n/a)" in " ".join(
        _gids(PLOTS["mirage"](data))["verdict-arith"].get_text().split())


def test_latent_intent_one_colour_per_run(planted):
    _, data = planted
    artists = _gids(PLOTS["latent_intent"](data))
    small, large = artists["latent_intent/prob_mass-small-mean"], artists["latent_intent/prob_mass-large-mean"]
    assert small.get_color() != large.get_color()
    np.testing.assert_allclose(small.get_ydata(), planted_values("latent_intent/prob_mass", 5, 0).mean(axis=0))
    assert "latent_intent/acc-large-loss" in artists


def test_one_model_without_loss_latent_task_or_mirage_draws_notes(tmp_path):
    path = write_emergence(tmp_path / "bare.h5", models=(("only", 2, 0),), loss=False, latent=False, mirage=False)
    written = make_emergence_figures(path, tmp_path / "figs", ["png"], dpi=40)
    assert sorted(p.name for p in written) == sorted(f"{name}.png" for name in EMERGENCE_FIGURES)
    data = load_emergence(path)
    assert "no-loss" in _gids(PLOTS["abilities_vs_loss"](data))
    assert "no validation loss in bare.h5" in _texts(PLOTS["success_probability"](data))
    assert "no latent_intent task in bare.h5" in _texts(PLOTS["latent_intent"](data))
    assert "no-mirage" in _gids(PLOTS["mirage"](data))


def test_one_checkpoint_has_no_w1(tmp_path):
    path = write_emergence(tmp_path / "one.h5", tokens=TOKENS[-1:])
    data = load_emergence(path)
    assert "no-w1" in _gids(PLOTS["w1"](data))
    for plot in PLOTS.values():  # every other figure draws its single checkpoint
        plot(data).canvas.draw()


def test_a_file_that_is_not_emergence_is_refused(tmp_path, capsys):
    other = tmp_path / "trajectory.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    assert cli.main(["emergence-figures", "--emergence", str(other), "--out-dir", str(tmp_path / "o")]) == 2
    assert "expected a file written by `brainphase emergence`" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    partial = write_emergence(tmp_path / "partial.h5")
    with h5py.File(partial, "a") as f:
        del f["models/large/loss"]
    assert cli.main(["emergence-figures", "--emergence", str(partial), "--out-dir", str(tmp_path / "o")]) == 2
    assert "partial.h5: missing" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_workflow_declares_every_figure_with_a_caption():
    """rules/emergence.smk EMERGENCE_FIGURES (the emergence_figures rule's outputs) = EMERGENCE_FIGURES,
    each with report/emergence_{name}.rst."""
    import ast
    import re

    repo = Path(__file__).resolve().parents[1]
    declared = re.search(r"^EMERGENCE_FIGURES = (\[.*?\])", (repo / "rules" / "emergence.smk").read_text(), re.M | re.S)
    assert declared and ast.literal_eval(declared.group(1)) == list(EMERGENCE_FIGURES)
    for name in EMERGENCE_FIGURES:
        caption = repo / "report" / f"emergence_{name}.rst"
        assert caption.is_file() and "SIMULATED" in caption.read_text(), name
