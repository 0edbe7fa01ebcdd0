"""Task files in the lm-evaluation-harness format: load, validate, render items.

A task is one YAML file plus a JSONL data file next to it (lm-eval 0.4 task format, so
``lm_eval --include_path DIR`` runs the same folder unchanged)::

    task: brainphase_induction        # brainphase's short name drops the "brainphase_" prefix
    dataset_path: json
    dataset_kwargs: {data_files: {test: induction.jsonl}}   # relative to the YAML file
    test_split: test
    output_type: loglikelihood        # | multiple_choice | generate_until
    doc_to_text: "{{context}}"
    doc_to_target: "{{target}}"       # multiple_choice: an int, or a template giving an index
    doc_to_choice: "{{choices}}"      # multiple_choice only
    generation_kwargs: {until: ["\\n"], max_gen_toks: 8}     # generate_until only
    metadata: {version: 1.0, family: induction}

``doc_to_*`` are rendered as lm-eval does: a plain column name gives that column, any other
string is a jinja2 template rendered with the item's columns, an int is taken as is; a
rendered choice list is parsed with :func:`ast.literal_eval`; a target that renders to digits
is an index for multiple-choice tasks. ``target_delimiter`` (default ``" "``) is put before
every choice of a multiple-choice task, not before a log-likelihood target (lm-eval's
``construct_requests``).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
from pathlib import Path

from brainphase.errors import InputError

#: Folder of the built-in suite, shipped inside the package.
SUITE_DIR = Path(__file__).parent / "suite"
#: lm-eval task names carry this prefix; brainphase's short task names drop it.
PREFIX = "brainphase_"
OUTPUT_TYPES = ("loglikelihood", "multiple_choice", "generate_until")
FAMILIES = ("next_token", "induction", "formal", "pattern", "arithmetic", "knowledge", "latent_intent")
#: Name of the held-out-text task (family next_token), present when a text is given.
HELDOUT_TASK = "heldout_text"
#: lm-eval fields that change prompts, items or scoring and that brainphase does not implement.
_UNSUPPORTED = ("description", "fewshot_config", "process_docs", "process_results", "filter_list", "use_prompt",
                "doc_to_image", "doc_to_audio", "multiple_input")
_REQUIRED = ("task", "dataset_path", "dataset_kwargs", "test_split", "output_type", "doc_to_text", "doc_to_target",
             "metadata")


@dataclasses.dataclass(frozen=True)
class TaskItem:
    """One rendered item.

    Attributes
    ----------
    context : str
    continuations : tuple of str
        Log-likelihood: the target; multiple choice: the choices with the target delimiter
        prepended; generation: the target (for its log-probability).
    choice_texts : tuple of str
        Multiple choice: the choices without delimiter (their lengths define ``acc_norm``).
    gold : int
        Index of the correct continuation (0 unless multiple choice).
    target : str
        The target text (generation: compared with the generated text).
    """

    context: str
    continuations: tuple[str, ...]
    choice_texts: tuple[str, ...]
    gold: int
    target: str


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A validated task file and its rendered items."""

    name: str
    family: str
    version: str
    output_type: str
    source: Path
    data_path: Path
    items: tuple[TaskItem, ...]
    until: tuple[str, ...] = ()
    max_gen_toks: int = 0


def _field(config: dict, key: str, path: Path, kinds, what: str):
    if key not in config:
        raise InputError(f"{path}: missing field {key!r} ({what})")
    value = config[key]
    if not isinstance(value, kinds):
        raise InputError(f"{path}: field {key!r} must be {what}, got {value!r}")
    return value


def _renderer(template, path: Path, key: str):
    """A function doc -> value for one ``doc_to_*`` field (lm-eval's semantics)."""
    if isinstance(template, int) and not isinstance(template, bool):
        return lambda doc: template
    if isinstance(template, list):
        return lambda doc: list(template)
    if not isinstance(template, str):
        raise InputError(f"{path}: field {key!r} must be a column name, a jinja2 template or an int, got {template!r}")
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        compiled = environment.from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise InputError(f"{path}: field {key!r}: bad jinja2 template {template!r}: {error}") from None

    def render(doc: dict):
        if template in doc:
            return doc[template]
        try:
            return compiled.render(**doc)
        except jinja2.UndefinedError as error:
            raise InputError(f"{path}: field {key!r}: {error} (columns: {sorted(doc)})") from None

    return render


def _read_docs(path: Path, config: dict) -> tuple[Path, list[dict]]:
    files = _field(config, "dataset_kwargs", path, dict, "a mapping with data_files")
    split = _field(config, "test_split", path, str, "the split name, e.g. test")
    data_files = files.get("data_files")
    if not isinstance(data_files, dict) or split not in data_files:
        raise InputError(f"{path}: field 'dataset_kwargs.data_files' must map the test_split {split!r} to a JSONL file")
    data_path = path.parent / str(data_files[split])
    if config["dataset_path"] != "json":
        raise InputError(f"{path}: field 'dataset_path' must be 'json' (local JSONL data), got {config['dataset_path']!r}")
    if not data_path.is_file():
        raise InputError(f"{path}: data file {data_path} (field 'dataset_kwargs.data_files.{split}') not found")
    docs = []
    for line_number, line in enumerate(data_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{data_path}:{line_number}: not JSON: {error}") from None
        if not isinstance(doc, dict):
            raise InputError(f"{data_path}:{line_number}: each line must be a JSON object")
        docs.append(doc)
    if not docs:
        raise InputError(f"{data_path}: no items")
    return data_path, docs


def _render_item(config: dict, path: Path, index: int, doc: dict, renderers: dict) -> TaskItem:
    where = f"{path} item {index}"
    context = renderers["doc_to_text"](doc)
    if not isinstance(context, str):
        raise InputError(f"{where}: doc_to_text must give a string, got {context!r}")
    target = renderers["doc_to_target"](doc)
    if config["output_type"] != "multiple_choice":
        if not isinstance(target, str):
            raise InputError(f"{where}: doc_to_target must give a string, got {target!r}")
        return TaskItem(context, (target,), (target,), 0, target)
    choices = renderers["doc_to_choice"](doc)
    if isinstance(choices, str):
        try:
            choices = ast.literal_eval(choices)
        except (ValueError, SyntaxError):
            raise InputError(f"{where}: doc_to_choice must give a list of strings, got {choices!r}") from None
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise InputError(f"{where}: doc_to_choice must give a list of >= 2 strings, got {choices!r}")
    if isinstance(target, str):
        target = int(target) if target.strip().isdigit() else (choices.index(target) if target in choices else target)
    if not isinstance(target, int) or not 0 <= target < len(choices):
        raise InputError(f"{where}: doc_to_target must give a choice index in 0..{len(choices) - 1} "
                         f"or one of the choices, got {target!r}")
    delimiter = config.get("target_delimiter", " ")
    return TaskItem(context, tuple(f"{delimiter}{c}" for c in choices), tuple(choices), target, choices[target])


def _task_loader():
    """A safe YAML loader that also reads lm-eval's ``!function module.name`` tags (kept as text;
    brainphase reads the data through ``dataset_kwargs.data_files``)."""
    import yaml

    class TaskLoader(yaml.SafeLoader):
        pass

    TaskLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")
    return TaskLoader


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate one task YAML file and render its items.

    Raises
    ------
    InputError
        A missing or mistyped field, an unknown ``output_type``, a ``metadata.version`` that is
        not a number, a missing data file or an item that does not render; the message names
        the file and the field.
    """
    import yaml

    path = Path(path)
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_task_loader())
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: a task file must be a YAML mapping (lm-eval task format)")
    for key in _REQUIRED:
        if key not in config:
            raise InputError(f"{path}: missing field {key!r} (lm-eval task format; see the built-in tasks in {SUITE_DIR})")
    unsupported = [key for key in _UNSUPPORTED if config.get(key)]
    if config.get("num_fewshot"):
        unsupported.append("num_fewshot")
    if unsupported:
        raise InputError(f"{path}: field {unsupported[0]!r} is not supported by brainphase's evaluator (the suite's "
                         "tasks are zero-shot with any examples inside doc_to_text); remove it")
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice"):
        if isinstance(config.get(key), str) and config[key].startswith("!function"):
            raise InputError(f"{path}: field {key!r} is a Python function ({config[key]}); brainphase renders only "
                             "column names, jinja2 templates and ints")
    name = _field(config, "task", path, str, "the task name")
    output_type = config["output_type"]
    if output_type not in OUTPUT_TYPES:
        raise InputError(f"{path}: field 'output_type' is {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
    metadata = _field(config, "metadata", path, dict, "a mapping with version and family")
    version = metadata.get("version")
    if isinstance(version, bool) or not isinstance(version, (int, float)):
        raise InputError(f"{path}: field 'metadata.version' must be a number (e.g. 1.0), got {version!r}")
    family = metadata.get("family")
    if family not in FAMILIES:
        raise InputError(f"{path}: field 'metadata.family' is {family!r}; choose one of {', '.join(FAMILIES)}")
    renderers = {key: _renderer(config[key], path, key) for key in ("doc_to_text", "doc_to_target")}
    until, max_gen_toks = (), 0
    if output_type == "multiple_choice":
        if "doc_to_choice" not in config:
            raise InputError(f"{path}: missing field 'doc_to_choice' (required by output_type multiple_choice)")
        renderers["doc_to_choice"] = _renderer(config["doc_to_choice"], path, "doc_to_choice")
    if output_type == "generate_until":
        generation = _field(config, "generation_kwargs", path, dict, "a mapping with until and max_gen_toks")
        until = generation.get("until", [])
        max_gen_toks = generation.get("max_gen_toks")
        if not isinstance(until, list) or not all(isinstance(u, str) for u in until):
            raise InputError(f"{path}: field 'generation_kwargs.until' must be a list of strings, got {until!r}")
        if not isinstance(max_gen_toks, int) or max_gen_toks < 1:
            raise InputError(f"{path}: field 'generation_kwargs.max_gen_toks' must be an int >= 1, got {max_gen_toks!r}")
        if generation.get("do_sample", False):
            raise InputError(f"{path}: field 'generation_kwargs.do_sample' must be false (greedy generation)")
    data_path, docs = _read_docs(path, config)
    items = tuple(_render_item(config, path, i, doc, renderers) for i, doc in enumerate(docs))
    short = name.removeprefix(PREFIX)
    return TaskSpec(short, family, str(version), output_type, path, data_path, items, tuple(until), int(max_gen_toks))


def task_files(folders=()) -> list[Path]:
    """The built-in task YAML files followed by those of ``folders`` (each sorted by name)."""
    files = sorted(SUITE_DIR.glob("*.yaml"))
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"tasks.suite: {folder} is not a folder of task YAML files")
        found = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        if not found:
            raise InputError(f"tasks.suite: {folder} holds no task YAML file (*.yaml)")
        files += found
    return files


def load_suite(folders=(), names=(), with_heldout: bool = False) -> list[TaskSpec]:
    """Load the built-in tasks plus those of ``folders``, keeping ``names`` (all when empty).

    ``heldout_text`` in ``names`` is accepted when ``with_heldout`` (it has no task file).

    Raises
    ------
    InputError
        Two tasks of one name, or an unknown name in ``names`` (with "did you mean").
    """
    specs: dict[str, TaskSpec] = {}
    for path in task_files(folders):
        spec = load_task(path)
        if spec.name in specs or spec.name == HELDOUT_TASK:
            raise InputError(f"{path}: task {spec.name!r} is also defined by "
                             f"{specs[spec.name].source if spec.name in specs else 'the held-out text'}; rename one")
        specs[spec.name] = spec
    known = sorted(specs) + ([HELDOUT_TASK] if with_heldout else [])
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"tasks.names: unknown task {name!r}; {hint}known tasks: {', '.join(known)}")
    return [spec for name, spec in specs.items() if not names or name in names]
