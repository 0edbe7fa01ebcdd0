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
# one file per (model, seed, step): written by rule measure, read by rule encode
ACTIVATIONS = f"{R}/activations/{{model}}/seed{{seed}}/step{{step}}.h5"
FIGURES = ["alignment", "layers", "tasks", "alignment_tasks", "internal", "rois", "brain_maps"]  # = brainphase.figures.FIGURE_NAMES


wildcard_constraints:
    model="|".join(re.escape(name) for name in PLANS),  # names such as pythia-1.4b hold regex characters
    seed=r"\d+",
    step=r"-1|\d+",  # -1: a single checkpoint of unknown training step


def checkpoint_of(wildcards):
    """``(source, revision)`` of one (model, seed, step): the `--model` argument (Hub id or folder)
    and its revision (None for a folder)."""
    plan = PLANS[wildcards.model]
    key = int(wildcards.seed), int(wildcards.step)
    return plan.source[key], plan.revision[key]


def checkpoint_options(wildcards):
    """`--model SOURCE [--revision REV]` plus labels for one (model, seed, step)."""
    source, revision = checkpoint_of(wildcards)
    entry = config["models"][wildcards.model]
    return cli_options({"model": source, "revision": revision, "model_id": wildcards.model, "seed": wildcards.seed,
                        "step": wildcards.step, "tokens_per_step": entry.get("tokens_per_step"),
                        "tokens": entry.get("tokens")})


def tasks_text(model):
    """Held-out text of task heldout_text of ``model``, or None when it gets none.

    ``tasks.text`` if set; else the corpus's valid.txt for models trained here (the demo), and
    nothing for pretrained models (your own data never pulls in the demo corpus). Every model
    gets a tasks file either way: the built-in task suite needs no text.
    """
    if config["tasks"].get("text"):
        return config["tasks"]["text"]
    return f"{R}/corpus/valid.txt" if PLANS[model].trained else None


def per_step_files(kind):
    """Input function: every seed's and step's `kind` file of a model (`scores`, `tasks`, ...)."""

    def files(wildcards):
        plan = PLANS[wildcards.model]
        return [f"{R}/{kind}/{wildcards.model}/seed{seed}/step{step}.h5" for seed in plan.seeds for step in plan.steps[seed]]

    return files


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
