"""Internal representation metrics against known answers and independent references."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from _models import build_model, save_checkpoint, tiny_tokenizer_dir, write_stimulus  # noqa: F401
from scipy.spatial import cKDTree
from sklearn.datasets import make_swiss_roll

from brainphase.cli import main as cli_main
from brainphase.errors import InputError
from brainphase.internal.cli import METRICS, compute_internal, word_subsample
from brainphase.internal.metrics import (
    CentredLayer,
    anisotropy,
    cka_between,
    distinct_rows,
    effective_rank,
    effective_rank_from_singular_values,
    layer_metrics,
    linear_cka,
    nearest_two_distances,
    twonn_dimension,
    twonn_fit,
)
from brainphase.io import atomic_h5, string_array


def _rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((dim, dim)))[0]


# --- TwoNN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("manifold, true_dimension", [("cube", 3), ("gaussian", 5), ("swiss_roll", 2)])
def test_twonn_recovers_dimension_of_embedded_manifolds(manifold, true_dimension):
    rng = np.random.default_rng(1)
    embed = _rotation(rng, 50)[:3 if manifold != "gaussian" else 5]  # orthonormal rows: 3-D or 5-D into 50-D
    if manifold == "cube":
        points = rng.uniform(size=(2000, 3)) @ embed
    elif manifold == "gaussian":
        points = rng.standard_normal((2000, 5)) @ embed
    else:
        points = make_swiss_roll(2000, random_state=1)[0] @ embed
    dimension, n_points = twonn_dimension(points + 100.0)  # far from the origin: centring matters in float32
    assert n_points == 2000
    assert dimension == pytest.approx(true_dimension, rel=0.1)


def test_twonn_fit_on_planted_pareto_ratios():
    # for a d-dimensional Poisson process mu = r2/r1 is Pareto: F(mu) = 1 - mu^(-d)
    rng = np.random.default_rng(2)
    for d in (2.0, 7.5):
        ratios = rng.uniform(size=200_000) ** (-1.0 / d)
        assert twonn_fit(ratios) == pytest.approx(d, rel=0.01)


def test_twonn_fit_matches_formula_on_small_input():
    ratios = np.array([1.5, 1.1, 3.0, 1.2, 2.0, 1.3, 1.05, 1.8, 1.4, 5.0])
    kept = np.log(np.sort(ratios)[:9])
    y = -np.log(1 - np.arange(1, 10) / 10)
    slope = np.linalg.lstsq(kept[:, None], y, rcond=None)[0][0]
    assert twonn_fit(ratios) == pytest.approx(slope, rel=1e-12)
    with pytest.raises(ValueError, match="duplicate"):
        twonn_fit(np.array([1.5, np.inf, 2.0]))


def test_nearest_two_distances_match_kd_tree():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((1500, 40)) * np.linspace(0.1, 3, 40) + 1000.0  # large offset, uneven scales
    r1, r2 = nearest_two_distances(points)
    reference = cKDTree(points).query(points, k=3)[0]
    np.testing.assert_allclose(r1, reference[:, 1], rtol=1e-9)
    np.testing.assert_allclose(r2, reference[:, 2], rtol=1e-9)


def test_twonn_matches_scikit_dimension():
    skdim = pytest.importorskip("skdim")
    rng = np.random.default_rng(4)
    points = rng.standard_normal((800, 4)) @ rng.standard_normal((4, 30))
    ours, _ = twonn_dimension(points)
    assert ours == pytest.approx(skdim.id.TwoNN().fit(points).dimension_, rel=1e-9)


def test_twonn_merges_duplicate_points():
    rng = np.random.default_rng(5)
    points = rng.standard_normal((300, 6))
    with_duplicates = np.concatenate([points, points[:50], -0.0 * points[:1] + points[:1]])
    assert len(distinct_rows(with_duplicates)) == 300
    assert twonn_dimension(with_duplicates) == twonn_dimension(points)
    assert np.isnan(twonn_dimension(np.ones((10, 4)))[0])


def test_distinct_rows_survive_hash_collisions(monkeypatch):
    from brainphase.internal import metrics

    rng = np.random.default_rng(12)
    points = rng.integers(0, 3, size=(200, 3)).astype(float)  # many repeated rows
    expected = points[np.sort(np.unique(points, axis=0, return_index=True)[1])]
    np.testing.assert_array_equal(distinct_rows(points), expected)
    monkeypatch.setattr(metrics, "hash", lambda data: 7, raising=False)  # every row collides
    np.testing.assert_array_equal(distinct_rows(points), expected)


# --- CKA ---------------------------------------------------------------------------------------


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from n x n linear kernels (Kornblith et al. 2019, eq. 2-4), computed independently."""
    n = len(x)
    centring = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ centring @ b @ centring)

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_cka_known_answers_and_invariances():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 20)) + 5.0
    y = np.tanh(x @ rng.standard_normal((20, 30))) + 0.5 * rng.standard_normal((300, 30))
    value = linear_cka(x, y)
    assert 0.05 < value < 0.95
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert value == pytest.approx(_hsic_cka(x, y), rel=1e-10)
    transformed = 3.7 * y @ _rotation(rng, 30) + 2.0  # orthogonal transform, isotropic scale, shift
    assert linear_cka(x, transformed) == pytest.approx(value, rel=1e-10)
    assert linear_cka(x, x * np.linspace(1, 5, 20)) < 0.999  # not invariant to anisotropic scaling


def test_fast_cka_matches_float64_reference():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2000, 64)) * np.logspace(0, 2, 64) + 30.0).astype(np.float32)
    y = (x @ rng.standard_normal((64, 48)) + 10 * rng.standard_normal((2000, 48))).astype(np.float32)
    a, b = CentredLayer.from_features(x), CentredLayer.from_features(y)
    assert cka_between(a, b) == pytest.approx(linear_cka(x, y), abs=1e-5)
    assert cka_between(a, a) == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(cka_between(a, CentredLayer.from_features(np.ones((2000, 8)))))


# --- effective rank, anisotropy ----------------------------------------------------------------


def test_effective_rank_of_known_spectrum():
    rng = np.random.default_rng(8)
    n, d = 400, 12
    singular_values = np.array([10, 8, 5, 5, 3, 2, 1, 0.5, 0.1, 0, 0, 0], dtype=float)
    # left singular vectors orthogonal to the constant vector, so centring keeps the spectrum
    basis = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, d))]))[0][:, 1:]
    features = basis @ np.diag(singular_values) @ _rotation(rng, d) + 4.0
    shares = singular_values[singular_values > 0] / singular_values.sum()
    expected = np.exp(-np.sum(shares * np.log(shares)))
    assert effective_rank(features) == pytest.approx(expected, rel=1e-9)
    metrics = layer_metrics(features, CentredLayer.from_features(features))
    assert metrics["effective_rank"] == pytest.approx(expected, rel=1e-6)
    assert effective_rank_from_singular_values(np.full(7, 2.5)) == pytest.approx(7.0)


def test_anisotropy_matches_pairwise_cosines():
    rng = np.random.default_rng(9)
    features = rng.standard_normal((150, 10)) + np.linspace(0, 2, 10)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cosines = unit @ unit.T
    expected = cosines[np.triu_indices(150, k=1)].mean()
    assert anisotropy(features) == pytest.approx(expected, rel=1e-10)
    assert anisotropy(np.tile([1.0, 2.0], (5, 1))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="all zeros"):
        anisotropy(np.vstack([features[:3], np.zeros(10)]))


# --- the command -------------------------------------------------------------------------------


def _write_activations(path, layers, step, words=None):
    n_words = len(layers[0])
    words = words if words is not None else [f"w{i}" for i in range(n_words)]
    attrs = {"stage": "extract", "model_id": "toy", "revision": "", "seed": 0, "step": step, "tokens": 10 * step,
             "weights_sha256": "{}", "n_layers": len(layers)}
    with atomic_h5(path, attrs) as handle:
        group = handle.create_group("words")
        group["run"] = string_array(["r"] * n_words)
        group["word_index"] = np.arange(n_words)
        group["word"] = string_array(words)
        group["onset"] = np.arange(n_words, dtype=float)
        group["offset"] = np.arange(n_words, dtype=float) + 0.5
        for i, values in enumerate(layers):
            handle[f"layer_{i}"] = values.astype(np.float32)


@pytest.fixture
def checkpoints(tmp_path):
    """Three checkpoints of a 2-layer toy model: later steps approach the final representation."""
    rng = np.random.default_rng(10)
    final = [rng.standard_normal((120, 16)) @ rng.standard_normal((16, 16)) for _ in range(2)]
    paths = {}
    for step, noise in ((0, 3.0), (4, 1.0), (16, 0.0)):
        layers = [values + noise * rng.standard_normal(values.shape) for values in final]
        paths[step] = tmp_path / f"step{step}.h5"
        _write_activations(paths[step], layers, step)
    return paths


def test_internal_cli_writes_metrics(checkpoints, tmp_path):
    out = tmp_path / "internal" / "step4.h5"
    status = cli_main(["internal", "--activations", str(checkpoints[4]), "--final", str(checkpoints[16]),
                       "--previous", str(checkpoints[0]), "--out", str(out), "--max-words", "100"])
    assert status == 0
    rows = word_subsample(120, 100, 0)
    with h5py.File(out, "r") as handle:
        assert sorted(handle["metrics"]) == sorted(METRICS)
        assert handle.attrs["stage"] == "internal" and handle.attrs["step"] == 4
        assert (handle.attrs["n_words"], handle.attrs["word_sample_seed"]) == (100, 0)
        assert (handle.attrs["final_step"], handle.attrs["previous_step"]) == (16, 0)
        for layer in range(2):
            with h5py.File(checkpoints[4], "r") as own, h5py.File(checkpoints[16], "r") as final, \
                    h5py.File(checkpoints[0], "r") as previous:
                x = own[f"layer_{layer}"][()][rows]
                assert handle["metrics/cka_final"][layer] == pytest.approx(
                    linear_cka(x, final[f"layer_{layer}"][()][rows]), abs=1e-5)
                assert handle["metrics/cka_previous"][layer] == pytest.approx(
                    linear_cka(x, previous[f"layer_{layer}"][()][rows]), abs=1e-5)
            assert handle["metrics/effective_rank"][layer] == pytest.approx(effective_rank(x), rel=1e-6)
            assert handle["metrics/anisotropy"][layer] == pytest.approx(anisotropy(x), rel=1e-6)
            assert handle["metrics/twonn_dimension"][layer] == pytest.approx(twonn_dimension(x)[0], rel=1e-9)
        assert list(handle["metrics/twonn_dimension"].attrs["n_points"]) == [100, 100]


def test_internal_first_and_final_steps(checkpoints):
    first, _ = compute_internal(checkpoints[0], checkpoints[16], None, 5000, 0)
    assert np.all(np.isnan(first["cka_previous"]))
    final, info = compute_internal(checkpoints[16], checkpoints[16], checkpoints[4], 5000, 0)
    np.testing.assert_allclose(final["cka_final"], 1.0, atol=1e-5)
    assert len(info["rows"]) == 120
    assert np.all(first["cka_final"] < final["cka_previous"])  # step 0 is further from the final than step 4


def test_word_subsample_is_seeded_and_bounded():
    assert np.array_equal(word_subsample(50, 100, 0), np.arange(50))
    drawn = word_subsample(1000, 10, 3)
    assert len(np.unique(drawn)) == 10 and np.array_equal(drawn, word_subsample(1000, 10, 3))
    assert not np.array_equal(drawn, word_subsample(1000, 10, 4))
    with pytest.raises(InputError, match="internal.max_words"):
        word_subsample(1000, 2, 0)


def test_internal_refuses_different_words(checkpoints, tmp_path, capsys):
    other = tmp_path / "other.h5"
    rng = np.random.default_rng(11)
    _write_activations(other, [rng.standard_normal((120, 16))] * 2, 16, words=[f"v{i}" for i in range(120)])
    with pytest.raises(InputError, match="different words tables") as error:
        compute_internal(checkpoints[4], other, None, 100, 0)
    assert str(other) in str(error.value) and str(checkpoints[4]) in str(error.value)
    status = cli_main(["internal", "--activations", str(checkpoints[4]), "--final", str(other),
                       "--out", str(tmp_path / "x.h5")])
    assert status == 2 and "different words tables" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_internal_refuses_layer_mismatch_and_bad_files(checkpoints, tmp_path):
    short = tmp_path / "short.h5"
    _write_activations(short, [np.ones((120, 16)) * np.arange(120)[:, None]], 16)
    with pytest.raises(InputError, match="1 layers"):
        compute_internal(checkpoints[4], short, None, 100, 0)
    with pytest.raises(InputError, match="file not found"):
        compute_internal(tmp_path / "missing.h5", checkpoints[16], None, 100, 0)
    with h5py.File(tmp_path / "empty.h5", "w") as handle:
        handle["x"] = 1
    with pytest.raises(InputError, match="no /words table"):
        compute_internal(tmp_path / "empty.h5", checkpoints[16], None, 100, 0)


def test_cli_defaults_are_the_schema_defaults():
    import argparse

    from brainphase.config import schema_default
    from brainphase.internal.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--activations", "a.h5", "--final", "f.h5", "--out", "o.h5"])
    assert args.max_words == schema_default("internal.max_words")
    assert args.word_sample_seed == schema_default("internal.word_sample_seed")
    assert args.previous is None


def test_internal_on_extracted_activations(tiny_tokenizer_dir, tmp_path):
    """Files written by `brainphase extract` from two checkpoints of a tiny GPT-NeoX: repeated
    words share their layer-0 vector (token embedding of the same last token) and are merged."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    stimulus = write_stimulus(tmp_path / "words.tsv")
    activations = {}
    for seed, step in ((0, 0), (1, 16)):
        folder = save_checkpoint(tmp_path / f"step{step}", tokenizer, build_model(len(tokenizer), seed=seed),
                                 step=step, seed=3, tokens_seen=256 * step)
        activations[step] = tmp_path / "activations" / f"step{step}.h5"
        assert cli_main(["extract", "--model", str(folder), "--stimulus", str(stimulus), "--out",
                         str(activations[step]), "--device", "cpu", "--context-tokens", "8"]) == 0
    out = tmp_path / "internal.h5"
    assert cli_main(["internal", "--activations", str(activations[16]), "--final", str(activations[16]),
                     "--previous", str(activations[0]), "--out", str(out)]) == 0
    with h5py.File(activations[16], "r") as source, h5py.File(out, "r") as handle:
        n_layers, n_words = source.attrs["n_layers"], source["layer_0"].shape[0]
        distinct_layer0 = len(np.unique(source["layer_0"][()], axis=0))
        assert distinct_layer0 < n_words  # the stimulus repeats words ("fox")
        assert handle["metrics/twonn_dimension"].attrs["n_points"][0] == distinct_layer0
        assert (handle.attrs["step"], handle.attrs["seed"], handle.attrs["tokens"]) == (16, 3, 4096)
        assert (handle.attrs["final_step"], handle.attrs["previous_step"], handle.attrs["n_words"]) == (16, 0, n_words)
        for name in METRICS:
            assert handle[f"metrics/{name}"].shape == (n_layers,)
            assert np.all(np.isfinite(handle[f"metrics/{name}"][()])), name
        np.testing.assert_allclose(handle["metrics/cka_final"][()], 1.0, atol=1e-5)
        assert np.all(handle["metrics/cka_previous"][()] < 0.99)  # independent random weights


def test_block_reading_gives_the_same_metrics(checkpoints, monkeypatch):
    from brainphase.internal import cli as internal_cli

    whole, _ = compute_internal(checkpoints[4], checkpoints[16], checkpoints[0], 100, 0)
    monkeypatch.setattr(internal_cli, "_READ_BLOCK_WORDS", 7)  # 120 words in 18 blocks
    blocked, _ = compute_internal(checkpoints[4], checkpoints[16], checkpoints[0], 100, 0)
    for name in METRICS:
        np.testing.assert_array_equal(blocked[name], whole[name])
