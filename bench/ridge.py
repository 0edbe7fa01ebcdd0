"""Benchmark: brainphase's run-grouped RidgeCV versus himalaya's RidgeCV on one random problem.

Both fit the same planted problem (``Y = X W + noise``; float32, CPU, numpy backends) with
the same alpha grid and the same cross-validation splits (leave-one-run-out over
``--folds`` runs), in one process, one after the other. Printed:

* the max abs difference of their held-out scores (validation R² at the chosen alpha,
  averaged over folds: himalaya ``cv_scores_`` vs ours ``cv_scores_.max(0)``) and the
  fraction of targets where they chose a different alpha;
* the achieved fraction of the machine's float32 GEMM throughput, measured here on a GEMM
  shaped like our solver's largest one, counting our solver's matrix-product flops;
* brainphase's peak RSS (measured before himalaya runs);
* last line ``RESULT ridge_speedup_vs_himalaya=... max_abs_diff=... gemm_fraction=... peak_rss_gib=...``.

``--quick`` runs a smaller problem through the same code path (< 60 s).
``--voxels 200000`` shows that chunking bounds memory (Y itself is the bulk).
Threads default to 1 (the machine is shared); use ``--threads`` to change. Each solver is
timed ``--repeats`` times (default 2) and its best time is used.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from brainphase.encoding.ridge import RidgeCV
from brainphase.encoding.solver import auto_chunk_size


def make_problem(n_samples: int, n_features: int, n_targets: int, seed: int = 0):
    """Planted problem in float32, Y generated in column chunks (no float64 copy of Y)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    Y = np.empty((n_samples, n_targets), dtype=np.float32)
    step = 4096
    for start in range(0, n_targets, step):
        stop = min(start + step, n_targets)
        # signal strength varies over targets so that the chosen alpha varies
        scale = (rng.uniform(0, 1, stop - start) ** 3 / np.sqrt(n_features)).astype(np.float32)
        W = rng.standard_normal((n_features, stop - start), dtype=np.float32) * scale
        Y[:, start:stop] = X @ W
        Y[:, start:stop] += rng.standard_normal((n_samples, stop - start), dtype=np.float32)
    return X, Y


def _setup_flops(n_rows: int, n_features: int, n_val: int) -> tuple[int, float]:
    """(rank, flops) of one decomposition: Gram or kernel, M or R, and X_val @ R."""
    if n_features <= n_rows:  # primal: X^T X, M = X V
        rank = n_features
        flops = 2.0 * n_rows * n_features**2 + 2.0 * n_rows * n_features * rank
    else:  # dual: X X^T, R = X^T U
        rank = n_rows
        flops = 2.0 * n_rows**2 * n_features + 2.0 * n_features * n_rows * rank
    return rank, flops + 2.0 * n_val * n_features * rank


def solver_flops(n_samples: int, n_features: int, n_targets: int, splits, n_alphas: int) -> float:
    """Matrix-product flops of brainphase's RidgeCV (CV folds + refit); eigh not counted."""
    flops = 0.0
    for train, val in splits:
        rank, setup = _setup_flops(len(train), n_features, len(val))
        # per target: M^T y, then the stacked (n_alphas * n_val, rank) hat matrix times it
        flops += setup + n_targets * (2.0 * len(train) * rank + 2.0 * n_alphas * len(val) * rank)
    rank, setup = _setup_flops(n_samples, n_features, 0)
    return flops + setup + n_targets * (2.0 * n_samples * rank + 2.0 * n_features * rank)


def gemm_flops_per_s(m: int, k: int, n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 GEMM throughput for (m, k) @ (k, n)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a @ b
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best


def best_time(fit, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the machine may be shared)."""
    best = np.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fit()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller problem (n=1500, p=512, 6000 targets)")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--features", type=int, default=None)
    parser.add_argument("--voxels", type=int, default=None, help="targets (default 20000; 6000 with --quick)")
    parser.add_argument("--alphas", type=int, default=10, help="number of log-spaced alphas")
    parser.add_argument("--folds", type=int, default=5, help="runs = leave-one-run-out folds")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both solvers")
    parser.add_argument("--repeats", type=int, default=2, help="fits per solver; the best time of each is compared")
    parser.add_argument("--skip-himalaya", action="store_true", help="time brainphase only (speedup reported as nan)")
    args = parser.parse_args()
    n_samples = args.samples or (1500 if args.quick else 3000)
    n_features = args.features or (512 if args.quick else 1024)
    n_targets = args.voxels or (6000 if args.quick else 20000)
    alphas = np.logspace(0, 5, args.alphas)

    X, Y = make_problem(n_samples, n_features, n_targets)
    groups = np.repeat(np.arange(args.folds), -(-n_samples // args.folds))[:n_samples]
    print(f"problem: n={n_samples} p={n_features} targets={n_targets} alphas={len(alphas)} folds={args.folds} "
          f"float32 threads={args.threads}; data peak RSS {peak_rss_gib():.2f} GiB", flush=True)

    with threadpool_limits(limits=args.threads):
        max_val = -(-n_samples // args.folds)
        chunk = min(n_targets, auto_chunk_size(n_samples, n_features, len(alphas), max_val))
        gemm_shape = (len(alphas) * max_val, n_features, chunk)
        peak_before = gemm_flops_per_s(*gemm_shape)
        ours = RidgeCV(alphas=alphas, dtype="float32")
        t_ours = best_time(lambda: ours.fit(X, Y, groups), args.repeats)
        rss = peak_rss_gib()
        print(f"brainphase RidgeCV: {t_ours:.2f} s, peak RSS {rss:.2f} GiB", flush=True)

        flops = solver_flops(n_samples, n_features, n_targets, ours.splits_, len(alphas))
        # best of the measurements before and after our fit (the machine may be shared)
        peak = max(peak_before, gemm_flops_per_s(*gemm_shape))
        fraction = flops / t_ours / peak
        print(f"GEMM float32 ({gemm_shape[0]}x{n_features} @ {n_features}x{chunk}): {peak / 1e9:.1f} GFLOP/s; "
              f"brainphase {flops / 1e9:.1f} GFLOP in {t_ours:.2f} s = {flops / t_ours / 1e9:.1f} GFLOP/s "
              f"= {fraction:.2f} of GEMM", flush=True)

        speedup, max_diff = float("nan"), float("nan")
        if not args.skip_himalaya:
            from himalaya.ridge import RidgeCV as HimalayaRidgeCV
            from himalaya.scoring import r2_score

            reference = HimalayaRidgeCV(
                alphas=alphas.astype(np.float32), cv=ours.splits_, fit_intercept=True,
                solver_params={"score_func": r2_score, "n_targets_batch": min(n_targets, 20000)},
            )
            t_ref = best_time(lambda: reference.fit(X, Y), args.repeats)
            speedup = t_ref / t_ours
            max_diff = float(np.max(np.abs(ours.cv_scores_.max(0) - np.asarray(reference.cv_scores_))))
            other_alpha = float(np.mean(~np.isclose(ours.best_alphas_, np.asarray(reference.best_alphas_), rtol=1e-4)))
            print(f"himalaya RidgeCV: {t_ref:.2f} s; speedup {speedup:.2f}x", flush=True)
            print(f"held-out score max abs diff {max_diff:.2e}; different alpha for {other_alpha:.4%} of targets")
    print(f"RESULT ridge_speedup_vs_himalaya={speedup:.3f} max_abs_diff={max_diff:.3e} "
          f"gemm_fraction={fraction:.3f} peak_rss_gib={rss:.3f}")


if __name__ == "__main__":
    main()
