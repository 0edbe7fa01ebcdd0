"""Benchmark: brainphase's BandedRidgeCV versus himalaya's BandedRidgeCV on the same grid.

One planted two-band problem ``[baselines, layer]`` (float32, CPU, numpy backends, one
thread by default): both solvers get the same band-weight grid (``ratio_grid`` of
``--ratios``; himalaya ``solver_params=dict(n_iter=grid, ...)``), the same alpha grid, the same
leave-one-run-out splits and the same scoring (R^2, himalaya's ``r2_score``). Printed: each
solver's best time over ``--repeats``, the max abs difference of their cross-validation scores
and of their predictions on held-out rows, and as the last line
``RESULT banded_speedup_vs_himalaya=<himalaya time / ours> max_abs_diff=<cv score difference>``.

``--quick`` runs a smaller problem (< 60 s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from brainphase.encoding.banded import BandedRidgeCV, ratio_grid
from brainphase.encoding.ridge import DEFAULT_ALPHAS
from brainphase.encoding.splits import grouped_splits


def make_problem(n_runs: int, run_length: int, n_baseline: int, n_layer: int, n_targets: int, seed: int = 0):
    """Planted float32 problem: Y = baselines @ Wb + layer @ Wl + noise, signal varying over targets."""
    rng = np.random.default_rng(seed)
    n = n_runs * run_length
    X = rng.standard_normal((n, n_baseline + n_layer), dtype=np.float32)
    Wb = rng.standard_normal((n_baseline, n_targets), dtype=np.float32) * rng.uniform(0, 0.3, n_targets).astype(np.float32)
    Wl = rng.standard_normal((n_layer, n_targets), dtype=np.float32) * (
        rng.uniform(0, 1, n_targets) ** 3 / np.sqrt(n_layer)).astype(np.float32)
    Y = X[:, :n_baseline] @ Wb + X[:, n_baseline:] @ Wl + rng.standard_normal((n, n_targets), dtype=np.float32)
    groups = np.repeat(np.arange(n_runs), run_length)
    return X, Y.astype(np.float32), groups


def best_time(function, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problem (< 60 s)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--run-length", type=int, default=300)
    parser.add_argument("--baseline-features", type=int, default=16)
    parser.add_argument("--layer-features", type=int, default=1024)
    parser.add_argument("--targets", type=int, default=20000)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0, 100.0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.run_length, args.layer_features, args.targets = 4, 200, 256, 4000

    from himalaya.backend import set_backend
    from himalaya.ridge import BandedRidgeCV as HimalayaBandedRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy")
    X, Y, groups = make_problem(args.runs, args.run_length, args.baseline_features, args.layer_features, args.targets)
    train = groups < args.runs - 1
    splits = grouped_splits(int(train.sum()), groups[train])
    grid = ratio_grid(args.ratios)
    alphas = np.asarray(DEFAULT_ALPHAS)
    sizes = (args.baseline_features, args.layer_features)
    print(f"problem: {train.sum()} training samples ({len(splits)} inner folds), {sizes} features per band, "
          f"{args.targets} targets, {len(grid)} band weightings x {len(alphas)} alphas, {args.threads} thread(s)")

    def ours():
        return BandedRidgeCV(sizes, grid, alphas, cv=splits).fit(X[train], Y[train], groups[train])

    def theirs():
        return HimalayaBandedRidgeCV(
            groups=np.repeat([0, 1], sizes), fit_intercept=True, cv=splits,
            solver_params=dict(n_iter=grid, alphas=alphas, score_func=r2_score, progress_bar=False),
        ).fit(X[train], Y[train])

    with threadpool_limits(args.threads):
        t_ours, model = best_time(ours, args.repeats)
        t_theirs, reference = best_time(theirs, args.repeats)
    score_diff = float(np.max(np.abs(model.cv_scores_ - np.asarray(reference.cv_scores_))))
    prediction_diff = float(np.max(np.abs(model.predict(X[~train]) - np.asarray(reference.predict(X[~train])))))
    print(f"brainphase BandedRidgeCV {t_ours:.2f} s; himalaya BandedRidgeCV {t_theirs:.2f} s")
    print(f"max |cv score difference| {score_diff:.2e}; max |held-out prediction difference| {prediction_diff:.2e}")
    print(f"RESULT banded_speedup_vs_himalaya={t_theirs / t_ours:.2f} max_abs_diff={score_diff:.2e}")


if __name__ == "__main__":
    main()
