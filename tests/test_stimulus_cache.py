"""The word baselines cached in responses.h5 by load-fmri: written for the stimulus, read by encode
when they apply, and the scores are bitwise those computed without the cache."""

import json
import logging
import shutil

import h5py
import numpy as np
import pytest
from test_fmri_load import load_args
from test_simulate import make_stimulus, simulate_args

from brainphase import cli
from brainphase.encoding.baselines import WORD_BASELINES, word_baselines
from brainphase.encoding.stimulus_cache import GROUP
from brainphase.fmri import load, simulate
from brainphase.io import atomic_h5, provenance, read_strings, string_array
from brainphase.stimuli import read_stimulus
from brainphase.word_windows import ordered_words


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Simulated BIDS of 3 runs loaded by load-fmri, and activations of the same stimulus words."""
    tmp = tmp_path_factory.mktemp("stimulus_cache")
    stimulus, corpus = make_stimulus(tmp, 150, runs=("1", "2", "3"))
    simulate.main(simulate_args(stimulus, corpus, tmp / "bids"))
    load.main(load_args(tmp / "bids", stimulus, tmp / "responses.h5"))
    words = ordered_words(read_stimulus(stimulus))
    rng = np.random.default_rng(0)
    attrs = {"model_id": "m", "revision": "r", "seed": 0, "step": 0, "tokens": 0, "n_layers": 2, "d_model": 6,
             "weights_sha256": json.dumps({})}
    act = tmp / "act.h5"
    with atomic_h5(act, provenance("extract", {}, [], **attrs)) as h5:
        for i in range(2):
            h5.create_dataset(f"layer_{i}", data=rng.standard_normal((len(words), 6)).astype(np.float32))
        group = h5.create_group("words")
        group.create_dataset("run", data=string_array(words["run"].astype(str)))
        group.create_dataset("word", data=string_array(words["word"]))
        for key in ("word_index", "onset", "offset"):
            group.create_dataset(key, data=words[key].to_numpy())
    return tmp, stimulus, act


def _without_cache(tmp, name="uncached.h5"):
    copy = tmp / name
    shutil.copyfile(tmp / "responses.h5", copy)
    with h5py.File(copy, "a") as handle:
        del handle[GROUP]
    return copy


def _scores(act, resp, out, *extra):
    assert cli.main(["encode", "--activations", str(act), "--responses", str(resp), "--out", str(out),
                     "--trim-start", "2", "--trim-end", "2", "--alphas", "1", "100", "10000", "--banded-ratios", "1",
                     *extra]) == 0
    found = {}
    with h5py.File(out, "r") as handle:
        handle.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_load_fmri_caches_the_word_baselines_of_the_stimulus(inputs):
    tmp, stimulus, _ = inputs
    words = ordered_words(read_stimulus(stimulus))
    expected = word_baselines(words["word"].tolist(), WORD_BASELINES, "wordfreq", None, "en")
    with h5py.File(tmp / "responses.h5", "r") as handle:
        group = handle[GROUP]
        assert read_strings(group["word"]) == words["word"].tolist()
        assert read_strings(group["run"]) == words["run"].astype(str).tolist()
        assert group.attrs["frequency_language"] == "en"
        for k, space in enumerate(WORD_BASELINES):
            assert np.array_equal(group[space][()], expected[:, k]), space


def test_encode_with_the_cache_equals_encode_without(inputs, caplog):
    tmp, _, act = inputs
    with caplog.at_level(logging.INFO, logger="brainphase.encoding.stimulus_cache"):
        cached = _scores(act, tmp / "responses.h5", tmp / "cached.h5")
    assert "read from" in caplog.text
    uncached = _scores(act, _without_cache(tmp), tmp / "uncached_scores.h5")
    assert cached.keys() == uncached.keys() and "baselines/r" in cached
    for name, values in uncached.items():
        assert np.array_equal(cached[name], values, equal_nan=values.dtype.kind == "f"), name


def test_the_cache_is_read_only_when_it_applies(inputs, caplog):
    tmp, _, act = inputs
    tampered = tmp / "tampered.h5"  # a cache with other values changes the scores: encode reads it
    shutil.copyfile(tmp / "responses.h5", tampered)
    with h5py.File(tampered, "a") as handle:
        handle[f"{GROUP}/word_length"][...] = np.random.default_rng(1).standard_normal(handle[f"{GROUP}/word"].shape)
    reference = _scores(act, tmp / "responses.h5", tmp / "reference.h5")
    assert not np.array_equal(_scores(act, tampered, tmp / "tampered_scores.h5")["baselines/r"], reference["baselines/r"])

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="brainphase.encoding.stimulus_cache"):  # another frequency language
        _scores(act, tampered, tmp / "german.h5", "--frequency-language", "de")
    assert "holds wordfreq frequencies (en), this job wants wordfreq (de)" in caplog.text
    caplog.clear()
    with h5py.File(tampered, "a") as handle:  # the activations' words differ from the cached stimulus
        handle[f"{GROUP}/word"][0] = b"another"
    with caplog.at_level(logging.INFO, logger="brainphase.encoding.stimulus_cache"):
        assert np.array_equal(_scores(act, tampered, tmp / "other_words.h5")["baselines/r"], reference["baselines/r"])
    assert "words differ from the stimulus cached" in caplog.text
