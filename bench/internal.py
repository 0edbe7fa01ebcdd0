"""Time of ``brainphase internal`` on one Pythia-sized checkpoint, on one core.

Writes three activation files shaped like ``brainphase extract``'s (default 12 layers x 10,000
words x 768 dims, float32; random low-rank word vectors plus noise, a later checkpoint closer to
the final one) into a temporary folder: this checkpoint's, the final one's and the previous
one's. Then times the whole ``brainphase internal`` path (read the three files, words tables
checked, the ``internal.max_words`` subsample, TwoNN, CKA to final and previous, effective rank,
anisotropy, output written with provenance, which hashes the inputs) with BLAS/OpenMP threads
set to 1 before numpy loads. Goal (issue 12): under 30 s.

Last line: ``RESULT internal_seconds=<float>`` (wall clock; the process CPU time is printed
above it, as other processes on a shared machine inflate the wall clock).
``--quick``: 4 layers x 3000 words x 256 dims (a few seconds).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"  # one core: before numpy is imported

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from brainphase.config import schema_default  # noqa: E402
from brainphase.internal.cli import add_arguments, main  # noqa: E402
from brainphase.io import atomic_h5, string_array  # noqa: E402

LATENT_DIMS = 48


def write_checkpoints(folder: Path, n_layers: int, n_words: int, d_model: int, seed: int = 0) -> dict[str, Path]:
    """Three activation files (previous, own, final) with the same words table."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_words, LATENT_DIMS)).astype(np.float32)
    mixing = [rng.standard_normal((LATENT_DIMS, d_model)).astype(np.float32) for _ in range(n_layers)]
    paths = {}
    for role, step, noise in (("previous", 64, 2.0), ("own", 128, 1.0), ("final", 1024, 0.5)):
        paths[role] = folder / f"step{step}.h5"
        attrs = {"stage": "extract", "model_id": "bench", "revision": "", "seed": 0, "step": step,
                 "tokens": step * 2_097_152, "weights_sha256": "{}", "n_layers": n_layers, "d_model": d_model}
        with atomic_h5(paths[role], attrs) as handle:
            words = handle.create_group("words")
            words["run"] = string_array(f"run{i // 2500}" for i in range(n_words))
            words["word_index"] = np.arange(n_words) % 2500
            words["word"] = string_array(f"w{i % 3000}" for i in range(n_words))
            words["onset"] = np.arange(n_words, dtype=np.float64) * 0.3
            words["offset"] = words["onset"][()] + 0.25
            for layer in range(n_layers):
                values = latent @ mixing[layer] + noise * rng.standard_normal((n_words, d_model), dtype=np.float32)
                handle.create_dataset(f"layer_{layer}", data=values + 2.0, chunks=(min(n_words, 1024), d_model))
    return paths


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 layers x 3000 words x 256 dims")
    parser.add_argument("--layers", type=int, default=None, help="layers (default 12, quick 4)")
    parser.add_argument("--words", type=int, default=None, help="words (default 10000, quick 3000)")
    parser.add_argument("--d-model", type=int, default=None, help="dims (default 768, quick 256)")
    parser.add_argument("--max-words", type=int, default=schema_default("internal.max_words"),
                        help="internal.max_words (default: %(default)s)")
    args = parser.parse_args()
    n_layers = args.layers or (4 if args.quick else 12)
    n_words = args.words or (3000 if args.quick else 10000)
    d_model = args.d_model or (256 if args.quick else 768)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_internal_") as tmp:
        folder = Path(tmp)
        print(f"writing 3 activation files: {n_layers} layers x {n_words} words x {d_model} dims", flush=True)
        paths = write_checkpoints(folder, n_layers, n_words, d_model)
        cli_parser = argparse.ArgumentParser()
        add_arguments(cli_parser)
        cli_args = cli_parser.parse_args([
            "--activations", str(paths["own"]), "--final", str(paths["final"]), "--previous", str(paths["previous"]),
            "--out", str(folder / "internal.h5"), "--max-words", str(args.max_words),
        ])
        wall, cpu = time.perf_counter(), time.process_time()
        main(cli_args)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with h5py.File(folder / "internal.h5", "r") as handle:
            for name in handle["metrics"]:
                values = handle["metrics"][name][()]
                print(f"{name:16s} " + " ".join(f"{v:8.3f}" for v in values))
            n_used = int(handle.attrs["n_words"])
    print(f"{n_layers} layers x {n_words} words ({n_used} used) x {d_model} dims: wall {wall:.2f} s, "
          f"CPU {cpu:.2f} s (goal < 30 s at 12 x 10000 x 768)")
    print(f"RESULT internal_seconds={wall:.3f}")


if __name__ == "__main__":
    run()
