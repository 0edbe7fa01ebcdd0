"""`brainphase encode` on a planted problem: layer 1 drives half the voxels, the rest is noise."""

import json

import h5py
import numpy as np
import pytest

from brainphase import cli
from brainphase.encoding import features as F
from brainphase.io import atomic_h5, provenance, read_strings, string_array

TR = 2.0
RUNS = {"story_b": (52, 0.0), "story_a": (47, 1.0), "story_c": (58, 0.5), "story_d": (49, 0.0)}  # n_trs, first_volume_time
D_MODEL, N_LAYERS, N_VOXELS, N_SIGNAL = 5, 3, 26, 13
SUBJECTS = ["sub-02", "sub-01"]
MASK_SHAPE = (4, 5, 3)
ACT_ATTRS = {"model_id": "tiny-neox", "revision": "abc123", "seed": 3, "step": 512, "tokens": 1048576,
             "weights_sha256": json.dumps({"model.safetensors": "0" * 64})}


def write_inputs(tmp_path, drop_run_from_responses=None, volume_interval=None):
    interval = TR if volume_interval is None else volume_interval
    rng = np.random.default_rng(0)
    words = {"run": [], "word_index": [], "word": [], "onset": [], "offset": []}
    for run, (n_trs, fvt) in RUNS.items():
        n_words = int(n_trs * TR * 2.2)
        onset = np.sort(rng.uniform(0, n_trs * TR + fvt, n_words))
        words["run"] += [run] * n_words
        words["word_index"] += list(range(n_words))
        words["word"] += [f"w{k}" for k in range(n_words)]
        words["onset"] += onset.tolist()
        words["offset"] += (onset + 0.3).tolist()
    run_col = np.array(words["run"])
    layers = [rng.standard_normal((len(run_col), D_MODEL)).astype(np.float32) for _ in range(N_LAYERS)]
    act_path = tmp_path / "act.h5"
    with atomic_h5(act_path, provenance("extract", {}, [], n_layers=N_LAYERS - 1, d_model=D_MODEL, **ACT_ATTRS)) as h5:
        for i, layer in enumerate(layers):
            h5.create_dataset(f"layer_{i}", data=layer.astype(np.float16 if i == 0 else np.float32))
        g = h5.create_group("words")
        g.create_dataset("run", data=string_array(words["run"]))
        g.create_dataset("word", data=string_array(words["word"]))
        for key in ("word_index", "onset", "offset"):
            g.create_dataset(key, data=np.asarray(words[key]))

    # planted truth: signal voxels = (Lanczos + delayed layer-1 features) @ W + noise
    weights = rng.standard_normal((D_MODEL * 4, N_VOXELS))
    weights[:, N_SIGNAL:] = 0
    resp_path = tmp_path / "responses.h5"
    mask = np.zeros(MASK_SHAPE, dtype=np.uint8)
    mask.flat[rng.choice(mask.size, N_VOXELS, replace=False)] = 1
    labels = np.zeros(N_VOXELS, dtype=np.int16)
    labels[:10], labels[N_SIGNAL : N_SIGNAL + 10] = 1, 2
    with atomic_h5(resp_path, provenance("load-fmri", {}, [], tr=TR, simulated=True, subjects=SUBJECTS)) as h5:
        h5.create_dataset("mask/mask", data=mask)
        h5.create_dataset("mask/affine", data=np.diag([2.0, 2.0, 2.0, 1.0]))
        h5.create_dataset("rois/names", data=string_array(["signal_roi", "noise_roi"]))
        h5.create_dataset("rois/labels", data=labels)
        for sub in SUBJECTS:
            for run, (n_trs, fvt) in RUNS.items():
                if run == drop_run_from_responses:
                    continue
                rows = run_col == run
                onset = np.asarray(words["onset"])[rows]
                lanczos = F.lanczos_downsample(layers[1][rows], onset, F.volume_times(n_trs, interval, fvt), interval)
                design = F.delay_features(lanczos, (1, 2, 3, 4))
                bold = design @ weights * 0.5 + rng.standard_normal((n_trs, N_VOXELS)) + 100.0
                g = h5.create_group(f"subjects/{sub}/runs/{run}")
                g.create_dataset("bold", data=bold.astype(np.float32))
                g.attrs["first_volume_time"] = fvt
                if volume_interval is not None:
                    g.attrs["volume_interval"] = volume_interval
        h5.create_dataset("subjects/sub-01/noise_ceiling", data=np.full(N_VOXELS, 0.5, dtype=np.float32))
    return act_path, resp_path


def encode_args(act, resp, out, *extra):
    return ["encode", "--activations", str(act), "--responses", str(resp), "--out", str(out),
            "--trim-start", "3", "--trim-end", "2", "--alphas", "1", "10", "100", "1000", "10000", *extra]


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("encode")
    act, resp = write_inputs(tmp)
    out = tmp / "scores" / "step512.h5"
    maps = tmp / "maps"
    assert cli.main(encode_args(act, resp, out, "--permutations", "200", "--maps-dir", str(maps))) == 0
    return out, maps


def test_planted_signal_is_recovered(scores):
    out, _ = scores
    with h5py.File(out, "r") as h5:
        r = h5["r"][()]
        assert h5["layers"][()].tolist() == [0, 1, 2]
        assert read_strings(h5["subjects"]) == sorted(SUBJECTS)
        for s in range(2):
            assert r[1, s, :N_SIGNAL].mean() > 0.6
            assert np.abs(r[1, s, N_SIGNAL:]).max() < 0.35
            # layers 0 and 2 are independent of the responses
            assert np.abs(r[[0, 2], s]).mean() < 0.15
        r2 = h5["r2"][()]
        assert (r2[1, :, :N_SIGNAL] > 0.3).all() and (r2[1, :, N_SIGNAL:] < 0.05).all()
        assert r.dtype == np.float32 and np.isfinite(r).all()
        # signal voxels significant after FDR, noise voxels mostly not
        q = h5["q_value"][()]
        assert (q[1, :, :N_SIGNAL] < 0.05).all() and (q[1, :, N_SIGNAL:] < 0.05).mean() < 0.2
        assert h5["p_value"].shape == r.shape


def test_output_layout_and_attributes(scores):
    out, maps = scores
    shape = (N_LAYERS, len(SUBJECTS), N_VOXELS)
    with h5py.File(out, "r") as h5:
        for key in ("r", "r2", "alpha", "r_normalized", "p_value", "q_value"):
            assert h5[key].shape == shape, key
        assert h5["roi_mean_r"].shape == (N_LAYERS, len(SUBJECTS), 2)
        assert read_strings(h5["roi_names"]) == ["signal_roi", "noise_roi"]
        assert read_strings(h5["runs"]) == list(RUNS)
        assert h5.attrs["stimulus_kind"] == "words"
        r = h5["r"][()]
        np.testing.assert_allclose(h5["roi_mean_r"][:, :, 0], r[:, :, :10].mean(-1), rtol=1e-5)
        np.testing.assert_allclose(h5["roi_mean_r"][:, :, 1], r[:, :, N_SIGNAL : N_SIGNAL + 10].mean(-1), rtol=1e-5)
        # sub-01 (index 0 after sorting) has a ceiling of 0.5, sub-02 none
        np.testing.assert_allclose(h5["r_normalized"][:, 0], r[:, 0] / 0.5, rtol=1e-6)
        assert np.isnan(h5["r_normalized"][:, 1]).all()
        alpha = h5["alpha"][()]
        assert alpha.min() >= 1 and alpha.max() <= 10000
        assert np.median(alpha[1, :, :N_SIGNAL]) < np.median(alpha[1, :, N_SIGNAL:])
        attrs = dict(h5.attrs)
        assert attrs["stage"] == "encode" and bool(attrs["simulated"]) is True
        for key, value in ACT_ATTRS.items():
            assert attrs[key] == value, key
        config = json.loads(attrs["config_json"])
        assert config["delays"] == [1, 2, 3, 4] and config["trim_start"] == 3
        assert len(json.loads(attrs["input_sha256"])) == 2
    import nibabel as nib

    images = sorted(maps.glob("*.nii.gz"))
    assert [p.name for p in images] == ["sub-01_layer-1_r.nii.gz", "sub-02_layer-1_r.nii.gz"]
    with h5py.File(out, "r") as h5, h5py.File(out.parent.parent / "responses.h5", "r") as resp:
        mask = resp["mask/mask"][()].astype(bool)
        volume = nib.load(images[0]).get_fdata()
        np.testing.assert_allclose(volume[mask], h5["r"][1, 0], rtol=1e-6)
        assert (volume[~mask] == 0).all()


def test_bad_input_leaves_no_output(tmp_path, capsys):
    act, resp = write_inputs(tmp_path, drop_run_from_responses="story_c")
    out = tmp_path / "scores.h5"
    assert cli.main(encode_args(act, resp, out)) == 2
    message = capsys.readouterr().err
    assert "story_c" in message and "in activations only" in message
    assert not out.exists()
    assert not list(tmp_path.glob(".scores.h5*"))
    # swapped inputs are named by the stage check
    assert cli.main(encode_args(resp, act, out)) == 2
    assert "expected a file written by `brainphase extract`" in capsys.readouterr().err
    assert cli.main(encode_args(act, resp, out, "--layers", "7")) == 2
    assert not out.exists()


def test_scores_match_references():
    from scipy.stats import pearsonr
    from sklearn.metrics import r2_score

    from brainphase.encoding import scoring

    rng = np.random.default_rng(7)
    y = rng.standard_normal((41, 6))
    pred = 0.6 * y + rng.standard_normal((41, 6))
    np.testing.assert_allclose(scoring.pearson_columns(y, pred), [pearsonr(y[:, j], pred[:, j])[0] for j in range(6)])
    np.testing.assert_allclose(scoring.r2_columns(y, pred), r2_score(y, pred, multioutput="raw_values"))
    y_const = y.copy()
    y_const[:, 2] = 1.0
    assert np.isnan(scoring.pearson_columns(y_const, pred)[2]) and np.isnan(scoring.r2_columns(y_const, pred)[2])
    values = rng.standard_normal((2, 6))
    values[0, 4] = np.nan
    labels = np.array([1, 0, 2, 1, 1, 2])
    means = scoring.roi_means(values, labels, 3)
    np.testing.assert_allclose(means[:, 0], [np.mean(values[0, [0, 3]]), np.mean(values[1, [0, 3, 4]])])
    np.testing.assert_allclose(means[:, 1], values[:, [2, 5]].mean(1))
    assert np.isnan(means[:, 2]).all()
    np.testing.assert_allclose(scoring.noise_normalized(np.ones(3), np.array([0.5, 0.0, 2.0])), [2.0, np.nan, 0.5])
    blocks = scoring.run_blocks(np.array([5, 3]), 2)
    assert [b.tolist() for b in blocks] == [[0, 1], [2, 3], [4], [5, 6], [7]]


def test_block_permutation_null_and_signal():
    from brainphase.encoding import scoring

    rng = np.random.default_rng(8)
    n, n_noise = 120, 300
    y = rng.standard_normal((n, n_noise + 5))
    pred = rng.standard_normal((n, n_noise + 5))
    pred[:, n_noise:] += 2 * y[:, n_noise:]
    p = scoring.block_permutation_pvalues(y, pred, np.array([50, 70]), n_permutations=99, block_size=5, seed=1)
    assert np.all((p >= 0.01) & (p <= 1))
    # null p-values are roughly uniform; planted columns get the minimum 1 / (1 + 99)
    assert 0.35 < p[:n_noise].mean() < 0.65 and 0.03 < (p[:n_noise] <= 0.1).mean() < 0.2
    np.testing.assert_allclose(p[n_noise:], 0.01)
    from scipy.stats import false_discovery_control

    q = scoring.fdr_qvalues(np.append(p, np.nan))
    assert np.isnan(q[-1])
    np.testing.assert_allclose(q[:-1], false_discovery_control(p))
    assert (q[n_noise:-1] == np.nanmin(q)).all() and (q[:-1] >= p).all()


def test_volume_interval_of_stretched_timings_is_used(tmp_path):
    """With --time-scale the loader stores volume_interval = tr / time_scale; the planted
    responses follow that clock, so only an encoder that uses it recovers the signal."""
    act, resp = write_inputs(tmp_path, volume_interval=1.6)
    out = tmp_path / "scores.h5"
    assert cli.main(encode_args(act, resp, out, "--layers", "1")) == 0
    with h5py.File(resp, "a") as h5:
        for sub in SUBJECTS:
            for run in RUNS:
                del h5[f"subjects/{sub}/runs/{run}"].attrs["volume_interval"]
    ignored = tmp_path / "ignored.h5"
    assert cli.main(encode_args(act, resp, ignored, "--layers", "1")) == 0
    with h5py.File(out, "r") as used, h5py.File(ignored, "r") as wrong:
        r_used, r_wrong = used["r"][0, :, :N_SIGNAL], wrong["r"][0, :, :N_SIGNAL]
    assert r_used.mean() > 0.6
    assert r_used.mean() > r_wrong.mean() + 0.2


def test_responses_without_rois_and_sentence_activations(tmp_path, capsys):
    """No /rois: scores without ROI means; activations of a sentence list are refused for time series."""
    act, resp = write_inputs(tmp_path)
    with h5py.File(resp, "a") as h5:
        del h5["rois"]
    out = tmp_path / "scores.h5"
    assert cli.main(encode_args(act, resp, out, "--layers", "1")) == 0
    with h5py.File(out, "r") as h5:
        assert h5["roi_mean_r"].shape == (1, len(SUBJECTS), 0) and read_strings(h5["roi_names"]) == []
        assert h5["r"][0, :, :N_SIGNAL].mean() > 0.6
    with h5py.File(act, "a") as h5:
        h5.attrs["stimulus_kind"] = "sentences"
    assert cli.main(encode_args(act, resp, tmp_path / "other.h5", "--layers", "1")) == 2
    assert "holds sentence activations" in capsys.readouterr().err
    assert not (tmp_path / "other.h5").exists()


def test_cli_defaults_are_the_schema_defaults():
    """One default per parameter: every encode key of config/schema.yaml with a default is the
    default of its `brainphase encode` option, and the docs state the same alpha grid."""
    import argparse
    from pathlib import Path

    from brainphase.config import SCHEMA_PATH, _schema
    from brainphase.encoding.cli import add_arguments
    from brainphase.encoding.ridge import DEFAULT_ALPHAS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = {action.dest: action.default for action in parser._actions}
    section = _schema(str(SCHEMA_PATH))["properties"]["encode"]["properties"]
    # options of the baselines and variance partitioning (encoding/partition.py) are checked by their tests
    skipped = {"baselines", "extra_regressors", "frequency_source", "frequency_corpus", "frequency_language",
               "partition_layers", "banded_ratios"}
    checked = []
    for key, spec in section.items():
        if "default" not in spec or key == "maps" or key in skipped:  # maps -> --maps-dir PATH (workflow)
            continue
        assert key in defaults, f"schema key encode.{key} has no --{key.replace('_', '-')} option"
        assert defaults[key] == spec["default"], key
        checked.append(key)
    assert {"alphas", "delays", "cv", "gap_trs", "sentence_cv", "ceiling_floor"} <= set(checked)
    assert "default" not in section["chunk_size"] and defaults["chunk_size"] is None  # auto-sized
    alphas = section["alphas"]["default"]
    np.testing.assert_allclose(alphas, DEFAULT_ALPHAS)  # RidgeCV's own default is the same grid
    docs = (Path(__file__).parents[1] / "docs" / "hdf5_layout.md").read_text()
    assert f"10^{np.log10(alphas[0]):.0f}..10^{np.log10(alphas[-1]):.0f} in half decades, {len(alphas)} values" in docs
    assert np.allclose(np.diff(np.log10(alphas)), 0.5)
