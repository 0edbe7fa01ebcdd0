"""Workflow configuration: validation with readable errors, and the run plan.

The Snakefile calls :func:`check_config`, which reports the first schema violation as one
line naming the key, the expected type and the config file, then runs
``snakemake.utils.validate`` to fill the schema's defaults; and :func:`plan_models`, which
turns the ``models`` section into the concrete (model, seed, step) grid and the checkpoint
each one loads. Both are plain Python, tested without running Snakemake.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from brainphase.errors import InputError
from brainphase.models import revisions

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

_JSON_TYPES = {
    dict: "object", list: "array", str: "string", bool: "boolean",
    int: "integer", float: "number", type(None): "null",
}


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def describe_validation_error(error, config_files: list[str]) -> str:
    """Turn a ``jsonschema.ValidationError`` into one line naming key, expectation and file."""
    where = ", ".join(str(f) for f in config_files) or "the config"
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (f"{where}: unknown config key(s) {', '.join(repr(k) for k in extra)} under '{key}'; "
                f"allowed keys: {', '.join(allowed)}")
    if error.validator == "type":
        found = _JSON_TYPES.get(type(error.instance), type(error.instance).__name__)
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where}: config key '{key}' must be of type {expected}, got {found} {error.instance!r}"
    return f"{where}: config key '{key}': {error.message}"


def check_config(config: dict, config_files: list[str], schema_path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """Validate ``config`` against the schema, fill defaults, and return it.

    Raises
    ------
    InputError
        For an unknown key, a wrong type or a value out of range, naming the key, what was
        expected and the config file(s).
    """
    import jsonschema
    from jsonschema import Draft202012Validator

    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise InputError(describe_validation_error(best, config_files))
    from snakemake.utils import validate

    validate(config, str(schema_path), set_default=True)  # fills the schema's defaults
    return config


@dataclass
class ModelPlan:
    """What the workflow runs for one configured model.

    Attributes
    ----------
    name : str
        Config key of the model (used in result paths).
    trained : bool
        True when brainphase trains it (the embedded demo), False for pretrained checkpoints.
    seeds : list of int
    steps : dict
        seed -> sorted list of training steps to analyse.
    revision : dict
        (seed, step) -> revision name passed to ``from_pretrained`` (None for trained/local).
    source : dict
        (seed, step) -> the ``--model`` argument: HF id, or a local folder.
    """

    name: str
    trained: bool
    seeds: list[int]
    steps: dict[int, list[int]] = field(default_factory=dict)
    revision: dict[tuple[int, int], str | None] = field(default_factory=dict)
    source: dict[tuple[int, int], str] = field(default_factory=dict)


def _seed_source(entry: Mapping, seed: int, model: str) -> str:
    source = entry["source"]
    if isinstance(source, Mapping):
        if str(seed) not in {str(k) for k in source}:
            raise InputError(f"config models.{model}.source has no entry for seed {seed}; "
                             f"add '{seed}: <HF id or folder>' or remove the seed from models.{model}.seeds")
        return {str(k): v for k, v in source.items()}[str(seed)]
    return str(source).format(seed=seed)


def plan_models(config: Mapping, results: str) -> dict[str, ModelPlan]:
    """Resolve the ``models`` section into :class:`ModelPlan` objects (one per model).

    Trained models save log-spaced checkpoints under
    ``{results}/models/{model}/seed{seed}/step{step}``. Pretrained models take ``steps``
    (an explicit list, or ``{log: N}`` picked from the revisions that exist, listed through
    the model's revision ``convention``).
    """
    plans: dict[str, ModelPlan] = {}
    for name, entry in config["models"].items():
        seeds = [int(s) for s in entry["seeds"]]
        if entry["kind"] == "train":
            train = entry["train"]
            steps = revisions.log_spaced_steps(train["max_steps"], train["n_checkpoints"])
            plan = ModelPlan(name, True, seeds)
            for seed in seeds:
                plan.steps[seed] = steps
                for step in steps:
                    plan.source[seed, step] = f"{results}/models/{name}/seed{seed}/step{step}"
                    plan.revision[seed, step] = None
        else:
            convention = entry["convention"]
            plan = ModelPlan(name, False, seeds)
            for seed in seeds:
                source = _seed_source(entry, seed, name)
                if entry.get("revisions"):
                    by_step = {revisions.parse_revision(convention, r)[0]: r for r in entry["revisions"]}
                elif isinstance(entry.get("steps"), Mapping):
                    names = revisions.list_revisions(source, convention)
                    available = {revisions.parse_revision(convention, r)[0]: r for r in names}
                    picked = revisions.select_steps(sorted(available), entry["steps"])
                    by_step = {s: available[s] for s in picked}
                elif entry.get("steps"):
                    by_step = {int(s): revisions.revision_name(convention, int(s)) for s in entry["steps"]}
                else:
                    raise InputError(f"config models.{name}: give 'steps' (a list, or {{log: N}}) "
                                     f"or 'revisions' (a list of revision names)")
                steps = sorted(by_step)
                plan.steps[seed] = steps
                for step in steps:
                    if convention == "local":
                        plan.source[seed, step] = str(Path(source) / by_step[step])
                        plan.revision[seed, step] = None
                    else:
                        plan.source[seed, step] = source
                        plan.revision[seed, step] = by_step[step]
        plans[name] = plan
    return plans


def cli_options(section: Mapping[str, Any], exclude: tuple[str, ...] = ()) -> str:
    """Render a config section as ``brainphase`` command-line options.

    ``{"context_tokens": 128, "delays": [1, 2], "detrend": False}`` becomes
    ``--context-tokens 128 --delays 1 2 --no-detrend``: keys map to options by replacing ``_``
    with ``-``; lists give several values; booleans give ``--key`` / ``--no-key``
    (``argparse.BooleanOptionalAction``); ``None`` values and ``exclude``-d keys are left out.
    """
    import shlex

    parts: list[str] = []
    for key, value in section.items():
        if key in exclude or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            if value:
                parts.append(flag + " " + " ".join(shlex.quote(str(v)) for v in value))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)
