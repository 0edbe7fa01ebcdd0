"""`brainphase tasks`: metrics against a planted model, HF's own loss and a numpy re-computation."""

import h5py
import numpy as np
import pytest
import scipy.special
import torch

from _models import SENTENCES, build_model, planted_model, tiny_bert_checkpoint, tiny_checkpoint, tiny_tokenizer_dir  # noqa: F401
from brainphase import cli
from brainphase.io import read_attrs
from brainphase.tasks import METRICS, evaluate, token_windows

VOCAB = 97


def random_windows(seed, n_windows=5, seq_len=16):
    rng = np.random.default_rng(seed)
    windows = [rng.integers(0, VOCAB, seq_len) for _ in range(n_windows)]
    return windows + [rng.integers(0, VOCAB, 7)]  # a shorter last window


def test_token_windows():
    ids = np.arange(23)
    windows = token_windows(ids, seq_len=5, max_tokens=21)
    assert [len(w) for w in windows] == [5, 5, 5, 5]  # the 21st token alone is no window
    np.testing.assert_array_equal(np.concatenate(windows), np.arange(20))
    assert [len(w) for w in token_windows(ids, 5, 100)] == [5, 5, 5, 5, 3]


def test_planted_model_gives_closed_form_metrics():
    """A model that always predicts token k with logit a (all others 0)."""
    k, a, j = 11, 3.0, 5
    model = planted_model(VOCAB, k, a, j)
    rng = np.random.default_rng(0)
    windows = [np.where(rng.random(12) < 0.4, k, rng.integers(0, VOCAB, 12)) for _ in range(4)] + [np.array([k, 3, k])]
    targets = np.concatenate([w[1:] for w in windows])
    hit = targets == k
    assert 0 < hit.mean() < 1
    z = np.exp(a) + VOCAB - 1
    p_k, p_other = np.exp(a) / z, 1 / z
    p_target = np.where(hit, p_k, p_other)
    sum_sq = p_k**2 + (VOCAB - 1) * p_other**2
    expected = {
        "next_token_accuracy": hit.mean(),
        "loss": np.mean(-np.log(p_target)),
        "target_prob": p_target.mean(),
        "brier": np.mean(sum_sq - 2 * p_target + 1),
    }
    results = evaluate(model, windows, batch_size=2)
    assert results["n_targets"] == len(targets)
    for name, value in expected.items():
        assert results[name] == pytest.approx(value, rel=1e-5), name


def test_loss_equals_hugging_face_labels_loss():
    model = build_model(VOCAB, seed=2)
    windows = random_windows(3)
    width = max(len(w) for w in windows)
    input_ids = torch.zeros((len(windows), width), dtype=torch.long)
    labels = torch.full((len(windows), width), -100, dtype=torch.long)
    for i, w in enumerate(windows):
        input_ids[i, : len(w)] = torch.from_numpy(w)
        labels[i, : len(w)] = torch.from_numpy(w)
    with torch.no_grad():
        hf_loss = model(input_ids=input_ids, labels=labels).loss.item()
    results = evaluate(model, windows, batch_size=4)  # two batches of unequal token counts
    assert results["loss"] == pytest.approx(hf_loss, rel=1e-5)


def test_metrics_equal_a_numpy_recomputation():
    model = build_model(VOCAB, seed=4)
    windows = random_windows(5, n_windows=3, seq_len=9)
    per_target = {m.name: [] for m in METRICS}
    for w in windows:  # one unpadded call per window
        with torch.no_grad():
            logits = model(torch.from_numpy(w)[None]).logits[0, :-1].double().numpy()
        probs = scipy.special.softmax(logits, axis=1)
        target = w[1:]
        p_target = probs[np.arange(len(target)), target]
        onehot = np.eye(VOCAB)[target]
        per_target["next_token_accuracy"] += list(probs.argmax(axis=1) == target)
        per_target["loss"] += list(-np.log(p_target))
        per_target["target_prob"] += list(p_target)
        per_target["brier"] += list(((probs - onehot) ** 2).sum(axis=1))
    results = evaluate(model, windows, batch_size=2)
    for name, values in per_target.items():
        assert results[name] == pytest.approx(np.mean(values), rel=1e-5, abs=1e-7), name


def test_cli_tasks_writes_metrics(tiny_checkpoint, tmp_path, capsys):
    from brainphase.models.checkpoints import load_checkpoint

    text = tmp_path / "valid.txt"
    text.write_text("\n".join(SENTENCES * 3), encoding="utf-8")
    out = tmp_path / "tasks" / "step16.h5"
    args = ["tasks", "--model", str(tiny_checkpoint), "--text", str(text), "--out", str(out), "--device", "cpu",
            "--max-tokens", "300", "--seq-len", "100", "--model-id", "label", "--seed", "4", "--names", "heldout_text"]
    assert cli.main(args) == 0
    checkpoint = load_checkpoint(tiny_checkpoint, device="cpu")
    ids = checkpoint.tokenizer(text.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
    expected = evaluate(checkpoint.model, token_windows(ids, 64, 300), batch_size=1)  # seq-len clamped to 64
    with h5py.File(out, "r") as handle:
        assert list(handle["metrics"]) == ["heldout_text"]
        group = handle["metrics/heldout_text"]
        for metric in METRICS:
            dataset = group[metric.name]
            assert dataset.shape == () and dataset.dtype == np.float64
            assert dataset[()] == pytest.approx(expected[metric.name], rel=1e-6)
            assert bool(dataset.attrs["higher_is_better"]) == metric.higher_is_better
            assert dataset.attrs["kind"] == metric.kind
            per_window = handle[f"items/heldout_text/{metric.name}"][()]
            assert per_window.shape == (5,)
            # the mean over targets is the per-window means weighted by targets per window
            weights = np.array([63, 63, 63, 63, 43])
            assert np.average(per_window, weights=weights) == pytest.approx(expected[metric.name], rel=1e-6)
        assert (group.attrs["seq_len"], group.attrs["n_targets"], group.attrs["n_items"]) == (64, expected["n_targets"], 5)
        assert (group.attrs["family"], group.attrs["output_type"], group.attrs["source"]) == (
            "next_token", "next_token", "valid.txt")
    attrs = read_attrs(out)
    assert (attrs["stage"], attrs["model_id"], attrs["seed"], attrs["step"]) == ("tasks", "label", 4, 16)
    assert attrs["skipped"] == "" and len(attrs["suite_sha256"]) == 64
    assert expected["n_targets"] == 300 - 5  # 64+64+64+64+44 tokens, one untargeted per window

    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    bad_out = tmp_path / "bad.h5"
    args = ["tasks", "--model", str(tiny_checkpoint), "--text", str(empty), "--out", str(bad_out), "--device", "cpu",
            "--names", "heldout_text"]
    assert cli.main(args) == 2
    assert "empty.txt: empty; pass the held-out text with --text" in capsys.readouterr().err
    assert not bad_out.exists()


def test_metrics_do_not_depend_on_the_batch():
    """Masked right padding: each window alone gives the same totals as mixed-length batches."""
    model = build_model(VOCAB, seed=2)
    rng = np.random.default_rng(3)
    windows = [rng.integers(0, VOCAB, n) for n in (16, 3, 11, 2, 16, 7)]
    alone = evaluate(model, windows, batch_size=1)
    for batch_size, pad_id in ((4, 0), (6, VOCAB - 1)):
        batched = evaluate(model, windows, batch_size=batch_size, pad_id=pad_id)
        for metric in METRICS:
            assert batched[metric.name] == pytest.approx(alone[metric.name], rel=1e-5), metric.name


def test_encoder_gets_a_tasks_file_without_metrics(tiny_bert_checkpoint, tmp_path):
    text = tmp_path / "valid.txt"
    text.write_text("\n".join(SENTENCES), encoding="utf-8")
    out = tmp_path / "step-1.h5"
    args = ["tasks", "--model", str(tiny_bert_checkpoint), "--text", str(text), "--out", str(out), "--device", "cpu"]
    assert cli.main(args) == 0
    attrs = read_attrs(out)
    assert "encoder" in attrs["skipped"] and "next-token" in attrs["skipped"]
    assert (attrs["step"], attrs["tokens"], attrs["seed"]) == (-1, -1, 0)
    with h5py.File(out, "r") as handle:
        assert list(handle["metrics"]) == []


@pytest.fixture(scope="module")
def suite_checkpoint(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny GPT-NeoX with 128 positions (the built-in suite's items fit; see _models.py)."""
    from _models import save_checkpoint
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    return save_checkpoint(tmp_path_factory.mktemp("suite") / "step16", tokenizer,
                           build_model(len(tokenizer), seed=7, max_positions=128))


def test_cli_tasks_writes_the_suite(suite_checkpoint, tmp_path):
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.tasks import scoring
    from brainphase.tasks.metrics import METRICS_BY_OUTPUT_TYPE
    from brainphase.tasks.spec import load_suite

    text = tmp_path / "valid.txt"
    text.write_text("\n".join(SENTENCES * 2), encoding="utf-8")
    out = tmp_path / "step16.h5"
    args = ["tasks", "--model", str(suite_checkpoint), "--text", str(text), "--out", str(out), "--device", "cpu"]
    assert cli.main(args) == 0
    specs = {s.name: s for s in load_suite()}
    checkpoint = load_checkpoint(suite_checkpoint, device="cpu")
    with h5py.File(out, "r") as handle:
        assert sorted(handle["metrics"]) == sorted([*specs, "heldout_text"])
        for name, task in specs.items():
            group = handle[f"metrics/{name}"]
            assert dict(group.attrs) == {"family": task.family, "version": task.version, "output_type": task.output_type,
                                         "n_items": len(task.items), "source": f"{name}.yaml"}
            assert sorted(group) == sorted(m.name for m in METRICS_BY_OUTPUT_TYPE[task.output_type])
            for metric in METRICS_BY_OUTPUT_TYPE[task.output_type]:
                items = handle[f"items/{name}/{metric.name}"][()]
                assert items.shape == (len(task.items),) and np.isfinite(items).all()
                assert group[metric.name][()] == pytest.approx(items.mean())
                assert (group[metric.name].attrs["kind"], bool(group[metric.name].attrs["higher_is_better"])) == (
                    metric.kind, metric.higher_is_better)
        # BLiMP items against an unpadded numpy recomputation
        task = specs["blimp_agreement"]
        for index in (0, 7):
            item = task.items[index]
            ll = []
            for continuation in item.continuations:
                ids = [checkpoint.tokenizer.eos_token_id] + scoring.encode(checkpoint.tokenizer, continuation)
                with torch.no_grad():
                    logits = checkpoint.model(torch.tensor([ids[:-1]])).logits[0].double().numpy()
                ll.append(scipy.special.log_softmax(logits, axis=1)[np.arange(len(ids) - 1), ids[1:]].sum())
            assert handle["items/blimp_agreement/logprob_correct"][index] == pytest.approx(ll[0], abs=1e-4)
            assert handle["items/blimp_agreement/acc"][index] == float(ll[0] > ll[1])
    attrs = read_attrs(out)
    assert attrs["skipped"] == "" and len(attrs["suite_sha256"]) == 64


def test_suite_metrics_do_not_depend_on_the_batch(suite_checkpoint, tmp_path):
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.tasks import TaskOptions, run_tasks

    checkpoint = load_checkpoint(suite_checkpoint, device="cpu")
    names = ("induction", "blimp_word_order", "arithmetic_addition")
    for batch_size in (1, 64):
        run_tasks(checkpoint, TaskOptions(names=names, batch_size=batch_size), tmp_path / f"b{batch_size}.h5", {})
    with h5py.File(tmp_path / "b1.h5", "r") as alone, h5py.File(tmp_path / "b64.h5", "r") as batched:
        for name in names:
            for metric in alone[f"items/{name}"]:
                np.testing.assert_allclose(batched[f"items/{name}/{metric}"][()], alone[f"items/{name}/{metric}"][()],
                                           atol=1e-5, err_msg=f"{name}/{metric}")


def test_too_long_items_are_refused_before_any_forward_pass(tiny_checkpoint, tmp_path):
    from brainphase.errors import InputError
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.tasks import TaskOptions, run_tasks

    checkpoint = load_checkpoint(tiny_checkpoint, device="cpu")  # 64 positions

    def forward_forbidden(*args, **kwargs):
        raise AssertionError("a forward pass ran")

    checkpoint.model.forward = forward_forbidden
    out = tmp_path / "step16.h5"
    with pytest.raises(InputError, match=r"task pattern_repeat \(.*pattern_repeat.yaml\) item \d+: context \+ answer take "
                                         r"\d+ tokens, more than the model's 64 positions"):
        run_tasks(checkpoint, TaskOptions(), out, {})
    assert not out.exists()


def test_cli_rejects_unknown_task_names(tiny_checkpoint, tmp_path, capsys):
    args = ["tasks", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "x.h5"), "--device", "cpu",
            "--names", "blimp_agreemnt"]
    assert cli.main(args) == 2
    assert "unknown task 'blimp_agreemnt'; did you mean 'blimp_agreement'?" in capsys.readouterr().err
    assert cli.main(args[:-1] + ["heldout_text"]) == 2
    assert "holds 'heldout_text' but no held-out text is given" in capsys.readouterr().err
