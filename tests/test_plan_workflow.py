"""The workflow's plan for pretrained models (dry runs): one local checkpoint without a
convention, and a sentence-level run that never downloads the demo corpus; every checkpoint gets
its task suite in the same job as its activations (rule measure), the held-out-text task only
when `tasks.text` is given. The plan at DAG level (dry runs, issue 14): each (model, seed, step)'s
weights loaded in exactly one measure job (one per chunk of checkpoints_per_job steps), encode
checking the activations' checkpoint, extract.keep."""

import re

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def dry_run(workdir: Path, config: dict) -> str:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(path), "-n", "-p"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def sentence_run(tmp_path: Path, **tasks) -> dict:
    model = tmp_path / "my-bert"
    model.mkdir()
    (model / "config.json").write_text("{}")  # one checkpoint folder: no convention, no steps
    (tmp_path / "sentences").mkdir()
    config = {"results": "res", "models": {"bert": {"kind": "pretrained", "source": str(model), "seeds": [0]}},
              "fmri": {"kind": "sentences", "root": str(tmp_path / "sentences")}}
    if tasks:
        config["tasks"] = tasks
    return config


def jobs(stdout: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in stdout.splitlines() if line.startswith("rule ")}


def test_sentence_run_of_a_local_checkpoint_has_no_corpus_and_no_heldout_text(tmp_path):
    stdout = dry_run(tmp_path, sentence_run(tmp_path))
    assert {"load_fmri", "measure", "encode", "aggregate", "phases", "figures", "all"} <= jobs(stdout)
    assert not {"corpus", "train", "extract", "tasks"} & jobs(stdout)
    assert "--step -1" in stdout and "res/activations/bert/seed0/steps-1--1/step-1.h5" in stdout
    assert "Repo id" not in stdout and "convention" not in stdout
    measure = [line for line in stdout.splitlines() if "brainphase measure" in line]
    assert len(measure) == 1 and "--tasks-text" not in measure[0]
    assert "--tasks-out res/tasks/bert/seed0/steps-1--1/step-1.h5" in measure[0]
    aggregate = next(line for line in stdout.splitlines() if "brainphase aggregate" in line)
    assert "res/tasks/bert/seed0/steps-1--1/step-1.h5" in aggregate


def test_task_text_gives_heldout_text_without_the_demo_corpus(tmp_path):
    text = tmp_path / "held_out.txt"
    text.write_text("Some held-out text for next-token metrics.\n")
    config = sentence_run(tmp_path, text=str(text))
    config["models"]["bert"].update(steps=[143000], tokens=300 * 10**9)  # a labelled final checkpoint
    stdout = dry_run(tmp_path, config)
    assert "measure" in jobs(stdout) and "corpus" not in jobs(stdout)
    measure = next(line for line in stdout.splitlines() if "brainphase measure" in line)
    assert f"--tasks-text {text}" in measure and "--step 143000 --tokens 300000000000" in measure
    assert "--tasks-out res/tasks/bert/seed0/steps143000-143000/step143000.h5" in measure


@pytest.mark.slow
def test_one_local_encoder_checkpoint_runs_to_the_figures(tmp_path):
    """A BERT folder (no convention, no steps) on sentence-level data: the workflow finishes, with
    activations labelled step -1 / tokens -1 / seed 0 and no tasks files."""
    import numpy as np
    import pandas as pd

    from _models import build_bert, train_wordpiece_tokenizer
    from brainphase.io import read_attrs

    config = sentence_run(tmp_path)
    model = Path(config["models"]["bert"]["source"])
    (model / "config.json").unlink()
    build_bert(len(train_wordpiece_tokenizer(model))).save_pretrained(model)
    rng = np.random.default_rng(3)
    words = ["the", "river", "king", "sleeps", "under", "a", "quiet", "moon", "and", "sings"]
    texts = [" ".join(rng.choice(words, size=rng.integers(4, 9))).capitalize() + "." for _ in range(40)]
    root = Path(config["fmri"]["root"])
    pd.DataFrame({"text": texts}).to_csv(root / "sentences.tsv", sep="\t", index=False)
    for sub in ("01", "02"):
        np.save(root / f"sub-{sub}_sentences.npy", rng.standard_normal((len(texts), 6)))
    config.update(encode={"sentence_folds": 4}, extract={"device": "cpu"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    attrs = read_attrs(tmp_path / "res" / "activations" / "bert" / "seed0" / "steps-1--1" / "step-1.h5")
    assert (attrs["step"], attrs["tokens"], attrs["seed"], attrs["architecture"]) == (-1, -1, 0, "encoder")
    assert (tmp_path / "res" / "trajectory" / "bert" / "trajectory.h5").is_file()
    assert read_attrs(tmp_path / "res" / "tasks" / "bert" / "seed0" / "steps-1--1" / "step-1.h5")["skipped"].startswith("encoder")
    assert not (tmp_path / "res" / "corpus").exists()


def dry_run_jobs(stdout: str) -> list[dict]:
    """The jobs of a ``snakemake -n -p`` listing: rule, its ``input``/``output``/``wildcards``
    lines (lists of strings) and its shell command."""
    jobs = []
    for line in stdout.splitlines():
        if line.startswith("rule ") and line.endswith(":"):
            jobs.append({"rule": line[5:-1], "input": [], "output": [], "wildcards": [], "shell": ""})
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            if key in ("input", "output", "wildcards"):
                jobs[-1][key] = value.split(", ")
        elif jobs and line.startswith("Shell command: "):
            jobs[-1]["shell"] = line
    return jobs


@pytest.mark.parametrize("checkpoints_per_job", [1, 2])
def test_each_checkpoint_loads_its_weights_in_one_measure_job(tmp_path, checkpoints_per_job):
    """2 models x 2 seeds x 3 steps trained here: each (model, seed, step) is loaded (`--model`)
    in exactly one measure job: 12 jobs of one checkpoint, or 8 of two and one (chunks of
    checkpoints_per_job consecutive steps); the trained-model folders are inputs of measure jobs
    only, and only measure loads weights; encode names the same checkpoint only to check the
    activations' weights hash."""
    from test_workflow import TINY

    config = yaml.safe_load(yaml.safe_dump(TINY))
    tiny = config["models"].pop("tiny")
    config["models"] = {"small-a": dict(tiny, seeds=[1, 2]), "small-b": dict(tiny, seeds=[1, 2])}
    config["checkpoints_per_job"] = checkpoints_per_job
    models = f"{config['results']}/models/"
    jobs = dry_run_jobs(dry_run(tmp_path, config))
    measure = [job for job in jobs if job["rule"] == "measure"]
    loads = [(model, seed, step) for job in measure
             for model, seed, step in re.findall(rf"--model {models}([\w-]+)/seed(\d+)/step(\d+) ", job["shell"])]
    assert len(loads) == len(set(loads)) == 2 * 2 * 3
    assert len(measure) == 2 * 2 * (3 if checkpoints_per_job == 1 else 2)
    for job in jobs:
        inputs = [f for f in job["input"] if f.startswith(models)]
        assert bool(inputs) == (job["rule"] == "measure"), job
        assert ("--model " in job["shell"]) == (job["rule"] == "measure"), job["shell"]
    assert sum(job["rule"] == "train" for job in jobs) == 4
    encode = [job for job in jobs if job["rule"] == "encode"]
    checks = [match for job in encode for match in re.findall(rf"--checkpoint {models}([\w-]+)/seed(\d+)/step(\d+)\b",
                                                              job["shell"])]
    assert len(encode) == len(measure) and sorted(checks) == sorted(loads)


def pythia_config(tmp_path: Path, **extract) -> dict:
    """One Pythia size, 2 seeds x 2 steps by the Pythia naming rule (offline), a BIDS root and word TSV."""
    (tmp_path / "bids").mkdir(exist_ok=True)
    (tmp_path / "words.tsv").write_text("run\tword_index\tword\tonset\toffset\nr1\t0\tw\t0.0\t0.5\n")
    return {"results": "res", "corpus": {"stimulus": str(tmp_path / "words.tsv")},
            "models": {"pythia-70m": {"kind": "pretrained", "convention": "pythia", "seeds": [0, 1], "steps": [0, 512],
                                      "source": {0: "EleutherAI/pythia-70m", 1: "EleutherAI/pythia-70m-seed1"}}},
            "fmri": {"kind": "bids", "root": str(tmp_path / "bids"), "task": "pieman"}, "extract": extract}


def test_encode_checks_the_activations_come_from_the_configured_checkpoint(tmp_path):
    """Each encode job passes, per checkpoint, the checkpoint its measure job loads
    (`--checkpoint SOURCE --checkpoint-revision REV`): brainphase encode refuses activations of
    other weights."""
    jobs = dry_run_jobs(dry_run(tmp_path, pythia_config(tmp_path)))
    measure = {tuple(job["wildcards"]): job["shell"] for job in jobs if job["rule"] == "measure"}
    encode = {tuple(job["wildcards"]): job["shell"] for job in jobs if job["rule"] == "encode"}
    assert measure.keys() == encode.keys() and len(encode) == 4
    for key, command in encode.items():
        seed, step = key[1].split("=")[1], re.fullmatch(r"chunk=steps(\d+)-\d+", key[2])[1]
        source = "EleutherAI/pythia-70m" + ("-seed1" if seed == "1" else "")
        assert f"--model {source} --revision step{step} " in measure[key]
        assert f"--checkpoint {source} --checkpoint-revision step{step}" in command


@pytest.mark.parametrize("keep", [True, False])
def test_extract_keep_false_makes_activations_temporary(tmp_path, keep):
    """extract.keep false: Snakemake lists the activation folders among the temporary outputs it
    removes (`--delete-temp-output -n` names those that exist); kept by default. The option is
    the workflow's: brainphase measure never sees it."""
    config = pythia_config(tmp_path, keep=keep)
    folder = tmp_path / "res" / "activations" / "pythia-70m" / "seed1"
    for step in (0, 512):
        (folder / f"steps{step}-{step}").mkdir(parents=True)
        (folder / f"steps{step}-{step}" / f"step{step}.h5").touch()
    measure = [line for line in dry_run(tmp_path, config).splitlines() if "brainphase measure" in line]
    assert len(measure) == 4 and not any(" --keep" in line or " --no-keep" in line for line in measure)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "config.yaml"), "-n", "--delete-temp-output"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    deleted = {line.split()[-1] for line in (result.stdout + result.stderr).splitlines() if line.startswith("Would delete")}
    expected = set() if keep else {folder / f"steps{step}-{step}" for step in (0, 512)}
    assert {tmp_path / name for name in deleted} == expected  # names relative to the working directory or absolute


def test_slurm_profile_asks_a_gpu_for_measure_only():
    """profiles/slurm: a GPU for the one job per checkpoint that loads weights, CPUs (threads,
    which the SLURM plugin turns into --cpus-per-task) for every other rule, encoding included."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    gpu_rules = {rule for rule, resources in profile["set-resources"].items() if resources.get("gpu")}
    assert gpu_rules == {"measure"} and "gpu" not in profile["default-resources"]
    assert "cpus_per_task" not in profile["default-resources"] and profile["set-threads"]["encode"] > 1


def test_chunked_encode_reads_each_steps_previous_and_final_activations(tmp_path):
    """Chunks of 2 of 3 steps (0, 1 | 40): internal metrics of each step read the previous step's
    activations (same chunk folder for step 1, the previous chunk's for step 40) and the final
    step's, and each chunk's encode job has those folders as inputs."""
    from test_workflow import TINY

    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["checkpoints_per_job"] = 2
    jobs = dry_run_jobs(dry_run(tmp_path, config))
    encode = {job["wildcards"][2]: job for job in jobs if job["rule"] == "encode"}
    assert sorted(encode) == ["chunk=steps0-1", "chunk=steps40-40"]
    folder = "results/activations/tiny/seed1"
    final = f"--final {folder}/steps40-40/step40.h5"
    first, last = encode["chunk=steps0-1"], encode["chunk=steps40-40"]
    assert final in first["shell"] and final in last["shell"]
    assert set(first["input"]) >= {f"{folder}/steps0-1", f"{folder}/steps40-40"}
    assert set(last["input"]) >= {f"{folder}/steps0-1", f"{folder}/steps40-40"}
    internal = re.findall(r"--each '--activations (\S+) --out \S+?( --previous \S+)?'", first["shell"] + last["shell"])
    assert internal == [(f"{folder}/steps0-1/step0.h5", ""),
                        (f"{folder}/steps0-1/step1.h5", f" --previous {folder}/steps0-1/step0.h5"),
                        (f"{folder}/steps40-40/step40.h5", f" --previous {folder}/steps0-1/step1.h5")]
