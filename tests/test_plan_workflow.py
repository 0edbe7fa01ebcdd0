"""The workflow's plan for pretrained models (dry runs): one local checkpoint without a
convention, and a sentence-level run that neither downloads the demo corpus nor runs tasks
unless `tasks.text` is given."""

import subprocess
import sys
from pathlib import Path

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


def test_sentence_run_of_a_local_checkpoint_has_no_corpus_and_no_tasks(tmp_path):
    stdout = dry_run(tmp_path, sentence_run(tmp_path))
    assert jobs(stdout) == {"load_fmri", "extract", "encode", "aggregate", "phases", "figures", "all"}
    assert "--step -1" in stdout and "res/activations/bert/seed0/step-1.h5" in stdout
    assert "Repo id" not in stdout and "convention" not in stdout
    aggregate = next(line for line in stdout.splitlines() if "brainphase aggregate" in line)
    assert "res/tasks/" not in aggregate


def test_task_text_gives_tasks_without_the_demo_corpus(tmp_path):
    text = tmp_path / "held_out.txt"
    text.write_text("Some held-out text for next-token metrics.\n")
    stdout = dry_run(tmp_path, sentence_run(tmp_path, text=str(text)))
    assert "tasks" in jobs(stdout) and "corpus" not in jobs(stdout)
    tasks = next(line for line in stdout.splitlines() if "brainphase tasks" in line)
    assert f"--text {text}" in tasks
