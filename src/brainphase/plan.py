"""``brainphase plan``: what a workflow config will run and cost, before anything runs.

Reads the config file(s) the way the Snakefile does (:func:`brainphase.config.check_config`
fills the schema defaults, :func:`brainphase.config.plan_models` expands the (model, seed,
step) grid; no Snakemake, no network) and prints

* the jobs per rule, exactly as ``snakemake -n`` counts them (tests/test_plan.py compares);
* GPU hours of the ``measure`` jobs (the only jobs that load weights)::

      hours = sum over checkpoints of (2 * n_params * tokens / throughput + weight_bytes / load_rate) / 3600
      tokens = n_words * context_tokens          (one sliding window per word, an upper bound)
             + task_tokens                        (task suite files / 4 bytes per token, + tasks.max_tokens
                                                   of held-out text when a model gets one)

  ``2 * n_params`` FLOPs per token is the forward pass of a dense transformer (Kaplan et al.
  2020, "Scaling laws", C_forward ~ 2N), attention over the context left out;
* disk of the activation files: ``n_words * (n_layers + 1) * width * bytes`` per checkpoint
  (embeddings + every block, ``extract.storage_dtype``; ``width`` = ``d_model``, or
  ``extract.reduce_dim`` with ``extract.reduce: random_projection``), their total, and the peak:
  the total when the activations are kept (``extract.keep``, default true), else the activation
  files of the :data:`CHUNKS_PER_JOB` ``x checkpoints_per_job x --jobs`` largest checkpoints.
  The rule behind the latter: with ``keep: false`` Snakemake removes a chunk's activation folder
  (``checkpoints_per_job`` consecutive checkpoints of a seed) once every job reading it is done:
  its own encode job, the next chunk's (CKA with the previous step) and, for a seed's final chunk,
  every encode job of that seed (CKA with the final step). Each of the ``--jobs`` job slots works
  on one chunk at a time and holds up to three folders: its chunk's, the previous chunk's and its
  seed's final chunk's. The estimate holds when Snakemake runs a chunk's encode job soon after
  its ``measure`` job (e.g. ``--prioritize`` or enough CPU slots); GPU jobs that
  outpace encoding leave more files waiting, up to the total;
* where a finished run spent its time, when ``{results}/benchmarks`` holds the Snakemake
  ``benchmark:`` files of its rules (:func:`benchmark_summary`): seconds per rule (sum, mean,
  max over its jobs) and the largest resident memory.

Model shapes come from :data:`PYTHIA_SHAPES` (Pythia suite, public constants), from the
``train`` section of models trained here, or from the ``config.json`` of a local checkpoint
folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from brainphase.errors import InputError

#: Pythia sizes: (n_layers, d_model, total parameters). Source: Biderman et al. 2023, "Pythia: A
#: Suite for Analyzing Large Language Models", Table 1, and the ``config.json``
#: (``num_hidden_layers``, ``hidden_size``) of the ``EleutherAI/pythia-{size}`` repositories; the
#: PolyPythias seeds (``-seed{N}``) and ``-deduped`` runs share the shape of their size.
PYTHIA_SHAPES: dict[str, tuple[int, int, int]] = {
    "14m": (6, 128, 14_067_712),
    "31m": (6, 256, 30_494_720),
    "70m": (6, 512, 70_426_624),
    "160m": (12, 768, 162_322_944),
    "410m": (24, 1024, 405_334_016),
    "1b": (16, 2048, 1_011_781_632),
    "1.4b": (24, 2048, 1_414_647_808),
    "2.8b": (32, 2560, 2_775_208_960),
    "6.9b": (32, 4096, 6_857_302_016),
    "12b": (36, 5120, 11_846_072_320),
}
_PYTHIA_ID = re.compile(r"(?:^|/)pythia-(?P<size>\d+(?:\.\d+)?[mb])(?:-deduped)?(?:-seed\d+)?$")

#: Bytes per stored activation value, by ``extract.storage_dtype``.
DTYPE_BYTES = {"float32": 4, "float16": 2}
#: Bytes per weight of a downloaded checkpoint (Pythia revisions are float16 safetensors).
WEIGHT_BYTES = 2
#: English BPE text: about 4 bytes per token (used for the task-suite files only).
BYTES_PER_TOKEN = 4
#: Built-in task suite (the files ``brainphase measure`` scores for every decoder model).
BUILTIN_SUITE = Path(__file__).resolve().parent / "tasks" / "suite"
#: Options of this command (not config keys: they describe the machine, not the analysis).
DEFAULT_TFLOPS = 400.0
DEFAULT_LOAD_GBPS = 1.0
DEFAULT_JOBS = 16
#: Activation folders a job slot holds with ``extract.keep: false``: its chunk's, the previous
#: chunk's and the seed's final chunk's (the internal metrics' CKA reads the previous and the final
#: step); each holds ``checkpoints_per_job`` activation files.
CHUNKS_PER_JOB = 3


@dataclass(frozen=True)
class ModelShape:
    """Shape of one model: ``n_layers`` blocks of width ``d_model``, ``n_params`` weights."""

    n_layers: int
    d_model: int
    n_params: int


def load_config(config_files: list[str | os.PathLike]) -> dict:
    """Merge YAML config files (later ones override, nested maps merged, as Snakemake does),
    validate and fill the schema's defaults."""
    from brainphase.config import check_config

    merged: dict = {}
    for path in config_files:
        if not Path(path).is_file():
            raise InputError(f"config file {path} does not exist; pass --configfile PATH of a workflow config")
        with open(path) as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, dict):
            raise InputError(f"{path}: a config file must hold a YAML mapping, got {type(loaded).__name__}")
        _merge(merged, loaded)
    return check_config(merged, [str(p) for p in config_files])


def _merge(base: dict, update: Mapping) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def job_counts(config: Mapping, plans: Mapping) -> Counter:
    """Jobs per rule of the workflow (``snakemake -n``'s "Job stats"), from the config alone.

    Mirrors the inputs of rules/*.smk: one ``measure`` and one ``encode`` job (encoding and
    internal metrics) per chunk of ``checkpoints_per_job`` consecutive steps of a (model, seed); ``train`` per (model, seed) of trained models; ``aggregate``,
    ``phases``, ``figures`` per model; ``load_fmri`` once; ``simulate`` for simulated fMRI;
    ``corpus`` when some rule reads ``results/corpus`` (no ``corpus.stimulus`` given, simulated
    fMRI, or a model trained here); ``all`` once.
    """
    kind = config["fmri"]["kind"]
    n_chunks = sum(len(chunks) for plan in plans.values() for chunks in plan.chunks.values())
    trained = [plan for plan in plans.values() if plan.trained]
    needs_corpus = (kind != "sentences" and not config["corpus"].get("stimulus")) or kind == "simulated" or bool(trained)
    counts = Counter({"measure": n_chunks, "encode": n_chunks,
                      "aggregate": len(plans), "phases": len(plans), "figures": len(plans), "load_fmri": 1, "all": 1})
    counts["train"] = sum(len(plan.seeds) for plan in trained)
    counts["simulate"] = int(kind == "simulated")
    counts["corpus"] = int(needs_corpus)
    # rules/emergence.smk: both emergence rules run when some model has EMERGENCE_MIN_SEEDS (3) seeds
    counts["emergence"] = counts["emergence_figures"] = int(any(len(plan.seeds) >= 3 for plan in plans.values()))
    return Counter({rule: n for rule, n in counts.items() if n})


def model_shape(config: Mapping, name: str, source: str) -> ModelShape:
    """Shape of model ``name`` (one seed's checkpoint ``source``).

    Raises
    ------
    InputError
        For a Hub model outside :data:`PYTHIA_SHAPES` and no local ``config.json``.
    """
    entry = config["models"][name]
    if entry["kind"] == "train":
        train = entry["train"]
        n_layers, d_model, vocab = train["n_layers"], train["d_model"], train["vocab_size"]
        # GPT-NeoX block: 4 d^2 attention + 8 d^2 MLP; untied input and output embeddings
        return ModelShape(n_layers, d_model, 12 * n_layers * d_model**2 + 2 * vocab * d_model)
    match = _PYTHIA_ID.search(str(source).rstrip("/"))
    if match and match["size"] in PYTHIA_SHAPES:
        return ModelShape(*PYTHIA_SHAPES[match["size"]])
    config_json = Path(os.path.expanduser(str(source))) / "config.json"
    if config_json.is_file():
        hf = json.loads(config_json.read_text())
        n_layers, d_model = int(hf["num_hidden_layers"]), int(hf["hidden_size"])
        vocab = int(hf.get("vocab_size", 0))
        ffn = int(hf.get("intermediate_size", 4 * d_model))
        return ModelShape(n_layers, d_model, n_layers * (4 * d_model**2 + 2 * d_model * ffn) + 2 * vocab * d_model)
    raise InputError(f"config models.{name}: no shape known for {source!r}; brainphase plan knows the Pythia sizes "
                     f"({', '.join(PYTHIA_SHAPES)}) and local checkpoint folders with config.json")


def count_words(config: Mapping, n_words: int | None) -> int:
    """Stimulus words: ``n_words`` if given, else the rows of the ``corpus.stimulus`` word TSV."""
    if n_words is not None:
        return int(n_words)
    stimulus = config["corpus"].get("stimulus")
    if stimulus and Path(stimulus).is_file():
        with open(stimulus, encoding="utf-8") as handle:
            return max(sum(1 for line in handle if line.strip()) - 1, 0)
    raise InputError(f"the stimulus word count is unknown (corpus.stimulus {stimulus or 'not set'} is not a word TSV "
                     "that exists); pass --n-words N")


def task_tokens(config: Mapping, gets_text: bool) -> int:
    """Tokens the task suite feeds one checkpoint (files / :data:`BYTES_PER_TOKEN`, + held-out text)."""
    folders = [BUILTIN_SUITE] + [Path(p) for p in config["tasks"]["suite"]]
    n_bytes = sum(f.stat().st_size for folder in folders if folder.is_dir()
                  for f in folder.iterdir() if f.suffix in (".jsonl", ".json", ".txt"))
    return n_bytes // BYTES_PER_TOKEN + (config["tasks"]["max_tokens"] if gets_text else 0)


def estimate(config: Mapping, plans: Mapping, n_words: int, tflops: float = DEFAULT_TFLOPS,
             load_gbps: float = DEFAULT_LOAD_GBPS, jobs: int = DEFAULT_JOBS) -> dict:
    """GPU hours and disk of a run (formulas in the module docstring).

    Returns
    -------
    dict
        ``models``: per model, ``checkpoints``, ``shape``, ``gpu_hours``, ``activation_bytes``
        (one checkpoint) and ``weight_bytes`` (one checkpoint); totals ``gpu_hours``,
        ``activation_bytes_total``, ``activation_bytes_peak`` and ``keep`` (activations kept).
    """
    from brainphase.reduce import check_reduction, stored_width

    extract = config["extract"]
    context, reduce, reduce_dim = extract["context_tokens"], extract["reduce"], extract["reduce_dim"]
    value_bytes = DTYPE_BYTES[extract["storage_dtype"]]
    keep = bool(extract.get("keep", True))
    models, per_checkpoint = {}, []
    for name, plan in plans.items():
        n_checkpoints = sum(len(steps) for steps in plan.steps.values())
        first = plan.source[next(iter(plan.source))]
        shape = model_shape(config, name, first)
        try:
            check_reduction(reduce, reduce_dim, shape.d_model)
        except InputError as exc:
            raise InputError(f"config models.{name} (width {shape.d_model}): {exc}") from None
        gets_text = bool(config["tasks"].get("text")) or plan.trained
        tokens = n_words * context + task_tokens(config, gets_text)
        seconds = 2 * shape.n_params * tokens / (tflops * 1e12) + shape.n_params * WEIGHT_BYTES / (load_gbps * 1e9)
        activation_bytes = n_words * (shape.n_layers + 1) * stored_width(reduce, reduce_dim, shape.d_model) * value_bytes
        models[name] = {"checkpoints": n_checkpoints, "shape": shape, "tokens": tokens,
                        "gpu_hours": n_checkpoints * seconds / 3600, "activation_bytes": activation_bytes,
                        "weight_bytes": shape.n_params * WEIGHT_BYTES}
        per_checkpoint += [activation_bytes] * n_checkpoints
    total = sum(per_checkpoint)
    files_per_job = CHUNKS_PER_JOB * config["checkpoints_per_job"]
    peak = total if keep else sum(sorted(per_checkpoint, reverse=True)[:files_per_job * jobs])
    return {"models": models, "gpu_hours": sum(m["gpu_hours"] for m in models.values()),
            "activation_bytes_total": total, "activation_bytes_peak": peak, "keep": keep,
            "reduce": reduce, "reduce_dim": reduce_dim}


def benchmark_summary(results: str | os.PathLike) -> dict[str, dict]:
    """Where a finished run spent its time: the Snakemake ``benchmark:`` files under ``{results}/benchmarks``.

    A file ``benchmarks/{rule}.tsv`` or ``benchmarks/{rule}/{job}.tsv`` holds one row per repeat
    of one job (Snakemake's columns ``s``, ``h:m:s``, ``max_rss`` (MB), ...); a job's seconds are
    the mean of its rows.

    Returns
    -------
    dict
        Rule -> ``jobs``, ``sum``, ``mean``, ``max`` (seconds per job) and ``max_rss_mb`` (largest
        resident memory of its jobs, NaN when not measured); empty when there is no such folder.

    Raises
    ------
    InputError
        A benchmark file without the ``s`` column or with a non-numeric ``s`` value.
    """
    import csv
    import math

    folder = Path(results) / "benchmarks"
    jobs: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        relative = path.relative_to(folder)
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        try:
            seconds = [float(row["s"]) for row in rows]
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: not a Snakemake benchmark file (no numeric 's' column); delete it, or re-run "
                             "its rule to rewrite it") from None
        if not seconds:
            continue
        rss = [float(row["max_rss"]) for row in rows if _is_number(row.get("max_rss"))]
        rule = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        jobs.setdefault(rule, []).append((sum(seconds) / len(seconds), max(rss, default=math.nan)))
    summary = {}
    for rule, values in jobs.items():
        seconds = [s for s, _ in values]
        memory = [m for _, m in values if not math.isnan(m)]
        summary[rule] = {"jobs": len(values), "sum": sum(seconds), "mean": sum(seconds) / len(seconds),
                         "max": max(seconds), "max_rss_mb": max(memory, default=math.nan)}
    return summary


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def benchmark_text(summary: Mapping[str, dict], results: str) -> str:
    """The table of :func:`benchmark_summary`, rules by total time, largest first."""
    lines = [f"time spent (Snakemake benchmark files under {results}/benchmarks; seconds per job):",
             f"  {'rule':<12}{'jobs':>7}{'sum s':>12}{'mean s':>10}{'max s':>10}{'max RSS':>11}"]
    for rule, row in sorted(summary.items(), key=lambda item: -item[1]["sum"]):
        rss = "-" if row["max_rss_mb"] != row["max_rss_mb"] else human_bytes(row["max_rss_mb"] * 2**20)
        lines.append(f"  {rule:<12}{row['jobs']:>7,}{row['sum']:>12,.1f}{row['mean']:>10.1f}{row['max']:>10.1f}{rss:>11}")
    total = sum(row["sum"] for row in summary.values())
    lines.append(f"  {'total':<12}{sum(row['jobs'] for row in summary.values()):>7,}{total:>12,.1f}")
    return "\n".join(lines)


def _count(n: int) -> str:
    """``70426624`` -> ``'70.4M'``, ``1414647808`` -> ``'1.41B'``."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: binary units up to PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def plan_text(config: Mapping, plans: Mapping, counts: Counter, est: dict | None, tflops: float,
              load_gbps: float, jobs: int) -> str:
    """The report ``brainphase plan`` prints."""
    lines = [f"results: {config['results']}", "", "jobs per rule (as snakemake -n counts them):"]
    order = ["corpus", "simulate", "load_fmri", "train", "measure", "internal", "encode", "aggregate", "phases",
             "figures", "all"]
    lines += [f"  {rule:<10} {counts[rule]:>8,}" for rule in order if counts.get(rule)]
    lines.append(f"  {'total':<10} {sum(counts.values()):>8,}")
    if est is None:
        return "\n".join(lines)
    lines += ["", f"GPU (measure jobs; {tflops:g} TFLOP/s sustained, weights read at {load_gbps:g} GB/s):",
              f"  {'model':<16}{'ckpts':>7}{'layers':>7}{'d_model':>8}{'params':>9}{'tokens/ckpt':>12}"
              f"{'GPU h':>9}{'act/ckpt':>11}{'weights/ckpt':>13}"]
    for name, m in est["models"].items():
        s = m["shape"]
        lines.append(f"  {name:<16}{m['checkpoints']:>7,}{s.n_layers:>7}{s.d_model:>8}{_count(s.n_params):>9}"
                     f"{m['tokens']:>12,}{m['gpu_hours']:>9.2f}{human_bytes(m['activation_bytes']):>11}"
                     f"{human_bytes(m['weight_bytes']):>13}")
    n_checkpoints = sum(m["checkpoints"] for m in est["models"].values())
    weights = sum(m["checkpoints"] * m["weight_bytes"] for m in est["models"].values())
    lines += [f"  total: {n_checkpoints:,} checkpoints, {est['gpu_hours']:,.1f} GPU hours",
              "", "disk (activations = words x (layers + 1) x "
              + (f"reduce_dim {est['reduce_dim']} (random projection)" if est["reduce"] == "random_projection"
                 else "d_model") + " x bytes per value):",
              f"  activations, all checkpoints: {human_bytes(est['activation_bytes_total'])}"
              + ("" if est["keep"] else "  (written over the run, each removed once the encode jobs reading it are done)"),
              f"  activations, peak:            {human_bytes(est['activation_bytes_peak'])}"
              + ("  (every activation file is kept)" if est["keep"] else
                 f"  ({jobs} jobs in flight x {CHUNKS_PER_JOB} chunks of {config['checkpoints_per_job']} files: "
                 "a job's chunk, the previous chunk, its seed's final chunk)"),
              f"  checkpoint weights, if every revision stays in the HF cache: {human_bytes(weights)}"]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase plan``."""
    parser.add_argument("--configfile", nargs="+", required=True, help="workflow config file(s), merged in order")
    parser.add_argument("--n-words", type=int, help="stimulus words (default: rows of the corpus.stimulus word TSV)")
    parser.add_argument("--tflops", type=float, default=DEFAULT_TFLOPS,
                        help="sustained forward throughput of one GPU in TFLOP/s (H100 bf16 at ~40%% utilisation)")
    parser.add_argument("--load-gbps", type=float, default=DEFAULT_LOAD_GBPS, help="weight loading rate, GB/s")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="measure jobs in flight (peak disk without keep)")
    parser.add_argument("--jobs-only", action="store_true", help="print the job counts only (no stimulus needed)")


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase plan``."""
    from brainphase.config import plan_models

    if args.tflops <= 0 or args.load_gbps <= 0 or args.jobs < 1:
        raise InputError("--tflops and --load-gbps must be > 0 and --jobs >= 1")
    config = load_config(args.configfile)
    plans = plan_models(config, config["results"])
    counts = job_counts(config, plans)
    est = None if args.jobs_only else estimate(config, plans, count_words(config, args.n_words), args.tflops,
                                               args.load_gbps, args.jobs)
    print(plan_text(config, plans, counts, est, args.tflops, args.load_gbps, args.jobs))
    spent = benchmark_summary(config["results"])
    if spent:
        print("\n" + benchmark_text(spent, config["results"]))
