"""brainphase load-fmri: BIDS (on simulated derivatives), ROI tables, sentences; the key recovery test."""

import argparse
import json
import logging
import shutil

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from test_simulate import make_stimulus, simulate_args

from brainphase.errors import InputError
from brainphase.fmri import bids, common, load, simulate
from brainphase.fmri.ceiling import columnwise_pearson
from brainphase.stimuli import read_stimulus

PREFIX = "task-listening_run-{run}_space-MNI152NLin2009cAsym_res-8mm"


def load_args(root, stimulus, out, *extra):
    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    return parser.parse_args(["--root", str(root), "--stimulus", str(stimulus), "--out", str(out), *map(str, extra)])


def bold_path(root, sub, run):
    return root / f"sub-{sub}" / "func" / f"sub-{sub}_{PREFIX.format(run=run)}_desc-preproc_bold.nii.gz"


@pytest.fixture(scope="module")
def recovery(tmp_path_factory):
    """2 subjects x 4 runs of ~6 min, 8 mm: simulated, then loaded with the default cleaning."""
    tmp = tmp_path_factory.mktemp("recovery")
    stimulus, corpus = make_stimulus(tmp, 1000, runs=("1", "2", "3", "4"))
    simulate.main(simulate_args(stimulus, corpus, tmp / "bids"))
    load.main(load_args(tmp / "bids", stimulus, tmp / "responses.h5", "--atlas", tmp / "bids" / "atlas-simulated_dseg.nii.gz",
                        "--group-average"))
    return tmp, stimulus, corpus


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """2 subjects x 2 short runs for the error and bookkeeping tests."""
    tmp = tmp_path_factory.mktemp("small")
    stimulus, corpus = make_stimulus(tmp, 60)
    simulate.main(simulate_args(stimulus, corpus, tmp / "bids"))
    return tmp, stimulus


def test_loader_and_ridge_recover_the_planted_explainable_variance(recovery):
    """Held-out r of a ridge on the planted features reaches >= 0.9 of the planted ceiling; ~0 on noise."""
    from sklearn.linear_model import RidgeCV

    tmp, stimulus, corpus = recovery
    words = read_stimulus(stimulus)
    unigrams, bigrams = simulate.word_statistics((corpus / "train.txt").read_text())
    designs = simulate.design_matrices(words, unigrams, bigrams, tr=2.0, seed=0)
    args = load_args(tmp / "bids", stimulus, tmp / "unused.h5")
    with h5py.File(tmp / "responses.h5", "r") as responses, h5py.File(tmp / "bids" / "ground_truth.h5", "r") as truth:
        assert bool(responses.attrs["simulated"]) and responses.attrs["ceiling_method"] == "loso"
        mask = responses["mask/mask"][()].astype(bool)
        for sub in ("01", "02"):
            x, y = {}, {}
            for run in "1234":
                bold_run = bids.BoldRun(sub, run, run, bold_path(tmp / "bids", sub, run), None, "")
                confounds = bids.run_confounds(bold_run, common.confound_strategies(args), len(designs[run]), args.motion)
                x[run] = common.clean_signals(designs[run], 2.0, args, confounds)  # the features get the BOLD's cleaning
                y[run] = responses[f"subjects/sub-{sub}/runs/{run}/bold"][()]
            fold_r = []
            for test in "1234":  # leave one run out
                train = [run for run in "1234" if run != test]
                model = RidgeCV(alphas=np.logspace(-1, 4, 11), alpha_per_target=True)
                model.fit(np.concatenate([x[r] for r in train]), np.concatenate([y[r] for r in train]))
                fold_r.append(columnwise_pearson(model.predict(x[test]), y[test]))
            r = np.mean(fold_r, axis=0)
            ceiling = truth[f"subjects/sub-{sub}/ceiling_r"][()][mask]
            signal = truth[f"subjects/sub-{sub}/signal_mask"][()][mask] > 0
            strong = ceiling >= 0.4
            assert strong.sum() > 30
            assert r[strong].mean() >= 0.9 * ceiling[strong].mean()
            assert r[signal].mean() >= 0.85 * ceiling[signal].mean()
            assert abs(r[~signal].mean()) < 0.01 and np.median(np.abs(r[~signal])) < 0.1
            # the LOSO ceiling sees only the shared part of the signal: below the planted one, above noise
            loso = responses[f"subjects/sub-{sub}/noise_ceiling"][()]
            assert loso[strong].mean() < ceiling[strong].mean() and loso[strong].mean() > 3 * loso[~signal].mean()


def test_masking_and_cleaning_match_nilearn(recovery):
    """Chunked masking == NiftiMasker.transform; cleaning == nilearn.signal.clean with load_confounds."""
    from nilearn.interfaces.fmriprep import load_confounds
    from nilearn.maskers import NiftiMasker
    from nilearn.signal import clean

    tmp, _, _ = recovery
    path = bold_path(tmp / "bids", "02", "3")
    with h5py.File(tmp / "responses.h5", "r") as responses:
        mask_img = nib.Nifti1Image(responses["mask/mask"][()], responses["mask/affine"][()])
        stored = responses["subjects/sub-02/runs/3/bold"][()]
        attrs = dict(responses["subjects/sub-02/runs/3"].attrs)
        average = responses["subjects/average/runs/3/bold"][()]
        first = responses["subjects/sub-01/runs/3/bold"][()]
        names = [n.decode() for n in responses["rois/names"][()]]
        labels = responses["rois/labels"][()]
    reference = NiftiMasker(mask_img).fit().transform(str(path))
    np.testing.assert_array_equal(bids.read_masked(path, np.asarray(mask_img.dataobj) > 0, 0), reference)
    confounds, _ = load_confounds(str(path), strategy=("motion", "wm_csf"), motion="basic")
    expected = clean(reference.astype(np.float64), detrend=True, standardize="zscore_sample", confounds=confounds.to_numpy(),
                     high_pass=0.008, t_r=2.0)
    np.testing.assert_allclose(stored, expected, atol=2e-5)
    assert attrs["first_volume_time"] == 0.0 and attrs["source"] == str(path)
    np.testing.assert_allclose(average, (first + stored) / 2, atol=1e-6)
    atlas = np.asarray(nib.load(tmp / "bids" / "atlas-simulated_dseg.nii.gz").dataobj)[np.asarray(mask_img.dataobj) > 0]
    assert names == [r[0] for r in simulate.REGIONS]
    np.testing.assert_array_equal(labels, atlas)  # atlas index k is row k - 1 of the names table


def test_dummy_scans_and_first_volume_time(small, tmp_path):
    tmp, stimulus = small
    n_trs = nib.load(bold_path(tmp / "bids", "01", "1")).shape[3]
    # the simulated words start at scanner time 0: after 2 dummy scans of 2 s, the first retained volume
    # starts 4 s into the stimulus
    load.main(load_args(tmp / "bids", stimulus, tmp_path / "r.h5", "--dummy-scans", "2", "--first-volume-time", "4",
                        "--confounds", "none", "--ceiling", "none"))
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert responses["subjects/sub-01/runs/1/bold"].shape[0] == n_trs - 2
        assert responses["subjects/sub-01/runs/1"].attrs["first_volume_time"] == 4.0
        assert responses["subjects/sub-01/runs/1"].attrs["volume_interval"] == 2.0
        assert "noise_ceiling" not in responses["subjects/sub-01"]
    # the events contradict a first retained volume at stimulus time 0 (or 3 s) after those dummy scans
    for first_volume_time in ("0", "3"):
        with pytest.raises(InputError, match="onsets differ by up to 4.00 s|onsets differ by up to 1.00 s"):
            load.main(load_args(tmp / "bids", stimulus, tmp_path / "r2.h5", "--dummy-scans", "2",
                                "--first-volume-time", first_volume_time))
    # scanner time of stimulus time s = dummy_scans * tr + time_scale * (s - first_volume_time)
    args = argparse.Namespace(dummy_scans=3, first_volume_time=2.5, time_scale=2.0)
    np.testing.assert_allclose(common.stimulus_to_scanner(np.array([2.5, 3.5]), args, 2.0), [6.0, 8.0])


def test_removed_time_offset_names_the_new_key_and_its_sign(small, tmp_path):
    tmp, stimulus = small
    with pytest.raises(InputError, match=r"first-volume-time.*start of the first retained volume.*"
                                         r"--first-volume-time 20 \(the opposite sign"):
        load.main(load_args(tmp / "bids", stimulus, tmp_path / "r.h5", "--time-offset", "-20"))
    with pytest.raises(InputError, match=r"\(2 x TR - 3\) / 1"):
        load.main(load_args(tmp / "bids", stimulus, tmp_path / "r.h5", "--time-offset", "3", "--dummy-scans", "2"))
    assert not (tmp_path / "r.h5").exists()


def _copy(small, tmp_path):
    tmp, stimulus = small
    root = tmp_path / "bids"
    shutil.copytree(tmp / "bids", root)
    return root, stimulus


def test_nan_and_constant_voxels_are_dropped_and_counted(small, tmp_path, caplog):
    root, stimulus = _copy(small, tmp_path)
    path = bold_path(root, "02", "2")
    image = nib.load(path)
    data = image.get_fdata(dtype=np.float32)
    ijk = np.argwhere(np.asarray(nib.load(str(path).replace("preproc_bold", "brain_mask")).dataobj) > 0)[:3]
    data[tuple(ijk[0])][5] = np.nan
    data[tuple(ijk[1])] = 7.0
    nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    with caplog.at_level(logging.WARNING):
        load.main(load_args(root, stimulus, tmp_path / "r.h5", "--ceiling", "none"))
    assert "dropped 2 of" in caplog.text and "1 with NaN/inf values, 1 constant" in caplog.text
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert responses.attrs["n_dropped_voxels"] == 2
        kept = responses["mask/mask"][()]
        assert kept[tuple(ijk[0])] == 0 and kept[tuple(ijk[1])] == 0 and kept[tuple(ijk[2])] == 1
        assert responses["subjects/sub-01/runs/1/bold"].shape[1] == kept.sum()


def test_tr_mismatch_names_both_numbers_and_files(small, tmp_path):
    root, stimulus = _copy(small, tmp_path)
    sidecar = str(bold_path(root, "01", "2")).replace(".nii.gz", ".json")
    content = json.loads(open(sidecar).read())
    content["RepetitionTime"] = 2.5
    open(sidecar, "w").write(json.dumps(content))
    with pytest.raises(InputError, match=r"header says 2 s but .*run-2.*RepetitionTime is 2\.5 s"):
        load.main(load_args(root, stimulus, tmp_path / "r.h5"))
    assert not (tmp_path / "r.h5").exists()


def test_bad_inputs_are_clear_errors(small, tmp_path):
    root, stimulus = _copy(small, tmp_path)
    # a run without stimulus
    words = pd.read_csv(stimulus, sep="\t", dtype={"run": str})
    only_one = tmp_path / "one_run.tsv"
    words[words.run == "1"].to_csv(only_one, sep="\t", index=False)
    with pytest.raises(InputError, match="maps to stimulus run '2', which is not in"):
        load.main(load_args(root, only_one, tmp_path / "r.h5"))
    # ... mapped onto run 1 by --run-map, its word events contradict run 1's timings
    with pytest.raises(InputError, match="run-2_events.tsv: onsets differ by up to"):
        load.main(load_args(root, only_one, tmp_path / "r.h5", "--run-map", "2=1"))
    # too short for the stimulus
    longer = words.copy()
    longer.loc[longer.index[-1], ["onset", "offset"]] = [500.0, 500.4]
    longer.to_csv(tmp_path / "long.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="lasts until 500.4 s"):
        load.main(load_args(root, tmp_path / "long.tsv", tmp_path / "r.h5", "--confounds", "none"))
    # missing confound columns
    confounds = root / "sub-01" / "func" / "sub-01_task-listening_run-1_desc-confounds_timeseries.tsv"
    table = pd.read_csv(confounds, sep="\t")
    table.drop(columns=["csf", "white_matter"]).to_csv(confounds, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputError, match="confounds for strategies .*wm_csf"):
        load.main(load_args(root, stimulus, tmp_path / "r.h5"))
    # a 3D image where 4D is expected
    path = bold_path(root, "02", "1")
    image = nib.load(path)
    nib.save(nib.Nifti1Image(image.get_fdata()[..., 0], image.affine), path)
    with pytest.raises(InputError, match="3D image"):
        load.main(load_args(root, stimulus, tmp_path / "r.h5", "--confounds", "none"))
    assert not (tmp_path / "r.h5").exists()


def test_mask_on_another_grid_is_resampled_and_atlas_in_another_space_rejected(small, tmp_path, caplog):
    from nilearn.image import resample_img

    root, stimulus = _copy(small, tmp_path)
    mask_path = str(bold_path(root, "01", "1")).replace("preproc_bold", "brain_mask")
    mask = nib.load(mask_path)
    fine = resample_img(mask, target_affine=np.diag([4.0, 4.0, 4.0]), interpolation="nearest", force_resample=True,
                        copy_header=True)
    nib.save(fine, mask_path)
    with caplog.at_level(logging.WARNING):
        load.main(load_args(root, stimulus, tmp_path / "r.h5", "--confounds", "none", "--ceiling", "none"))
    assert "resampled (nearest) to the BOLD grid" in caplog.text
    atlas = root / "atlas-simulated_dseg.nii.gz"
    other = root / "space-MNI152NLin6Asym_atlas-x_dseg.nii.gz"
    img = nib.load(atlas)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), np.diag([4.0, 4.0, 4.0, 1.0])), other)
    shutil.copy(root / "atlas-simulated_dseg.tsv", str(other).replace(".nii.gz", ".tsv"))
    with pytest.raises(InputError, match="space 'MNI152NLin6Asym' differs"):
        load.main(load_args(root, stimulus, tmp_path / "r2.h5", "--confounds", "none", "--atlas", other))


def test_spheres_label_voxels_within_radius(small, tmp_path):
    tmp, stimulus = small
    spheres = tmp_path / "spheres.tsv"
    pd.DataFrame({"name": ["lIFG", "lSTG"], "x": [-50, -56], "y": [24, -40], "z": [8, 4]}).to_csv(spheres, sep="\t", index=False)
    load.main(load_args(tmp / "bids", stimulus, tmp_path / "r.h5", "--spheres", spheres, "--sphere-radius", 10,
                        "--confounds", "none", "--ceiling", "none"))
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        mask = responses["mask/mask"][()].astype(bool)
        affine = responses["mask/affine"][()]
        labels = responses["rois/labels"][()]
    xyz = np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]
    expected = np.zeros(len(xyz), int)
    for k, centre in enumerate([(-50, 24, 8), (-56, -40, 4)]):
        expected[np.linalg.norm(xyz - centre, axis=1) <= 10] = k + 1
    np.testing.assert_array_equal(labels, expected)


def test_repeated_runs_are_averaged_with_a_repeat_ceiling(tmp_path):
    """Hand-written BIDS: every run presented twice; planted signal variance 1, noise variance 1."""
    rng = np.random.default_rng(5)
    n_trs, shape = 400, (4, 5, 3)
    words = pd.DataFrame({"run": "s", "word_index": range(3), "word": ["a", "b", "c"], "onset": [1.0, 2.0, 3.0],
                          "offset": [1.5, 2.5, 3.5]})
    words.to_csv(tmp_path / "stim.tsv", sep="\t", index=False)
    signal = rng.standard_normal((n_trs,) + shape)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    for sub in ("01", "02"):
        func = tmp_path / "bids" / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        for run in ("1", "2"):
            stem = func / f"sub-{sub}_task-listening_run-{run}_space-MNI152NLin2009cAsym"
            data = (signal + rng.standard_normal(signal.shape)).transpose(1, 2, 3, 0).astype(np.float32)
            image = nib.Nifti1Image(data, affine)
            image.header.set_zooms((3.0, 3.0, 3.0, 1.5))
            nib.save(image, f"{stem}_desc-preproc_bold.nii.gz")
            nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), affine), f"{stem}_desc-brain_mask.nii.gz")
    load.main(load_args(tmp_path / "bids", tmp_path / "stim.tsv", tmp_path / "r.h5", "--run-map", "1=s", "2=s",
                        "--confounds", "none", "--high-pass", 0, "--no-detrend", "--group-average"))
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert responses.attrs["ceiling_method"] == "repeats" and responses.attrs["tr"] == 1.5
        assert responses["subjects/sub-01/runs/s"].attrs["n_repeats"] == 2
        repeats = responses["subjects/sub-01/runs/s/repeats"][()]  # kept for encode's ceiling on the scored rows
        np.testing.assert_allclose(repeats.mean(axis=0), responses["subjects/sub-01/runs/s/bold"][()], atol=1e-5)
        assert repeats.shape == (2, n_trs, 60)
        ceiling = responses["subjects/sub-01/noise_ceiling"][()]
        average_ceiling = responses["subjects/average/noise_ceiling"][()]
    assert ceiling.shape == (60,) and abs(ceiling.mean() - np.sqrt(1 / 1.5)) < 0.02  # mean of 2 repeats: S / (S + 1/2)
    np.testing.assert_allclose(ceiling, np.sqrt(1 / 1.5), atol=0.08)
    assert abs(average_ceiling.mean() - np.sqrt(1 / 1.25)) < 0.02  # mean of 2 subjects x 2 repeats


def test_roi_tables_are_cleaned_and_checked(small, tmp_path):
    from nilearn.signal import clean

    _, stimulus = small
    rng = np.random.default_rng(2)
    n_trs = {"1": 40, "2": 41}
    tables = {}
    for sub in ("01", "02", "03"):
        for run, n in n_trs.items():
            frame = pd.DataFrame(rng.standard_normal((n, 3)), columns=["IFG", "STG", "AG"])
            frame["flat"] = 1.0
            path = tmp_path / "tables" / f"sub-{sub}" / f"sub-{sub}_task-x_run-{run}_timeseries.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, sep="\t", index=False)
            tables[(sub, run)] = frame
    with pytest.raises(InputError, match=r"no TR; give --tr \(config fmri.tr"):
        load.main(load_args(tmp_path / "tables", stimulus, tmp_path / "r.h5", "--kind", "roi-table"))
    load.main(load_args(tmp_path / "tables", stimulus, tmp_path / "r.h5", "--kind", "roi-table", "--tr", 2.0, "--dummy-scans", 1,
                        "--first-volume-time", 2.0))
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        assert [n.decode() for n in responses["rois/names"][()]] == ["IFG", "STG", "AG"]
        assert responses.attrs["n_dropped_voxels"] == 1 and responses.attrs["ceiling_method"] == "loso"
        stored = responses["subjects/sub-02/runs/2/bold"][()]
        assert responses["subjects/sub-02/runs/2"].attrs["first_volume_time"] == 2.0
    expected = clean(tables[("02", "2")][["IFG", "STG", "AG"]].to_numpy()[1:], detrend=True, standardize="zscore_sample",
                     high_pass=0.008, t_r=2.0)
    np.testing.assert_allclose(stored, expected, atol=1e-5)


def test_sentence_responses(tmp_path):
    rng = np.random.default_rng(4)
    n_sentences = 300
    pd.DataFrame({"text": [f"sentence number {i}." for i in range(n_sentences)]}).to_csv(tmp_path / "sentences.tsv", sep="\t", index=False)
    shared = rng.standard_normal((n_sentences, 5))
    for sub in ("01", "02", "03"):
        np.save(tmp_path / f"sub-{sub}_sentences.npy", shared + rng.standard_normal((n_sentences, 5)))
    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    args = parser.parse_args(["--kind", "sentences", "--root", str(tmp_path), "--out", str(tmp_path / "r.h5")])
    load.main(args)
    with h5py.File(tmp_path / "r.h5", "r") as responses:
        text = [t.decode() for t in responses["sentences/text"][()]]
        values = responses["subjects/sub-03/sentences/responses"][()]
        ceiling = responses["subjects/sub-03/noise_ceiling"][()]
    assert text[7] == "sentence number 7." and values.shape == (n_sentences, 5)
    raw = np.load(tmp_path / "sub-03_sentences.npy")
    np.testing.assert_allclose(values, (raw - raw.mean(0)) / raw.std(0, ddof=1), atol=1e-5)
    np.testing.assert_allclose(ceiling, np.sqrt(0.5), atol=0.1)
    np.save(tmp_path / "sub-03_sentences.npy", raw[:-1])
    with pytest.raises(InputError, match="299 rows but .*300 sentences"):
        load.main(args)
