"""Reduced activation storage (``extract.reduce: random_projection``): the projection is fixed by
its seed and the width, keeps pairwise distances within the Johnson-Lindenstrauss bound and a
planted encoding model's R^2, and ``extract``/``measure`` store exactly ``h @ R``."""

import h5py
import numpy as np
import pytest
from _models import D_MODEL, build_model, save_checkpoint, tiny_checkpoint, tiny_tokenizer_dir, write_stimulus  # noqa: F401

from brainphase import cli
from brainphase.errors import InputError
from brainphase.io import read_attrs
from brainphase.reduce import PROJECTION_SEED, check_reduction, projection_matrix


def test_projection_is_fixed_by_seed_and_width():
    first, again = projection_matrix(512, 64), projection_matrix(512, 64)
    assert first.shape == (512, 64) and first.dtype == np.float32
    assert np.array_equal(first, again)
    expected = np.random.default_rng([PROJECTION_SEED, 512]).standard_normal((512, 64)) / np.sqrt(64)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    assert not np.allclose(projection_matrix(256, 64), first[:256])  # another width, another matrix
    assert abs(float(np.var(first)) * 64 - 1) < 0.05  # entries N(0, 1/k): E||hR||^2 = ||h||^2


def test_pairwise_distances_within_the_jl_bound():
    """n points, k dimensions: squared distances within 1 +- eps, eps = sqrt(8 ln n / k) (Dasgupta-Gupta)."""
    rng = np.random.default_rng(0)
    n, width, k = 100, 1024, 256
    points = rng.standard_normal((n, width)) * rng.gamma(1.0, 1.0, width)  # anisotropic, like hidden states
    projected = points @ projection_matrix(width, k).astype(np.float64)

    def squared_distances(x):
        g = x @ x.T
        d = np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g
        return d[np.triu_indices(n, 1)]

    ratio = squared_distances(projected) / squared_distances(points)
    eps = np.sqrt(8 * np.log(n) / k)
    assert np.abs(ratio - 1).max() < eps
    assert abs(float(np.mean(ratio)) - 1) < 0.02


def _ridge_r2(X, y, train, test, alpha):
    mean_x, mean_y = X[train].mean(0), y[train].mean()
    Xc = X[train] - mean_x
    w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y[train] - mean_y))
    residual = y[test] - ((X[test] - mean_x) @ w + mean_y)
    return 1 - residual @ residual / np.sum((y[test] - y[test].mean()) ** 2)


def test_planted_encoding_r2_is_kept():
    """Hidden states of effective dimension 16 in 512 dimensions, a planted linear response of
    true R^2 0.5: ridge on the 64-dimensional projection scores within 0.03 of full width."""
    rng = np.random.default_rng(1)
    n, width, rank = 2000, 512, 16
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, width)) + 0.05 * rng.standard_normal((n, width))
    signal = X @ rng.standard_normal(width)
    y = signal / signal.std() + rng.standard_normal(n)  # R^2 of the truth: 0.5
    train, test = np.arange(1500), np.arange(1500, n)
    full = _ridge_r2(X, y, train, test, alpha=10.0)
    reduced = _ridge_r2(X @ projection_matrix(width, 64), y, train, test, alpha=10.0)
    assert 0.45 < full < 0.55
    assert abs(reduced - full) < 0.03


@pytest.mark.parametrize("dim", [32, 40, 0])
def test_reduce_dim_must_reduce(dim):
    with pytest.raises(InputError, match="reduce_dim must lie in 1..31|extract.reduce: none"):
        check_reduction("random_projection", dim, 32)
    check_reduction("none", dim, 32)  # ignored when not reducing
    with pytest.raises(InputError, match="choose one of none, random_projection"):
        check_reduction("pca", 8, 32)


def _layers(path):
    with h5py.File(path, "r") as handle:
        return np.stack([handle[f"layer_{i}"][()] for i in range(handle.attrs["n_layers"])])


def test_extract_and_measure_store_the_projection(tiny_checkpoint, tmp_path, capsys):
    """Two checkpoints of the same width: each reduced file is its full-width file @ the same R."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    other = save_checkpoint(tmp_path / "other", tokenizer, build_model(tokenizer.vocab_size, seed=5))
    stimulus = write_stimulus(tmp_path / "words.tsv")
    common = ["--stimulus", str(stimulus), "--context-tokens", "10", "--batch-size", "4", "--device", "cpu"]
    R = projection_matrix(D_MODEL, 8)
    for k, model in enumerate((tiny_checkpoint, other)):
        full, reduced = tmp_path / f"full{k}.h5", tmp_path / f"reduced{k}.h5"
        assert cli.main(["extract", "--model", str(model), *common, "--out", str(full)]) == 0
        assert cli.main(["extract", "--model", str(model), *common, "--reduce", "random_projection",
                         "--reduce-dim", "8", "--out", str(reduced)]) == 0
        stored = _layers(reduced)
        assert stored.shape[-1] == 8
        np.testing.assert_allclose(stored, _layers(full) @ R, rtol=1e-5, atol=1e-5)
        attrs = read_attrs(reduced)
        assert (attrs["reduce"], attrs["reduce_dim"], attrs["projection_seed"], attrs["d_model"]) == (
            "random_projection", 8, PROJECTION_SEED, D_MODEL)
        assert (read_attrs(full)["reduce"], read_attrs(full)["reduce_dim"]) == ("none", 0)

    out = tmp_path / "too_wide.h5"
    status = cli.main(["measure", "--model", str(tiny_checkpoint), *common, "--reduce", "random_projection",
                       "--reduce-dim", str(D_MODEL), "--tasks-names", "induction", "--activations-out", str(out),
                       "--tasks-out", str(tmp_path / "tasks.h5")])
    assert status == 2 and not out.exists() and not (tmp_path / "tasks.h5").exists()
    assert f"--reduce-dim {D_MODEL}" in capsys.readouterr().err
