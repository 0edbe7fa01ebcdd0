"""`brainphase verify`: stale outputs after an input or checkpoint changed; encode's checkpoint check."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from brainphase import cli
from brainphase.errors import InputError
from brainphase.io import atomic_h5, provenance, sha256_file
from brainphase.verify import check_activations_checkpoint, verify_tree


def _write(path, stage, inputs, **extra):
    with atomic_h5(path, provenance(stage, {"stage": stage}, inputs, **extra)) as handle:
        handle["x"] = np.arange(3)
    return path


def _fake_checkpoint(folder, content=b"weights v1"):
    """A folder with the weight file name transformers loads (only its bytes are hashed here)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(content)
    return folder


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """text.txt -> a.h5 -> b.h5 -> c.h5, other.txt -> d.h5 (relative paths, as Snakemake gives them),
    and ckpt/step1 -> act.h5 (an extract output naming its checkpoint)."""
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    (tmp_path / "text.txt").write_text("hello")
    (tmp_path / "other.txt").write_text("world")
    _write(results / "a.h5", "corpus", ["text.txt"])
    _write(results / "b.h5", "extract", ["results/a.h5"])
    _write(results / "c.h5", "encode", ["results/b.h5", "other.txt"])
    _write(results / "d.h5", "encode", ["other.txt"])
    _fake_checkpoint(tmp_path / "ckpt" / "step1")
    weights = {"model.safetensors": sha256_file(tmp_path / "ckpt" / "step1" / "model.safetensors")}
    with atomic_h5(results / "act.h5", provenance("extract", {"model": "ckpt", "revision": "step1"}, ["other.txt"],
                                                  weights_sha256=json.dumps(weights))) as handle:
        handle["x"] = np.arange(2)
    return tmp_path


def _status(findings):
    return {f.path.name: f.status for f in findings}


def test_untouched_chain_is_up_to_date(chain, capsys):
    assert set(_status(verify_tree(chain / "results")).values()) == {"ok"}
    assert cli.main(["verify", "results"]) == 0
    assert "5 HDF5 file(s): 5 up to date, 0 stale" in capsys.readouterr().out


def test_changed_input_flags_exactly_the_outputs_downstream(chain, capsys):
    (chain / "text.txt").write_text("hello!")
    findings = verify_tree(chain / "results")
    assert _status(findings) == {"a.h5": "stale", "b.h5": "stale", "c.h5": "stale", "d.h5": "ok", "act.h5": "ok"}
    by_name = {f.path.name: f for f in findings}
    assert by_name["a.h5"].reasons == [f"input changed: {chain / 'text.txt'}"]
    assert by_name["c.h5"].reasons == [f"upstream output stale: {chain / 'results' / 'b.h5'}"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verify", "results"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert out.count("STALE ") == 3 and "3 stale" in out


def test_missing_input_and_changed_checkpoint_are_reported(chain):
    (chain / "other.txt").unlink()
    status = _status(verify_tree(chain / "results"))
    assert status == {"a.h5": "ok", "b.h5": "ok", "c.h5": "missing", "d.h5": "missing", "act.h5": "missing"}
    (chain / "other.txt").write_text("world")
    _fake_checkpoint(chain / "ckpt" / "step1", b"weights v2")  # retrained in place
    findings = {f.path.name: f for f in verify_tree(chain / "results")}
    assert [n for n, f in findings.items() if f.status != "ok"] == ["act.h5"]
    assert findings["act.h5"].reasons == [f"checkpoint weights changed: {chain / 'ckpt'} revision step1"]


def test_base_option_and_temp_files(chain, tmp_path_factory, monkeypatch):
    """Relative inputs resolve against --base when given; hidden temporary files are not outputs."""
    (chain / "results" / ".a.h5.x1y2.tmp.h5").write_bytes(b"partial")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    assert set(_status(verify_tree(chain / "results")).values()) == {"ok"}  # recorded working_dir
    status = _status(verify_tree(chain / "results", base=elsewhere))
    assert status == dict.fromkeys(["a.h5", "act.h5", "b.h5", "c.h5", "d.h5"], "missing")


def test_encode_refuses_activations_of_other_weights(chain):
    act = chain / "results" / "act.h5"
    check_activations_checkpoint(act, "ckpt", "step1")  # same weights: accepted
    _fake_checkpoint(chain / "ckpt" / "step1", b"weights v2")
    with pytest.raises(InputError, match=r"act\.h5: .*other weights than checkpoint ckpt \(revision step1\).*run extract again"):
        check_activations_checkpoint(act, "ckpt", "step1")
    with pytest.raises(InputError, match="checkpoint folder missing"):
        check_activations_checkpoint(act, "ckpt", "step2")


def test_encode_cli_checkpoint_option_exits_2_before_writing(chain, capsys):
    _fake_checkpoint(chain / "ckpt" / "step1", b"weights v2")
    out = chain / "results" / "scores.h5"
    status = cli.main(["encode", "--activations", "results/act.h5", "--responses", "results/d.h5", "--out", str(out),
                       "--checkpoint", "ckpt", "--checkpoint-revision", "step1"])
    assert status == 2 and not out.exists()
    assert "other weights than checkpoint ckpt" in capsys.readouterr().err
    assert not [p for p in os.listdir(chain / "results") if p.startswith(".")]


def test_checkpoint_check_imports_no_torch(chain):
    # every encode job runs this check; importing torch for it cost ~2 s of a ~11 s demo job
    code = ("import sys; from brainphase.verify import check_activations_checkpoint; "
            "check_activations_checkpoint('results/act.h5', 'ckpt', 'step1'); print('torch' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=chain)
    assert loaded.stdout.strip() == "False"
