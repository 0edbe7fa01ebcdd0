"""Tests of brainphase.models.train: reproducibility, checkpoints, metadata, learning, errors."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from brainphase.cli import main as cli_main  # noqa: E402
from brainphase.errors import InputError  # noqa: E402
from brainphase.models import train  # noqa: E402

STEPS = [0, 10, 30]
VOCAB, SEQ_LEN, BATCH = 384, 32, 8
TINY = ["--n-layers", "2", "--d-model", "32", "--n-heads", "4", "--rotary-pct", "0.5", "--seq-len", str(SEQ_LEN),
        "--batch-size", str(BATCH), "--vocab-size", str(VOCAB), "--warmup-steps", "5", "--lr", "3e-3",
        "--eval-every", "5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A generated corpus and three tiny training runs: seed 1 twice and seed 2."""
    root = tmp_path_factory.mktemp("train")
    corpus = root / "corpus"
    assert cli_main(["corpus", "--source", "generated", "--out-dir", str(corpus), "--max-train-chars", "60000",
                     "--stimulus-runs", "1", "--stimulus-words", "50", "--seed", "0"]) == 0
    out = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out[name] = root / name
        argv = ["train", "--corpus-dir", str(corpus), "--out-dir", str(out[name]), "--model-id", "tiny-test",
                "--seed", str(seed), "--steps", *map(str, STEPS), "--threads", "1", "--device", "cpu", *TINY]
        assert cli_main(argv) == 0
    return corpus, out


def _weights(run_dir, step):
    return load_file(str(run_dir / f"step{step}" / "model.safetensors"))


def test_same_seed_identical_other_seed_different(runs):
    _, out = runs
    for step in STEPS:
        a, b, c = (_weights(out[k], step) for k in "abc")
        assert a.keys() == b.keys() == c.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a if a[k].dim() >= 2)
    first, last = _weights(out["a"], 0), _weights(out["a"], 30)
    assert not torch.equal(first["gpt_neox.embed_in.weight"], last["gpt_neox.embed_in.weight"])


def test_checkpoint_metadata_and_layout(runs):
    _, out = runs
    for step in STEPS:
        meta = json.loads((out["c"] / f"step{step}" / train.CHECKPOINT_META).read_text())
        assert meta["step"] == step and meta["seed"] == 2 and meta["model_id"] == "tiny-test"
        assert meta["tokens_seen"] == step * BATCH * SEQ_LEN
        assert meta["train_config"]["steps"] == STEPS and meta["train_config"]["d_model"] == 32
        assert (out["c"] / f"step{step}" / "tokenizer.json").is_file()
    assert sorted(p.name for p in out["c"].iterdir()) == ["step0", "step10", "step30", "train_log.csv"]


def test_train_log(runs):
    _, out = runs
    assert b"\r" not in (out["a"] / "train_log.csv").read_bytes()
    log = pd.read_csv(out["a"] / "train_log.csv")
    assert list(log.columns) == list(train.LOG_COLUMNS)
    np.testing.assert_array_equal(log["step"], np.arange(31))
    np.testing.assert_array_equal(log["tokens"], np.arange(31) * BATCH * SEQ_LEN)
    assert np.isnan(log["train_loss"][0]) and log["train_loss"][1:].notna().all()
    assert log.loc[log["valid_loss"].notna(), "step"].tolist() == [0, 5, 10, 15, 20, 25, 30]
    # warmup then cosine to 10%: closed form at a few updates (5 warmup, 30 total)
    np.testing.assert_allclose(log["lr"][[1, 5, 30]], [3e-3 / 5, 3e-3, 3e-4], rtol=1e-5)
    midpoint = 5 + 25 / 2
    assert train.learning_rate(midpoint, 3e-3, 5, 30) == pytest.approx(3e-3 * (0.1 + 0.9 * 0.5))


def test_learns_from_uniform_start(runs):
    _, out = runs
    log = pd.read_csv(out["a"] / "train_log.csv").set_index("step")
    # at initialisation the predictions are near uniform: loss ~ log(vocab)
    assert log.loc[0, "valid_loss"] == pytest.approx(math.log(VOCAB), abs=0.1)
    assert log.loc[30, "valid_loss"] < log.loc[0, "valid_loss"] - 0.5
    assert log.loc[30, "valid_loss"] < log.loc[10, "valid_loss"]


def test_checkpoint_loads_back_and_reproduces_logged_loss(runs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    corpus, out = runs
    step_dir = out["a"] / "step30"
    model = AutoModelForCausalLM.from_pretrained(step_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(step_dir)
    assert type(model).__name__ == "GPTNeoXForCausalLM" and model.config.num_hidden_layers == 2
    # --rotary-pct 0.5 of 8-dim heads: 4 rotary dims, i.e. 2 frequencies base**(-2i/4)
    torch.testing.assert_close(model.gpt_neox.rotary_emb.inv_freq, torch.tensor([1.0, 0.01]))
    assert len(tokenizer) == VOCAB and tokenizer.eos_token == train.EOS_TOKEN
    valid_text = (corpus / "valid.txt").read_text()
    ids = np.asarray(tokenizer(valid_text, add_special_tokens=False)["input_ids"])
    np.testing.assert_array_equal(ids, train.encode(tokenizer, valid_text))
    windows = torch.from_numpy(train.eval_windows(ids, SEQ_LEN))
    # independent loss: HF's own shifted-label loss of the reloaded model and tokenizer
    with torch.no_grad():
        losses = [model(input_ids=w[None, :-1], labels=w[None, :-1]).loss.item() * (SEQ_LEN - 1)
                  + torch.nn.functional.cross_entropy(model(input_ids=w[None, :-1]).logits[0, -1:], w[-1:]).item()
                  for w in windows]
    reloaded = float(np.sum(losses) / (len(windows) * SEQ_LEN))
    logged = pd.read_csv(out["a"] / "train_log.csv").set_index("step").loc[30, "valid_loss"]
    assert reloaded == pytest.approx(logged, abs=1e-4)
    # same logits as a second load (weights fully restored, no random init left)
    again = AutoModelForCausalLM.from_pretrained(step_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=windows[:2]).logits, again(input_ids=windows[:2]).logits,
                                   rtol=0, atol=0)


def test_tokenizer_is_deterministic():
    text = "the cat sat on the mat. the dog sat on the log.\n\n" * 50
    first, second = train.train_tokenizer(text, 280), train.train_tokenizer(text, 280)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    ids = train.encode(first, text)
    assert first.decode(ids.tolist()) == text


def _args(**overrides):
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    argv = ["--corpus-dir", "c", "--out-dir", "o", "--steps", "0", "5"]
    args = parser.parse_args(argv)
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize("overrides, message", [
    ({"steps": [1, 5]}, "must start at 0"),
    ({"steps": [0, 8, 4]}, "strictly increase"),
    ({"steps": [0]}, "at least one step after 0"),
    ({"vocab_size": 200}, "--vocab-size 200 is too small"),
    ({"d_model": 30}, "not divisible"),
    ({"rotary_pct": 0.0}, r"--rotary-pct must be in \(0, 1\]"),
    ({"rotary_pct": 1.5}, r"--rotary-pct must be in \(0, 1\]"),
    ({"d_model": 24, "rotary_pct": 0.25}, "gives 1 rotary dimensions"),  # a quarter of 6-dim heads
    ({"rotary_pct": 0.1875}, "gives 3 rotary dimensions: .* even number"),
])
def test_argument_errors(overrides, message):
    with pytest.raises(InputError, match=message):
        train.check_args(_args(**overrides))


def test_corpus_errors(tmp_path, runs):
    corpus, _ = runs
    argv = ["train", "--corpus-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path / "o"),
            "--steps", "0", "2", *TINY]
    with pytest.raises(InputError, match="train.txt: not found"):
        train.main(_args(corpus_dir=tmp_path / "none", out_dir=tmp_path / "o"))
    assert cli_main(argv) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.txt").write_text("\n")
    (empty / "valid.txt").write_text("some text\n")
    with pytest.raises(InputError, match="train.txt: empty"):
        train.main(_args(corpus_dir=empty, out_dir=tmp_path / "o"))
    short = tmp_path / "short"
    short.mkdir()
    (short / "train.txt").write_text((corpus / "train.txt").read_text())
    (short / "valid.txt").write_text("too short\n")
    with pytest.raises(InputError, match="valid.txt: .* fewer than --seq-len"):
        train.main(_args(corpus_dir=short, out_dir=tmp_path / "o", vocab_size=300, seq_len=64))
    assert not (tmp_path / "o").exists()


def test_crash_keeps_logged_rows_and_finished_checkpoints(runs, tmp_path, monkeypatch):
    corpus, _ = runs
    real_save = train.save_checkpoint

    def crash_at_10(out_dir, model, tokenizer, args, step):
        if step == 10:
            raise RuntimeError("simulated crash")
        return real_save(out_dir, model, tokenizer, args, step)

    monkeypatch.setattr(train, "save_checkpoint", crash_at_10)
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli_main(["train", "--corpus-dir", str(corpus), "--out-dir", str(out), "--steps", "0", "10", "20", *TINY])
    assert sorted(p.name for p in out.iterdir()) == ["step0", "train_log.csv.partial"]
    partial = pd.read_csv(out / "train_log.csv.partial")
    assert partial["step"].tolist() == list(range(10))  # step 10 crashed before its row was written
