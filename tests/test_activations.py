"""`brainphase extract`: stored word vectors against direct model calls, layout, bad inputs."""

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from _models import (  # noqa: F401
    D_MODEL,
    MAX_POSITIONS,
    N_LAYERS,
    STIMULUS_WORDS,
    build_model,
    save_checkpoint,
    tiny_bert_checkpoint,
    tiny_checkpoint,
    tiny_tokenizer_dir,
    untrimmed_checkpoint,
    write_stimulus,
)
from brainphase import cli
from brainphase.activations import extract_activations
from brainphase.errors import InputError
from brainphase.io import read_attrs, read_strings
from brainphase.models.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def words_df(tmp_path_factory):
    from brainphase.stimuli import read_stimulus

    return read_stimulus(write_stimulus(tmp_path_factory.mktemp("stim") / "words.tsv"))


def reference_vectors(checkpoint, words_df, context_tokens, pooling, frame=((), ())):
    """Word vectors from one direct model call per word (its window inside ``frame``: the
    special token ids before and after it).

    A word's tokens are found without offsets: its last token is the last token of the
    text up to the word's end, its first the one after the tokens of the text up to the
    space before it (byte-level BPE and WordPiece never merge across that space);
    whitespace-only tokens are not part of a word.

    Returns
    -------
    ndarray, shape (n_layers + 1, n_words, d_model), rows in stimulus order (run, word_index)
    """
    from brainphase.stimuli import run_text

    tokenizer = checkpoint.tokenizer

    def tokenize(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    rows = []
    for run in pd.unique(words_df["run"]):
        text, spans = run_text(words_df, run)
        ids = tokenize(text)
        for start, end in spans:
            prefix = tokenize(text[:end])
            assert ids[: len(prefix)] == prefix
            first, last = (len(tokenize(text[: start - 1])) if start else 0), len(prefix) - 1
            window_start = max(0, last - context_tokens + 1)
            window = [*frame[0], *ids[window_start : last + 1], *frame[1]]
            with torch.no_grad():
                out = checkpoint.model(torch.tensor([window]), output_hidden_states=True)
            states = torch.stack(out.hidden_states)[:, 0, len(frame[0]) : len(window) - len(frame[1])]
            if pooling == "last":
                rows.append(states[:, -1])
            else:
                word_tokens = [t for t in range(max(first, window_start), last + 1) if tokenizer.decode([ids[t]]).strip()]
                rows.append(states[:, [t - window_start for t in word_tokens]].mean(dim=1))
    return torch.stack(rows, dim=1).numpy()


def read_layers(path):
    with h5py.File(path, "r") as handle:
        n_layers = handle.attrs["n_layers"]
        return np.stack([handle[f"layer_{i}"][()] for i in range(n_layers)])


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_stored_vectors_equal_direct_model_calls(checkpoint, words_df, tmp_path, pooling):
    _check_against_direct_calls(checkpoint, words_df, tmp_path, pooling)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_offsets_including_leading_spaces(untrimmed_checkpoint, words_df, tmp_path, pooling):
    """The tokenizer of `brainphase train` gives offsets that include a token's leading space."""
    checkpoint = load_checkpoint(untrimmed_checkpoint, device="cpu")
    encoding = checkpoint.tokenizer(" fox", return_offsets_mapping=True, add_special_tokens=False)
    assert encoding["offset_mapping"][0][0] == 0  # the space is inside the first token's span
    _check_against_direct_calls(checkpoint, words_df, tmp_path, pooling)


def _check_against_direct_calls(checkpoint, words_df, tmp_path, pooling):
    out = tmp_path / "act.h5"
    extract_activations(checkpoint, words_df, out, context_tokens=12, pooling=pooling, batch_size=5)
    stored = read_layers(out)
    assert stored.shape == (N_LAYERS + 1, len(words_df), D_MODEL)
    expected = reference_vectors(checkpoint, words_df, 12, pooling)
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)
    with h5py.File(out, "r") as handle:
        assert read_strings(handle["words/word"]) == STIMULUS_WORDS["story_a"] + STIMULUS_WORDS["story_b"]
        assert read_strings(handle["words/run"])[-1] == "story_b"
        np.testing.assert_allclose(handle["words/onset"][:3], [0.0, 0.3, 0.6])
        assert handle["layer_0"].chunks is not None and handle["layer_0"].dtype == np.float32
    attrs = read_attrs(out)
    assert (attrs["n_layers"], attrs["n_blocks"], attrs["d_model"]) == (N_LAYERS + 1, N_LAYERS, D_MODEL)
    assert (attrs["context_tokens"], attrs["pooling"], attrs["dtype"]) == (12, pooling, "float32")
    assert attrs["stimulus_kind"] == "words"
    assert (attrs["model_id"], attrs["step"], attrs["tokens"], attrs["seed"]) == ("tiny-test", 16, 4096, 3)


def test_multi_token_words_pool_differently(checkpoint, words_df, tmp_path):
    from brainphase.word_windows import ordered_words, tokenize_run

    words = ordered_words(words_df)
    runs = [tokenize_run(checkpoint.tokenizer, words, run) for run in pd.unique(words["run"])]
    n_tokens = np.concatenate([r.last_token - r.first_token + 1 for r in runs])
    word_list = words["word"].tolist()
    # the stimulus exercises: multi-token words, punctuation-only tokens, non-ASCII, Japanese
    for word in ["extraordinarily", "\"Café", "今日は", "naïve,", "—"]:
        assert n_tokens[word_list.index(word)] > 1, word
    paths = {}
    for pooling in ("last", "mean"):
        paths[pooling] = tmp_path / f"{pooling}.h5"
        extract_activations(checkpoint, words_df, paths[pooling], context_tokens=20, pooling=pooling, batch_size=64)
    last, mean = read_layers(paths["last"]), read_layers(paths["mean"])
    single = n_tokens == 1
    np.testing.assert_allclose(last[:, single], mean[:, single], atol=1e-6)
    assert np.all(np.abs(last[:, ~single] - mean[:, ~single]).max(axis=(0, 2)) > 1e-3)


def test_context_longer_than_max_positions_is_clamped(checkpoint, words_df, tmp_path):
    from brainphase.word_windows import ordered_words, tokenize_run

    run_a = tokenize_run(checkpoint.tokenizer, ordered_words(words_df), "story_a")
    assert run_a.last_token[-1] + 1 > MAX_POSITIONS  # late words really have a full window
    out = tmp_path / "long.h5"
    extract_activations(checkpoint, words_df, out, context_tokens=1000, pooling="last", batch_size=8)
    attrs = read_attrs(out)
    assert (attrs["context_tokens"], attrs["context_tokens_requested"]) == (MAX_POSITIONS, 1000)
    np.testing.assert_allclose(
        read_layers(out), reference_vectors(checkpoint, words_df, MAX_POSITIONS, "last"), rtol=1e-4, atol=1e-5
    )


def test_cli_extract_writes_labels_and_float16(tiny_checkpoint, tmp_path, checkpoint, words_df):
    stimulus = write_stimulus(tmp_path / "words.tsv")
    out = tmp_path / "out" / "step16.h5"
    status = cli.main(
        ["extract", "--model", str(tiny_checkpoint), "--stimulus", str(stimulus), "--out", str(out),
         "--model-id", "tinyLabel", "--seed", "7", "--context-tokens", "10", "--storage-dtype", "float16",
         "--device", "cpu", "--batch-size", "4"]
    )
    assert status == 0
    attrs = read_attrs(out)
    assert (attrs["stage"], attrs["model_id"], attrs["seed"], attrs["dtype"]) == ("extract", "tinyLabel", 7, "float16")
    assert str(stimulus) in attrs["input_sha256"] and "model.safetensors" in attrs["weights_sha256"]
    stored = read_layers(out)
    assert stored.dtype == np.float16
    np.testing.assert_allclose(stored, reference_vectors(checkpoint, words_df, 10, "last"), rtol=2e-3, atol=2e-3)


def _run_cli_expecting_error(args, out, capsys):
    status = cli.main(["extract", *args, "--out", str(out), "--device", "cpu"])
    message = capsys.readouterr().err
    assert status == 2
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp left
    return message


def test_bad_inputs_are_clear_errors_without_output(tiny_checkpoint, tmp_path, capsys):
    from transformers import AutoTokenizer

    stimulus = write_stimulus(tmp_path / "words.tsv")
    out = tmp_path / "act.h5"
    model_args = ["--model", str(tiny_checkpoint)]

    empty = tmp_path / "empty.tsv"
    empty.write_text("run\tword_index\tword\tonset\toffset\n")
    message = _run_cli_expecting_error([*model_args, "--stimulus", str(empty)], out, capsys)
    assert "empty.tsv" in message

    message = _run_cli_expecting_error(["--model", str(tiny_checkpoint.parent), "--revision", "step5",
                                        "--stimulus", str(stimulus)], out, capsys)
    assert "'step5' is not available" in message

    mismatched = save_checkpoint(tmp_path / "mismatch", AutoTokenizer.from_pretrained(tiny_checkpoint), build_model(64))
    message = _run_cli_expecting_error(["--model", str(mismatched), "--stimulus", str(stimulus)], out, capsys)
    assert "tokenizer does not belong to this model" in message

    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_checkpoint, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 100)
    message = _run_cli_expecting_error(["--model", str(corrupt), "--stimulus", str(stimulus)], out, capsys)
    assert "model.safetensors: corrupt or unreadable weight file" in message


def test_words_without_tokens_leave_no_output(checkpoint, words_df, tmp_path):
    broken = words_df.copy()
    broken.loc[3, "word"] = ""
    out = tmp_path / "act.h5"
    with pytest.raises(InputError, match="no token covers this word"):
        extract_activations(checkpoint, broken, out, context_tokens=8)
    with pytest.raises(InputError, match="no words"):
        extract_activations(checkpoint, words_df.iloc[:0], out, context_tokens=8)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def bert(tiny_bert_checkpoint):
    return load_checkpoint(tiny_bert_checkpoint, device="cpu")


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_encoder_windows_carry_its_special_tokens(bert, words_df, tmp_path, pooling):
    cls_id, sep_id = bert.tokenizer.cls_token_id, bert.tokenizer.sep_token_id
    out = tmp_path / "bert.h5"
    extract_activations(bert, words_df, out, context_tokens=12, pooling=pooling, batch_size=5)
    stored = read_layers(out)
    assert stored.shape == (N_LAYERS + 1, len(words_df), D_MODEL)
    expected = reference_vectors(bert, words_df, 12, pooling, frame=([cls_id], [sep_id]))
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)
    attrs = read_attrs(out)
    assert (attrs["architecture"], attrs["special_tokens"], attrs["step"]) == ("encoder", 2, -1)
    if pooling == "last":
        # without [CLS]/[SEP] the vectors differ: the frame is really there
        assert np.abs(stored - reference_vectors(bert, words_df, 12, pooling)).max() > 1e-3
        # the context is clamped to the positions left after the special tokens
        extract_activations(bert, words_df, tmp_path / "long.h5", context_tokens=1000, batch_size=32)
        assert read_attrs(tmp_path / "long.h5")["context_tokens"] == MAX_POSITIONS - 2


@pytest.mark.parametrize("model", ["causal", "encoder"])
def test_a_word_vector_does_not_depend_on_its_batch(checkpoint, bert, words_df, tmp_path, model):
    """Batch size 1 against batches of windows of mixed lengths (runs start with short windows)."""
    chosen = checkpoint if model == "causal" else bert
    layers = {}
    for batch_size in (1, 7):
        out = tmp_path / f"b{batch_size}.h5"
        extract_activations(chosen, words_df, out, context_tokens=20, pooling="mean", batch_size=batch_size)
        layers[batch_size] = read_layers(out)
    from brainphase.word_windows import iter_word_batches, ordered_words, tokenize_run

    words = ordered_words(words_df)
    runs = [tokenize_run(chosen.tokenizer, words, run) for run in pd.unique(words["run"])]
    widths = [b.attention_mask.sum(dim=1) for b in iter_word_batches(runs, 20, "mean", 7)]
    assert any(len(set(w.tolist())) > 1 for w in widths)  # batches really mix window lengths
    np.testing.assert_allclose(layers[7], layers[1], rtol=1e-5, atol=1e-5)


def test_cli_extract_of_a_plain_encoder_folder_labels_unknowns(tiny_bert_checkpoint, tmp_path, caplog):
    """No metadata, no --seed/--step: step -1 and tokens -1 (unknown), seed 0, all integers."""
    import logging

    stimulus = write_stimulus(tmp_path / "words.tsv")
    out = tmp_path / "step-1.h5"
    with caplog.at_level(logging.INFO):
        assert cli.main(["extract", "--model", str(tiny_bert_checkpoint), "--stimulus", str(stimulus),
                         "--out", str(out), "--device", "cpu", "--context-tokens", "8"]) == 0
    attrs = read_attrs(out)
    assert (attrs["step"], attrs["tokens"], attrs["seed"], attrs["architecture"]) == (-1, -1, 0, "encoder")
    assert "bidirectional within the window" in caplog.text and "labelled seed 0" in caplog.text
    assert cli.main(["extract", "--model", str(tiny_bert_checkpoint), "--stimulus", str(stimulus), "--out",
                     str(tmp_path / "s0.h5"), "--device", "cpu", "--context-tokens", "8", "--step", "0"]) == 0
    assert (read_attrs(tmp_path / "s0.h5")["step"], read_attrs(tmp_path / "s0.h5")["tokens"]) == (0, 0)
