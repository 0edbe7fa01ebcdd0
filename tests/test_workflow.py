"""The Snakemake workflow end to end on a tiny config (1 seed, 3 checkpoints, 1 subject)."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = ["corpus", "train", "simulate", "load_fmri", "measure", "encode", "aggregate", "phases", "figures"]

TINY = {
    "results": "results",
    "corpus": {"source": "generated", "stimulus_runs": 3, "stimulus_words": 160},
    "models": {
        "tiny": {  # 96 positions: the built-in task suite's longest item takes 80 tokens of this 400-token vocabulary
            "kind": "train",
            "seeds": [1],
            "train": {"n_layers": 2, "d_model": 32, "n_heads": 2, "seq_len": 96, "batch_size": 8,
                      "max_steps": 40, "n_checkpoints": 3, "vocab_size": 400},
        }
    },
    "fmri": {"kind": "simulated", "simulate": {"n_subjects": 1, "tr": 2.0, "resolution_mm": 12, "snr": 2.0}},
    "encode": {"trim_start": 2, "trim_end": 2},
    "tasks": {"max_tokens": 2000, "seq_len": 32},
}


def snakemake(workdir, *args, config=None):
    """Run the repository's Snakefile in ``workdir`` with this interpreter's snakemake."""
    # PATH without this interpreter's bin: the workflow must find its own `brainphase` CLI
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        path = Path(workdir) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        command += ["--configfile", str(path)]
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env, timeout=900)


def test_dry_run_of_demo_config_lists_every_rule(tmp_path):
    result = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    for rule in RULES:
        assert rule in result.stdout, f"rule {rule} missing from the dry run:\n{result.stdout}"
    assert "extract" not in result.stdout.split() and "tasks" not in result.stdout.split()  # both in measure


def test_each_checkpoint_loads_its_weights_in_exactly_one_job(tmp_path):
    """One `measure` job per (model, seed, step) (checkpoints_per_job 1, the default) writes its
    activations and tasks files in its chunk folders; no other job loads the weights (`--model`)."""
    result = snakemake(tmp_path, "-n", "-p", config=TINY)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "--model " in line]
    assert len(commands) == 3 and all(" brainphase measure " in line for line in commands)
    for step in (0, 1, 40):
        chunk = f"seed1/steps{step}-{step}/step{step}.h5"
        outputs = f"--activations-out results/activations/tiny/{chunk} --tasks-out results/tasks/tiny/{chunk}"
        assert sum(outputs in line for line in commands) == 1
    assert all("--tasks-text results/corpus/valid.txt" in line for line in commands)


def test_unknown_config_key_stops_before_any_rule(tmp_path):
    config = dict(TINY, encode={"trim_start": 2, "dealys": [1]})
    result = snakemake(tmp_path, "-n", config=config)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "unknown config key(s) 'dealys' under 'encode'" in message
    assert "config.yaml" in message
    assert not (tmp_path / "results").exists()


def test_wrong_type_names_expected_type(tmp_path):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["fmri"]["simulate"]["n_subjects"] = "three"
    result = snakemake(tmp_path, "-n", config=config)
    assert result.returncode != 0
    assert "'fmri.simulate.n_subjects' must be of type integer, got string 'three'" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir, "--cores", "2", config=TINY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    (workdir / "snakemake_output.txt").write_text(result.stdout + result.stderr)
    return workdir


def test_tiny_workflow_writes_trajectory_and_figures(tiny_run):
    results = tiny_run / "results"
    trajectory = results / "trajectory" / "tiny" / "trajectory.h5"
    assert trajectory.is_file()
    with h5py.File(trajectory, "r") as handle:
        assert handle.attrs["stage"] == "phases"
        assert bool(handle.attrs["simulated"])
        assert handle.attrs["config_sha256"]
    with h5py.File(trajectory, "r") as handle:  # 3 checkpoints: not labelled, said so
        assert handle["phases"].attrs["status"].startswith("skipped: 3 checkpoint(s)")
    printed = (tiny_run / "snakemake_output.txt").read_text()
    assert "brainphase: tiny (fMRI SIMULATED)" in printed and "phases not labelled" in printed
    for name in ("alignment", "tasks", "layers", "alignment_tasks", "brain_maps"):
        for fmt in ("png", "pdf"):
            figure = results / "figures" / "tiny" / f"{name}.{fmt}"
            assert figure.is_file() and figure.stat().st_size > 1000
    steps = sorted(int(p.stem[4:]) for p in (results / "scores" / "tiny" / "seed1").glob("steps*/step*.h5"))
    assert len(steps) == 3 and steps[0] == 0 and steps[-1] == 40
    with h5py.File(results / "scores" / "tiny" / "seed1" / "steps40-40" / "step40.h5", "r") as handle:
        assert handle["r"].shape[0] == 3  # embeddings + 2 layers
        assert int(handle.attrs["step"]) == steps[-1]
        assert bool(handle.attrs["simulated"])


def test_every_rule_wrote_its_log(tiny_run):
    logs = tiny_run / "results" / "logs"
    for name in ("corpus.log", "simulate.log", "load_fmri.log"):
        assert (logs / name).is_file()
    for rule in ("train", "measure", "encode", "aggregate", "phases", "figures"):
        assert any((logs / rule).iterdir()), rule


def test_every_rule_wrote_its_benchmark(tiny_run):
    """Per-chunk rules: benchmarks/{rule}/{model}_seed{seed}_steps{first}-{last}.tsv, others benchmarks/{rule}.tsv;
    the `s` column holds the job's wall-clock seconds."""
    import pandas as pd

    benchmarks = tiny_run / "results" / "benchmarks"
    for rule in ("corpus", "simulate", "load_fmri"):
        assert (benchmarks / f"{rule}.tsv").is_file(), rule
    assert (benchmarks / "train" / "tiny_seed1.tsv").is_file()
    for rule in ("measure", "encode"):
        assert sorted(p.name for p in (benchmarks / rule).iterdir()) == [f"tiny_seed1_steps{s}-{s}.tsv" for s in (0, 1, 40)]
    seconds = pd.read_csv(benchmarks / "measure" / "tiny_seed1_steps40-40.tsv", sep="\t")["s"]
    assert len(seconds) == 1 and 0 < seconds[0] < 600


def test_measure_wrote_activations_and_tasks_of_each_checkpoint(tiny_run):
    from brainphase.io import read_attrs

    results = tiny_run / "results"
    for step in (0, 1, 40):
        chunk = f"steps{step}-{step}"
        activations = read_attrs(results / "activations" / "tiny" / "seed1" / chunk / f"step{step}.h5")
        tasks = read_attrs(results / "tasks" / "tiny" / "seed1" / chunk / f"step{step}.h5")
        assert (activations["stage"], tasks["stage"]) == ("extract", "tasks")
        assert activations["step"] == tasks["step"] == step
        with h5py.File(results / "tasks" / "tiny" / "seed1" / chunk / f"step{step}.h5", "r") as handle:
            assert "heldout_text" in handle["metrics"] and len(handle["metrics"]) > 1  # held-out text + suite


@pytest.mark.slow  # a second run of the tiny workflow: ~75 s on 2 cores
def test_chunked_run_equals_one_checkpoint_per_job(tiny_run, tmp_path):
    """checkpoints_per_job 2 (chunks steps0-1 and steps40-40) with extract.keep false writes the
    same scores, internal and task datasets, bitwise, as the one-checkpoint-per-job run, and
    removes the temporary activation folders."""
    import numpy as np

    config = yaml.safe_load(yaml.safe_dump(TINY))
    config.update(checkpoints_per_job=2, extract=dict(config.get("extract", {}), keep=False))
    result = snakemake(tmp_path, "--cores", "2", config=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert not (tmp_path / "results" / "activations" / "tiny" / "seed1").exists() or not any(
        (tmp_path / "results" / "activations" / "tiny" / "seed1").iterdir())

    def datasets(path):
        found = {}
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return found

    for kind in ("scores", "internal", "tasks"):
        for chunk, step in (("steps0-1", 0), ("steps0-1", 1), ("steps40-40", 40)):
            chunked = datasets(tmp_path / "results" / kind / "tiny" / "seed1" / chunk / f"step{step}.h5")
            single = datasets(tiny_run / "results" / kind / "tiny" / "seed1" / f"steps{step}-{step}" / f"step{step}.h5")
            assert chunked.keys() == single.keys() and chunked, (kind, step)
            for name, values in single.items():
                equal_nan = values.dtype.kind in "fc"
                assert np.array_equal(chunked[name], values, equal_nan=equal_nan), (kind, step, name)


def test_report_builds_after_the_run(tiny_run):
    config = tiny_run / "config.yaml"
    result = snakemake(tiny_run, "--configfile", str(config), "--report", str(tiny_run / "report.html"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tiny_run / "report.html").stat().st_size > 10_000


def test_rerun_is_a_no_op(tiny_run):
    result = snakemake(tiny_run, "-n", "--configfile", str(tiny_run / "config.yaml"))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_sentence_level_dataset_runs_through_the_workflow(tmp_path):
    """fmri.kind sentences: extraction reads the sentence list from responses.h5, encoding
    cross-validates over sentences, and the trajectory and figures are made as for time series."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    words = ["the", "river", "king", "sleeps", "under", "a", "quiet", "moon", "and", "sings"]
    texts = [" ".join(rng.choice(words, size=rng.integers(4, 9))).capitalize() + "." for _ in range(40)]
    root = tmp_path / "sentences"
    root.mkdir()
    pd.DataFrame({"text": texts}).to_csv(root / "sentences.tsv", sep="\t", index=False)
    for sub in ("01", "02"):
        np.save(root / f"sub-{sub}_sentences.npy", rng.standard_normal((len(texts), 6)))
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["fmri"] = {"kind": "sentences", "root": str(root)}
    config["encode"] = {"sentence_folds": 4}
    result = snakemake(tmp_path, "--cores", "2", config=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    with h5py.File(tmp_path / "results" / "scores" / "tiny" / "seed1" / "steps40-40" / "step40.h5", "r") as handle:
        assert handle.attrs["stimulus_kind"] == "sentences"
        assert handle["r"].shape == (3, 2, 6)
    with h5py.File(tmp_path / "results" / "trajectory" / "tiny" / "trajectory.h5", "r") as handle:
        # abilities of a sentence-level run come from the built-in task suite, beside alignment
        assert handle["metrics/blimp_agreement"].attrs["family"] == "formal"
        assert handle["metrics/blimp_agreement/acc"].shape == handle["brain/alignment"].shape
    assert (tmp_path / "results" / "figures" / "tiny" / "alignment.png").is_file()
