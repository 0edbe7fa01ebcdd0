"""Copy tasks (``induction``, ``pattern_repeat``) against oracles, with the demo's tokenizer type.

A model that copies perfectly (predicts the token that followed the latest earlier occurrence
of the current token: an ideal induction head) must score ``acc`` and ``token_accuracy`` 1 on
the built-in induction items through the runner, one that predicts a constant token 0; the
runner's per-item log likelihoods equal a plain forward pass on the concatenated ids. With a
byte-level BPE tokenizer a word at the start of the text is other tokens than the same word
after a space, so the version-1 items (first word at the start) left the first target token
uncopyable: the copy oracle scored ``acc`` 0 on them, as the demo model did.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from _models import build_model
from brainphase.tasks import runner, scoring
from brainphase.tasks.spec import load_suite

ORACLE_LOGIT = 10.0


@pytest.fixture(scope="module")
def suite():
    return {spec.name: spec for spec in load_suite(names=["induction", "pattern_repeat"])}


@pytest.fixture(scope="module")
def tokenizer(suite):
    """``brainphase train``'s byte-level BPE trained on the copy tasks' own text: every word after
    a space is one token, so the oracle below copies whole words."""
    from brainphase.models.train import train_tokenizer

    text = "\n".join(item.context + item.target for spec in suite.values() for item in spec.items)
    return train_tokenizer((text + "\n\n") * 3, vocab_size=4000)


class CopyModel(torch.nn.Module):
    """Logit :data:`ORACLE_LOGIT` on one token per position, 0 on the others: with ``copy`` the
    token after the latest earlier occurrence of the current token, else (and where there is
    none) ``fallback``."""

    def __init__(self, vocab_size: int, fallback: int, copy: bool = True):
        super().__init__()
        self.vocab_size, self.fallback, self.copy = vocab_size, fallback, copy
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the scorer reads the device from the parameters

    def forward(self, input_ids, attention_mask=None, **_):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        for row, ids in enumerate(input_ids.tolist()):
            for t, token in enumerate(ids):
                earlier = [s for s in range(t) if ids[s] == token] if self.copy else []
                logits[row, t, ids[earlier[-1] + 1] if earlier else self.fallback] = ORACLE_LOGIT
        return types.SimpleNamespace(logits=logits)


def _score(spec, model, tokenizer, batch_size=7):
    task = runner.prepare_task(spec, tokenizer, max_positions=128)
    return task, runner.score_task(task, model, tokenizer, batch_size=batch_size, pad_id=tokenizer.pad_token_id)


def test_every_span_word_is_one_token(suite, tokenizer):
    """The oracle's premise: whole words, so copying the token copies the word."""
    for item in suite["induction"].items:
        words = item.context.split()
        assert scoring.encode(tokenizer, item.context) == [scoring.encode(tokenizer, f" {w}")[0] for w in words]


def test_a_perfect_copier_scores_one_and_a_constant_zero(suite, tokenizer):
    spec = suite["induction"]
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    task, copier = _score(spec, CopyModel(vocab, eos), tokenizer)
    n_target = np.array([len(r.continuation) for r in task.requests])
    assert (n_target == 5).all()
    np.testing.assert_array_equal(copier["acc"], 1.0)
    np.testing.assert_array_equal(copier["token_accuracy"], 1.0)
    per_token = ORACLE_LOGIT - np.log(np.exp(ORACLE_LOGIT) + vocab - 1)  # closed-form log p of the copied token
    np.testing.assert_allclose(copier["logprob"], n_target * per_token, atol=1e-4)  # float32 log-softmax
    _, constant = _score(spec, CopyModel(vocab, eos, copy=False), tokenizer)
    np.testing.assert_array_equal(constant["acc"], 0.0)
    np.testing.assert_array_equal(constant["token_accuracy"], 0.0)
    np.testing.assert_allclose(constant["logprob"], n_target * (0 - np.log(np.exp(ORACLE_LOGIT) + vocab - 1)), atol=1e-4)


def test_the_first_word_at_the_start_of_the_text_defeats_the_copier(suite, tokenizer):
    """Version 1 of induction wrote the span's first word at the start (no space before it)."""
    spec = suite["induction"]
    items = tuple(dataclasses.replace(item, context=item.context.lstrip(" ")) for item in spec.items)
    _, copier = _score(dataclasses.replace(spec, items=items), CopyModel(len(tokenizer), tokenizer.eos_token_id), tokenizer)
    np.testing.assert_array_equal(copier["acc"], 0.0)
    np.testing.assert_allclose(copier["token_accuracy"], 0.8)  # only the first of the 5 target tokens is missed


def test_loglikelihoods_equal_a_plain_forward_pass(suite, tokenizer):
    spec = suite["induction"]
    model = build_model(len(tokenizer), seed=4)
    task, scored = _score(spec, model, tokenizer)
    for index, request in enumerate(task.requests):
        ids = torch.tensor([request.context + request.continuation])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
        n = len(request.continuation)
        target = torch.tensor(request.continuation)
        predicted = log_probs[-n - 1 : -1]  # position p predicts token p + 1
        assert scored["logprob"][index] == pytest.approx(float(predicted.gather(1, target[:, None]).sum()), abs=1e-4)
        assert scored["token_accuracy"][index] == pytest.approx(float((predicted.argmax(-1) == target).double().mean()))


def test_the_pattern_word_is_the_same_tokens_in_the_query_and_the_answer(suite, tokenizer):
    arrow = scoring.encode(tokenizer, " ->")
    for item in suite["pattern_repeat"].items:
        word = item.target.split()[0]
        ids = scoring.encode(tokenizer, f" {word}")
        request = scoring.encode_pair(tokenizer, item.context, item.target, "t")
        assert request.continuation == tuple(ids * 2)
        assert request.context[-len(ids) - len(arrow):] == tuple(ids + arrow)
