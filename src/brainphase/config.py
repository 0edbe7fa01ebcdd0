"""Workflow configuration: validation with readable errors, and the run plan.

The Snakefile calls :func:`check_config`, which reports the first schema violation as one
line naming the key, the expected type and the config file, then runs
``snakemake.utils.validate`` to fill the schema's defaults; and :func:`plan_models`, which
turns the ``models`` section into the concrete (model, seed, step) grid and the checkpoint
each one loads. Both are plain Python, tested without running Snakemake.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from functools import lru_cache
from typing import Any, Mapping

import yaml

from brainphase.errors import InputError
from brainphase.models import revisions

#: The schema, shipped inside the package: ``src/brainphase/schema.yaml`` is a symlink to
#: ``config/schema.yaml`` that setuptools packages as a real file (``package-data`` in
#: pyproject.toml), so editable and non-editable installs read the same defaults.
SCHEMA_PATH = Path(__file__).resolve().with_name("schema.yaml")

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
    if error.validator == "not" and "description" in error.schema:  # a removed key; its description names the new one
        return f"{where}: config key '{key}' {' '.join(error.schema['description'].split())}"
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


@lru_cache(maxsize=None)
def _schema(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def schema_default(key: str, schema_path: str | os.PathLike = SCHEMA_PATH):
    """The default of one config key, as stated in the schema (the single source of defaults).

    Parameters
    ----------
    key : str
        Dotted key path, e.g. ``"extract.context_tokens"``; ``*`` stands for a name under a
        map of user-named entries, e.g. ``"models.*.train.lr"``.

    Raises
    ------
    KeyError
        The schema has no such key, or states no default for it (a programming error: the
        CLI asks only for keys that exist).
    """
    node = _schema(str(schema_path))
    for part in key.split("."):
        if part == "*":
            node = node.get("additionalProperties")
        else:
            node = node.get("properties", {}).get(part)
        if not isinstance(node, dict):
            raise KeyError(f"{schema_path}: no config key {key!r}")
    if "default" not in node:
        raise KeyError(f"{schema_path}: config key {key!r} has no default")
    return copy.deepcopy(node["default"])


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
    chunks : dict
        seed -> {chunk name: steps}: the consecutive steps one ``measure`` job and one ``encode``
        job handle (config ``checkpoints_per_job``), in step order; names from :func:`chunk_name`.
    """

    name: str
    trained: bool
    seeds: list[int]
    steps: dict[int, list[int]] = field(default_factory=dict)
    revision: dict[tuple[int, int], str | None] = field(default_factory=dict)
    source: dict[tuple[int, int], str] = field(default_factory=dict)
    chunks: dict[int, dict[str, list[int]]] = field(default_factory=dict)


def chunk_name(steps: list[int]) -> str:
    """Folder name of a chunk of consecutive steps: ``steps{first}-{last}`` (``steps16-16`` for one)."""
    return f"steps{steps[0]}-{steps[-1]}"


def _split_chunks(plan: ModelPlan, checkpoints_per_job: int) -> None:
    """Fill ``plan.chunks``: each seed's steps in consecutive groups of ``checkpoints_per_job``
    (the last group may be shorter)."""
    for seed in plan.seeds:
        steps = plan.steps[seed]
        groups = [steps[start:start + checkpoints_per_job] for start in range(0, len(steps), checkpoints_per_job)]
        plan.chunks[seed] = {chunk_name(group): group for group in groups}


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
    ``{results}/models/{model}/seed{seed}/step{step}``. Pretrained models: see
    :func:`_pretrained_checkpoints` (a series named by a revision ``convention``, a folder of
    ``step{N}/`` sub-folders, or one checkpoint).
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
            plan = ModelPlan(name, False, seeds)
            for seed in seeds:
                checkpoints = _pretrained_checkpoints(entry, _seed_source(entry, seed, name), name)
                if entry.get("tokens") is not None and len(checkpoints) > 1:
                    raise InputError(f"config models.{name}.tokens labels a single checkpoint, but {len(checkpoints)} "
                                     f"are planned; use models.{name}.tokens_per_step for a series")
                plan.steps[seed] = sorted(checkpoints)
                for step, (source, revision) in checkpoints.items():
                    plan.source[seed, step] = source
                    plan.revision[seed, step] = revision
        _split_chunks(plan, config["checkpoints_per_job"])
        plans[name] = plan
    return plans


#: A Hugging Face repository id: ``name`` or ``owner/name``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local_source(source: str) -> bool:
    """True when ``source`` names a local folder (it exists, or it cannot be a Hub repository id:
    an absolute or ``./``, ``../``, ``~`` path, or more than one ``/``)."""
    return os.path.exists(os.path.expanduser(source)) or _HUB_ID.match(source) is None


def _single_step(entry: Mapping, name: str, what: str) -> int:
    """Step label of a single checkpoint: ``steps: [N]`` if given, else unknown (-1)."""
    steps = entry.get("steps")
    if steps is None:
        return revisions.UNKNOWN_STEP
    if not isinstance(steps, list) or len(steps) != 1:
        raise InputError(f"config models.{name}.steps: {what} is one checkpoint; give its step as a one-element "
                         f"list (steps: [N]) or leave steps out (step unknown, labelled {revisions.UNKNOWN_STEP})")
    return int(steps[0])


def _pretrained_checkpoints(entry: Mapping, source: str, name: str) -> dict[int, tuple[str, str | None]]:
    """``{step: (--model source, --revision)}`` of one seed of a pretrained model.

    * ``source`` is a checkpoint folder (it holds ``config.json``): one checkpoint, step from
      ``steps: [N]``, else from its ``brainphase_checkpoint.json``, else unknown
      (:data:`~brainphase.models.revisions.UNKNOWN_STEP`); no ``convention`` needed.
    * ``source`` is another local folder: its ``step{N}/`` sub-folders (``convention: local``,
      the default for a folder), chosen by ``steps`` or ``revisions``.
    * ``source`` is a Hub id: ``revisions`` (names of any convention, or one name without a
      step such as ``main``), or ``steps`` turned into names by ``convention`` (required
      then), or, with neither, its ``main`` revision as one checkpoint.
    """
    convention = entry.get("convention")
    steps, names = entry.get("steps"), entry.get("revisions")
    where = f"config models.{name}"
    if is_local_source(source):
        folder = Path(os.path.expanduser(source))
        if not folder.is_dir():
            raise InputError(f"{where}.source: folder {source} does not exist (a local path, not a Hugging Face id)")
        if convention not in (None, "local"):
            raise InputError(f"{where}.convention: {convention!r} names Hub revisions, but {source} is a local "
                             "folder; leave convention out (or 'local' for a folder of step{N}/ sub-folders)")
        if (folder / "config.json").is_file():
            if names:
                raise InputError(f"{where}.revisions: {source} is one checkpoint folder (it has config.json); "
                                 "remove revisions")
            step = _single_step(entry, name, f"folder {source}")
            meta_step = _meta_step(folder)
            if steps is None and meta_step is not None:
                step = meta_step
            return {step: (str(folder), None)}
        if names:
            by_step = {revisions.parse_revision("local", r)[0]: r for r in names}
        elif isinstance(steps, Mapping):
            available = revisions.list_revisions(folder, "local")
            picked = revisions.select_steps([revisions.parse_revision("local", r)[0] for r in available], steps)
            by_step = {s: revisions.revision_name("local", s) for s in picked}
        elif steps:
            by_step = {int(s): revisions.revision_name("local", int(s)) for s in steps}
        else:
            raise InputError(f"{where}: {source} has no config.json; give 'steps' (a list, or {{log: N}}) or "
                             "'revisions' to pick its step{N}/ sub-folders")
        missing = [r for r in by_step.values() if not (folder / r / "config.json").is_file()]
        if missing:
            available = sorted(p.name for p in folder.iterdir() if (p / "config.json").is_file())
            raise InputError(f"{where}: no checkpoint folder {', '.join(str(folder / r) for r in missing)} "
                             f"(with config.json); available: {', '.join(available) or 'none'}")
        return {s: (str(folder / r), None) for s, r in by_step.items()}
    if names:
        parsed = {r: _revision_step(convention, r) for r in names}
        if len(names) == 1 and parsed[names[0]] is None:
            return {_single_step(entry, name, f"revision {names[0]!r}"): (source, names[0])}
        stepless = [r for r, s in parsed.items() if s is None]
        if stepless:
            raise InputError(f"{where}.revisions: {', '.join(map(repr, stepless))} carry no training step, so "
                             f"{len(names)} revisions cannot be ordered; name them by a convention "
                             f"({', '.join(revisions.CONVENTIONS)}) or analyse one revision per model")
        return {s: (source, r) for r, s in parsed.items()}
    if steps is None:
        return {revisions.UNKNOWN_STEP: (source, "main")}
    if convention is None:
        raise InputError(f"{where}.convention is required to turn steps into revision names of the Hugging Face "
                         f"repository {source!r}: one of {', '.join(revisions.CONVENTIONS)}; or list "
                         f"{where}.revisions")
    if isinstance(steps, Mapping):
        available = {revisions.parse_revision(convention, r)[0]: r for r in revisions.list_revisions(source, convention)}
        return {s: (source, available[s]) for s in revisions.select_steps(sorted(available), steps)}
    return {int(s): (source, revisions.revision_name(convention, int(s))) for s in steps}


def _revision_step(convention: str | None, name: str) -> int | None:
    """Training step named by a revision (its ``convention``, else any), None if it names none."""
    if convention is not None and convention != "local":
        try:
            return revisions.parse_revision(convention, name)[0]
        except InputError:
            pass
    return revisions.infer_revision(name)[0]


def _meta_step(folder: Path) -> int | None:
    path = folder / revisions.CHECKPOINT_META
    if not path.is_file():
        return None
    try:
        step = json.loads(path.read_text()).get("step")
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run `brainphase train` or delete the file") from exc
    return None if step is None else int(step)


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
