"""Words -> tokens -> context windows: the batches of ``brainphase extract``.

Each run's text (its words joined by single spaces, :func:`brainphase.stimuli.run_text`) is
tokenized once; the tokenizer's offset mapping assigns to each word the tokens whose
character span overlaps the word's (:func:`tokenize_run`). Each word gets a causal window of at
most ``context_tokens`` tokens that ends at its last token (the sliding-window convention of
naturalistic-fMRI encoding studies), framed by the special tokens of encoder models; windows
never cross runs. :func:`iter_word_batches` right-pads the windows of consecutive words with
the tokenizer's padding id, with an attention mask that hides the padding and the pooling
weights of each word (its last token, ``pooling="last"``, or the mean over its tokens,
``pooling="mean"``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterator

import numpy as np
import pandas as pd

from brainphase.errors import InputError

log = logging.getLogger(__name__)

POOLINGS = ("last", "mean")


@dataclasses.dataclass
class RunTokens:
    """Tokens of one run and the token range of each of its words.

    Attributes
    ----------
    token_ids : ndarray, shape (n_tokens,), int64
    first_token, last_token : ndarray, shape (n_words,), int64
        Index (into ``token_ids``) of each word's first and last token (inclusive).
    """

    token_ids: np.ndarray
    first_token: np.ndarray
    last_token: np.ndarray


@dataclasses.dataclass
class WordBatch:
    """Context windows of consecutive words, ready for one forward pass.

    Attributes
    ----------
    rows : slice
        Rows of the (ordered) words table these words occupy.
    input_ids : torch.LongTensor, shape (n_batch, window)
        Each word's context (framed by the special tokens, if any), right-padded with the
        padding id to the longest window of the batch.
    attention_mask : torch.LongTensor, shape (n_batch, window)
        1 on real and special tokens, 0 on padding.
    pool_weights : torch.FloatTensor, shape (n_batch, window)
        Weight of each position in the word's vector (one-hot on the last token, or
        1/n_tokens on each of the word's tokens); zero on context, special tokens and padding.
    n_tokens : int
        Real (unpadded) tokens in the batch.
    """

    rows: slice
    input_ids: "object"
    attention_mask: "object"
    pool_weights: "object"
    n_tokens: int


def ordered_words(words_df: pd.DataFrame) -> pd.DataFrame:
    """The words table in output order: runs by first appearance, words by ``word_index``."""
    if len(words_df) == 0:
        raise InputError("the stimulus has no words")
    run_order = {run: i for i, run in enumerate(pd.unique(words_df["run"]))}
    keys = words_df["run"].map(run_order)
    return words_df.assign(_run_order=keys).sort_values(["_run_order", "word_index"], kind="stable").drop(
        columns="_run_order"
    ).reset_index(drop=True)


def tokenize_run(tokenizer, words_df: pd.DataFrame, run: str) -> RunTokens:
    """Tokenize one run and find each word's tokens from the offset mapping.

    A token belongs to every word whose character span it overlaps. Raises InputError when
    a word gets no token (e.g. an empty or whitespace-only word) or when the words do not
    spell the run text.
    """
    from brainphase.stimuli import run_text

    text, char_spans = run_text(words_df, run)
    words = words_df.loc[words_df["run"] == run].sort_values("word_index")["word"].tolist()
    for word, (start, end) in zip(words, char_spans):
        if text[start:end] != word:
            raise InputError(f"run {run!r}: word {word!r} is not at its place in the run text ({start}:{end})")
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    token_ids = np.asarray(encoding["input_ids"], dtype=np.int64)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    first = np.empty(len(words), dtype=np.int64)
    last = np.empty(len(words), dtype=np.int64)
    for i, (start, end) in enumerate(char_spans):
        overlapping = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))
        if overlapping.size == 0:
            raise InputError(
                f"run {run!r}, word {i} ({words[i]!r}): no token covers this word in the run text; "
                "remove empty or whitespace-only words from the stimulus"
            )
        first[i], last[i] = overlapping[0], overlapping[-1]
    shared = int(np.sum(first[1:] <= last[:-1]))
    if shared:
        log.warning("run %r: %d words share a token with the previous word", run, shared)
    return RunTokens(token_ids=token_ids, first_token=first, last_token=last)


def iter_word_batches(
    runs: list[RunTokens], context_tokens: int, pooling: str, batch_size: int,
    prefix: tuple[int, ...] | list[int] = (), suffix: tuple[int, ...] | list[int] = (), pad_id: int = 0,
) -> Iterator[WordBatch]:
    """Yield the batches (:class:`WordBatch`) of all words of ``runs``, in order.

    Parameters
    ----------
    runs : list of RunTokens
        In the order of :func:`ordered_words`.
    context_tokens : int
        Maximum window length (tokens), ending at each word's last token.
    pooling : {"last", "mean"}
    batch_size : int
        Words per batch.
    prefix, suffix : sequence of int
        Special token ids put before and after every window (encoder models).
    pad_id : int
        Token id of the (masked) padding.
    """
    import torch

    if pooling not in POOLINGS:
        raise InputError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    prefix = np.asarray(prefix, dtype=np.int64)
    suffix = np.asarray(suffix, dtype=np.int64)
    jobs = [(r, w) for r, run in enumerate(runs) for w in range(len(run.last_token))]
    for begin in range(0, len(jobs), batch_size):
        batch = jobs[begin : begin + batch_size]
        windows, weights = [], []
        for r, w in batch:
            run = runs[r]
            last = int(run.last_token[w])
            start = max(0, last - context_tokens + 1)
            windows.append(np.concatenate([prefix, run.token_ids[start : last + 1], suffix]))
            pooled = np.zeros(len(windows[-1]), dtype=np.float32)
            end = len(prefix) + last + 1 - start  # one past the word's last token
            if pooling == "last":
                pooled[end - 1] = 1.0
            else:
                first = max(int(run.first_token[w]), start)
                pooled[end - (last + 1 - first) : end] = 1.0 / (last + 1 - first)
            weights.append(pooled)
        width = max(len(x) for x in windows)
        input_ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        pool_weights = torch.zeros((len(batch), width), dtype=torch.float32)
        for i, (ids, pooled) in enumerate(zip(windows, weights)):
            input_ids[i, : len(ids)] = torch.from_numpy(ids)
            attention_mask[i, : len(ids)] = 1
            pool_weights[i, : len(pooled)] = torch.from_numpy(pooled)
        yield WordBatch(
            rows=slice(begin, begin + len(batch)),
            input_ids=input_ids,
            attention_mask=attention_mask,
            pool_weights=pool_weights,
            n_tokens=sum(len(x) for x in windows),
        )
