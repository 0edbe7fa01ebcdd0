"""Peak memory and time of ``brainphase load-fmri`` on whole-brain 2 mm MNI data.

Simulates 3 subjects x 4 runs x 300 TRs at 2 mm (about 235k brain voxels; SIMULATED data,
written by ``brainphase simulate`` into a temporary folder), then runs the loader in a
child process that reports its own peak resident memory (``VmHWM`` of ``/proc/self/status``,
which starts afresh at ``exec``, unlike ``RUSAGE_CHILDREN`` that can carry the forking
parent's size). Prints the
ratio of the peak to the size of one run's and of all runs' masked float32 BOLD, and last
``RESULT load_peak_gib=<float> load_seconds=<float>``. ``--quick``: 3 subjects x 2 runs x
60 TRs at 4 mm (< 60 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainphase.fmri import simulate

#: run the CLI in this (child) process, then print its peak resident memory in KiB
_CHILD = """
import re, sys
from brainphase.cli import main
status = main(sys.argv[1:])
peak = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(f"PEAK_KIB={peak}")
sys.exit(status)
"""


def write_stimulus(folder: Path, n_runs: int, n_trs: int, tr: float) -> tuple[Path, Path]:
    """Words every ~0.4 s filling ``n_trs`` volumes (the simulator adds its 10 s tail); a small corpus."""
    rng = np.random.default_rng(0)
    vocab = [f"word{i}" for i in range(200)]
    last_offset = n_trs * tr - simulate.TAIL_SECONDS - 0.5
    rows = []
    for run in range(1, n_runs + 1):
        onsets = np.arange(0.5, last_offset - 0.3, 0.4)
        for index, onset in enumerate(onsets):
            rows.append((str(run), index, vocab[rng.integers(len(vocab))], round(onset, 3), round(onset + 0.3, 3)))
    stimulus = folder / "stimulus_words.tsv"
    pd.DataFrame(rows, columns=["run", "word_index", "word", "onset", "offset"]).to_csv(stimulus, sep="\t", index=False)
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("\n".join(" ".join(rng.choice(vocab, 12)) for _ in range(500)) + "\n")
    return stimulus, corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 subjects x 2 runs x 60 TRs at 4 mm")
    options = parser.parse_args()
    n_subjects, n_runs, n_trs, resolution = (3, 2, 60, 4) if options.quick else (3, 4, 300, 2)
    tr = 2.0
    with tempfile.TemporaryDirectory(prefix="bench-load-fmri-") as tmp:
        tmp = Path(tmp)
        stimulus, corpus = write_stimulus(tmp, n_runs, n_trs, tr)
        start = time.perf_counter()
        parser = argparse.ArgumentParser()
        simulate.add_arguments(parser)  # the simulator's own defaults for every option not given here
        simulate.main(parser.parse_args([
            "--stimulus", str(stimulus), "--corpus-dir", str(corpus), "--out-dir", str(tmp / "bids"),
            "--n-subjects", str(n_subjects), "--tr", str(tr), "--resolution-mm", str(resolution)]))
        simulate_seconds = time.perf_counter() - start
        out = tmp / "responses.h5"
        command = [sys.executable, "-c", _CHILD, "load-fmri", "--root", str(tmp / "bids"), "--stimulus", str(stimulus),
                   "--out", str(out)]
        start = time.perf_counter()
        child = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "BRAINPHASE_LOGLEVEL": "WARNING"})
        load_seconds = time.perf_counter() - start
        peak_gib = int(child.stdout.rsplit("PEAK_KIB=", 1)[1]) / 2**20
        with h5py.File(out, "r") as responses:
            n_voxels = int(responses.attrs["n_voxels"])
            run_shape = responses["subjects/sub-01/runs/1/bold"].shape
        one_run_gib = run_shape[0] * n_voxels * 4 / 2**30
        all_runs_gib = one_run_gib * n_subjects * n_runs
    print(f"{n_subjects} subjects x {n_runs} runs x {run_shape[0]} TRs, {resolution} mm, {n_voxels} voxels; "
          f"simulate {simulate_seconds:.1f} s")
    print(f"peak / one run's masked float32 BOLD = {peak_gib / one_run_gib:.2f}; "
          f"peak / all runs' = {peak_gib / all_runs_gib:.2f}; load throughput {all_runs_gib / load_seconds * 1024:.0f} MiB/s")
    print(f"RESULT load_peak_gib={peak_gib:.3f} load_seconds={load_seconds:.1f}")


if __name__ == "__main__":
    main()
