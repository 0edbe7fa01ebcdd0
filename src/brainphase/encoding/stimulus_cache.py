"""The word baselines of the stimulus, computed once by ``brainphase load-fmri`` for every encode job.

Every ``brainphase encode`` job of a study (one per checkpoint: thousands at scale) fits the
same stimulus-only baselines (:mod:`brainphase.encoding.baselines`) to the same responses; only
its layers differ. Profiling one job of the demo's size (bench/encode.py, ``python -m cProfile``)
showed the word-level baseline features as the largest part of that shared work (1.7 s of a
16 s job under the profiler: importing wordfreq and its word list, parsing the CMU dictionary;
without the profiler bench/encode.py measures 0.6 s of 7.9 s of CPU), while reading, trimming and
z-scoring the responses took 0.08 s. ``load-fmri`` reads the stimulus anyway,
so it writes these features once into ``responses.h5``:

``/stimulus_baselines/run``, ``/stimulus_baselines/word`` (n_words,) strings
    The stimulus words in the order of an activations file (:func:`brainphase.word_windows.ordered_words`).
``/stimulus_baselines/{space}`` (n_words,) float64
    :func:`brainphase.encoding.baselines.word_baselines` of each space of
    :data:`~brainphase.encoding.baselines.WORD_BASELINES`, ``log_frequency`` from wordfreq in
    the language of the group attribute ``frequency_language``.

``brainphase encode`` takes its word baselines from there when the activations' words and runs
equal the cached ones and its frequency options are those of the cache (wordfreq, same language),
else computes them; the values are the same either way (the same function on the same words,
tests/test_stimulus_cache.py compares the scores files bitwise).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import h5py
import numpy as np

from brainphase.encoding import baselines as base
from brainphase.io import read_strings, string_array

if TYPE_CHECKING:  # encode's start-up imports no pandas (tests/test_ridge.py)
    import pandas as pd

logger = logging.getLogger(__name__)

GROUP = "stimulus_baselines"


def write_stimulus_baselines(out: h5py.File, stimulus: pd.DataFrame, frequency_language: str) -> None:
    """Write ``/stimulus_baselines`` (module docstring) for the words table ``stimulus``.

    Parameters
    ----------
    out : h5py.File
        The responses file being written.
    stimulus : DataFrame
        Stimulus table (run, word_index, word, onset, offset), any order.
    frequency_language : str
        wordfreq language of ``log_frequency`` (``encode.frequency_language``).
    """
    from brainphase.word_windows import ordered_words

    words = ordered_words(stimulus)
    features = base.word_baselines(words["word"].astype(str).tolist(), base.WORD_BASELINES, "wordfreq", None,
                                   frequency_language)
    group = out.create_group(GROUP)
    group.attrs["frequency_source"] = "wordfreq"
    group.attrs["frequency_language"] = frequency_language
    group.create_dataset("run", data=string_array(words["run"].astype(str)))
    group.create_dataset("word", data=string_array(words["word"].astype(str)))
    for k, space in enumerate(base.WORD_BASELINES):
        group.create_dataset(space, data=features[:, k])


def cached_word_baselines(resp: h5py.File, runs: np.ndarray, words: Sequence[str], spaces: Sequence[str],
                          frequency_source: str, frequency_language: str) -> np.ndarray | None:
    """The word baselines of ``words`` from ``resp``'s cache, or None when it does not apply.

    Parameters
    ----------
    resp : h5py.File
        A responses file.
    runs, words : sequence of str, shape (n_words,)
        The activations' ``/words/run`` and ``/words/word``.
    spaces : sequence of str
        Wanted spaces, a subset of :data:`~brainphase.encoding.baselines.WORD_BASELINES`.
    frequency_source, frequency_language : str
        The encode options; the cache holds wordfreq frequencies in one language.

    Returns
    -------
    ndarray of shape (n_words, len(spaces)), float64, or None
        None when there is no cache, the words or runs differ from the cached ones, or
        ``log_frequency`` is wanted from another source or language.
    """
    if GROUP not in resp:
        return None
    group = resp[GROUP]
    if "log_frequency" in spaces and (frequency_source, frequency_language) != (
            group.attrs["frequency_source"], group.attrs["frequency_language"]):
        logger.info("word baselines computed: the cache in %s holds %s frequencies (%s), this job wants %s (%s)",
                    resp.filename, group.attrs["frequency_source"], group.attrs["frequency_language"],
                    frequency_source, frequency_language)
        return None
    if list(read_strings(group["word"])) != [str(w) for w in words] or \
            list(read_strings(group["run"])) != [str(r) for r in runs]:
        logger.info("word baselines computed: the activations' words differ from the stimulus cached in %s",
                    resp.filename)
        return None
    logger.info("word baselines %s read from %s/%s", list(spaces), resp.filename, GROUP)
    return np.stack([group[space][()] for space in spaces], axis=1) if spaces else np.zeros((len(words), 0))
