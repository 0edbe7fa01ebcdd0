"""The sign of first_volume_time end to end: ROI tables -> load-fmri -> encode on a planted lag.

The planted response of volume k is the sum of a word feature over the words heard 4-6 s before
the volume starts (stimulus clock), with volume 0 of the tables starting 20 s into the audio. Only
``--first-volume-time 20`` lines the words up with the volumes; the opposite sign (the old
``time_offset`` convention) and 0 shift them by 20-40 s, beyond the FIR delays.
"""

import argparse
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from brainphase import cli
from brainphase.fmri import load
from brainphase.io import atomic_h5, provenance, string_array

TR, N_VOLUMES, TRUE_FIRST_VOLUME_TIME = 2.0, 150, 20.0
RUNS = ("a", "b", "c")
LAG_S = (4.0, 6.0)  # the response of a volume sums the words heard this long before it starts


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timing")
    rng = np.random.default_rng(7)
    words, features = [], []
    tables = tmp / "tables"
    tables.mkdir()
    for run in RUNS:
        onset = np.cumsum(rng.uniform(0.25, 0.75, 500))  # ~250 s of words, 0.2 s long
        feature = rng.standard_normal(len(onset))
        words.append(pd.DataFrame({"run": run, "word_index": np.arange(len(onset)), "word": [f"w{i}" for i in range(len(onset))],
                                   "onset": onset, "offset": onset + 0.2}))
        features.append(feature)
        start = TRUE_FIRST_VOLUME_TIME + TR * np.arange(N_VOLUMES)  # stimulus time at which each volume starts
        heard = (onset[None, :] >= start[:, None] - LAG_S[1]) & (onset[None, :] < start[:, None] - LAG_S[0])
        signal = heard.astype(float) @ feature  # (n_volumes,)
        for sub in ("01", "02"):
            noise = rng.standard_normal((N_VOLUMES, 2))
            frame = pd.DataFrame({"language": signal + 0.5 * noise[:, 0], "control": noise[:, 1]})
            frame.to_csv(tables / f"sub-{sub}_run-{run}.tsv", sep="\t", index=False)
    words = pd.concat(words, ignore_index=True)
    words.to_csv(tmp / "stim.tsv", sep="\t", index=False)
    feature = np.concatenate(features)
    layers = [rng.standard_normal((len(words), 3)), np.column_stack([feature, rng.standard_normal((len(words), 2))])]
    attrs = provenance("extract", {}, [], n_layers=1, d_model=3, model_id="planted", revision="", seed=0, step=0, tokens=0,
                       weights_sha256=json.dumps({}))
    with atomic_h5(tmp / "act.h5", attrs) as h5:
        for i, layer in enumerate(layers):
            h5.create_dataset(f"layer_{i}", data=layer.astype(np.float32))
        h5.create_dataset("words/run", data=string_array(words["run"]))
        h5.create_dataset("words/word", data=string_array(words["word"]))
        for key in ("word_index", "onset", "offset"):
            h5.create_dataset(f"words/{key}", data=words[key].to_numpy())
    return tmp


def language_r(tmp, first_volume_time):
    """Mean held-out r of layer 1 (the planted feature) in the 'language' ROI, with this first_volume_time."""
    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    responses, scores = tmp / f"responses_{first_volume_time:g}.h5", tmp / f"scores_{first_volume_time:g}.h5"
    load.main(parser.parse_args(["--kind", "roi-table", "--root", str(tmp / "tables"), "--stimulus", str(tmp / "stim.tsv"),
                                 "--out", str(responses), "--tr", str(TR), "--first-volume-time", str(first_volume_time)]))
    with h5py.File(responses, "r") as h5:
        assert h5["subjects/sub-01/runs/a"].attrs["first_volume_time"] == first_volume_time
    assert cli.main(["encode", "--activations", str(tmp / "act.h5"), "--responses", str(responses), "--out", str(scores),
                     "--trim-start", "3", "--trim-end", "3", "--alphas", "1", "10", "100", "1000"]) == 0
    with h5py.File(scores, "r") as h5:
        return float(h5["r"][1, :, 0].mean()), float(np.abs(h5["r"][1, :, 1]).mean())


def test_planted_lag_is_recovered_only_with_the_right_first_volume_time(planted):
    right, control = language_r(planted, TRUE_FIRST_VOLUME_TIME)
    assert right > 0.6 and control < 0.2
    for wrong in (-TRUE_FIRST_VOLUME_TIME, 0.0):  # the old time_offset sign, and no offset at all
        assert language_r(planted, wrong)[0] < right - 0.4
