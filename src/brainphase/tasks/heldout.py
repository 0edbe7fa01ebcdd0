"""Task ``heldout_text``: next-token metrics of one checkpoint on held-out text.

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

import dataclasses
import logging

import numpy as np

from brainphase.errors import InputError

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
    """Per-window sums of the metrics for one batch.

    Parameters
    ----------
    logits : torch.Tensor, shape (n_batch, length, vocab)
        Predictions for the next token at each position.
    targets : torch.LongTensor, shape (n_batch, length)
        The next token, or -100 where there is none (padding, last position).

    Returns
    -------
    dict of ndarray, each of shape (n_batch,)
        Per-window sums over the valid targets of ``next_token_accuracy``, ``loss``,
        ``target_prob`` and ``brier`` (float64), and their count ``n_targets`` (int64).
    """
    import torch

    valid = targets != -100  # (n_batch, length)
    safe_targets = targets.clamp(min=0)
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (n_batch, length, vocab)
    target_log_prob = log_probs.gather(2, safe_targets[..., None])[..., 0]
    target_prob = target_log_prob.exp()
    brier = (log_probs.exp() ** 2).sum(dim=-1) - 2 * target_prob + 1
    per_position = {
        "next_token_accuracy": (logits.argmax(dim=-1) == targets).double(),
        "loss": -target_log_prob.double(),
        "target_prob": target_prob.double(),
        "brier": brier.double(),
    }
    sums = {name: (values * valid).sum(dim=1).cpu().numpy() for name, values in per_position.items()}
    return sums | {"n_targets": valid.sum(dim=1).cpu().numpy()}


def window_statistics(model, windows: list[np.ndarray], batch_size: int, pad_id: int = 0,
                      progress: str = "heldout_text") -> dict[str, np.ndarray]:
    """Per-window sums of the metrics (see :func:`target_statistics`) over ``windows``.

    ``pad_id`` fills the (masked) padding after shorter windows.

    Returns
    -------
    dict of ndarray, each of shape (n_windows,)
    """
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    parts = []
    for begin in tqdm(range(0, len(windows), batch_size), desc=progress, unit="batch", leave=False):
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
        parts.append(target_statistics(logits, targets.to(device)))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def evaluate(model, windows: list[np.ndarray], batch_size: int, pad_id: int = 0) -> dict[str, float]:
    """Mean metrics over all targets of ``windows`` (see the module docstring).

    ``pad_id`` fills the (masked) padding after shorter windows.

    Returns
    -------
    dict
        One float per metric of :data:`METRICS`, plus ``n_targets``.
    """
    sums = window_statistics(model, windows, batch_size, pad_id)
    n_targets = int(sums["n_targets"].sum())
    return {m.name: float(sums[m.name].sum()) / n_targets for m in METRICS} | {"n_targets": n_targets}


def heldout_metrics(checkpoint, text: str, source: str, max_tokens: int, seq_len: int,
                    batch_size: int) -> tuple[dict[str, float], dict[str, np.ndarray], dict]:
    """Held-out-text metrics of a loaded checkpoint (task ``heldout_text``).

    Parameters
    ----------
    checkpoint : brainphase.models.checkpoints.Checkpoint
    text : str
        The held-out text; ``source`` names it in messages.
    max_tokens, seq_len, batch_size : int
        See the module docstring; ``seq_len`` is cut to the model's positions (logged).

    Returns
    -------
    means : dict of float
        Mean of each metric of :data:`METRICS` over all targets (as before the task suite).
    items : dict of ndarray, each of shape (n_windows,)
        Per-window means (the task's items are its windows).
    attrs : dict
        ``n_targets``, ``seq_len`` (used), ``n_windows``.
    """
    from brainphase.models.architecture import pad_token_id

    if seq_len > checkpoint.info["max_positions"]:
        log.warning("--seq-len %d exceeds the model's %d positions; using %d", seq_len,
                    checkpoint.info["max_positions"], checkpoint.info["max_positions"])
        seq_len = checkpoint.info["max_positions"]
    token_ids = np.asarray(checkpoint.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    if len(token_ids) < max_tokens:
        log.info("%s has %d tokens, fewer than --max-tokens %d: using all", source, len(token_ids), max_tokens)
    windows = token_windows(token_ids, seq_len, max_tokens)
    if not windows:
        raise InputError(f"{source}: fewer than 2 tokens, nothing to predict")
    sums = window_statistics(checkpoint.model, windows, batch_size, pad_token_id(checkpoint.tokenizer))
    n_targets = sums["n_targets"]
    means = {m.name: float(sums[m.name].sum()) / int(n_targets.sum()) for m in METRICS}
    items = {m.name: sums[m.name] / n_targets for m in METRICS}
    log.info("%s: %s", source, ", ".join(f"{m.name}={means[m.name]:.4f}" for m in METRICS))
    return means, items, {"n_targets": int(n_targets.sum()), "seq_len": seq_len, "n_windows": len(windows)}


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
