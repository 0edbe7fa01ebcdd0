"""load-fmri --kind roi-table: run labels with any characters, TR from --tr or sidecars, single-run files."""

import argparse
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from brainphase.errors import InputError
from brainphase.fmri import load
from brainphase.fmri.roi_tables import table_run_label
from brainphase.io import read_attrs, read_strings

ROIS = ["IFG", "STG", "AG"]


def write_stimulus(path, runs, duration=60.0):
    """Words every 2 s from 1 s to ``duration`` in each run."""
    rows = []
    for run in runs:
        for index, onset in enumerate(np.arange(1.0, duration, 2.0)):
            rows.append((run, index, f"w{index}", onset, onset + 0.4))
    pd.DataFrame(rows, columns=["run", "word_index", "word", "onset", "offset"]).to_csv(path, sep="\t", index=False)
    return path


def write_table(path, n_volumes, seed, sidecar_tr=None):
    data = np.random.default_rng(seed).standard_normal((n_volumes, len(ROIS)))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(data, columns=ROIS)
    frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    if sidecar_tr is not None:
        path.with_suffix(".json").write_text(json.dumps({"RepetitionTime": sidecar_tr}))
    return data


def parse(root, stimulus, out, *extra):
    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    return parser.parse_args(["--kind", "roi-table", "--root", str(root), "--stimulus", str(stimulus), "--out", str(out),
                              *map(str, extra)])


def cleaned(data, tr):
    from nilearn.signal import clean

    return clean(data, detrend=True, standardize="zscore_sample", high_pass=0.008, t_r=tr)


# labels with '-', '_', spaces and dots; "part" is a prefix of "part_2" and must not capture its file
LABELS = {"pie-man": "pieman", "part_2": "second", "part": "third", "story 1": "fourth", "v1.2": "fifth"}
FILES = {"pie-man": "sub-{s}_task-x_run-pie-man_timeseries.tsv", "part_2": "sub-{s}_run-part_2.csv",
         "part": "sub-{s}_run-part_desc-rois.tsv", "story 1": "sub-{s}_run-story 1.tsv", "v1.2": "sub-{s}_run-v1.2.tsv"}


def test_table_run_label_prefers_the_longest_known_label():
    known = list(LABELS)
    for label, name in FILES.items():
        stem = name.format(s="01").rsplit(".", 1)[0]
        assert table_run_label(stem, known) == label
    assert table_run_label("sub-01_run-other_bold", known) == "other"
    assert table_run_label("sub-01_bold", known) is None


@pytest.mark.parametrize("form", ["pairs", "json"])
def test_run_labels_with_any_characters_are_matched_through_run_map(tmp_path, form):
    stimulus = write_stimulus(tmp_path / "stim.tsv", list(LABELS.values()))
    tables = {}
    for s, sub in enumerate(("01", "02")):
        for k, (label, name) in enumerate(FILES.items()):
            tables[sub, label] = write_table(tmp_path / "tables" / f"sub-{sub}" / name.format(s=sub), 40, seed=10 * s + k)
    run_map = ([f"{label}={run}" for label, run in LABELS.items()] if form == "pairs" else [json.dumps(LABELS)])
    load.main(parse(tmp_path / "tables", stimulus, tmp_path / "r.h5", "--tr", 2.0, "--run-map", *run_map))
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert read_strings(responses["rois/names"]) == ROIS
        assert sorted(responses["subjects"]) == ["sub-01", "sub-02"]
        for (sub, label), data in tables.items():
            run = LABELS[label]
            np.testing.assert_allclose(responses[f"subjects/sub-{sub}/runs/{run}/bold"][()], cleaned(data, 2.0), atol=1e-5)
            assert responses[f"subjects/sub-{sub}/runs/{run}"].attrs["source"].endswith(FILES[label].format(s=sub))
    # a label that is neither a stimulus run nor a run_map key: the error names it and run_map
    write_table(tmp_path / "tables" / "sub-01" / "sub-01_run-extra.tsv", 40, seed=99)
    with pytest.raises(InputError, match=r"run-extra.tsv: run label 'extra' maps to 'extra'.*add it to run_map"):
        load.main(parse(tmp_path / "tables", stimulus, tmp_path / "r2.h5", "--tr", 2.0, "--run-map", *run_map))


def test_tr_from_sidecars_and_mismatches(tmp_path):
    stimulus = write_stimulus(tmp_path / "stim.tsv", ["a", "b"])
    data = {}
    for sub in ("01", "02"):
        for run in ("a", "b"):
            data[sub, run] = write_table(tmp_path / "t" / f"sub-{sub}_run-{run}.tsv", 35, seed=len(data), sidecar_tr=2.5)
    load.main(parse(tmp_path / "t", stimulus, tmp_path / "r.h5", "--first-volume-time", 3.5))
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert responses.attrs["tr"] == 2.5
        assert responses["subjects/sub-02/runs/b"].attrs["first_volume_time"] == 3.5
        assert responses["subjects/sub-02/runs/b"].attrs["volume_interval"] == 2.5
        np.testing.assert_allclose(responses["subjects/sub-02/runs/b/bold"][()], cleaned(data["02", "b"], 2.5), atol=1e-5)
    with pytest.raises(InputError, match=r"TR mismatch: --tr \(fmri.tr\) is 2 s but .*sub-01_run-a.json RepetitionTime is 2.5 s"):
        load.main(parse(tmp_path / "t", stimulus, tmp_path / "r2.h5", "--tr", 2.0))
    (tmp_path / "t" / "sub-02_run-b.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    with pytest.raises(InputError, match=r"TR mismatch: .*has TR 2.5 s but .*sub-02_run-b.tsv has 2 s"):
        load.main(parse(tmp_path / "t", stimulus, tmp_path / "r2.h5"))
    with pytest.raises(InputError, match="ROI tables carry no confounds"):
        load.main(parse(tmp_path / "t", stimulus, tmp_path / "r2.h5", "--confounds", "motion"))
    with pytest.raises(InputError, match=r"--tr \(fmri.tr\) is for --kind roi-table; --kind bids reads the TR"):
        load.main(parse(tmp_path / "t", stimulus, tmp_path / "r2.h5", "--tr", 2.0, "--kind", "bids"))
    assert not (tmp_path / "r2.h5").exists()


def test_one_story_as_one_run_without_run_labels(tmp_path):
    """27-subject-like layout reduced: one table per subject, no run- entity, volume 0 at 20 s into the audio."""
    stimulus = write_stimulus(tmp_path / "stim.tsv", ["story"], duration=100.0)
    tables = {sub: write_table(tmp_path / "t" / f"sub-{sub}_timeseries.csv", 45, seed=k) for k, sub in enumerate(("01", "02"))}
    load.main(parse(tmp_path / "t", stimulus, tmp_path / "r.h5", "--tr", 2.0, "--first-volume-time", 20, "--group-average"))
    assert read_attrs(tmp_path / "r.h5")["runs"] == ["story"]
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert responses["subjects/sub-01/runs/story"].attrs["first_volume_time"] == 20.0
        np.testing.assert_allclose(responses["subjects/sub-01/runs/story/bold"][()], cleaned(tables["01"], 2.0), atol=1e-5)
        assert "subjects/average/runs/story/bold" in responses
    # 45 volumes from 20 s end at 110 s; from 0 s they end at 90 s, before the last word (99.4 s)
    with pytest.raises(InputError, match=r"cover stimulus time 0-90 s, but stimulus run 'story' lasts until 99.4 s"):
        load.main(parse(tmp_path / "t", stimulus, tmp_path / "r2.h5", "--tr", 2.0))
    # with two stimulus runs a file without run- is ambiguous
    two = write_stimulus(tmp_path / "two.tsv", ["story", "other"])
    with pytest.raises(InputError, match="no run-<label> in the name"):
        load.main(parse(tmp_path / "t", two, tmp_path / "r2.h5", "--tr", 2.0))
