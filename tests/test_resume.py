"""Kill -9 the workflow during `measure` (extraction) and during `encode`; `snakemake --rerun-incomplete`
then finishes with outputs bitwise identical to an uninterrupted run (issue 14, "Faults").

In the default suite: the workflow is the smallest that has both jobs (a local checkpoint folder as
the one pretrained model, one story, one subject's ROI table: load_fmri, measure, encode; no corpus,
training or simulation), so the three Snakemake runs of measure (reference, killed, resumed) are
most of its time.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from _models import STIMULUS_WORDS, tiny_checkpoint, tiny_tokenizer_dir  # noqa: F401
from test_workflow import REPO, snakemake

CHUNK = "tiny/seed0/steps16-16"  # the chunk folder of the one checkpoint (checkpoints_per_job 1)
ACTIVATIONS = f"results/activations/{CHUNK}/step16.h5"
TASKS = f"results/tasks/{CHUNK}/step16.h5"
SCORES = f"results/scores/{CHUNK}/step16.h5"
INTERNAL = f"results/internal/{CHUNK}/step16.h5"  # written by the encode job after the scores
MEASURE_LOG = "results/logs/measure/tiny_seed0_steps16-16.log"
ENCODE_LOG = "results/logs/encode/tiny_seed0_steps16-16.log"
TR, N_WORDS, N_VOLUMES = 2.0, 200, 110
#: provenance attributes that legitimately differ between two runs of the same job (and input_sha256
#: values of HDF5 inputs, whose bytes hold their own created_utc; its paths are compared)
VOLATILE_ATTRS = {"created_utc", "working_dir"}


def write_study(folder: Path, checkpoint: Path) -> dict:
    """One story of N_WORDS words (one per second), one subject's ROI table, the config of a study of
    ``checkpoint`` (a local folder ``.../step16``, the only model) on them."""
    vocabulary = [word for words in STIMULUS_WORDS.values() for word in words]
    onset = np.arange(N_WORDS) + 0.5
    pd.DataFrame({"run": "story", "word_index": np.arange(N_WORDS),
                  "word": [vocabulary[i % len(vocabulary)] for i in range(N_WORDS)],
                  "onset": onset, "offset": onset + 0.3}).to_csv(folder / "words.tsv", sep="\t", index=False)
    (folder / "roi").mkdir()
    table = np.random.default_rng(0).standard_normal((N_VOLUMES, 4))
    pd.DataFrame(table, columns=["a", "b", "c", "d"]).to_csv(folder / "roi" / "sub-01_timeseries.tsv", sep="\t",
                                                             index=False)
    return {"results": "results", "corpus": {"stimulus": str(folder / "words.tsv")},
            "models": {"tiny": {"kind": "pretrained", "source": str(checkpoint), "seeds": [0]}},
            "fmri": {"kind": "roi-table", "root": str(folder / "roi"), "tr": TR},
            "encode": {"trim_start": 2, "trim_end": 2},
            "tasks": {"names": ["induction", "blimp_agreement", "blimp_determiner"], "seq_len": 32}}


def folder(name: str) -> str:
    """The chunk folder (the Snakemake output) that holds the per-checkpoint file ``name``."""
    return str(Path(name).parent)


def _descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _run_and_kill(workdir: Path, target: str, log: str, kill_at: str, timeout: float = 300) -> None:
    """Start snakemake for ``target``; once the job's log contains ``kill_at`` (the job is
    mid-way), SIGKILL snakemake and every process under it."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", "1", target]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while not ((workdir / log).is_file() and kill_at in (workdir / log).read_text(errors="replace")):
        assert process.poll() is None, f"snakemake finished before {kill_at!r} was logged (exit {process.returncode})"
        assert time.monotonic() < deadline, f"{kill_at!r} never appeared in {log}"
        time.sleep(0.005)
    for pid in [process.pid, *_descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def _resume(workdir: Path, config: dict, target: str, rerun: str) -> None:
    """`snakemake --unlock`, then `--rerun-incomplete` up to ``target``, which must rerun job ``rerun``."""
    assert snakemake(workdir, "--unlock", config=config).returncode == 0
    result = snakemake(workdir, "--cores", "1", "--rerun-incomplete", target, config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"rule {rerun}:" in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]


def _contents(path: Path) -> dict:
    """Every dataset (dtype, shape, bytes) and every attribute except the volatile ones."""
    found = {}
    with h5py.File(path, "r") as handle:
        def visit(name, obj):
            attrs = {k: str(v) for k, v in obj.attrs.items() if k not in VOLATILE_ATTRS}
            if "input_sha256" in attrs:  # an HDF5 input's bytes include its created_utc: compare the paths
                attrs["input_sha256"] = sorted(json.loads(attrs["input_sha256"]))
            if isinstance(obj, h5py.Dataset):
                data = np.asarray(obj[()])  # strings come as an object array: compare the values
                payload = repr(data.tolist()) if data.dtype == object else data.tobytes()
                found[name] = (str(obj.dtype), obj.shape, payload, attrs)
            else:
                found[name] = attrs
        visit("/", handle)
        handle.visititems(visit)
    return found


def test_killed_measure_and_encode_resume_to_identical_outputs(tmp_path, tiny_checkpoint):
    config = write_study(tmp_path, tiny_checkpoint)
    reference = tmp_path / "reference"
    reference.mkdir()
    result = snakemake(reference, "--cores", "1", folder(SCORES), config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed, symlinks=True)  # keeps mtimes: only the removed outputs are rebuilt
    outputs = [name for name in (ACTIVATIONS, TASKS, SCORES, INTERNAL) if (reference / name).is_file()]
    for name in outputs:
        shutil.rmtree(killed / folder(name))
    for name in (MEASURE_LOG, ENCODE_LOG):
        (killed / name).unlink()

    # measure: killed after the activations were written, before the task metrics (an incomplete job)
    _run_and_kill(killed, folder(ACTIVATIONS), MEASURE_LOG, kill_at="INFO brainphase.tasks")
    assert (killed / ACTIVATIONS).is_file() and not (killed / TASKS).exists()
    _resume(killed, config, folder(ACTIVATIONS), rerun="measure")
    # encode: killed while fitting, before the scores file exists
    _run_and_kill(killed, folder(SCORES), ENCODE_LOG, kill_at="INFO brainphase.encoding")
    assert not (killed / SCORES).exists() and not (killed / INTERNAL).exists()
    _resume(killed, config, folder(SCORES), rerun="encode")

    assert outputs[:3] == [ACTIVATIONS, TASKS, SCORES]
    for name in outputs:
        expected, resumed = _contents(reference / name), _contents(killed / name)
        assert resumed.keys() == expected.keys(), name
        for key in expected:
            assert resumed[key] == expected[key], f"{name}:{key} differs after the resumed run"
