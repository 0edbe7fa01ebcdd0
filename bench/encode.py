"""Benchmark: one ``brainphase encode`` job (one checkpoint) of the embedded demo's size.

The demo encodes 24 checkpoints (2 seeds x 12 steps), one job per checkpoint on one thread
(``rules/encoding.smk``), within the 10-minute budget on 2 cores. This script writes inputs
of the demo's shapes (4 runs of ~160 volumes at TR 2 s, 800 words per run, 5 layers x 64
dimensions, 3 subjects x 1876 voxels; random activations, responses with a planted layer
signal), or takes ``--activations`` / ``--responses`` of a real run, and times
``brainphase encode`` with the options of ``config/config.yaml`` (section ``encode``) and
``OMP_NUM_THREADS=1``, as the workflow does. ``--repeats`` runs (default 2), best time kept.

The responses carry the word baselines ``brainphase load-fmri`` caches for every encode job
(:mod:`brainphase.encoding.stimulus_cache`); the job is timed with them and on a copy without
them (``/stimulus_baselines`` deleted), and the two scores files are checked to be identical.

Printed: wall and CPU (user + system) seconds of the job; last line
``RESULT encode_seconds=... encode_cpu_seconds=... voxels=... uncached_seconds=... uncached_cpu_seconds=...
cache_speedup=...`` (``cache_speedup`` = uncached / cached CPU seconds). ``--quick`` uses 600
voxels per subject (< 30 s). The wall time is the job's time only on an otherwise idle core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from brainphase.config import cli_options
from brainphase.io import atomic_h5, provenance, string_array

ROOT = Path(__file__).resolve().parents[1]
TR = 2.0
RUN_TRS = (163, 158, 154, 167)  # the demo's runs (800 words each)
WORDS_PER_RUN, N_LAYERS, D_MODEL, N_SUBJECTS = 800, 5, 64, 3
VOCABULARY = ("the", "king", "and", "my", "lord", "to", "of", "thou", "love", "shall", "what", "is", "night",
              "sweet", "heaven", "speak", "Romeo", "good", "death", "fair", "come", "here", "nay", "Capulet")


def write_inputs(folder: Path, n_voxels: int, seed: int = 0) -> tuple[Path, Path]:
    """Activations and responses files of the demo's shapes (with the stimulus cache of load-fmri); returns their paths."""
    import pandas as pd

    from brainphase.encoding import features as F
    from brainphase.encoding.stimulus_cache import write_stimulus_baselines

    rng = np.random.default_rng(seed)
    runs, onsets, words = [], [], []
    for k, n_trs in enumerate(RUN_TRS):
        onset = np.sort(rng.uniform(2.0, n_trs * TR - 2.0, WORDS_PER_RUN))
        runs += [str(k + 1)] * WORDS_PER_RUN
        onsets.append(onset)
        words += [VOCABULARY[i] for i in rng.integers(0, len(VOCABULARY), WORDS_PER_RUN)]
    onset = np.concatenate(onsets)
    layers = [rng.standard_normal((len(onset), D_MODEL)).astype(np.float32) for _ in range(N_LAYERS)]
    act = folder / "activations.h5"
    attrs = {"model_id": "bench", "revision": "none", "seed": 1, "step": 0, "tokens": 0,
             "weights_sha256": json.dumps({}), "n_layers": N_LAYERS - 1, "d_model": D_MODEL}
    with atomic_h5(act, provenance("extract", {}, [], **attrs)) as h5:
        for i, layer in enumerate(layers):
            h5.create_dataset(f"layer_{i}", data=layer)
        group = h5.create_group("words")
        group.create_dataset("run", data=string_array(runs))
        group.create_dataset("word", data=string_array(words))
        group.create_dataset("word_index", data=np.concatenate([np.arange(WORDS_PER_RUN)] * len(RUN_TRS)))
        group.create_dataset("onset", data=onset)
        group.create_dataset("offset", data=onset + 0.25)
    weights = rng.standard_normal((D_MODEL * 4, n_voxels)) * 0.05
    mask = np.zeros((21, 25, 20), dtype=np.uint8)
    mask.flat[rng.choice(mask.size, n_voxels, replace=False)] = 1
    resp = folder / "responses.h5"
    run_labels = np.array(runs)
    with atomic_h5(resp, provenance("load-fmri", {}, [], tr=TR, simulated=True)) as h5:
        h5.create_dataset("mask/mask", data=mask)
        h5.create_dataset("mask/affine", data=np.diag([10.0, 10.0, 10.0, 1.0]))
        h5.create_dataset("rois/names", data=string_array([f"roi{k}" for k in range(6)]))
        h5.create_dataset("rois/labels", data=rng.integers(0, 7, n_voxels).astype(np.int16))
        stimulus = pd.DataFrame({"run": runs, "word_index": np.concatenate([np.arange(WORDS_PER_RUN)] * len(RUN_TRS)),
                                 "word": words, "onset": onset, "offset": onset + 0.25})
        write_stimulus_baselines(h5, stimulus, "en")
        for sub in range(1, N_SUBJECTS + 1):
            for k, n_trs in enumerate(RUN_TRS):
                rows = run_labels == str(k + 1)
                design = F.delay_features(F.lanczos_downsample(layers[1][rows], onset[rows],
                                                               F.volume_times(n_trs, TR, 0.0), TR), (1, 2, 3, 4))
                bold = design @ weights + rng.standard_normal((n_trs, n_voxels))
                group = h5.create_group(f"subjects/sub-{sub:02d}/runs/{k + 1}")
                group.create_dataset("bold", data=bold.astype(np.float32))
                group.attrs["first_volume_time"] = 0.0
    return act, resp


def time_encode(act: Path, resp: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``brainphase encode`` subprocess with the demo's options."""
    section = dict(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["encode"])
    section.pop("maps", None)
    command = (f"{sys.executable} -m brainphase.cli encode {cli_options(section)} --activations {act} "
               f"--responses {resp} --out {out}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def without_cache(resp: Path, copy: Path) -> Path:
    """A copy of ``resp`` without the stimulus cache (what encode read before load-fmri wrote it)."""
    import shutil

    import h5py

    from brainphase.encoding.stimulus_cache import GROUP

    shutil.copyfile(resp, copy)
    with h5py.File(copy, "a") as handle:
        if GROUP not in handle:
            raise SystemExit(f"{resp} has no /{GROUP}: write it with the current `brainphase load-fmri`")
        del handle[GROUP]
    return copy


def same_scores(first: Path, second: Path) -> bool:
    """Every dataset of two scores files is equal (NaN equal to NaN)."""
    import h5py

    def datasets(path):
        found = {}
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return found

    a, b = datasets(first), datasets(second)
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activations", type=Path, help="a real activations file (else synthetic)")
    parser.add_argument("--responses", type=Path, help="a real responses.h5 (with --activations)")
    parser.add_argument("--voxels", type=int, default=1876, help="voxels per subject of the synthetic data")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="600 voxels per subject")
    args = parser.parse_args()
    if (args.activations is None) != (args.responses is None):
        parser.error("give both --activations and --responses, or neither")
    voxels = 600 if args.quick else args.voxels
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.activations is None:
            act, resp = write_inputs(folder, voxels)
        else:
            act, resp = args.activations, args.responses
        uncached = without_cache(resp, folder / "responses_uncached.h5")
        times, times_uncached = [], []
        for k in range(args.repeats):  # interleaved: both see the same machine load
            times.append(time_encode(act, resp, folder / f"scores{k}.h5"))
            times_uncached.append(time_encode(act, uncached, folder / f"scores_uncached{k}.h5"))
        if not same_scores(folder / "scores0.h5", folder / "scores_uncached0.h5"):
            raise SystemExit("the scores with and without the stimulus cache differ")
    wall, cpu = min(times)
    wall_u, cpu_u = min(times_uncached)
    print(f"encode job: {wall:.2f} s wall, {cpu:.2f} s CPU (best of {args.repeats}; OMP_NUM_THREADS=1)")
    print(f"without the stimulus cache: {wall_u:.2f} s wall, {cpu_u:.2f} s CPU; scores identical")
    print(f"RESULT encode_seconds={wall:.2f} encode_cpu_seconds={cpu:.2f} voxels={voxels} "
          f"uncached_seconds={wall_u:.2f} uncached_cpu_seconds={cpu_u:.2f} cache_speedup={cpu_u / cpu:.3f}")


if __name__ == "__main__":
    main()
