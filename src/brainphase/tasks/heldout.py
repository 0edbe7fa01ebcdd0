"""``brainphase tasks``: next-token metrics of one checkpoint on held-out text.

The text is tokenized once, cut to ``max_tokens`` tokens and split into non-overlapping
windows of ``seq_len`` tokens (the last one may be shorter; a window needs 2 tokens).
Within a window, every token after the first is a target predicted from the tokens before
it, as with a Hugging Face ``labels=`` loss. Over all targets:

=========================  ======================================  ==============  ======
metric                     definition                              kind            better
=========================  ======================================  ==============  ======
``next_token_accuracy``    mean of ``argmax p == target``          discontinuous   higher
``loss``                   mean of ``-log p[target]`` (nats)       continuous      lower
``target_prob``            mean of ``p[target]``                   continuous      higher
``brier``                  mean of ``sum_k (p_k - 1[k == target])²``  continuous   lower
=========================  ======================================  ==============  ======

``p`` is the softmax of the logits in float32. Accuracy is the all-or-nothing metric whose
apparent "emergence" can be an artefact of discontinuity; the three continuous ones show
the same predictions without thresholding. Windows are right-padded and masked, so a
window's metrics do not depend on the others in its batch.

A checkpoint without a trained next-token head (an encoder model such as BERT, or a causal
model saved without its head) gets no metrics, never numbers from a random head: its file
has an empty ``/metrics`` group and the root attribute ``skipped`` says why (``skipped`` is
the empty string in a file with metrics).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import numpy as np

from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, read_nonempty_text

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A task metric: name, whether higher is better, and its kind."""

    name: str
    higher_is_better: bool
    kind: str


METRICS = (
    Metric("next_token_accuracy", True, "discontinuous"),
    Metric("loss", False, "continuous"),
    Metric("target_prob", True, "continuous"),
    Metric("brier", False, "continuous"),
)


def token_windows(token_ids: np.ndarray, seq_len: int, max_tokens: int) -> list[np.ndarray]:
    """Non-overlapping windows of ``seq_len`` tokens over the first ``max_tokens`` tokens.

    Parameters
    ----------
    token_ids : ndarray, shape (n_tokens,)

    Returns
    -------
    list of ndarray, each of shape (seq_len,) except possibly the last (>= 2 tokens)
    """
    token_ids = np.asarray(token_ids)[:max_tokens]
    windows = [token_ids[i : i + seq_len] for i in range(0, len(token_ids), seq_len)]
    return [w for w in windows if len(w) >= 2]


def target_statistics(logits, targets):
    """Per-target sums of the metrics for one batch.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_batch, length, vocab)
        Predictions for the next token at each position.
    targets : torch.LongTensor, shape (n_batch, length)
        The next token, or -100 where there is none (padding, last position).

    Returns
    -------
    dict of float
        Sums over the valid targets of ``next_token_accuracy``, ``loss``, ``target_prob`` and
        ``brier``, and their count ``n_targets``.
    """
    import torch

    valid = targets != -100
    logits = logits[valid].float()  # (n_targets, vocab)
    target = targets[valid]
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    target_log_prob = log_probs.gather(1, target[:, None])[:, 0]
    target_prob = target_log_prob.exp()
    brier = (probs**2).sum(dim=-1) - 2 * target_prob + 1
    return {
        "next_token_accuracy": float((logits.argmax(dim=-1) == target).sum()),
        "loss": float(-target_log_prob.double().sum()),
        "target_prob": float(target_prob.double().sum()),
        "brier": float(brier.double().sum()),
        "n_targets": int(valid.sum()),
    }


def evaluate(model, windows: list[np.ndarray], batch_size: int, pad_id: int = 0) -> dict[str, float]:
    """Mean metrics over all targets of ``windows`` (see the module docstring).

    ``pad_id`` fills the (masked) padding after shorter windows.

    Returns
    -------
    dict
        One float per metric of :data:`METRICS`, plus ``n_targets``.
    """
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    totals = {m.name: 0.0 for m in METRICS} | {"n_targets": 0}
    for begin in tqdm(range(0, len(windows), batch_size), desc="tasks", unit="batch", leave=False):
        batch = windows[begin : begin + batch_size]
        width = max(len(w) for w in batch)
        input_ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        targets = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, window in enumerate(batch):
            ids = torch.from_numpy(np.asarray(window, dtype=np.int64))
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = 1
            targets[i, : len(ids) - 1] = ids[1:]
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for key, value in target_statistics(logits, targets.to(device)).items():
            totals[key] += value
    n_targets = totals.pop("n_targets")
    return {name: value / n_targets for name, value in totals.items()} | {"n_targets": n_targets}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase tasks``."""
    from brainphase.config import schema_default
    from brainphase.models.labels import add_checkpoint_arguments

    add_checkpoint_arguments(parser)
    parser.add_argument("--text", required=True, help="held-out text (UTF-8), e.g. corpus/valid.txt")
    parser.add_argument("--out", required=True, help="output tasks .h5")
    parser.add_argument("--max-tokens", type=int, default=schema_default("tasks.max_tokens"),
                        help="tokens of the text evaluated (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=schema_default("tasks.seq_len"),
                        help="window length in tokens (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=schema_default("tasks.batch_size"),
                        help="windows per forward pass (default: %(default)s)")


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase tasks``."""
    from brainphase.models.architecture import pad_token_id
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.models.labels import cli_model_attrs

    if args.max_tokens < 2 or args.seq_len < 2 or args.batch_size < 1:
        raise InputError(
            f"--max-tokens ({args.max_tokens}) and --seq-len ({args.seq_len}) must be >= 2, "
            f"--batch-size ({args.batch_size}) >= 1"
        )
    text = read_nonempty_text(args.text, "pass the held-out text with --text (e.g. results/corpus/valid.txt)")
    checkpoint = load_checkpoint(args.model, revision=args.revision, device=args.device)
    model_labels = cli_model_attrs(checkpoint.info, args)
    skipped = skip_reason(checkpoint.info)
    if skipped:
        log.warning("%s: no task metrics: %s", args.model, skipped)
        attrs = provenance("tasks", args, [args.text], **model_labels, skipped=skipped)
        with atomic_h5(args.out, attrs) as handle:
            handle.create_group("metrics")
        return
    seq_len = args.seq_len
    if seq_len > checkpoint.info["max_positions"]:
        seq_len = checkpoint.info["max_positions"]
        log.warning("--seq-len %d exceeds the model's %d positions; using %d", args.seq_len, seq_len, seq_len)
    token_ids = np.asarray(checkpoint.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    if len(token_ids) < args.max_tokens:
        log.info("%s has %d tokens, fewer than --max-tokens %d: using all", args.text, len(token_ids), args.max_tokens)
    windows = token_windows(token_ids, seq_len, args.max_tokens)
    if not windows:
        raise InputError(f"{args.text}: fewer than 2 tokens, nothing to predict")
    results = evaluate(checkpoint.model, windows, args.batch_size, pad_token_id(checkpoint.tokenizer))
    log.info("%s: %s", args.text, ", ".join(f"{m.name}={results[m.name]:.4f}" for m in METRICS))
    attrs = provenance(
        "tasks", args, [args.text], **model_labels, skipped="",
        n_targets=results["n_targets"], seq_len=seq_len, n_windows=len(windows),
    )
    with atomic_h5(args.out, attrs) as handle:
        group = handle.create_group("metrics")
        for metric in METRICS:
            dataset = group.create_dataset(metric.name, data=np.float64(results[metric.name]))
            dataset.attrs["higher_is_better"] = metric.higher_is_better
            dataset.attrs["kind"] = metric.kind


def skip_reason(info: dict) -> str:
    """Why a checkpoint gets no task metrics (``""`` when it gets them).

    Parameters
    ----------
    info : dict
        :attr:`brainphase.models.checkpoints.Checkpoint.info` (``architecture``, ``lm_head``).
    """
    if info.get("architecture") == "encoder":
        return ("encoder (masked, bidirectional) model: it has no next-token head, so next-token metrics "
                "do not apply")
    if not info.get("lm_head", True):
        return "the checkpoint has no trained next-token head (its head weights are missing)"
    return ""
