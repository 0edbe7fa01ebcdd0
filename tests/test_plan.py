"""brainphase plan: job counts equal snakemake's dry run, disk and GPU formulas on known cases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from brainphase import plan
from brainphase.cli import main as cli_main
from brainphase.config import plan_models
from brainphase.errors import InputError

ROOT = Path(__file__).resolve().parents[1]

#: Public vocabulary sizes of the Pythia checkpoints (``vocab_size`` in their config.json)
PYTHIA_VOCAB = {"14m": 50304, "31m": 50304, "70m": 50304, "160m": 50304, "410m": 50304, "1b": 50304,
                "1.4b": 50304, "2.8b": 50304, "6.9b": 50432, "12b": 50688}


def dry_run_counts(configfiles: list[Path], workdir: Path) -> dict[str, int]:
    """Job counts per rule from ``snakemake -n`` ("Job stats" table)."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "-s", str(ROOT / "Snakefile"),
         "-d", str(workdir), "--configfile", *map(str, configfiles)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("Job stats:")[1]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    assert counts.pop("total") == sum(counts.values())
    return counts


def pretrained_config(tmp_path: Path) -> Path:
    """Two Pythia sizes, seeds and steps by the Pythia naming rule, a BIDS root and word TSV that exist."""
    (tmp_path / "bids").mkdir()
    words = tmp_path / "words.tsv"
    words.write_text("run\tword_index\tword\tonset\toffset\n" + "".join(f"r1\t{i}\tw{i}\t{i}.0\t{i}.5\n" for i in range(40)))
    config = {
        "results": str(tmp_path / "results"),
        "corpus": {"source": "shakespeare", "stimulus": str(words)},
        "models": {
            "pythia-70m": {"kind": "pretrained", "convention": "pythia", "seeds": [0, 1, 2],
                           "source": {0: "EleutherAI/pythia-70m", 1: "EleutherAI/pythia-70m-seed1",
                                      2: "EleutherAI/pythia-70m-seed2"},
                           "steps": [0, 1, 512, 143000], "tokens_per_step": 2097152},
            "pythia-1.4b": {"kind": "pretrained", "convention": "pythia", "seeds": [0],
                            "source": "EleutherAI/pythia-1.4b", "steps": [0, 1000], "tokens_per_step": 2097152},
        },
        "fmri": {"kind": "bids", "root": str(tmp_path / "bids"), "task": "pieman"},
        "extract": {"storage_dtype": "float16"},
    }
    path = tmp_path / "pretrained.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_counts_equal_dry_run_pretrained(tmp_path):
    path = pretrained_config(tmp_path)
    config = plan.load_config([path])
    counts = plan.job_counts(config, plan_models(config, config["results"]))
    assert counts["measure"] == 3 * 4 + 2
    assert dict(counts) == dry_run_counts([path], tmp_path / "work")


def test_counts_equal_dry_run_chunked(tmp_path):
    """checkpoints_per_job: 3 groups each seed's steps: 4 steps -> 2 jobs (3 + 1), 2 steps -> 1."""
    path = pretrained_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["checkpoints_per_job"] = 3
    path.write_text(yaml.safe_dump(config))
    config = plan.load_config([path])
    counts = plan.job_counts(config, plan_models(config, config["results"]))
    assert counts["measure"] == counts["encode"] == 3 * 2 + 1
    assert dict(counts) == dry_run_counts([path], tmp_path / "work")


def test_counts_equal_dry_run_demo(tmp_path):
    """The embedded demo: trained models, simulated fMRI, the corpus rule."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"results": str(tmp_path / "results")}))
    files = [ROOT / "config" / "config.yaml", overlay]
    config = plan.load_config(files)
    counts = plan.job_counts(config, plan_models(config, config["results"]))
    assert counts["train"] >= 1 and counts["simulate"] == 1 and counts["corpus"] == 1
    assert dict(counts) == dry_run_counts(files, tmp_path / "work")


@pytest.mark.parametrize("size", list(plan.PYTHIA_SHAPES))
def test_pythia_parameter_counts(size):
    """Table entries equal GPT-NeoX's exact count: untied embeddings 2Vd, per block 12d^2 + 13d
    (weights and biases of QKV, output, MLP, two layer norms), final layer norm 2d."""
    n_layers, d_model, n_params = plan.PYTHIA_SHAPES[size]
    vocab = PYTHIA_VOCAB[size]
    assert n_params == 2 * vocab * d_model + n_layers * (12 * d_model**2 + 13 * d_model) + 2 * d_model


def test_shape_from_source_names():
    config = {"models": {"m": {"kind": "pretrained"}}}
    assert plan.model_shape(config, "m", "EleutherAI/pythia-6.9b-seed3") == plan.ModelShape(*plan.PYTHIA_SHAPES["6.9b"])
    assert plan.model_shape(config, "m", "EleutherAI/pythia-410m-deduped").d_model == 1024
    with pytest.raises(InputError, match="no shape known"):
        plan.model_shape(config, "m", "gpt2")


@pytest.mark.slow  # importing torch and transformers: ~30 s on a busy 2-core machine
def test_trained_shape_matches_gpt_neox():
    """The demo model's parameter estimate (12 L d^2 + 2 V d) is within 2 % of the real model."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    train = {"n_layers": 4, "d_model": 64, "n_heads": 4, "vocab_size": 2048}
    shape = plan.model_shape({"models": {"m": {"kind": "train", "train": train}}}, "m", "unused")
    model = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=2048, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256))
    real = sum(p.numel() for p in model.parameters())
    assert shape.n_params == pytest.approx(real, rel=0.02)


def test_disk_and_gpu_hours_known_case(tmp_path):
    """70m: 6 blocks of width 512, 40 words, float16: 40 x 7 x 512 x 2 bytes per checkpoint."""
    config = plan.load_config([pretrained_config(tmp_path)])
    plans = plan_models(config, config["results"])
    est = plan.estimate(config, plans, plan.count_words(config, None), tflops=100.0, load_gbps=2.0, jobs=3)
    small, large = est["models"]["pythia-70m"], est["models"]["pythia-1.4b"]
    assert small["activation_bytes"] == 40 * 7 * 512 * 2
    assert large["activation_bytes"] == 40 * 25 * 2048 * 2
    assert est["activation_bytes_total"] == 12 * 40 * 7 * 512 * 2 + 2 * 40 * 25 * 2048 * 2
    assert est["activation_bytes_peak"] == est["activation_bytes_total"]  # kept (no extract.keep: false)
    tokens = 40 * config["extract"]["context_tokens"] + plan.task_tokens(config, gets_text=False)
    assert small["tokens"] == tokens
    seconds = 2 * 70_426_624 * tokens / 100e12 + 70_426_624 * 2 / 2e9
    assert small["gpu_hours"] == pytest.approx(12 * seconds / 3600, rel=1e-12)


def test_peak_without_keep(tmp_path):
    config = plan.load_config([pretrained_config(tmp_path)])
    config["extract"]["keep"] = False
    est = plan.estimate(config, plan_models(config, config["results"]), 40, jobs=1)
    # one job slot holds 3 files (its checkpoint, the previous step, the final step): the three largest,
    # both of pythia-1.4b and one of pythia-70m
    assert est["activation_bytes_peak"] == 2 * 40 * 25 * 2048 * 2 + 40 * 7 * 512 * 2
    est = plan.estimate(config, plan_models(config, config["results"]), 40, jobs=2)
    assert est["activation_bytes_peak"] == 2 * 40 * 25 * 2048 * 2 + 4 * 40 * 7 * 512 * 2
    # chunks of 2 checkpoints: a slot holds 3 folders of 2 files
    config["checkpoints_per_job"] = 2
    est = plan.estimate(config, plan_models(config, config["results"]), 40, jobs=1)
    assert est["activation_bytes_peak"] == 2 * 40 * 25 * 2048 * 2 + 4 * 40 * 7 * 512 * 2


def test_cli_cluster_config(capsys):
    """The 12,320-checkpoint config plans offline: 8 sizes x 10 seeds x 154 steps."""
    code = cli_main(["plan", "--configfile", str(ROOT / "config" / "cluster_scale.yaml"), "--n-words", "1000"])
    out = capsys.readouterr().out
    assert code == 0
    # checkpoints_per_job: 4 -> ceil(154 / 4) = 39 chunks per (size, seed)
    assert re.search(r"measure\s+3,120", out) and re.search(r"encode\s+3,120", out) and "12,320 checkpoints" in out


def test_cli_needs_word_count(capsys):
    code = cli_main(["plan", "--configfile", str(ROOT / "config" / "cluster_scale.yaml")])
    assert code == 2 and "--n-words" in capsys.readouterr().err


def test_reduced_storage_and_its_limit(tmp_path):
    """extract.reduce: random_projection stores reduce_dim columns per layer instead of d_model."""
    config = plan.load_config([pretrained_config(tmp_path)])
    config["extract"].update(reduce="random_projection", reduce_dim=256)
    est = plan.estimate(config, plan_models(config, config["results"]), 40, jobs=3)
    assert est["models"]["pythia-70m"]["activation_bytes"] == 40 * 7 * 256 * 2
    assert est["models"]["pythia-1.4b"]["activation_bytes"] == 40 * 25 * 256 * 2
    assert est["activation_bytes_total"] == 12 * 40 * 7 * 256 * 2 + 2 * 40 * 25 * 256 * 2
    text = plan.plan_text(config, plan_models(config, config["results"]), plan.Counter(), est, 1.0, 1.0, 3)
    assert "reduce_dim 256 (random projection)" in text
    config["extract"]["reduce_dim"] = 512  # pythia-70m is 512 wide: nothing to reduce
    with pytest.raises(InputError, match=r"models.pythia-70m \(width 512\).*reduce_dim must lie in 1..511"):
        plan.estimate(config, plan_models(config, config["results"]), 40)
    config["extract"]["reduce"] = "none"  # reduce_dim is ignored without a reduction
    assert plan.estimate(config, plan_models(config, config["results"]), 40)["models"]["pythia-70m"][
        "activation_bytes"] == 40 * 7 * 512 * 2


def _benchmark(path: Path, seconds: list[float], rss: list[str]) -> None:
    """A Snakemake benchmark file: one row per repeat."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    path.write_text(header + "".join(f"{s}\t0:00:00\t{m}\t1\t1\t1\t0\t0\t0\t{s}\n" for s, m in zip(seconds, rss)))


def test_time_spent_from_benchmark_files(tmp_path, capsys):
    bench = tmp_path / "results" / "benchmarks"
    _benchmark(bench / "measure" / "m_seed0_step0.tsv", [10.0], ["500.0"])
    _benchmark(bench / "measure" / "m_seed0_step1.tsv", [30.0], ["700.0"])
    _benchmark(bench / "encode" / "m_seed0_step0.tsv", [4.0, 6.0], ["100", "120"])  # two repeats: mean 5 s
    _benchmark(bench / "encode" / "m_seed0_step1.tsv", [7.0], ["NA"])
    _benchmark(bench / "load_fmri.tsv", [2.5], ["-"])
    summary = plan.benchmark_summary(tmp_path / "results")
    assert summary["measure"] == {"jobs": 2, "sum": 40.0, "mean": 20.0, "max": 30.0, "max_rss_mb": 700.0}
    assert {k: summary["encode"][k] for k in ("jobs", "sum", "mean", "max", "max_rss_mb")} == {
        "jobs": 2, "sum": 12.0, "mean": 6.0, "max": 7.0, "max_rss_mb": 120.0}
    assert summary["load_fmri"]["jobs"] == 1 and np.isnan(summary["load_fmri"]["max_rss_mb"])
    assert plan.benchmark_summary(tmp_path / "nothing") == {}

    config = yaml.safe_load(pretrained_config(tmp_path).read_text())
    assert config["results"] == str(tmp_path / "results")
    assert cli_main(["plan", "--configfile", str(tmp_path / "pretrained.yaml"), "--jobs-only"]) == 0
    out = capsys.readouterr().out
    lines = out.split("time spent")[1].splitlines()
    assert re.search(r"measure\s+2\s+40\.0\s+20\.0\s+30\.0\s+700\.0 MiB", lines[2])  # largest total first
    assert re.search(r"encode\s+2\s+12\.0\s+6\.0\s+7\.0\s+120\.0 MiB", lines[3])
    assert re.search(r"total\s+5\s+54\.5", out)

    (bench / "encode" / "broken.tsv").write_text("not a benchmark\n1\n")
    with pytest.raises(InputError, match="broken.tsv: not a Snakemake benchmark file"):
        plan.benchmark_summary(tmp_path / "results")
