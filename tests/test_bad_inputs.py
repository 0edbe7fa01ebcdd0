"""Issue 14, "Bad inputs": every bad input is refused by the real CLI with exit code 2 and one clear
error line that names the file (or option) and the fix, and leaves no output file behind, not even a
temporary or partial one. NaN / constant voxels are the exception: reported and excluded with a count.

Each case builds its bad input in a fresh folder and writes its output into an empty folder ``out/``
that must still be empty (or absent) afterwards. Builders come from the tests of each step.
"""

import json
import logging
import shutil

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
from _models import build_model, save_checkpoint, tiny_checkpoint, tiny_tokenizer_dir, write_stimulus  # noqa: F401
from test_config import demo_config
from test_encode_cli import encode_args, write_inputs
from test_fmri_load import bold_path, small  # noqa: F401

from brainphase import cli
from brainphase.config import check_config, plan_models
from brainphase.errors import InputError


def _fmri_copy(small, case_dir):  # noqa: F811
    tmp, stimulus = small
    root = case_dir / "bids"
    shutil.copytree(tmp / "bids", root)
    return root, stimulus


def _load_argv(root, stimulus, out, *extra):
    return ["load-fmri", "--root", str(root), "--stimulus", str(stimulus), "--out", str(out / "responses.h5"),
            "--confounds", "none", "--ceiling", "none", *map(str, extra)]


# --- each case: (case_dir, fixtures) -> (argv or callable, [substrings the one error line must hold]) -----------

def affine_disagrees_with_mask(case_dir, small, checkpoint):  # noqa: F811
    root, stimulus = _fmri_copy(small, case_dir)
    mask_path = str(bold_path(root, "01", "1")).replace("preproc_bold", "brain_mask")
    mask = nib.load(mask_path)
    shifted = mask.affine.copy()
    shifted[:3, 3] += 3 * np.diag(mask.affine)[:3]  # same grid size, moved by 3 voxels: one of the headers is wrong
    nib.save(nib.Nifti1Image(np.asarray(mask.dataobj), shifted), mask_path)
    return _load_argv(root, stimulus, case_dir / "out"), ["brain_mask", "different affine", "fix the affine"]


def three_d_bold(case_dir, small, checkpoint):  # noqa: F811
    root, stimulus = _fmri_copy(small, case_dir)
    path = bold_path(root, "02", "1")
    image = nib.load(path)
    nib.save(nib.Nifti1Image(image.get_fdata()[..., 0], image.affine), path)
    return _load_argv(root, stimulus, case_dir / "out"), [path.name, "3D image", "give the 4D"]


def tr_header_vs_sidecar(case_dir, small, checkpoint):  # noqa: F811
    root, stimulus = _fmri_copy(small, case_dir)
    sidecar = bold_path(root, "01", "2").with_suffix("").with_suffix(".json")
    content = json.loads(sidecar.read_text())
    content["RepetitionTime"] = 2.5
    sidecar.write_text(json.dumps(content))
    return _load_argv(root, stimulus, case_dir / "out"), [sidecar.name, "TR mismatch", "2.5", "correct whichever is wrong"]


def run_shorter_than_stimulus(case_dir, small, checkpoint):  # noqa: F811
    root, stimulus = _fmri_copy(small, case_dir)
    words = pd.read_csv(stimulus, sep="\t", dtype={"run": str})
    words.loc[words.index[-1], ["onset", "offset"]] = [500.0, 500.4]
    longer = case_dir / "long.tsv"
    words.to_csv(longer, sep="\t", index=False)
    return _load_argv(root, longer, case_dir / "out"), ["lasts until 500.4 s", "check --run-map"]


def duplicate_subjects(case_dir, small, checkpoint):  # noqa: F811
    root, stimulus = _fmri_copy(small, case_dir)
    return _load_argv(root, stimulus, case_dir / "out", "--subjects", "01", "sub-01"), ["--subjects 01 sub-01", "more than once", "give each subject once"]


def run_map_names_a_missing_run(case_dir, small, checkpoint):  # noqa: F811
    root, stimulus = _fmri_copy(small, case_dir)
    return _load_argv(root, stimulus, case_dir / "out", "--run-map", "7=1"), ["--run-map", "'7'", "no BOLD", "fix the labels"]


def truncated_hdf5(case_dir, small, checkpoint):  # noqa: F811
    act, resp = write_inputs(case_dir)
    data = resp.read_bytes()
    resp.write_bytes(data[: len(data) // 2])
    return encode_args(act, resp, case_dir / "out" / "scores.h5"), [resp.name, "not a readable HDF5 file", "re-run the step"]


def activations_of_another_stimulus(case_dir, small, checkpoint):  # noqa: F811
    act, resp = write_inputs(case_dir)
    with h5py.File(act, "r+") as h5:  # same run names and word count, but a 3x slower stimulus
        for key in ("words/onset", "words/offset"):
            h5[key][...] = h5[key][()] * 3
    return encode_args(act, resp, case_dir / "out" / "scores.h5"), [act.name, resp.name, "different stimulus", "re-run `brainphase extract`"]


def _extract_argv(model, stimulus, case_dir):
    return ["extract", "--model", str(model), "--stimulus", str(stimulus), "--out", str(case_dir / "out" / "act.h5"),
            "--device", "cpu"]


def corrupt_safetensors(case_dir, small, checkpoint):  # noqa: F811
    corrupt = case_dir / "corrupt"
    shutil.copytree(checkpoint, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 100)
    return _extract_argv(corrupt, write_stimulus(case_dir / "words.tsv"), case_dir), [
        "model.safetensors", "corrupt or unreadable weight file"]


def tokenizer_not_of_the_model(case_dir, small, checkpoint):  # noqa: F811
    from transformers import AutoTokenizer

    mismatched = save_checkpoint(case_dir / "mismatch", AutoTokenizer.from_pretrained(checkpoint), build_model(64))
    return _extract_argv(mismatched, write_stimulus(case_dir / "words.tsv"), case_dir), [
        "tokenizer does not belong to this model", "trained with"]


def empty_stimulus(case_dir, small, checkpoint):  # noqa: F811
    empty = case_dir / "empty.tsv"
    empty.write_text("")
    return _extract_argv(checkpoint, empty, case_dir), ["empty.tsv", "empty file", "expected a header"]


def non_utf8_stimulus(case_dir, small, checkpoint):  # noqa: F811
    path = case_dir / "latin1.tsv"
    path.write_bytes("run\tword_index\tword\tonset\toffset\n1\t0\tcaf\u00e9\t0.5\t0.8\n".encode("latin-1"))
    return _extract_argv(checkpoint, path, case_dir), ["latin1.tsv", "not UTF-8", "iconv"]


def _tsv(case_dir, rows):
    path = case_dir / "words.tsv"
    pd.DataFrame(rows, columns=["run", "word_index", "word", "onset", "offset"]).to_csv(path, sep="\t", index=False)
    return path


def tsv_words_out_of_order(case_dir, small, checkpoint):  # noqa: F811
    path = _tsv(case_dir, [("1", 0, "the", 0.5, 0.8), ("1", 1, "dog", 2.0, 2.3), ("1", 2, "ran", 1.0, 1.3)])
    return _extract_argv(checkpoint, path, case_dir), ["words.tsv", "line 4", "not increasing", "sort the words"]


def tsv_negative_duration(case_dir, small, checkpoint):  # noqa: F811
    path = _tsv(case_dir, [("1", 0, "the", 0.5, 0.8), ("1", 1, "dog", 2.0, 1.7)])
    return _extract_argv(checkpoint, path, case_dir), ["words.tsv", "line 3", "before onset", "correct the times"]


def _textgrid(intervals):
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", "xmax = 10",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             '        name = "words"', "        xmin = 0", "        xmax = 10",
             f"        intervals: size = {len(intervals)}"]
    for k, (start, end, text) in enumerate(intervals, 1):
        lines += [f"        intervals [{k}]:", f"            xmin = {start}", f"            xmax = {end}",
                  f'            text = "{text}"']
    return "\n".join(lines) + "\n"


def textgrid_words_out_of_order(case_dir, small, checkpoint):  # noqa: F811
    path = case_dir / "run-1.TextGrid"
    path.write_text(_textgrid([(0.5, 0.8, "the"), (3.0, 3.4, "dog"), (1.0, 1.3, "ran")]))
    return _extract_argv(checkpoint, path, case_dir), ["run-1.TextGrid", "interval 3", "sort the words"]


def textgrid_negative_duration(case_dir, small, checkpoint):  # noqa: F811
    path = case_dir / "run-1.TextGrid"
    path.write_text(_textgrid([(0.5, 0.8, "the"), (2.0, 1.6, "dog")]))
    return _extract_argv(checkpoint, path, case_dir), ["run-1.TextGrid", "interval 2", "correct the times"]


def empty_corpus_text(case_dir, small, checkpoint):  # noqa: F811
    texts = case_dir / "texts"
    texts.mkdir()
    (texts / "blank.txt").write_text("  \n\n")
    return ["corpus", "--source", str(texts), "--out-dir", str(case_dir / "out" / "corpus")], [
        "blank.txt", "empty text file", "remove it"]


def non_utf8_corpus_text(case_dir, small, checkpoint):  # noqa: F811
    texts = case_dir / "texts"
    texts.mkdir()
    (texts / "latin1.txt").write_bytes("Le caf\u00e9 est ferm\u00e9.\n".encode("latin-1"))
    return ["corpus", "--source", str(texts), "--out-dir", str(case_dir / "out" / "corpus")], [
        "latin1.txt", "not UTF-8", "iconv"]


def config_with_a_missing_path(case_dir, small, checkpoint):  # noqa: F811
    config = demo_config()
    missing = case_dir / "no-such-model"
    config["models"] = {"mine": {"kind": "pretrained", "seeds": [0], "source": str(missing)}}

    def plan():  # the Snakefile's config check: no CLI of its own
        plan_models(check_config(config, ["config.yaml"]), str(case_dir / "out"))
    return plan, ["models.mine", str(missing), "does not exist"]


CASES = [affine_disagrees_with_mask, three_d_bold, tr_header_vs_sidecar, run_shorter_than_stimulus,
         duplicate_subjects, run_map_names_a_missing_run, truncated_hdf5, activations_of_another_stimulus,
         corrupt_safetensors, tokenizer_not_of_the_model, empty_stimulus, non_utf8_stimulus, tsv_words_out_of_order,
         tsv_negative_duration, textgrid_words_out_of_order, textgrid_negative_duration, empty_corpus_text,
         non_utf8_corpus_text, config_with_a_missing_path]


def _refusal(command, capsys) -> tuple[int, str]:
    capsys.readouterr()
    if callable(command):
        try:
            command()
        except InputError as exc:
            return 2, f"error: {exc}\n"
        return 0, ""
    try:
        status = cli.main(command)
    except Exception as exc:  # noqa: BLE001  a traceback is not a clean refusal: reported with the others
        return -1, f"{type(exc).__name__}: {exc}"
    return status, capsys.readouterr().err


def test_bad_inputs_are_refused_cleanly(small, tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    problems, details = [], []
    for case in CASES:
        case_dir = tmp_path / case.__name__
        case_dir.mkdir()
        command, expected = case(case_dir, small, tiny_checkpoint)
        status, err = _refusal(command, capsys)
        error_lines = [line for line in err.splitlines() if "error:" in line]
        left = sorted(str(p.relative_to(case_dir)) for p in (case_dir / "out").rglob("*")) if (case_dir / "out").exists() else []
        if status != 2:
            problems.append(f"{case.__name__}: exit status {status}, expected 2; stderr tail: {err[-300:]!r}")
        elif len(error_lines) != 1 or not all(s in error_lines[0] for s in expected):
            problems.append(f"{case.__name__}: error line(s) {error_lines} lack {expected}")
        details.append(f"  {case.__name__}: exit {status}: {error_lines[0] if error_lines else err[-200:]!r}")
        if left:
            problems.append(f"{case.__name__}: output left behind: {left}")
    refused = len(CASES) - len({p.split(":")[0] for p in problems})
    with capsys.disabled():
        print("\n" + "\n".join(details))
        print(f"{len(CASES)} bad inputs tried, {refused} refused cleanly")
    assert not problems, "\n".join(problems)


def test_nan_and_constant_voxels_are_excluded_with_a_count(small, tmp_path, caplog):  # noqa: F811
    root, stimulus = _fmri_copy(small, tmp_path)
    path = bold_path(root, "01", "1")
    image = nib.load(path)
    data = image.get_fdata(dtype=np.float32)
    inside = np.argwhere(np.asarray(nib.load(str(path).replace("preproc_bold", "brain_mask")).dataobj) > 0)
    data[tuple(inside[0])][3] = np.nan
    data[tuple(inside[1])][:] = np.inf
    data[tuple(inside[2])] = 4.0
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert cli.main(_load_argv(root, stimulus, out)) == 0
    assert "dropped 3 of" in caplog.text and "2 with NaN/inf values, 1 constant" in caplog.text
    assert [p.name for p in out.iterdir()] == ["responses.h5"]  # complete output, no temp file
    with h5py.File(out / "responses.h5", "r") as responses:
        assert responses.attrs["n_dropped_voxels"] == 3
        kept = responses["mask/mask"][()]
        assert kept.sum() == len(inside) - 3 and not any(kept[tuple(ijk)] for ijk in inside[:3])
        for subject in ("sub-01", "sub-02"):
            for run in ("1", "2"):
                bold = responses[f"subjects/{subject}/runs/{run}/bold"][()]
                assert bold.shape[1] == kept.sum() and np.isfinite(bold).all()
