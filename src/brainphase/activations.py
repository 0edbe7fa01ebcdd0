"""``brainphase extract``: word-level hidden states of every layer of one checkpoint.

Each run's text (its words joined by single spaces, :func:`brainphase.stimuli.run_text`) is
tokenized once; the tokenizer's offset mapping assigns to each word the tokens whose
character span overlaps the word's. A word is then represented, at every layer, by the
hidden state of its last token (``pooling="last"``) or the mean over its tokens
(``pooling="mean"``), computed in one forward pass over a causal window of at most
``context_tokens`` tokens that ends at the word's last token (the sliding-window convention
of naturalistic-fMRI encoding studies). Windows never cross runs. Layer 0 is the token
embedding, layer ``i`` the output of block ``i``; the last one is after the model's final
layer norm (``output_hidden_states`` of Hugging Face models). Tokenization, windows and batches
are :mod:`brainphase.word_windows`.

Sentence lists (``--sentences FILE``, one sentence per line) take the same path: each
sentence becomes its own run named by its 0-based index (``s0000``, ``s0001``...;
:func:`brainphase.stimuli.sentence_words`), so, as windows never cross runs, every sentence
is processed in isolation, with no preceding sentence as context. Their ``onset``/``offset``
are ordinal word positions, not seconds; the root attribute ``stimulus_kind`` says which
kind of stimulus a file holds (``words`` or ``sentences``).

Encoder (masked, bidirectional) models (:mod:`brainphase.models.architecture`) get the same
window, wrapped in their tokenizer's special tokens (``[CLS] window [SEP]`` for BERT; the
special tokens do not count in ``context_tokens`` and are never pooled); within the window
every token sees every other one, so a word's vector depends on the words before it in the
window and on itself, never on later words.

Windows are batched, right-padded with the tokenizer's padding id, and every forward pass
gets an attention mask that hides the padding; positions are the models' default
``0 .. n-1`` from the first real token, which right padding leaves untouched. A word's
vector is therefore the same whatever else is in its batch (tested for batch size 1 against
mixed-length batches, causal and bidirectional). Each batch's word vectors are written
straight into chunked HDF5 datasets ``/layer_{i}``, so memory stays flat whatever the
stimulus length.
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, string_array
from brainphase.reduce import REDUCTIONS
from brainphase.word_windows import POOLINGS, iter_word_batches, ordered_words, tokenize_run

log = logging.getLogger(__name__)

STORAGE_DTYPES = ("float32", "float16")
#: values of the root attribute ``stimulus_kind``: timed words, or one run per sentence
STIMULUS_KINDS = ("words", "sentences")
#: Target size of one HDF5 chunk (bytes).
_CHUNK_BYTES = 1 << 20


def word_vectors(model, input_ids, pool_weights, attention_mask=None):
    """Pooled hidden states of every layer for one batch of word windows.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Causal LM or encoder (its base model is run; no head is needed).
    input_ids : torch.LongTensor, shape (n_batch, window)
    pool_weights : torch.Tensor, shape (n_batch, window)
    attention_mask : torch.LongTensor, shape (n_batch, window), optional
        0 on (right) padding; None means no padding.

    Returns
    -------
    torch.Tensor, shape (n_layers + 1, n_batch, d_model), float32, on the model's device
    """
    import torch

    device = next(model.parameters()).device
    weights = pool_weights.to(device, torch.float32, non_blocking=True)
    with torch.inference_mode():
        mask = None if attention_mask is None else attention_mask.to(device, non_blocking=True)
        out = model.base_model(input_ids=input_ids.to(device, non_blocking=True), attention_mask=mask,
                               output_hidden_states=True)
        return torch.stack([torch.einsum("bl,bld->bd", weights, h.float()) for h in out.hidden_states])


def effective_context(context_tokens: int, max_positions: int) -> int:
    """``context_tokens`` clamped to the model's maximum positions (logged when clamped)."""
    if context_tokens < 1:
        raise InputError(f"--context-tokens must be >= 1, got {context_tokens}")
    if context_tokens > max_positions:
        log.warning("context of %d tokens exceeds the model's %d positions; using %d", context_tokens, max_positions, max_positions)
        return max_positions
    return context_tokens


def extract_activations(
    checkpoint,
    words_df: pd.DataFrame,
    out_path: str | os.PathLike,
    context_tokens: int = 128,
    pooling: str = "last",
    batch_size: int = 32,
    storage_dtype: str = "float32",
    provenance_attrs: dict | None = None,
    stimulus_kind: str = "words",
    reduce: str = "none",
    reduce_dim: int = 0,
) -> None:
    """Write the activations file of one checkpoint (layout: ``docs/hdf5_layout.md``).

    Parameters
    ----------
    checkpoint : brainphase.models.checkpoints.Checkpoint
    words_df : DataFrame
        Stimulus table (run, word_index, word, onset, offset); stored in output order
        (:func:`ordered_words`), row-aligned with ``/layer_{i}``, shape (n_words, d_model).
    out_path : path
        Written atomically: nothing appears there on error.
    context_tokens : int
        Window length in tokens, clamped to the model's maximum positions (less its special
        tokens).
    pooling : {"last", "mean"}
    batch_size : int
        Words per forward pass.
    storage_dtype : {"float32", "float16"}
    provenance_attrs : dict, optional
        Root attributes (:func:`brainphase.io.provenance`); they override the checkpoint's
        model attributes (e.g. a ``model_id`` label).
    stimulus_kind : {"words", "sentences"}
        Stored as the root attribute ``stimulus_kind``: ``"sentences"`` when ``words_df``
        is :func:`brainphase.stimuli.sentence_words` (one run per sentence, ordinal times).
    reduce : {"none", "random_projection"}
        ``random_projection`` stores every layer as ``h @ R``, shape (n_words, reduce_dim), with
        the fixed matrix of :func:`brainphase.reduce.projection_matrix` (same for every checkpoint).
    reduce_dim : int
        Stored dimensions under ``random_projection`` (``< d_model``); ignored otherwise.
    """
    import torch
    from tqdm import tqdm

    from brainphase.models.architecture import pad_token_id, special_token_frame
    from brainphase.models.labels import model_attrs
    from brainphase.reduce import check_reduction, projection_matrix, reduction_attrs, stored_width

    if stimulus_kind not in STIMULUS_KINDS:
        raise InputError(f"stimulus kind {stimulus_kind!r}: choose one of {', '.join(STIMULUS_KINDS)}")
    if storage_dtype not in STORAGE_DTYPES:
        raise InputError(f"--storage-dtype {storage_dtype!r}: choose one of {', '.join(STORAGE_DTYPES)}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    info = checkpoint.info
    encoder = info.get("architecture") == "encoder"
    prefix, suffix = special_token_frame(checkpoint.tokenizer) if encoder else ([], [])
    context = effective_context(int(context_tokens), info["max_positions"] - len(prefix) - len(suffix))
    if encoder:
        log.info("encoder model: windows framed as %s + window + %s, context bidirectional within each window",
                 prefix, suffix)
    words = ordered_words(words_df)
    runs = [tokenize_run(checkpoint.tokenizer, words, run) for run in pd.unique(words["run"])]
    n_words, d_model, n_hidden = len(words), info["d_model"], info["n_layers"] + 1
    check_reduction(reduce, reduce_dim, d_model)
    width = stored_width(reduce, reduce_dim, d_model)
    n_cut = sum(int(np.sum(r.last_token - r.first_token + 1 > context)) for r in runs)
    if n_cut and pooling == "mean":
        log.warning("%d words have more tokens than the %d-token context; their mean uses the last %d", n_cut, context, context)
    log.info(
        "extracting %d words (%d runs, %d tokens) x %d layers, context %d, pooling %s",
        n_words, len(runs), sum(len(r.token_ids) for r in runs), n_hidden, context, pooling,
    )
    attrs = {
        **model_attrs(info),
        **(provenance_attrs or {}),
        "n_layers": n_hidden,
        "n_blocks": info["n_layers"],
        "d_model": d_model,
        "context_tokens": context,
        "context_tokens_requested": int(context_tokens),
        "pooling": pooling,
        "dtype": storage_dtype,
        "compute_dtype": info["dtype"],
        "device": info["device"],
        "stimulus_kind": stimulus_kind,
        "architecture": info.get("architecture", "causal"),
        "special_tokens": len(prefix) + len(suffix),
        **reduction_attrs(reduce, reduce_dim),
    }
    projection = None
    if reduce == "random_projection":
        projection = torch.from_numpy(projection_matrix(d_model, reduce_dim)).to(next(checkpoint.model.parameters()).device)
        log.info("storing a random projection of every layer: %d -> %d dimensions", d_model, reduce_dim)
    chunk_rows = max(1, min(n_words, _CHUNK_BYTES // (width * np.dtype(storage_dtype).itemsize)))
    with atomic_h5(out_path, attrs) as handle:
        _write_words(handle, words)
        layers = [
            handle.create_dataset(f"layer_{i}", shape=(n_words, width), dtype=storage_dtype, chunks=(chunk_rows, width))
            for i in range(n_hidden)
        ]
        batches = iter_word_batches(runs, context, pooling, batch_size, prefix, suffix, pad_token_id(checkpoint.tokenizer))
        total = -(-n_words // batch_size)
        for batch in tqdm(batches, total=total, desc="extract", unit="batch", leave=False):
            vectors = word_vectors(checkpoint.model, batch.input_ids, batch.pool_weights, batch.attention_mask)
            if not bool(torch.isfinite(vectors).all()):
                raise InputError(f"{info['source']} ({info['revision']}): the model produced non-finite hidden states")
            if projection is not None:
                vectors = vectors @ projection
            stored = vectors.cpu().numpy().astype(storage_dtype, copy=False)
            if storage_dtype == "float16" and not np.isfinite(stored).all():
                raise InputError(f"hidden states of {info['source']} overflow float16; use --storage-dtype float32")
            for layer, values in zip(layers, stored):
                layer[batch.rows] = values
    log.info("wrote %s: %d words x %d layers x %d dims (%s)", out_path, n_words, n_hidden, width, storage_dtype)


def _write_words(handle, words: pd.DataFrame) -> None:
    group = handle.create_group("words")
    group.create_dataset("run", data=string_array(words["run"].astype(str)))
    group.create_dataset("word_index", data=words["word_index"].to_numpy(np.int64))
    group.create_dataset("word", data=string_array(words["word"].astype(str)))
    group.create_dataset("onset", data=words["onset"].to_numpy(np.float64))
    group.create_dataset("offset", data=words["offset"].to_numpy(np.float64))


def add_extract_options(parser: argparse.ArgumentParser) -> None:
    """The stimulus and extraction options of ``brainphase extract`` (also ``brainphase measure``):
    ``--stimulus``/``--sentences``, ``--context-tokens``, ``--pooling``, ``--batch-size``,
    ``--storage-dtype``, ``--reduce``, ``--reduce-dim`` (defaults from config/schema.yaml, section ``extract``)."""
    from brainphase.config import schema_default

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stimulus", help="timed stimulus words (TSV, TextGrid or folder of TextGrids)")
    source.add_argument("--sentences",
                        help="sentence list, one sentence per line; each sentence is its own run (s0000, s0001, ...) "
                             "and is processed in isolation; onset/offset are word positions, not seconds")
    parser.add_argument("--context-tokens", type=int, default=schema_default("extract.context_tokens"),
                        help="window per word, in tokens, ending at its last token (default: %(default)s)")
    parser.add_argument("--pooling", choices=POOLINGS, default=schema_default("extract.pooling"),
                        help="pooling over a word's tokens (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=schema_default("extract.batch_size"),
                        help="words per forward pass (default: %(default)s)")
    parser.add_argument("--storage-dtype", choices=STORAGE_DTYPES, default=schema_default("extract.storage_dtype"))
    parser.add_argument("--reduce", choices=REDUCTIONS, default=schema_default("extract.reduce"),
                        help="store every layer at full width, or a fixed Gaussian random projection of it "
                             "(brainphase.reduce; default: %(default)s)")
    parser.add_argument("--reduce-dim", type=int, default=schema_default("extract.reduce_dim"),
                        help="dimensions stored with --reduce random_projection (default: %(default)s)")


def stimulus_from_args(args: argparse.Namespace) -> tuple[pd.DataFrame, str, str]:
    """The words of the options of :func:`add_extract_options`.

    Returns
    -------
    words : DataFrame
        Stimulus table (run, word_index, word, onset, offset).
    stimulus_path : str
        The file they were read from (recorded in the provenance).
    stimulus_kind : {"words", "sentences"}
    """
    from brainphase.stimuli import read_sentences, read_stimulus, sentence_words

    if args.sentences is not None:
        return sentence_words(read_sentences(args.sentences)), args.sentences, "sentences"
    return read_stimulus(args.stimulus), args.stimulus, "words"


def extract_from_args(checkpoint, args: argparse.Namespace, words: pd.DataFrame, stimulus_kind: str, out,
                      provenance_attrs: dict) -> None:
    """:func:`extract_activations` with the options of :func:`add_extract_options`."""
    extract_activations(
        checkpoint,
        words,
        out,
        context_tokens=args.context_tokens,
        pooling=args.pooling,
        batch_size=args.batch_size,
        storage_dtype=args.storage_dtype,
        provenance_attrs=provenance_attrs,
        stimulus_kind=stimulus_kind,
        reduce=args.reduce,
        reduce_dim=args.reduce_dim,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase extract``."""
    from brainphase.models.labels import add_checkpoint_arguments

    add_checkpoint_arguments(parser)
    add_extract_options(parser)
    parser.add_argument("--out", required=True, help="output activations .h5")


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase extract``."""
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.models.labels import cli_model_attrs

    words, stimulus_path, stimulus_kind = stimulus_from_args(args)
    checkpoint = load_checkpoint(args.model, revision=args.revision, device=args.device)
    attrs = provenance("extract", args, [stimulus_path], **cli_model_attrs(checkpoint.info, args))
    extract_from_args(checkpoint, args, words, stimulus_kind, args.out, attrs)
