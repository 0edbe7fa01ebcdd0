"""Loading checkpoints: devices, local folders, a fake offline Hub cache, and bad inputs."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from _models import (  # noqa: F401
    D_MODEL,
    MAX_POSITIONS,
    N_LAYERS,
    build_model,
    save_checkpoint,
    tiny_bert_checkpoint,
    tiny_checkpoint,
    tiny_tokenizer_dir,
)
from brainphase.errors import InputError
from brainphase.models import checkpoints as ck


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ck.resolve_device("auto") == (torch.device("cpu"), torch.float32)
    assert ck.resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    with pytest.raises(InputError, match="no CUDA device"):
        ck.resolve_device("cuda")
    with pytest.raises(InputError, match="choose auto, cpu or cuda"):
        ck.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ck.resolve_device("auto") == (torch.device("cuda"), torch.bfloat16)


def test_load_local_checkpoint_info(tiny_checkpoint):
    checkpoint = ck.load_checkpoint(tiny_checkpoint, device="cpu")
    info = checkpoint.info
    expected_sha = hashlib.sha256((tiny_checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert info["weights_sha256"] == {"model.safetensors": expected_sha}
    assert (info["model_id"], info["step"], info["tokens"], info["seed"]) == ("tiny-test", 16, 4096, 3)
    assert (info["n_layers"], info["d_model"], info["max_positions"]) == (N_LAYERS, D_MODEL, MAX_POSITIONS)
    assert (info["device"], info["dtype"]) == ("cpu", "float32")
    assert not checkpoint.model.training
    assert next(checkpoint.model.parameters()).dtype == torch.float32
    # same weights as a fresh model built with the same seed
    reference = build_model(len(checkpoint.tokenizer))
    ids = torch.tensor([[5, 17, 260, 3]])
    with torch.no_grad():
        assert torch.allclose(checkpoint.model(ids).logits, reference(ids).logits, atol=1e-6)


def test_local_revision_subfolder(tiny_checkpoint):
    checkpoint = ck.load_checkpoint(tiny_checkpoint.parent, revision="step16", device="cpu")
    assert checkpoint.info["revision"] == "step16" and checkpoint.info["step"] == 16
    with pytest.raises(InputError) as info:
        ck.load_checkpoint(tiny_checkpoint.parent, revision="step999", device="cpu")
    assert "'step999' is not available" in str(info.value) and "step16" in str(info.value)


def test_corrupt_weight_file_is_named(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"{weights}: corrupt or unreadable weight file"):
        ck.load_checkpoint(broken, device="cpu")


def test_missing_weights_and_config(tiny_checkpoint, tmp_path):
    folder = tmp_path / "noweights"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError):
        ck.load_checkpoint(folder, device="cpu")
    with pytest.raises(InputError, match="no config.json"):
        ck.load_checkpoint(tmp_path, device="cpu")
    with pytest.raises(InputError, match="pass --revision with one of its checkpoints: step16"):
        ck.load_checkpoint(tiny_checkpoint.parent, device="cpu")


def test_tokenizer_not_matching_the_model(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    folder = save_checkpoint(tmp_path / "small_vocab", tokenizer, build_model(vocab_size=100))
    with pytest.raises(InputError, match=r"tokenizer has \d+ tokens but the model embeds only 100"):
        ck.load_checkpoint(folder, device="cpu")


def _fake_hub_cache(cache, snapshot_source, repo="test-org/tiny"):
    """Lay out a Hugging Face cache with revisions step16 (good) and step32 (bad blob name)."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True)
    for revision, commit, blob_ok in [("step16", "a" * 40, True), ("step32", "b" * 40, False)]:
        snapshot = repo_dir / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for path in snapshot_source.iterdir():
            data = path.read_bytes()
            name = hashlib.sha256(data).hexdigest() if blob_ok else "0" * 64
            if path.name == "model.safetensors":
                (blobs / name).write_bytes(data)
                os.symlink(os.path.relpath(blobs / name, snapshot), snapshot / path.name)
            else:
                shutil.copy(path, snapshot / path.name)
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / revision).write_text(commit)


def test_hub_revisions_from_offline_cache(tiny_checkpoint, tmp_path):
    source = tmp_path / "plain"
    shutil.copytree(tiny_checkpoint, source)
    (source / "brainphase_checkpoint.json").unlink()
    _fake_hub_cache(tmp_path / "hub", source)
    _fake_hub_cache(tmp_path / "hub", source, repo="EleutherAI/pythia-tiny")
    code = textwrap.dedent(
        """
        import json
        from brainphase.errors import InputError
        from brainphase.models.checkpoints import load_checkpoint
        info = load_checkpoint("test-org/tiny", "step16", device="cpu").info
        print("INFO", json.dumps({k: info[k] for k in ("model_id", "revision", "step", "tokens", "weights_sha256")}))
        pythia = load_checkpoint("EleutherAI/pythia-tiny", "step16", device="cpu").info
        print("PYTHIA", pythia["step"], pythia["tokens"])
        for revision in ("step7", "step32"):
            try:
                load_checkpoint("test-org/tiny", revision, device="cpu")
            except InputError as exc:
                print("ERROR", revision, exc)
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"), HF_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    lines = {line.split(" ", 2)[0] + line.split(" ", 2)[1][:6]: line for line in out.stdout.splitlines() if " " in line}
    info = json.loads(out.stdout.split("INFO ", 1)[1].splitlines()[0])
    expected_sha = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    assert info == {
        "model_id": "test-org/tiny",
        "revision": "step16",
        "step": 16,
        "tokens": None,
        "weights_sha256": {"model.safetensors": expected_sha},
    }
    assert "PYTHIA 16 33554432" in out.stdout  # Pythia: 2,097,152 tokens per step
    assert "hf download test-org/tiny --revision step7" in lines["ERRORstep7"], out.stderr
    assert "corrupt download" in lines["ERRORstep32"] and "model.safetensors" in lines["ERRORstep32"], out.stderr


def _labels(**overrides):
    import argparse

    from brainphase.models.labels import add_checkpoint_arguments

    parser = argparse.ArgumentParser()
    add_checkpoint_arguments(parser)
    argv = ["--model", "some/folder"]
    for key, value in overrides.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    return parser.parse_args(argv)


def _info(step, tokens):
    return {"model_id": "m", "source": "some/folder", "revision": "", "seed": None, "step": step,
            "tokens": tokens, "weights_sha256": {"model.safetensors": "0" * 64}}


def test_step_and_tokens_per_step_fill_what_a_plain_folder_lacks():
    from brainphase.models.labels import cli_model_attrs

    attrs = cli_model_attrs(_info(None, None), _labels(step=300, tokens_per_step=1000, seed=2))
    assert (attrs["step"], attrs["tokens"], attrs["seed"]) == (300, 300_000, 2)
    # tokens known from the checkpoint win over tokens_per_step
    assert cli_model_attrs(_info(300, 5), _labels(step=300, tokens_per_step=1000))["tokens"] == 5


def test_contradicting_step_or_unknown_tokens_are_clear_errors():
    from brainphase.models.labels import cli_model_attrs

    with pytest.raises(InputError, match="tokens seen at step 3 are unknown.*--tokens-per-step"):
        cli_model_attrs(_info(None, None), _labels(step=3))
    with pytest.raises(InputError, match="--step 4 contradicts the checkpoint's own step 3"):
        cli_model_attrs(_info(3, 30), _labels(step=4))

    with pytest.raises(InputError, match="--tokens 7 contradicts the checkpoint's own 30 tokens"):
        cli_model_attrs(_info(3, 30), _labels(tokens=7))


def test_unknown_step_step_zero_and_missing_seed_have_fixed_labels():
    from brainphase.models.labels import DEFAULT_SEED, cli_model_attrs

    attrs = cli_model_attrs(_info(None, None), _labels())
    assert (attrs["step"], attrs["tokens"], attrs["seed"]) == (-1, -1, DEFAULT_SEED)
    assert cli_model_attrs(_info(None, None), _labels(tokens=10**9))["tokens"] == 10**9
    # step 0 is the initialisation: 0 tokens without tokens_per_step
    assert cli_model_attrs(_info(None, None), _labels(step=0))["tokens"] == 0
    assert cli_model_attrs(_info(0, None), _labels())["tokens"] == 0
    assert cli_model_attrs(_info(None, None), _labels(seed=4))["seed"] == 4


def test_missing_local_path_is_not_looked_up_on_the_hub(tmp_path):
    for missing in (tmp_path / "nope", "./not/here"):
        with pytest.raises(InputError) as info:
            ck.load_checkpoint(missing, device="cpu")
        assert "no such checkpoint folder" in str(info.value)
        assert "Repo id" not in str(info.value) and "hf download" not in str(info.value)


def test_model_kind_of_causal_encoder_and_refused_configs():
    from transformers import BertConfig, GPT2Config, GPTNeoXConfig, T5Config

    from brainphase.models.architecture import model_kind

    assert model_kind(GPTNeoXConfig(), "x") == "causal"
    assert model_kind(GPT2Config(architectures=["GPT2LMHeadModel"]), "x") == "causal"
    assert model_kind(BertConfig(architectures=["BertForMaskedLM"]), "x") == "encoder"
    # a BERT saved as BertLMHeadModel without is_decoder is an encoder, not a causal LM
    assert model_kind(BertConfig(architectures=["BertLMHeadModel"]), "x") == "encoder"
    assert model_kind(BertConfig(architectures=["BertLMHeadModel"], is_decoder=True), "x") == "causal"
    with pytest.raises(InputError, match="encoder-decoder"):
        model_kind(T5Config(), "x")


def test_encoder_loads_without_a_head(tiny_bert_checkpoint):
    from transformers import BertModel

    checkpoint = ck.load_checkpoint(tiny_bert_checkpoint, device="cpu")
    assert type(checkpoint.model) is BertModel  # not BertLMHeadModel with a random head
    info = checkpoint.info
    assert (info["architecture"], info["lm_head"], info["n_layers"], info["d_model"]) == ("encoder", False, N_LAYERS, D_MODEL)
    assert (info["step"], info["seed"]) == (None, None)


def test_causal_model_without_its_head_is_flagged(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "headless"
    shutil.copytree(tiny_checkpoint, folder)
    AutoModelForCausalLM.from_pretrained(tiny_checkpoint).base_model.save_pretrained(folder)
    checkpoint = ck.load_checkpoint(folder, device="cpu")
    assert (checkpoint.info["architecture"], checkpoint.info["lm_head"]) == ("causal", False)
    assert ck.load_checkpoint(tiny_checkpoint, device="cpu").info["lm_head"] is True
