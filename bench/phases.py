"""Time of ``brainphase phases`` on a Pythia-sized trajectory, and accuracy on planted trajectories.

Writes a ``metrics.h5`` as ``brainphase aggregate`` does (154 checkpoints of the Pythia schedule
x 10 seeds x 8 layers x 3 subjects; a planted up-down-up alignment curve over log10 tokens,
two task metrics) into a temporary folder, then times the whole ``brainphase phases`` path on
it (read, segmentation, 1000 bootstrap resamples of seeds, subjects and 20 voxel blocks, per-seed fits,
trajectory.h5 written) on one core (BLAS/OpenMP threads set to 1 before numpy loads).

Accuracy: planted trajectories of :mod:`brainphase.phases.planted` at moderate noise (slope
change per decade 4-8 seed-mean standard errors), 1-4 segments on five schedules, segmented
with the noise estimate of ``analyse_trajectory``; a case is correct when the number of
segments is right and every boundary is within one checkpoint. ``planted_accuracy`` is measured
on the *resolvable* set, the one tests/test_planted_phases.py asserts (cases redrawn until each
boundary is detectable and locatable to one checkpoint, see that module); the accuracy on the
plain set (no such condition) and that of an oracle knowing the true number of segments and
noise are printed above it. Last line:
``RESULT phases_seconds=<float> planted_accuracy=<float>`` (``phases_seconds``: wall clock; the
process CPU time is printed above it). ``--quick``: 50 resamples and
fewer planted cases (< 1 minute).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"  # one core: before numpy is imported

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from brainphase.io import atomic_h5, provenance, string_array  # noqa: E402
from brainphase.phases import planted  # noqa: E402
from brainphase.phases.cli import phases  # noqa: E402
from brainphase.phases.label import segment_trajectory  # noqa: E402
from brainphase.phases.segment import segment_curve  # noqa: E402

N_SEEDS, N_LAYERS, N_SUBJECTS, N_BLOCKS = 10, 8, 3, 20


def write_metrics(path: Path, rng: np.random.Generator) -> None:
    """A ``metrics.h5`` shaped like ``brainphase aggregate``'s: planted up-down-up alignment."""
    case = planted.planted_case(rng, "pythia", "up-down-up", noise=10.0, n_seeds=N_SEEDS, sigma_seed=0.01,
                                with_metrics=True)
    n_steps = len(case["steps"])
    layer_gain = np.linspace(0.6, 1.0, N_LAYERS)  # deeper layers align more
    subject_gain = np.array([0.9, 1.0, 1.1])
    layer_subject_r = (case["alignment"][:, :, None, None] * layer_gain[None, None, :, None] * subject_gain
                       + rng.normal(0, 0.005, (N_SEEDS, n_steps, N_LAYERS, N_SUBJECTS)))
    heldout_subject = layer_subject_r[:, :, -1]  # (S, T, N): the best (last) layer
    # voxel blocks of the held-out layer (phases.voxel_blocks): each block its own gain on the curve + noise,
    # centred so that the equal-weight block mean is the per-subject value
    block_dev = (rng.normal(0, 0.2, (1, 1, N_SUBJECTS, N_BLOCKS)) * case["alignment"][:, :, None, None]
                 + rng.normal(0, 0.005, (N_SEEDS, n_steps, N_SUBJECTS, N_BLOCKS)))
    heldout_blocks = heldout_subject[..., None] + block_dev - block_dev.mean(axis=-1, keepdims=True)
    attrs = provenance("aggregate", {"bench": "phases"}, [], model_id="planted-pythia", simulated=True,
                       n_seeds=N_SEEDS, n_steps=n_steps)
    with atomic_h5(path, attrs) as handle:
        handle["seeds"] = np.arange(N_SEEDS, dtype=np.int64)
        handle["steps"] = case["steps"]
        handle["tokens"] = case["tokens"]
        handle["layers"] = np.arange(N_LAYERS)
        handle["subjects"] = string_array([f"sub-{i + 1:02d}" for i in range(N_SUBJECTS)])
        handle["roi_names"] = string_array([])
        brain = handle.create_group("brain")
        brain["layer_subject_r"] = layer_subject_r
        brain["alignment_layer"] = layer_subject_r.mean(axis=-1)
        brain["alignment_heldout_layer_subject"] = heldout_subject
        brain["alignment_heldout_layer"] = heldout_subject.mean(axis=-1)
        brain["alignment_heldout_layer_blocks"] = heldout_blocks
        brain["alignment_heldout_layer_block_weights"] = np.full(heldout_blocks.shape, 25.0)
        brain["voxel_block_sizes"] = np.full(N_BLOCKS, 25)
        brain.attrs["voxel_blocks"] = N_BLOCKS
        brain["alignment_layer_mean_subject"] = layer_subject_r.mean(axis=2)
        brain["alignment_layer_mean"] = layer_subject_r.mean(axis=(2, 3))
        brain["heldout_layer_subject"] = np.full((N_SEEDS, n_steps, N_SUBJECTS), N_LAYERS - 1)
        brain.attrs["voxel_selection"] = "all_voxels"
        brain.attrs["layer_selection"] = "leave_one_subject_out"
        brain.attrs["measures"] = string_array(["heldout_layer", "layer_mean"])
        metrics = handle.create_group("metrics")
        for name, values in case["metrics"].items():
            metrics[name] = values
            metrics[name].attrs["kind"] = case["metric_kinds"][name]
            metrics[name].attrs["higher_is_better"] = name != "loss"


def accuracy(cases: list[dict], oracle: bool = False) -> float:
    """Fraction of cases correct (segments and every boundary within one checkpoint)."""
    correct = []
    for case in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN gap columns
            curve = np.nanmean(case["alignment"], axis=0)
        if oracle:
            knots = (segment_curve(case["x"], curve, case["seed_mean_se"], max_segments=case["n_segments"],
                                   cost=-1e9).knots if case["n_segments"] > 1 else np.empty(0))
        else:
            knots = segment_trajectory(case["x"], case["alignment"])[0].knots
        correct.append(planted.score_case(case, knots)["correct"])
    return float(np.mean(correct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 resamples, 2 planted cases per cell (< 1 minute)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n_bootstrap, n_per_cell = (50, 2) if options.quick else (1000, 10)
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        metrics_path, out = Path(tmp) / "metrics.h5", Path(tmp) / "trajectory.h5"
        write_metrics(metrics_path, np.random.default_rng(0))
        start, cpu_start = time.perf_counter(), time.process_time()
        result = phases(metrics_path, out, n_bootstrap=n_bootstrap, bootstrap_seed=0)
        phases_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"brainphase phases: 154 checkpoints x {N_SEEDS} seeds x {N_LAYERS} layers x {N_SUBJECTS} subjects, "
          f"{n_bootstrap} resamples ({result.bootstrap_kind}), one core: {phases_seconds:.1f} s "
          f"({cpu_seconds:.1f} s CPU)")
    print(f"  {result.summary}")

    start = time.perf_counter()
    plain = planted.planted_set(0, n_per_cell, noise_levels=("moderate",))
    resolvable = planted.planted_set(1, n_per_cell, noise_levels=("moderate",), min_change_z=6.0, max_knot_se=0.5)
    plain_accuracy, oracle_accuracy = accuracy(plain), accuracy(plain, oracle=True)
    planted_accuracy = accuracy(resolvable)
    print(f"planted, moderate noise: plain set {plain_accuracy:.3f} of {len(plain)} (oracle with the true number "
          f"of segments and noise: {oracle_accuracy:.3f}); resolvable set {planted_accuracy:.3f} of "
          f"{len(resolvable)} ({time.perf_counter() - start:.1f} s)")
    print(f"RESULT phases_seconds={phases_seconds:.3f} planted_accuracy={planted_accuracy:.4f}")


if __name__ == "__main__":
    main()
