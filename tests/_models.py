"""Tiny, seeded GPT-NeoX and BERT models and tokenizers for the model-side tests (no downloads).

Imported by ``test_checkpoints.py``, ``test_activations.py`` and ``test_tasks.py``; the
fixtures are session-scoped so the tokenizer is trained and the model saved once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

#: Training sentences for the test tokenizer: English with punctuation, accented Latin,
#: Greek, Cyrillic and Japanese, so byte-level merges split some words into several tokens.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She said, \"Hello!\" and walked away; nobody answered.",
    "Café crème, naïve façade, déjà vu: résumé of the coöperative.",
    "Ελληνικά γράμματα και λέξεις.",
    "Привет, как дела? Всё хорошо.",
    "今日は良い天気です。私は本を読みます。",
    "東京の大学で言語モデルを研究しています。",
    "It's 3:45 p.m. on 2024-05-06 -- time for tea (or coffee?).",
    "Neurons in the temporal lobe respond to words and sentences.",
    "A story about a long journey across the mountains and rivers.",
]

#: A stimulus with multi-token words, punctuation, non-ASCII and Japanese words, in two runs.
STIMULUS_WORDS = {
    "story_a": (
        "Once upon a time, the extraordinarily curious fox said: \"Café déjà vu!\" "
        "and ran across the mountains, past rivers and forests; nobody followed."
    ).split(" "),
    "story_b": "今日は 良い 天気 です。 The fox read 本 quietly — naïve, but happy.".split(" "),
}

#: Model geometry: small and distinct numbers so transposed arrays are caught.
N_LAYERS = 2
D_MODEL = 32
MAX_POSITIONS = 64


def train_tokenizer(out_dir: Path, trim_offsets: bool = True) -> "object":
    """Train a byte-level BPE tokenizer on :data:`SENTENCES` and save it to ``out_dir``.

    With ``trim_offsets`` (as Pythia's tokenizer) a token's character offsets exclude its
    leading space; without (as ``brainphase train``'s tokenizer) they include it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    if trim_offsets:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(SENTENCES * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    fast.save_pretrained(out_dir)
    return fast


def _seeded_model(config_class, model_class, vocab_size: int, seed: int, max_positions: int, **extra):
    """A randomly initialised (seeded) model of the test geometry (:data:`N_LAYERS`, :data:`D_MODEL`)."""
    import torch

    torch.manual_seed(seed)
    config = config_class(vocab_size=vocab_size, hidden_size=D_MODEL, num_hidden_layers=N_LAYERS, num_attention_heads=4,
                          intermediate_size=48, max_position_embeddings=max_positions, **extra)
    return model_class(config).eval()


def build_model(vocab_size: int, seed: int = 0, max_positions: int = MAX_POSITIONS):
    """A randomly initialised (seeded) GPT-NeoX causal LM with the test geometry."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    return _seeded_model(GPTNeoXConfig, GPTNeoXForCausalLM, vocab_size, seed, max_positions, rotary_pct=0.5,
                         tie_word_embeddings=False)


def save_checkpoint(folder: Path, tokenizer, model, step: int = 16, seed: int = 3, tokens_seen: int = 4096) -> Path:
    """Save model + tokenizer + ``brainphase_checkpoint.json`` like the trainer does."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta = {"model_id": "tiny-test", "seed": seed, "step": step, "tokens_seen": tokens_seen, "train_config": {}}
    (folder / "brainphase_checkpoint.json").write_text(json.dumps(meta))
    return folder


def write_stimulus(path: Path, words_by_run: dict[str, list[str]] = STIMULUS_WORDS) -> Path:
    """Write a stimulus TSV (columns run, word_index, word, onset, offset) with 0.3 s per word."""
    rows = []
    for run, words in words_by_run.items():
        for index, word in enumerate(words):
            rows.append({"run": run, "word_index": index, "word": word, "onset": 0.3 * index, "offset": 0.3 * index + 0.25})
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_NONE)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """Folder holding the trained test tokenizer."""
    folder = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A saved local checkpoint folder ``.../step16`` (model, tokenizer, brainphase_checkpoint.json)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    root = tmp_path_factory.mktemp("run")
    return save_checkpoint(root / "step16", tokenizer, build_model(len(tokenizer)))


@pytest.fixture(scope="session")
def untrimmed_checkpoint(tmp_path_factory) -> Path:
    """Like :func:`tiny_checkpoint`, with a tokenizer whose offsets include leading spaces."""
    folder = tmp_path_factory.mktemp("untrimmed")
    tokenizer = train_tokenizer(folder / "tokenizer", trim_offsets=False)
    return save_checkpoint(folder / "step16", tokenizer, build_model(len(tokenizer), seed=5))


def train_wordpiece_tokenizer(out_dir: Path):
    """A BERT-style WordPiece tokenizer (lower-casing, ``[CLS] text [SEP]``) trained on
    :data:`SENTENCES` and saved to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    tokenizer.train_from_iterator(SENTENCES * 20, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out_dir)
    return fast


def planted_model(vocab_size: int, k: int, a: float, j: int = 5):
    """A GPT-NeoX whose logits are ``a`` for token ``k`` and 0 for every other token, at every position.

    The final layer norm outputs the unit vector e_j whatever its input; the output embedding
    maps e_j to ``a`` at row ``k``. The softmax is then known in closed form:
    p(k) = e^a / (e^a + vocab_size - 1).
    """
    import torch

    model = build_model(vocab_size, seed=1)
    with torch.no_grad():
        model.gpt_neox.final_layer_norm.weight.zero_()
        model.gpt_neox.final_layer_norm.bias.zero_()
        model.gpt_neox.final_layer_norm.bias[j] = 1.0
        model.get_output_embeddings().weight.zero_()
        model.get_output_embeddings().weight[k, j] = a
    return model


def build_bert(vocab_size: int, seed: int = 0, max_positions: int = MAX_POSITIONS):
    """A randomly initialised (seeded) BERT masked LM with the test geometry."""
    from transformers import BertConfig, BertForMaskedLM

    return _seeded_model(BertConfig, BertForMaskedLM, vocab_size, seed, max_positions, pad_token_id=0)


@pytest.fixture(scope="session")
def tiny_bert_checkpoint(tmp_path_factory) -> Path:
    """A saved BERT (``BertForMaskedLM``) folder with its WordPiece tokenizer, no metadata."""
    folder = tmp_path_factory.mktemp("bert") / "tiny-bert"
    tokenizer = train_wordpiece_tokenizer(folder)
    build_bert(len(tokenizer)).save_pretrained(folder)
    return folder
