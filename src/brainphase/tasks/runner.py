"""Score the task suite on one loaded checkpoint and write ``tasks/{model}/seed{s}/step{n}.h5``.

Every task is encoded and checked (answers not empty, no unknown tokens, context + answer
within the model's positions) before the first forward pass; then each task is scored in
batches (:mod:`brainphase.tasks.scoring`) and its per-item and mean metrics are written
(:mod:`brainphase.tasks.metrics`; layout in docs/hdf5_layout.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np

from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, read_nonempty_text
from brainphase.tasks import heldout, metrics, scoring
from brainphase.tasks.spec import HELDOUT_TASK, TaskSpec, load_suite

log = logging.getLogger(__name__)


def _default(key: str):
    from brainphase.config import schema_default

    return schema_default(f"tasks.{key}")


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """Settings of the task suite (config section ``tasks``; defaults from config/schema.yaml)."""

    suite: tuple[str, ...] = dataclasses.field(default_factory=lambda: tuple(_default("suite")))
    names: tuple[str, ...] = dataclasses.field(default_factory=lambda: tuple(_default("names")))
    text: str | None = None
    max_tokens: int = dataclasses.field(default_factory=lambda: _default("max_tokens"))
    seq_len: int = dataclasses.field(default_factory=lambda: _default("seq_len"))
    batch_size: int = dataclasses.field(default_factory=lambda: _default("batch_size"))


def add_task_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Register ``--{prefix}suite``, ``--{prefix}names``, ``--{prefix}text``, ``--{prefix}max-tokens``,
    ``--{prefix}seq-len`` and ``--{prefix}batch-size`` (defaults from config/schema.yaml)."""
    from brainphase.config import schema_default

    parser.add_argument(f"--{prefix}suite", nargs="*", default=list(schema_default("tasks.suite")),
                        help="extra folders of task YAML files (lm-eval format), added to the built-in suite")
    parser.add_argument(f"--{prefix}names", nargs="*", default=list(schema_default("tasks.names")),
                        help="tasks to score (default: all)")
    parser.add_argument(f"--{prefix}text", default=None,
                        help="held-out text (UTF-8) for task heldout_text, e.g. corpus/valid.txt (default: none)")
    parser.add_argument(f"--{prefix}max-tokens", type=int, default=schema_default("tasks.max_tokens"),
                        help="tokens of the held-out text evaluated (default: %(default)s)")
    parser.add_argument(f"--{prefix}seq-len", type=int, default=schema_default("tasks.seq_len"),
                        help="held-out text window length in tokens (default: %(default)s)")
    parser.add_argument(f"--{prefix}batch-size", type=int, default=schema_default("tasks.batch_size"),
                        help="sequences per forward pass (default: %(default)s)")


def task_options_from_args(args: argparse.Namespace, prefix: str = "") -> TaskOptions:
    """The :class:`TaskOptions` of options registered by :func:`add_task_options`."""
    key = prefix.replace("-", "_")
    options = TaskOptions(
        suite=tuple(getattr(args, f"{key}suite") or ()), names=tuple(getattr(args, f"{key}names") or ()),
        text=getattr(args, f"{key}text"), max_tokens=getattr(args, f"{key}max_tokens"),
        seq_len=getattr(args, f"{key}seq_len"), batch_size=getattr(args, f"{key}batch_size"),
    )
    if options.max_tokens < 2 or options.seq_len < 2 or options.batch_size < 1:
        raise InputError(f"--{prefix}max-tokens ({options.max_tokens}) and --{prefix}seq-len ({options.seq_len}) "
                         f"must be >= 2, --{prefix}batch-size ({options.batch_size}) >= 1")
    if HELDOUT_TASK in options.names and not options.text:
        raise InputError(f"tasks.names holds {HELDOUT_TASK!r} but no held-out text is given; set tasks.text "
                         f"(--{prefix}text)")
    return options


@dataclasses.dataclass
class PreparedTask:
    """A task with its encoded requests (one per item, or one per choice)."""

    spec: TaskSpec
    requests: list[scoring.Request]
    generation_contexts: list[tuple[int, ...]] = dataclasses.field(default_factory=list)


def prepare_task(spec: TaskSpec, tokenizer, max_positions: int) -> PreparedTask:
    """Encode every request of ``spec`` and refuse items that do not fit the model.

    Raises
    ------
    InputError
        Naming task and item: an answer without tokens, an unknown token, or context + answer
        (+ ``max_gen_toks`` for generation) longer than ``max_positions``.
    """
    wheres = [f"task {spec.name} ({spec.source}) item {index}" for index in range(len(spec.items))]
    pairs, owners = [], []
    for index, item in enumerate(spec.items):
        pairs += [(item.context, continuation) for continuation in item.continuations]
        owners += [index] * len(item.continuations)
    requests = scoring.encode_pairs(tokenizer, pairs, [wheres[i] for i in owners])
    lengths = np.zeros(len(spec.items), dtype=int)
    for owner, request in zip(owners, requests):
        lengths[owner] = max(lengths[owner], len(request.context) + len(request.continuation))
    generation_contexts = []
    if spec.output_type == "generate_until":  # lm-eval encodes the context as is for generation
        encoded = scoring.encode_many(tokenizer, [item.context for item in spec.items])
        generation_contexts = [tuple(ids) or (scoring.prefix_token_id(tokenizer),) for ids in encoded]
        lengths = np.maximum(lengths, [len(c) + spec.max_gen_toks for c in generation_contexts])
    for index, length in enumerate(lengths):
        if length > max_positions:
            raise InputError(f"{wheres[index]}: context + answer take {length} tokens, more than the model's "
                             f"{max_positions} positions; shorten the item or leave the task out (tasks.names)")
    return PreparedTask(spec, requests, generation_contexts)


def score_task(task: PreparedTask, model, tokenizer, batch_size: int, pad_id: int) -> dict[str, np.ndarray]:
    """Per-item metrics of one prepared task (:mod:`brainphase.tasks.metrics`).

    Returns
    -------
    dict of ndarray, each of shape (n_items,)
    """
    spec = task.spec
    results = scoring.loglikelihoods(model, task.requests, batch_size, pad_id, progress=spec.name)
    if spec.output_type == "loglikelihood":
        return metrics.loglikelihood_items(results)
    if spec.output_type == "multiple_choice":
        logliks, lengths, begin = [], [], 0
        for item in spec.items:
            logliks.append(np.array([r.loglik for r in results[begin : begin + len(item.continuations)]]))
            lengths.append(np.array([float(len(c)) for c in item.choice_texts]))
            begin += len(item.continuations)
        return metrics.multiple_choice_items(logliks, lengths, np.array([item.gold for item in spec.items]))
    generated = scoring.greedy_generate(model, tokenizer, task.generation_contexts, spec.until, spec.max_gen_toks, batch_size, pad_id,
                                        progress=f"{spec.name} (generate)")
    generated_ids = [scoring.encode(tokenizer, text.strip()) for text in generated]
    target_ids = [scoring.encode(tokenizer, item.target.strip()) for item in spec.items]
    return metrics.generation_items(generated_ids, target_ids, generated, [item.target for item in spec.items], results)


def suite_sha256(specs: list[TaskSpec]) -> str:
    """sha256 over the task and data files of ``specs``, in order."""
    digest = hashlib.sha256()
    for spec in specs:
        for path in (spec.source, spec.data_path):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _write_task(handle, name: str, group_attrs: dict, metric_defs, items: dict[str, np.ndarray],
                means: dict[str, float] | None = None) -> None:
    group = handle.create_group(f"metrics/{name}")
    for key, value in group_attrs.items():
        group.attrs[key] = value
    for metric in metric_defs:
        values = np.asarray(items[metric.name], dtype=np.float64)
        mean = float(values.mean()) if means is None else means[metric.name]
        dataset = group.create_dataset(metric.name, data=np.float64(mean))
        dataset.attrs["kind"] = metric.kind
        dataset.attrs["higher_is_better"] = metric.higher_is_better
        handle.create_dataset(f"items/{name}/{metric.name}", data=values)


def run_tasks(checkpoint, options: TaskOptions, out: str, provenance_attrs: dict) -> None:
    """Score the suite on a loaded checkpoint and write ``out`` atomically.

    Parameters
    ----------
    checkpoint : brainphase.models.checkpoints.Checkpoint
    options : TaskOptions
    out : str
        The tasks HDF5 file (layout: docs/hdf5_layout.md, section tasks).
    provenance_attrs : dict
        Root attributes (provenance and model labels); ``skipped`` and ``suite_sha256`` are added.
    """
    specs = load_suite(options.suite, options.names, with_heldout=bool(options.text))
    text = None
    if options.text and (not options.names or HELDOUT_TASK in options.names):
        text = read_nonempty_text(options.text, "pass the held-out text with --text (e.g. results/corpus/valid.txt)")
    attrs = dict(provenance_attrs) | {"suite_sha256": suite_sha256(specs)}
    skipped = heldout.skip_reason(checkpoint.info)
    if skipped:
        log.warning("%s: no task metrics: %s", checkpoint.info.get("model_id"), skipped)
        with atomic_h5(out, attrs | {"skipped": skipped}) as handle:
            handle.create_group("metrics")
            handle.create_group("items")
        return
    from brainphase.models.architecture import pad_token_id

    tokenizer, model = checkpoint.tokenizer, checkpoint.model
    prepared = [prepare_task(spec, tokenizer, checkpoint.info["max_positions"]) for spec in specs]
    pad_id = pad_token_id(tokenizer)
    with atomic_h5(out, attrs | {"skipped": ""}) as handle:
        handle.create_group("metrics")
        handle.create_group("items")
        if text is not None:
            means, items, extra = heldout.heldout_metrics(checkpoint, text, options.text, options.max_tokens,
                                                          options.seq_len, options.batch_size)
            group_attrs = {"family": "next_token", "version": "1.0", "output_type": "next_token",
                           "n_items": extra["n_windows"], "source": Path(options.text).name} | extra
            _write_task(handle, HELDOUT_TASK, group_attrs, heldout.METRICS, items, means)
        for task in prepared:
            spec = task.spec
            items = score_task(task, model, tokenizer, options.batch_size, pad_id)
            group_attrs = {"family": spec.family, "version": spec.version, "output_type": spec.output_type,
                           "n_items": len(spec.items), "source": spec.source.name}
            _write_task(handle, spec.name, group_attrs, metrics.METRICS_BY_OUTPUT_TYPE[spec.output_type], items)
            log.info("task %s: %s", spec.name,
                     ", ".join(f"{k}={np.mean(v):.4f}" for k, v in items.items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase tasks``."""
    from brainphase.models.labels import add_checkpoint_arguments

    add_checkpoint_arguments(parser)
    parser.add_argument("--out", required=True, help="output tasks .h5")
    add_task_options(parser)


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase tasks``."""
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.models.labels import cli_model_attrs

    options = task_options_from_args(args)
    load_suite(options.suite, options.names, with_heldout=bool(options.text))  # bad task files fail before loading
    if options.text:
        read_nonempty_text(options.text, "pass the held-out text with --text (e.g. results/corpus/valid.txt)")
    checkpoint = load_checkpoint(args.model, revision=args.revision, device=args.device)
    model_labels = cli_model_attrs(checkpoint.info, args)
    attrs = provenance("tasks", args, [options.text] if options.text else [], **model_labels)
    run_tasks(checkpoint, options, args.out, attrs)
