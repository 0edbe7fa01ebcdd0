"""`brainphase measure`: one checkpoint load writes what `extract` and `tasks` write separately,
and leaves both outputs or neither."""

import h5py
import numpy as np
import pytest
from _models import tiny_checkpoint, tiny_tokenizer_dir, write_stimulus  # noqa: F401

from brainphase import cli
from brainphase.errors import InputError
from brainphase.io import read_attrs

TASK = "induction"
LABELS = ["--model-id", "tinyLabel", "--seed", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("measure_inputs")
    text = folder / "valid.txt"
    text.write_text("the river sings under a quiet moon and the king sleeps. " * 40)
    return write_stimulus(folder / "words.tsv"), text


def measure_args(checkpoint, stimulus, text, out_dir):
    return ["measure", "--model", str(checkpoint), *LABELS, "--stimulus", str(stimulus), "--context-tokens", "10",
            "--batch-size", "4", "--tasks-names", TASK, "heldout_text", "--tasks-text", str(text),
            "--tasks-max-tokens", "300", "--tasks-seq-len", "32", "--tasks-batch-size", "8",
            "--activations-out", str(out_dir / "act.h5"), "--tasks-out", str(out_dir / "tasks.h5")]


def datasets(path):
    """Every dataset of an HDF5 file: name -> values."""
    found = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_measure_equals_extract_and_tasks_run_separately(tiny_checkpoint, inputs, tmp_path):
    stimulus, text = inputs
    assert cli.main(measure_args(tiny_checkpoint, stimulus, text, tmp_path)) == 0
    assert cli.main(["extract", "--model", str(tiny_checkpoint), *LABELS, "--stimulus", str(stimulus),
                     "--context-tokens", "10", "--batch-size", "4", "--out", str(tmp_path / "extract.h5")]) == 0
    assert cli.main(["tasks", "--model", str(tiny_checkpoint), *LABELS, "--names", TASK, "heldout_text",
                     "--text", str(text), "--max-tokens", "300", "--seq-len", "32", "--batch-size", "8",
                     "--out", str(tmp_path / "tasks_alone.h5")]) == 0

    for combined, alone, stage in (("act.h5", "extract.h5", "extract"), ("tasks.h5", "tasks_alone.h5", "tasks")):
        expected, got = datasets(tmp_path / alone), datasets(tmp_path / combined)
        assert sorted(got) == sorted(expected) and len(got) > 3
        for name, values in expected.items():
            if values.dtype.kind in "fiu":
                np.testing.assert_allclose(got[name], values, rtol=1e-6, atol=1e-7, err_msg=name)
            else:
                assert np.array_equal(got[name], values), name
        attrs, reference = read_attrs(tmp_path / combined), read_attrs(tmp_path / alone)
        assert attrs["stage"] == stage
        for key in ("model_id", "seed", "step", "tokens", "weights_sha256"):
            assert attrs[key] == reference[key], key
        assert attrs["input_sha256"] == reference["input_sha256"]  # stimulus resp. held-out text
    assert f"items/{TASK}/acc" in datasets(tmp_path / "tasks.h5")
    assert "metrics/heldout_text/loss" in datasets(tmp_path / "tasks.h5")


def test_failing_task_metrics_leave_neither_output(tiny_checkpoint, inputs, tmp_path, monkeypatch, capsys):
    """The activations are written first; a failure in the task metrics removes them again."""
    import brainphase.tasks

    stimulus, text = inputs

    def broken_run_tasks(*args, **kwargs):
        raise InputError("planted failure of the task metrics")

    monkeypatch.setattr(brainphase.tasks, "run_tasks", broken_run_tasks)
    assert cli.main(measure_args(tiny_checkpoint, stimulus, text, tmp_path)) == 2
    assert "planted failure of the task metrics" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bad_task_input_stops_before_the_checkpoint_is_loaded(tiny_checkpoint, inputs, tmp_path, capsys, monkeypatch):
    import brainphase.models.checkpoints

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the task inputs were checked")

    monkeypatch.setattr(brainphase.models.checkpoints, "load_checkpoint", no_load)
    stimulus, _ = inputs
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = measure_args(tiny_checkpoint, stimulus, empty, tmp_path)
    assert cli.main(args) == 2
    assert "empty.txt" in capsys.readouterr().err
    args[args.index(TASK)] = "inductoin"
    assert cli.main(args) == 2
    assert "inductoin" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_task_items_longer_than_the_context_stop_before_the_extraction(tiny_checkpoint, inputs, tmp_path, capsys,
                                                                        monkeypatch):
    """pattern_repeat's items take more than the test model's 64 positions with its tokenizer."""
    import brainphase.activations

    def no_extraction(*args, **kwargs):
        raise AssertionError("activations were extracted before the task items were checked")

    monkeypatch.setattr(brainphase.activations, "extract_from_args", no_extraction)
    stimulus, text = inputs
    args = measure_args(tiny_checkpoint, stimulus, text, tmp_path)
    args[args.index(TASK)] = "pattern_repeat"
    assert cli.main(args) == 2
    assert "task pattern_repeat" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_each_runs_several_checkpoints_in_one_process(tiny_checkpoint, inputs, tmp_path, capsys):
    """`--each OPTIONS` (a workflow chunk): one run per --each with the shared options, each
    writing what a separate `brainphase measure` writes; every --each is parsed before the first
    run, so a bad one leaves no output at all."""
    stimulus, text = inputs
    shared = measure_args(tiny_checkpoint, stimulus, text, tmp_path)[:-4]  # without the outputs
    assert cli.main(measure_args(tiny_checkpoint, stimulus, text, tmp_path)) == 0
    each = [f"--activations-out {tmp_path / name / 'act.h5'} --tasks-out {tmp_path / name / 'tasks.h5'}"
            for name in ("first", "second")]
    assert cli.main([*shared, "--each", each[0], f"--each={each[1]}"]) == 0
    for name in ("first", "second"):
        for output in ("act.h5", "tasks.h5"):
            expected, got = datasets(tmp_path / output), datasets(tmp_path / name / output)
            assert sorted(got) == sorted(expected)
            for key, values in expected.items():
                assert np.array_equal(got[key], values), (name, output, key)

    bad = tmp_path / "bad"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*shared, "--each", f"--activations-out {bad / 'a.h5'} --tasks-out {bad / 't.h5'}",
                  "--each", "--activations-out x.h5 --tasks-out t.h5 --no-such-option 1"])
    assert exit_info.value.code == 2 and "--no-such-option" in capsys.readouterr().err
    assert not bad.exists()


def test_split_each():
    assert cli.split_each(["--a", "1", "--each", "--x 1", "--b", "--each=--x 2"]) == (["--a", "1", "--b"],
                                                                                      ["--x 1", "--x 2"])
    assert cli.split_each(["--a"]) == (["--a"], [])
    with pytest.raises(SystemExit, match="--each needs a value"):
        cli.split_each(["--a", "--each"])


def test_each_only_for_one_checkpoint_steps(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plan", "--configfile", "c.yaml", "--each", "--jobs 2"])
    assert exit_info.value.code == 2 and "--each is for encode, internal, measure" in capsys.readouterr().err
