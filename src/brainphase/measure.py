"""``brainphase measure``: activations and task metrics of one checkpoint, loaded once.

One job per (model, seed, step) of the workflow (rule ``measure``): the checkpoint is loaded
(and torch imported) once, then

1. the word-level activations of all layers are written to ``--activations-out`` exactly as
   ``brainphase extract`` writes them (:func:`brainphase.activations.extract_activations`,
   root attribute ``stage`` = ``extract``);
2. the task suite is scored and written to ``--tasks-out`` exactly as ``brainphase tasks``
   writes it (:func:`brainphase.tasks.run_tasks`, ``stage`` = ``tasks``).

The extraction options keep the names of ``brainphase extract`` (``--stimulus``,
``--context-tokens``, ``--batch-size``...); the task options carry the prefix ``tasks-``
(``--tasks-text``, ``--tasks-batch-size``...).

Both files are written atomically, and the job writes both or neither: every input (stimulus,
task files, held-out text) is read and checked before the checkpoint is loaded, every task item
is encoded and checked against the model's positions before the extraction starts, and when the
task metrics fail after the activations were written, the activations file is removed before
the error is raised (Snakemake, too, removes the outputs of a failed job; this keeps a
standalone run consistent). Only a hard kill between the two writes can leave the activations
without the tasks file; Snakemake then marks the job incomplete and ``--rerun-incomplete``
runs it again.
"""

from __future__ import annotations

import argparse
import logging
import os

from brainphase.io import provenance, read_nonempty_text

log = logging.getLogger(__name__)

#: prefix of the task options (``--tasks-text`` ...): extraction and tasks both have ``--batch-size``
TASKS_PREFIX = "tasks-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase measure``."""
    from brainphase.activations import add_extract_options
    from brainphase.models.labels import add_checkpoint_arguments
    from brainphase.tasks import add_task_options

    add_checkpoint_arguments(parser)
    add_extract_options(parser)
    parser.add_argument("--activations-out", required=True, help="output activations .h5 (as `brainphase extract --out`)")
    parser.add_argument("--tasks-out", required=True, help="output tasks .h5 (as `brainphase tasks --out`)")
    add_task_options(parser, prefix=TASKS_PREFIX)


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase measure``."""
    from brainphase.activations import extract_from_args, stimulus_from_args
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.models.labels import cli_model_attrs
    from brainphase.tasks import run_tasks, skip_reason, task_options_from_args
    from brainphase.tasks.runner import prepare_task
    from brainphase.tasks.spec import load_suite

    # every input is checked before the (slow) checkpoint load
    task_options = task_options_from_args(args, TASKS_PREFIX)
    specs = load_suite(task_options.suite, task_options.names, with_heldout=bool(task_options.text))
    if task_options.text:
        read_nonempty_text(task_options.text, f"pass the held-out text with --{TASKS_PREFIX}text "
                                              "(e.g. results/corpus/valid.txt)")
    words, stimulus_path, stimulus_kind = stimulus_from_args(args)

    checkpoint = load_checkpoint(args.model, revision=args.revision, device=args.device)
    model_labels = cli_model_attrs(checkpoint.info, args)
    if not skip_reason(checkpoint.info):  # items the tokenizer cannot encode or too long: refused before extracting
        for spec in specs:
            prepare_task(spec, checkpoint.tokenizer, checkpoint.info["max_positions"])
    extract_attrs = provenance("extract", args, [stimulus_path], **model_labels)
    tasks_attrs = provenance("tasks", args, [task_options.text] if task_options.text else [], **model_labels)
    extract_from_args(checkpoint, args, words, stimulus_kind, args.activations_out, extract_attrs)
    try:
        run_tasks(checkpoint, task_options, args.tasks_out, tasks_attrs)
    except BaseException:
        log.error("task metrics failed: removing %s so that the job leaves both outputs or neither",
                  args.activations_out)
        os.unlink(args.activations_out)
        raise
