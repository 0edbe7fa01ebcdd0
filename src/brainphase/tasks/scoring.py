"""Batched scoring of task requests on a causal LM, with lm-evaluation-harness 0.4 conventions.

Encoding (``HFLM._encode_pair`` and ``HFLM.loglikelihood``): trailing spaces of the context
move to the start of the continuation; the continuation's tokens are
``tokens(context + continuation)[len(tokens(context)):]``; an empty context is replaced by the
prefix token (the tokenizer's BOS, else its EOS); no special tokens are added otherwise (as
for GPT-NeoX). The model reads ``(context + continuation)[:-1]`` and the continuation's log
likelihood is the sum over its tokens of ``log_softmax(logits)[token]``; ``is_greedy`` says that
every continuation token is the argmax (``HFLM._loglikelihood_tokens``).

Requests of many items run in one forward pass: sorted by length, right-padded with an
attention mask (a causal model's outputs at real positions do not depend on padding after
them); the output head runs only on the positions that predict continuation tokens (where the
model takes ``logits_to_keep``). Greedy generation is batched with left padding, position ids
counted from each sequence's first real token, and the key/value cache.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from brainphase.errors import InputError


@dataclasses.dataclass(frozen=True)
class Request:
    """Token ids of one (context, continuation) pair."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class LoglikResult:
    """Scores of one request: ``loglik`` (sum, float64), ``is_greedy``, ``n_greedy`` (count of
    continuation tokens that are the argmax) and ``n_tokens`` (continuation length)."""

    loglik: float
    is_greedy: bool
    n_greedy: int
    n_tokens: int


def prefix_token_id(tokenizer) -> int:
    """lm-eval's prefix token for an empty context: BOS, else EOS (end of text)."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise InputError("the tokenizer has neither a BOS nor an EOS token; tasks with an empty context cannot be scored")


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_many(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each of ``texts`` without special tokens (one batched tokenizer call)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], wheres: list[str]) -> list[Request]:
    """The requests of (context, continuation) pairs (see the module docstring).

    ``wheres`` name the task and item of each pair in errors: an empty continuation after
    tokenization, or an unknown-token id in the context or continuation.
    """
    moved = []
    for context, continuation in pairs:
        n_spaces = len(context) - len(context.rstrip())
        if context and n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        moved.append((context, continuation))
    contexts = encode_many(tokenizer, [c for c, _ in moved])
    wholes = encode_many(tokenizer, [c + t if c else t for c, t in moved])
    unk = tokenizer.unk_token_id
    requests = []
    for (context, continuation), context_ids, whole, where, original in zip(moved, contexts, wholes, wheres, pairs):
        if original[0] == "":
            context_ids, continuation_ids = [prefix_token_id(tokenizer)], whole
        else:
            continuation_ids = whole[len(context_ids):]
        if not continuation_ids:
            raise InputError(f"{where}: the answer {continuation!r} gives no tokens after its context; fix the item")
        if unk is not None and (unk in context_ids or unk in continuation_ids):
            raise InputError(f"{where}: the tokenizer cannot encode {context + continuation!r} (unknown token); "
                             "remove the item or use words of the model's vocabulary")
        requests.append(Request(tuple(context_ids), tuple(continuation_ids)))
    return requests


def encode_pair(tokenizer, context: str, continuation: str, where: str) -> Request:
    """The request of one (context, continuation) pair (:func:`encode_pairs`)."""
    return encode_pairs(tokenizer, [(context, continuation)], [where])[0]


def _device(model):
    return next(model.parameters()).device


def _logits_tail(model, input_ids, attention_mask, keep_from: int):
    """Logits of positions ``keep_from:`` (shape (n_batch, width - keep_from, vocab)); the
    output head runs on those positions only when the model takes ``logits_to_keep``."""
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        keep = input_ids.shape[1] - keep_from
        return model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits[:, -keep:]
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, keep_from:]


def loglikelihoods(model, requests: list[Request], batch_size: int, pad_id: int = 0,
                   progress: str | None = None) -> list[LoglikResult]:
    """Score ``requests`` in batches of ``batch_size`` sequences (longest first).

    Returns
    -------
    list of LoglikResult, in the order of ``requests``
    """
    import torch
    from tqdm import tqdm

    device = _device(model)
    inputs = [list(r.context + r.continuation)[:-1] for r in requests]
    order = sorted(range(len(requests)), key=lambda i: -len(inputs[i]))
    results: list[LoglikResult | None] = [None] * len(requests)
    batches = [order[b : b + batch_size] for b in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=progress or "loglikelihood", unit="batch", leave=False, disable=progress is None):
        width = len(inputs[batch[0]])
        input_ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, positions, targets = [], [], []  # where each continuation token is predicted
        for row, index in enumerate(batch):
            end = len(inputs[index])
            input_ids[row, :end] = torch.tensor(inputs[index])
            attention_mask[row, :end] = 1
            continuation = requests[index].continuation
            rows += [row] * len(continuation)
            positions += range(end - len(continuation), end)
            targets += continuation
        keep_from = min(positions)
        with torch.inference_mode():
            logits = _logits_tail(model, input_ids.to(device), attention_mask.to(device), keep_from)
            positions = [p - keep_from for p in positions]
            picked = logits[torch.tensor(rows, device=logits.device), torch.tensor(positions, device=logits.device)]
            log_probs = torch.log_softmax(picked.float(), dim=-1)  # (n_continuation_tokens, vocab)
            target = torch.tensor(targets, device=log_probs.device)
            token_ll = log_probs.gather(1, target[:, None])[:, 0].double().cpu().numpy()
            greedy = (log_probs.argmax(dim=-1) == target).cpu().numpy()
        begin = 0
        for index in batch:
            n_cont = len(requests[index].continuation)
            hits = greedy[begin : begin + n_cont]
            results[index] = LoglikResult(float(token_ll[begin : begin + n_cont].sum()), bool(hits.all()), int(hits.sum()), n_cont)
            begin += n_cont
    return results


def greedy_generate(model, tokenizer, contexts: list[tuple[int, ...]], until: tuple[str, ...], max_gen_toks: int,
                    batch_size: int, pad_id: int = 0, progress: str | None = None) -> list[str]:
    """Greedy continuations of ``contexts``, cut before the first string of ``until``.

    Generation of a sequence stops at ``max_gen_toks`` tokens, at the end-of-text token or once
    its decoded text holds a string of ``until`` (as lm-eval's ``generate_until``).

    Returns
    -------
    list of str, in the order of ``contexts``
    """
    import torch
    from tqdm import tqdm

    device = _device(model)
    eos = tokenizer.eos_token_id
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    texts: list[str | None] = [None] * len(contexts)
    batches = [order[b : b + batch_size] for b in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=progress or "generate", unit="batch", leave=False, disable=progress is None):
        width = len(contexts[batch[0]])
        input_ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):  # left padding: every sequence ends at the same column
            input_ids[row, width - len(contexts[index]):] = torch.tensor(contexts[index])
            mask[row, width - len(contexts[index]):] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        generated: list[list[int]] = [[] for _ in batch]
        active = [True] * len(batch)
        # transformers >= 5 names the key/value cache argument and output "cache"
        cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        with torch.inference_mode():
            out = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=True)
            for step in range(max_gen_toks):
                next_ids = out.logits[:, -1].float().argmax(dim=-1)
                for row, token in enumerate(next_ids.tolist()):
                    if not active[row]:
                        continue
                    if token == eos:
                        active[row] = False
                        continue
                    generated[row].append(token)
                    if until and any(stop in tokenizer.decode(generated[row]) for stop in until):
                        active[row] = False
                if not any(active) or step == max_gen_toks - 1:
                    break
                mask = torch.cat([mask, mask.new_ones((len(batch), 1))], dim=1)
                position_ids = position_ids[:, -1:] + 1
                out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=position_ids,
                            use_cache=True, **{cache_name: getattr(out, cache_name)})
        for row, index in enumerate(batch):
            text = tokenizer.decode(generated[row])
            for stop in until:
                text = text.split(stop)[0]
            texts[index] = text
    return texts


def token_edit_distance(first, second) -> int:
    """Levenshtein distance between two token sequences (unit insert, delete, substitute)."""
    first, second = list(first), list(second)
    previous = np.arange(len(second) + 1)
    for i, token in enumerate(first, 1):
        current = np.empty_like(previous)
        current[0] = i
        for j, other in enumerate(second, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != other))
        previous = current
    return int(previous[-1])
