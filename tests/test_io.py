"""Atomic writes, provenance attributes and the CLI dispatcher."""

import hashlib
import json

import h5py
import numpy as np
import pytest

from brainphase import __version__, cli
from brainphase.errors import InputError
from brainphase.io import (_umask, atomic_dir, atomic_h5, config_sha256, open_h5, provenance, read_attrs,
                           read_strings, sha256_file, string_array)


def test_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # spans several read chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_atomic_h5_writes_attrs_and_data(tmp_path):
    target = tmp_path / "sub" / "out.h5"
    attrs = provenance("extract", {"b": 2, "a": [1, 2]}, inputs=[], model_id="m", step=4, extra={"x": 1})
    with atomic_h5(target, attrs) as handle:
        handle["x"] = np.arange(5)
        handle["names"] = string_array(["α", "b"])
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.h5"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    read = read_attrs(target)
    assert read["brainphase_version"] == __version__
    assert read["stage"] == "extract" and read["step"] == 4 and read["model_id"] == "m"
    assert json.loads(read["config_json"]) == {"a": [1, 2], "b": 2}
    assert json.loads(read["extra"]) == {"x": 1}
    with open_h5(target, stage="extract") as handle:
        assert read_strings(handle["names"]) == ["α", "b"]


def test_atomic_h5_leaves_nothing_and_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.h5"
    with h5py.File(target, "w") as handle:
        handle["old"] = 1
    with pytest.raises(RuntimeError):
        with atomic_h5(target, {"stage": "x"}) as handle:
            handle["new"] = np.zeros(3)
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]
    with h5py.File(target, "r") as handle:
        assert list(handle) == ["old"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
            raise ValueError
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_config_hash_ignores_key_order_but_not_values():
    assert config_sha256({"a": 1, "b": [1, 2]}) == config_sha256({"b": [1, 2], "a": 1})
    assert config_sha256({"a": 1}) != config_sha256({"a": 2})


def test_provenance_records_input_hashes(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("hello")
    attrs = provenance("tasks", {}, inputs=[path])
    assert json.loads(attrs["input_sha256"]) == {str(path): hashlib.sha256(b"hello").hexdigest()}


def test_provenance_hashes_every_file_of_a_folder_and_records_working_dir(tmp_path, monkeypatch):
    (tmp_path / "run" / "sub").mkdir(parents=True)
    (tmp_path / "run" / "a.txt").write_bytes(b"a")
    (tmp_path / "run" / "sub" / "b.txt").write_bytes(b"b")
    monkeypatch.chdir(tmp_path)
    attrs = provenance("tasks", {}, inputs=["run"])
    assert json.loads(attrs["input_sha256"]) == {"run/a.txt": hashlib.sha256(b"a").hexdigest(),
                                                 "run/sub/b.txt": hashlib.sha256(b"b").hexdigest()}
    assert attrs["working_dir"] == str(tmp_path)  # relative keys are relative to it


def test_open_h5_names_file_and_wrong_stage(tmp_path):
    with pytest.raises(InputError, match="missing.h5: file not found"):
        with open_h5(tmp_path / "missing.h5"):
            pass
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="text.h5: not a readable HDF5 file"):
        with open_h5(tmp_path / "text.h5"):
            pass
    with atomic_h5(tmp_path / "s.h5", {"stage": "encode"}):
        pass
    with pytest.raises(InputError, match="expected a file written by `brainphase extract`.*'encode'"):
        with open_h5(tmp_path / "s.h5", stage="extract"):
            pass


def test_cli_reports_input_errors_as_one_line(tmp_path, capsys):
    status = cli.main(["aggregate", "--scores", str(tmp_path / "nope.h5"), "--tasks", str(tmp_path / "nope2.h5"),
                       "--out", str(tmp_path / "out.h5")])
    assert status == 2
    err = capsys.readouterr().err
    assert "brainphase aggregate: error:" in err and "nope" in err
    assert not (tmp_path / "out.h5").exists()


def test_cli_without_command_prints_help(capsys):
    with pytest.raises(SystemExit):
        cli.main([])
    assert "extract" in capsys.readouterr().out


def test_attr_text_decodes_bytes_and_gives_default(tmp_path):
    from brainphase.io import attr_text

    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle.attrs["as_bytes"] = np.bytes_("sentences")
        handle.attrs["as_str"] = "words"
        assert attr_text(handle, "as_bytes") == "sentences"
        assert attr_text(handle, "as_str") == "words"
        assert attr_text(handle, "missing") == ""
        assert attr_text(handle, "missing", "none") == "none"
