"""The workflow's plan for pretrained models (dry runs): one local checkpoint without a
convention, and a sentence-level run that never downloads the demo corpus; every checkpoint gets
its task suite in the same job as its activations (rule measure), the held-out-text task only
when `tasks.text` is given."""

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
    assert "--step -1" in stdout and "res/activations/bert/seed0/step-1.h5" in stdout
    assert "Repo id" not in stdout and "convention" not in stdout
    measure = [line for line in stdout.splitlines() if "brainphase measure" in line]
    assert len(measure) == 1 and "--tasks-text" not in measure[0]
    assert "--tasks-out res/tasks/bert/seed0/step-1.h5" in measure[0]
    aggregate = next(line for line in stdout.splitlines() if "brainphase aggregate" in line)
    assert "res/tasks/bert/seed0/step-1.h5" in aggregate


def test_task_text_gives_heldout_text_without_the_demo_corpus(tmp_path):
    text = tmp_path / "held_out.txt"
    text.write_text("Some held-out text for next-token metrics.\n")
    config = sentence_run(tmp_path, text=str(text))
    config["models"]["bert"].update(steps=[143000], tokens=300 * 10**9)  # a labelled final checkpoint
    stdout = dry_run(tmp_path, config)
    assert "measure" in jobs(stdout) and "corpus" not in jobs(stdout)
    measure = next(line for line in stdout.splitlines() if "brainphase measure" in line)
    assert f"--tasks-text {text}" in measure and "--step 143000 --tokens 300000000000" in measure
    assert "--tasks-out res/tasks/bert/seed0/step143000.h5" in measure


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
    attrs = read_attrs(tmp_path / "res" / "activations" / "bert" / "seed0" / "step-1.h5")
    assert (attrs["step"], attrs["tokens"], attrs["seed"], attrs["architecture"]) == (-1, -1, 0, "encoder")
    assert (tmp_path / "res" / "trajectory" / "bert" / "trajectory.h5").is_file()
    assert read_attrs(tmp_path / "res" / "tasks" / "bert" / "seed0" / "step-1.h5")["skipped"].startswith("encoder")
    assert not (tmp_path / "res" / "corpus").exists()
