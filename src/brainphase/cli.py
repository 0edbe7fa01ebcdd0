"""The ``brainphase`` command line: one subcommand per pipeline step.

Each subcommand lives in the module that implements the step; that module defines
``add_arguments(parser)`` and ``main(args)``. Only the chosen step's module is imported, so
light steps (``encode``, ``figures``) do not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys

from brainphase import __version__
from brainphase.errors import InputError
from brainphase.logs import log_friendly_stderr

#: subcommand -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("brainphase.stimuli", "prepare the training corpus and the timed stimulus words"),
    "train": ("brainphase.models.train", "train a tiny GPT-NeoX and save log-spaced HF checkpoints"),
    "simulate": ("brainphase.fmri.simulate", "simulate subjects' BOLD as a BIDS-derivatives folder (SIMULATED data)"),
    "load-fmri": ("brainphase.fmri.load", "load preprocessed fMRI with nilearn into responses.h5"),
    "extract": ("brainphase.activations", "word-level activations of all layers of one checkpoint"),
    "measure": ("brainphase.measure", "activations and task metrics of one checkpoint, loaded once (extract + tasks)"),
    "encode": ("brainphase.encoding.cli", "ridge encoding models: held-out r per voxel, layer and subject"),
    "tasks": ("brainphase.tasks.cli", "task suite metrics (lm-eval format tasks, held-out text) of one checkpoint"),
    "internal": ("brainphase.internal.cli", "internal representation metrics (TwoNN, CKA, effective rank, anisotropy) per layer"),
    "aggregate": ("brainphase.phases.aggregate", "collect scores and task metrics over steps into metrics.h5"),
    "phases": ("brainphase.phases.cli", "segment alignment over log tokens and name the phases -> trajectory.h5"),
    "summary": ("brainphase.phases.cli", "print the alignment and phase summary of trajectory.h5 files"),
    "figures": ("brainphase.figures", "draw the trajectory figures (PNG + PDF) from trajectory.h5"),
    "emergence": ("brainphase.emergence.cli", "seed distributions, success probability, mirage check, abilities vs loss of several trajectories -> emergence.h5"),
    "emergence-figures": ("brainphase.figures.emergence", "draw the emergence figures (seeds, sizes, mirage) from emergence.h5"),
    "plan": ("brainphase.plan", "job counts per rule, GPU hours and disk of a workflow config, before anything runs"),
    "verify": ("brainphase.verify", "re-hash the recorded inputs of every .h5 under a folder; list stale outputs (exit 1)"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainphase",
        description="Language-model checkpoints versus fMRI. Run `brainphase COMMAND --help` for a step's options.",
    )
    parser.add_argument("--version", action="version", version=f"brainphase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a program (not called from Python): progress bars in a log file, a line every few s
        log_friendly_stderr()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    logging.basicConfig(
        level=os.environ.get("BRAINPHASE_LOGLEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"brainphase {name}", description=help_text,
                                     epilog=EACH_HELP if name in EACH_COMMANDS else None)
    add_arguments = getattr(module, f"add_{name.replace('-', '_')}_arguments", None) or module.add_arguments
    run = getattr(module, f"run_{name.replace('-', '_')}", None) or module.main
    add_arguments(parser)
    common, each = split_each(argv[1:])
    if each and name not in EACH_COMMANDS:
        parser.error(f"--each is for {', '.join(sorted(EACH_COMMANDS))} (one checkpoint per run)")
    runs = [parser.parse_args(common + shlex.split(options)) for options in each] or [parser.parse_args(common)]
    try:
        for args in runs:
            run(args)
    except InputError as exc:
        print(f"brainphase {name}: error: {exc}", file=sys.stderr)
        return 2
    return 0


#: steps that handle one checkpoint per run and accept ``--each`` (a workflow chunk of checkpoints)
EACH_COMMANDS = frozenset({"measure", "encode", "internal"})

EACH_HELP = (
    "--each 'OPTIONS' (repeatable): run this step once per --each, in one process, with the other "
    "options plus OPTIONS (e.g. one checkpoint's --model/--revision/--step and output files). The "
    "workflow runs a chunk of checkpoints (config checkpoints_per_job) this way: imports and the "
    "shared inputs are paid once per job; each run still loads its checkpoint once and writes its "
    "own files atomically, and the first failure stops the job."
)


def split_each(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its ``--each OPTIONS`` pairs, and the OPTIONS strings in order.

    Raises
    ------
    SystemExit
        For a ``--each`` without a value.
    """
    common, each = [], []
    position = 0
    while position < len(argv):
        token = argv[position]
        if token == "--each":
            if position + 1 >= len(argv):
                sys.exit("brainphase: --each needs a value: the options of one run, quoted")
            each.append(argv[position + 1])
            position += 2
            continue
        if token.startswith("--each="):
            each.append(token[len("--each="):])
        else:
            common.append(token)
        position += 1
    return common, each


if __name__ == "__main__":
    sys.exit(main())
