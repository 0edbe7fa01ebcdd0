"""``brainphase emergence``: seed distributions, success probability, mirage check, abilities vs loss,
tracking table and sizes collapse of several models' trajectories -> emergence.h5.

Example::

    brainphase emergence --trajectories results/trajectory/a/trajectory.h5 results/trajectory/b/trajectory.h5 \\
        --thresholds induction/acc=0.5 --out results/emergence/emergence.h5

Runs trained on different corpora (separate results folders, e.g. latent-intent epsilon values)
are named with ``--labels "eps=0" "eps=0.25"``, which replace the model names.
"""

from __future__ import annotations

import argparse

from brainphase.config import schema_default
from brainphase.emergence.analysis import Settings
from brainphase.emergence.series import load_series
from brainphase.emergence.write import write_emergence
from brainphase.errors import InputError

_SETTINGS = ("bimodality_alpha", "confidence", "window_decades", "sharp_threshold", "n_bootstrap", "bootstrap_seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trajectories", nargs="+", required=True,
                        help="trajectory.h5 of every model (the size axis, in this order)")
    parser.add_argument("--labels", nargs="+",
                        help="one name per trajectory, replacing the model names (e.g. eps=0 eps=0.25)")
    parser.add_argument("--out", required=True, help="emergence.h5 to write")
    parser.add_argument("--thresholds", nargs="*", default=[], metavar="NAME=VALUE",
                        help="success threshold of a metric, e.g. induction/acc=0.5 alignment=0.05; others: "
                             "midpoint of the first and last checkpoint's seed mean (config/schema.yaml)")
    types = {"n_bootstrap": int, "bootstrap_seed": int}
    for key in _SETTINGS:
        parser.add_argument("--" + key.replace("_", "-"), type=types.get(key, float),
                            default=schema_default(f"emergence.{key}"),
                            help=f"emergence.{key} (config/schema.yaml)")


def parse_thresholds(entries: list[str]) -> dict:
    """``["induction/acc=0.5"]`` -> ``{"induction/acc": 0.5}``."""
    thresholds = {}
    for entry in entries:
        name, sep, value = entry.rpartition("=")
        try:
            thresholds[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(f"--thresholds entry {entry!r} is not NAME=NUMBER (e.g. induction/acc=0.5)")
    return thresholds


def main(args: argparse.Namespace) -> None:
    if args.labels is not None and len(args.labels) != len(args.trajectories):
        raise InputError(f"--labels gives {len(args.labels)} names for {len(args.trajectories)} --trajectories; "
                         "give one label per trajectory")
    labels = args.labels or [None] * len(args.trajectories)
    models = [load_series(path, label) for path, label in zip(args.trajectories, labels)]
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise InputError(f"two trajectories have the same model name ({names}); name them with --labels")
    settings = Settings(thresholds=parse_thresholds(args.thresholds), **{key: getattr(args, key) for key in _SETTINGS})
    write_emergence(args.out, models, settings, vars(args))
