# Shared set-up: config validation, the (model, seed, step) plan, input functions.
import os
import re
import shlex
import sys

from brainphase.config import check_config, cli_options, plan_models
from brainphase.errors import InputError
from brainphase.snakemake_fix import fix_single_job_scheduling

# Snakemake 9.10-9.16 starts more jobs than --cores after a lone ready job (src/brainphase/snakemake_fix.py)
fix_single_job_scheduling()

try:
    check_config(config, [str(f) for f in workflow.configfiles], workflow.source_path("../config/schema.yaml"))
    PLANS = plan_models(config, config["results"])
except InputError as exc:
    sys.exit(f"brainphase config error: {exc}")

# Rules call the `brainphase` CLI installed beside this snakemake (e.g. .venv/bin), also when
# that environment is not activated; with --sdm conda the rule's environment comes first.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

R = config["results"]
ENV = "../envs/brainphase.yaml"
SIMULATED = config["fmri"]["kind"] == "simulated"
# sentence-level fMRI: the stimulus is the sentence list stored in responses.h5 (`/sentences/text`),
# which `extract --sentences` reads directly
SENTENCES = config["fmri"]["kind"] == "sentences"
STIMULUS = (
    f"{R}/fmri/responses.h5" if SENTENCES else config["corpus"].get("stimulus") or f"{R}/corpus/stimulus_words.tsv"
)
STIMULUS_OPTION = "--sentences" if SENTENCES else "--stimulus"
FORMATS = config["figures"]["formats"]
# Per-checkpoint files live in one folder per chunk of consecutive checkpoints (config
# checkpoints_per_job; plan.chunks): {R}/{kind}/{model}/seed{seed}/{chunk}/step{step}.h5, where
# {chunk} is steps{first}-{last}. One measure and one encode job per chunk (README, "Running a large study").
FIGURES = ["alignment", "layers", "tasks", "alignment_tasks", "internal", "rois", "brain_maps"]  # = brainphase.figures.FIGURE_NAMES


wildcard_constraints:
    model="|".join(re.escape(name) for name in PLANS),  # names such as pythia-1.4b hold regex characters
    seed=r"\d+",
    chunk=r"steps-?\d+--?\d+",  # -1: a single checkpoint of unknown training step


def chunk_dir(kind, model, seed, chunk):
    """Folder of one chunk's `kind` files (`activations`, `tasks`, `scores`, `internal`)."""
    return f"{R}/{kind}/{model}/seed{seed}/{chunk}"


def chunk_steps(wildcards):
    """The steps of one (model, seed, chunk)."""
    return PLANS[wildcards.model].chunks[int(wildcards.seed)][wildcards.chunk]


def checkpoint_of(model, seed, step):
    """``(source, revision)`` of one (model, seed, step): the `--model` argument (Hub id or folder)
    and its revision (None for a folder)."""
    plan = PLANS[model]
    return plan.source[seed, step], plan.revision[seed, step]


def checkpoint_options(model, seed, step):
    """`--model SOURCE [--revision REV]` plus labels for one (model, seed, step)."""
    source, revision = checkpoint_of(model, seed, step)
    entry = config["models"][model]
    return cli_options({"model": source, "revision": revision, "model_id": model, "seed": seed,
                        "step": step, "tokens_per_step": entry.get("tokens_per_step"),
                        "tokens": entry.get("tokens")})


def each_option(options):
    """One `--each 'OPTIONS'` of a chunk job (brainphase.cli: one run per checkpoint, one process)."""
    return f"--each {shlex.quote(options)}"


def tasks_text(model):
    """Held-out text of task heldout_text of ``model``, or None when it gets none.

    ``tasks.text`` if set; else the corpus's valid.txt for models trained here (the demo), and
    nothing for pretrained models (your own data never pulls in the demo corpus). Every model
    gets a tasks file either way: the built-in task suite needs no text.
    """
    if config["tasks"].get("text"):
        return config["tasks"]["text"]
    return f"{R}/corpus/valid.txt" if PLANS[model].trained else None


def chunk_dirs(kind):
    """Input function: every chunk folder of `kind` of a model (every seed)."""

    def folders(wildcards):
        plan = PLANS[wildcards.model]
        return [chunk_dir(kind, wildcards.model, seed, chunk) for seed in plan.seeds for chunk in plan.chunks[seed]]

    return folders


def per_step_files(kind, model):
    """Every seed's and step's `kind` file of `model`, inside the chunk folders, quoted for a shell."""
    plan = PLANS[model]
    return " ".join(shlex.quote(f"{chunk_dir(kind, model, seed, chunk)}/step{step}.h5")
                    for seed in plan.seeds for chunk, steps in plan.chunks[seed].items() for step in steps)


def all_outputs():
    targets = []
    for model in PLANS:
        targets.append(f"{R}/trajectory/{model}/trajectory.h5")
        targets += [f"{R}/figures/{model}/{name}.{fmt}" for name in FIGURES for fmt in FORMATS]
        targets.append(f"{R}/figures/{model}/alignment_table.tsv")
    return targets + emergence_outputs()  # rules/emergence.smk


def print_summary():
    """What a person reads at the end of a run: alignment, phases with CIs, where the outputs are."""
    from brainphase.phases.cli import summary_text

    for model in PLANS:
        trajectory = f"{R}/trajectory/{model}/trajectory.h5"
        if os.path.exists(trajectory):
            print(summary_text(trajectory, f"{R}/figures/{model}", "make report (or snakemake --report report.html)"))
