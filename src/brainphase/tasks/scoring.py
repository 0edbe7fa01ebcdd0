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
them). Greedy generation is batched the same way: each sequence grows at its own end inside a
right-padded buffer, so no position ids need shifting.
"""

from __future__ import annotations

import dataclasses

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


def encode_pair(tokenizer, context: str, continuation: str, where: str) -> Request:
    """The request of one (context, continuation) pair (see the module docstring).

    ``where`` names the task and item in errors: an empty continuation after tokenization,
    or an unknown-token id in the context or continuation.
    """
    if context == "":
        context_ids, continuation_ids = [prefix_token_id(tokenizer)], encode(tokenizer, continuation)
    else:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
        whole = encode(tokenizer, context + continuation)
        context_ids = encode(tokenizer, context)
        continuation_ids = whole[len(context_ids):]
    if not continuation_ids:
        raise InputError(f"{where}: the answer {continuation!r} gives no tokens after its context; fix the item")
    unk = tokenizer.unk_token_id
    if unk is not None and (unk in context_ids or unk in continuation_ids):
        raise InputError(f"{where}: the tokenizer cannot encode {context + continuation!r} (unknown token); "
                         "remove the item or use words of the model's vocabulary")
    return Request(tuple(context_ids), tuple(continuation_ids))


def _device(model):
    return next(model.parameters()).device


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
        for row, index in enumerate(batch):
            input_ids[row, : len(inputs[index])] = torch.tensor(inputs[index])
            attention_mask[row, : len(inputs[index])] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, index in enumerate(batch):
            request = requests[index]
            n_cont = len(request.continuation)
            end = len(inputs[index])
            log_probs = torch.log_softmax(logits[row, end - n_cont : end].float(), dim=-1)  # (n_cont, vocab)
            target = torch.tensor(request.continuation, device=log_probs.device)
            token_ll = log_probs.gather(1, target[:, None])[:, 0]
            greedy = log_probs.argmax(dim=-1) == target
            results[index] = LoglikResult(float(token_ll.double().sum()), bool(greedy.all()), int(greedy.sum()), n_cont)
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
        width = len(contexts[batch[0]]) + max_gen_toks
        buffer = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
        lengths = torch.tensor([len(contexts[i]) for i in batch])
        for row, index in enumerate(batch):
            buffer[row, : lengths[row]] = torch.tensor(contexts[index])
        generated: list[list[int]] = [[] for _ in batch]
        active = [True] * len(batch)
        for _ in range(max_gen_toks):
            used = int(lengths.max())
            mask = (torch.arange(used)[None, :] < lengths[:, None]).long()
            with torch.inference_mode():
                logits = model(input_ids=buffer[:, :used].to(device), attention_mask=mask.to(device)).logits
            rows = torch.arange(len(batch), device=logits.device)
            next_ids = logits[rows, (lengths - 1).to(logits.device)].float().argmax(dim=-1).cpu()
            for row in range(len(batch)):
                if not active[row]:
                    continue
                token = int(next_ids[row])
                if token == eos:
                    active[row] = False
                    continue
                generated[row].append(token)
                buffer[row, lengths[row]] = token
                lengths[row] += 1
                text = tokenizer.decode(generated[row])
                if any(stop in text for stop in until):
                    active[row] = False
            if not any(active):
                break
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
