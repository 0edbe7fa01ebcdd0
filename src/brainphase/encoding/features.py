"""Word-level model features -> TR-level design matrices for voxelwise encoding models.

The pipeline for one run (story) follows the Huth-lab convention:

1. :func:`lanczos_downsample` -- each word is a point event at its time (onset by default,
   the midpoint of onset and offset as an option); the feature value at volume time ``t`` is
   ``sum_j L(f * (t - s_j)) * x_j`` with ``f = cutoff_mult / TR`` and the Lanczos kernel
   ``L(x) = a sin(pi x) sin(pi x / a) / (pi^2 x^2)``, ``L(0) = 1``, ``L(x) = 0`` for
   ``|x| > a`` (``a = window``, default 3). No normalisation: a TR with more words gets a
   larger value, as in the Huth-lab ``lanczosinterp2D``.
2. :func:`delay_features` -- finite impulse response: copies of the features delayed by
   1, 2, 3, 4 TRs (default) concatenated along features, zero-filled at the start of the run
   (no stimulus before the run), never crossing into another run.
3. :func:`trim` -- drop the first ``trim_start`` and last ``trim_end`` volumes of the run
   (defaults 5 and 5: the scanner/haemodynamic onset transient and the tail). Delays are
   applied *before* trimming, so the kept volumes see the real preceding stimulus.
4. :func:`zscore_columns` -- z-score each column within the run, after trimming.

Responses get the same trim and z-scoring (:func:`prepare_responses`), so features and
responses stay row-aligned. Sentence-level datasets use :func:`sentence_features` (pooled
activation per sentence, no delays).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from brainphase.errors import InputError

logger = logging.getLogger(__name__)

#: default FIR delays in TRs
DEFAULT_DELAYS: tuple[int, ...] = (1, 2, 3, 4)
#: default number of volumes dropped at the start / end of every run
DEFAULT_TRIM_START = 5
DEFAULT_TRIM_END = 5
WORD_TIME_ANCHORS = ("onset", "midpoint")
SENTENCE_POOLINGS = ("mean", "last")


def lanczos_kernel(x: np.ndarray, window: int = 3) -> np.ndarray:
    """Lanczos kernel ``L(x) = a sin(pi x) sin(pi x / a) / (pi^2 x^2)`` with ``a = window``.

    Parameters
    ----------
    x : ndarray of any shape
        Arguments (already multiplied by the cutoff frequency).
    window : int
        Number of lobes ``a``; ``L(x) = 0`` for ``|x| > a``.

    Returns
    -------
    ndarray of the shape of ``x``, float64
        ``L(0) = 1``.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = window * np.sin(np.pi * x) * np.sin(np.pi * x / window) / (np.pi**2 * x**2)
    values = np.where(x == 0, 1.0, values)
    return np.where(np.abs(x) > window, 0.0, values)


def volume_times(n_trs: int, tr: float, first_volume_time: float) -> np.ndarray:
    """Stimulus-clock time of each volume: ``first_volume_time + k * tr``, shape (n_trs,)."""
    return first_volume_time + tr * np.arange(n_trs, dtype=np.float64)


def word_times(onset: np.ndarray, offset: np.ndarray, anchor: str = "onset") -> np.ndarray:
    """Time of each word as a point event, shape (n_words,).

    Parameters
    ----------
    onset, offset : ndarray of shape (n_words,)
        Seconds from the start of the run.
    anchor : {"onset", "midpoint"}
        ``"onset"`` (default, Huth-lab convention) or the midpoint ``(onset + offset) / 2``.
    """
    onset = np.asarray(onset, dtype=np.float64)
    if anchor == "onset":
        return onset
    if anchor == "midpoint":
        return 0.5 * (onset + np.asarray(offset, dtype=np.float64))
    raise InputError(f"word time anchor {anchor!r} is not one of {WORD_TIME_ANCHORS}")


def lanczos_weights(
    word_time: np.ndarray, tr_time: np.ndarray, tr: float, window: int = 3, cutoff_mult: float = 1.0
) -> np.ndarray:
    """Interpolation matrix from word events to volumes.

    Parameters
    ----------
    word_time : ndarray of shape (n_words,)
        Time of each word (s).
    tr_time : ndarray of shape (n_trs,)
        Time of each volume (s), e.g. from :func:`volume_times`.
    tr : float
        Repetition time (s); the cutoff frequency is ``cutoff_mult / tr``.
    window : int
        Lanczos window ``a`` (lobes).
    cutoff_mult : float
        Multiplier of the cutoff frequency ``1 / tr``.

    Returns
    -------
    ndarray of shape (n_trs, n_words), float64
        ``weights[k, j] = L(cutoff_mult / tr * (tr_time[k] - word_time[j]))``.
    """
    if tr <= 0 or cutoff_mult <= 0 or window < 1:
        raise InputError(f"Lanczos needs tr > 0, cutoff_mult > 0 and window >= 1 (got {tr}, {cutoff_mult}, {window})")
    frequency = cutoff_mult / tr
    lag = np.asarray(tr_time, dtype=np.float64)[:, None] - np.asarray(word_time, dtype=np.float64)[None, :]
    return lanczos_kernel(frequency * lag, window)


#: the interpolation matrices of the last few runs: every layer and baseline of a run shares its matrix
_WEIGHTS_CACHE: dict[tuple, np.ndarray] = {}
_WEIGHTS_CACHE_SIZE = 32


def _cached_lanczos_weights(word_time, tr_time, tr: float, window: int, cutoff_mult: float) -> np.ndarray:
    """:func:`lanczos_weights`, memoised on its arguments (read-only result; ~5 ms per run and call saved)."""
    word_time = np.ascontiguousarray(word_time, dtype=np.float64)
    tr_time = np.ascontiguousarray(tr_time, dtype=np.float64)
    key = (word_time.tobytes(), tr_time.tobytes(), float(tr), int(window), float(cutoff_mult))
    weights = _WEIGHTS_CACHE.get(key)
    if weights is None:
        weights = lanczos_weights(word_time, tr_time, tr, window, cutoff_mult)
        weights.setflags(write=False)
        if len(_WEIGHTS_CACHE) >= _WEIGHTS_CACHE_SIZE:
            _WEIGHTS_CACHE.pop(next(iter(_WEIGHTS_CACHE)))
        _WEIGHTS_CACHE[key] = weights
    return weights


def lanczos_downsample(
    word_features: np.ndarray,
    word_time: np.ndarray,
    tr_time: np.ndarray,
    tr: float,
    window: int = 3,
    cutoff_mult: float = 1.0,
) -> np.ndarray:
    """Lanczos-downsample word-level features to volume times.

    Parameters
    ----------
    word_features : ndarray of shape (n_words, n_features)
    word_time : ndarray of shape (n_words,)
    tr_time : ndarray of shape (n_trs,)
    tr, window, cutoff_mult
        See :func:`lanczos_weights`.

    Returns
    -------
    ndarray of shape (n_trs, n_features), float64
    """
    word_features = np.asarray(word_features)
    if word_features.ndim != 2 or word_features.shape[0] != len(word_time):
        raise InputError(
            f"word features of shape {word_features.shape} do not match {len(word_time)} word times"
        )
    weights = _cached_lanczos_weights(word_time, tr_time, tr, window, cutoff_mult)
    return weights @ word_features.astype(np.float64, copy=False)


def delay_features(features: np.ndarray, delays: Sequence[int] = DEFAULT_DELAYS) -> np.ndarray:
    """Concatenate delayed copies of the features (finite impulse response model).

    Parameters
    ----------
    features : ndarray of shape (n_trs, n_features)
        Features of one run.
    delays : sequence of int
        Delays in TRs; a delay ``d`` puts ``features[k - d]`` in row ``k`` (zero where
        ``k - d`` falls outside the run; negative delays shift the other way).

    Returns
    -------
    ndarray of shape (n_trs, n_features * n_delays)
        Column block ``i`` holds the copy delayed by ``delays[i]``.
    """
    features = np.asarray(features)
    if len(delays) == 0:
        raise InputError("delays: give at least one delay (in TRs), e.g. 1 2 3 4")
    n_trs, n_features = features.shape
    out = np.zeros((n_trs, n_features * len(delays)), dtype=features.dtype)
    for i, d in enumerate(delays):
        block = out[:, i * n_features : (i + 1) * n_features]
        if d >= 0:
            if d < n_trs:
                block[d:] = features[: n_trs - d]
        elif -d < n_trs:
            block[: n_trs + d] = features[-d:]
    return out


def trim(array: np.ndarray, trim_start: int, trim_end: int, name: str = "run") -> np.ndarray:
    """Drop the first ``trim_start`` and last ``trim_end`` rows, shape (n_trs - trims, ...).

    Raises :class:`InputError` naming ``name`` when fewer than 2 rows would remain.
    """
    if trim_start < 0 or trim_end < 0:
        raise InputError(f"trim_start / trim_end must be >= 0 (got {trim_start}, {trim_end})")
    n_trs = array.shape[0]
    if n_trs - trim_start - trim_end < 2:
        raise InputError(
            f"{name}: {n_trs} volumes leave fewer than 2 after trimming {trim_start} at the start and "
            f"{trim_end} at the end; lower --trim-start/--trim-end"
        )
    return array[trim_start : n_trs - trim_end]


def zscore_columns(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Z-score each column (mean 0, population std 1), shape kept, float32.

    Constant columns have no defined z-score: they are set to 0 and counted in a warning
    naming ``name``.
    """
    array64 = np.asarray(array, dtype=np.float64)
    mean = array64.mean(axis=0)
    std = array64.std(axis=0)
    constant = std == 0
    if constant.any():
        logger.warning("%s: %d of %d columns are constant; set to 0 after z-scoring", name, constant.sum(), len(std))
    std = np.where(constant, 1.0, std)
    return ((array64 - mean) / std).astype(np.float32)


def run_design(
    word_features: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    n_trs: int,
    tr: float,
    first_volume_time: float,
    delays: Sequence[int] = DEFAULT_DELAYS,
    trim_start: int = DEFAULT_TRIM_START,
    trim_end: int = DEFAULT_TRIM_END,
    window: int = 3,
    cutoff_mult: float = 1.0,
    anchor: str = "onset",
    name: str = "run",
    zscore: bool = True,
) -> np.ndarray:
    """Design matrix of one run: Lanczos -> delays -> trim -> z-score (optional).

    Parameters
    ----------
    word_features : ndarray of shape (n_words, n_features)
        Word-level features of the run's words.
    onset, offset : ndarray of shape (n_words,)
        Word times (s from the start of the run).
    n_trs : int
        Number of volumes of the run (before trimming).
    tr, first_volume_time : float
        Volume ``k`` is at ``first_volume_time + k * tr`` seconds.
    delays, trim_start, trim_end, window, cutoff_mult, anchor
        See :func:`delay_features`, :func:`trim`, :func:`lanczos_weights`, :func:`word_times`.
    name : str
        Label used in messages.
    zscore : bool
        z-score each column over the kept volumes of the run (default). Blocked CV inside a
        run passes False and standardises on the training rows of each fit instead.

    Returns
    -------
    ndarray of shape (n_trs - trim_start - trim_end, n_features * len(delays)), float32
    """
    times = word_times(onset, offset, anchor)
    if not np.isfinite(times).all():
        raise InputError(f"{name}: {np.sum(~np.isfinite(times))} word times are NaN/inf")
    downsampled = lanczos_downsample(
        word_features, times, volume_times(n_trs, tr, first_volume_time), tr, window, cutoff_mult
    )
    kept = trim(delay_features(downsampled, delays), trim_start, trim_end, name)
    return zscore_columns(kept, name=f"{name} features") if zscore else kept.astype(np.float32)


def prepare_responses(
    bold: np.ndarray, trim_start: int = DEFAULT_TRIM_START, trim_end: int = DEFAULT_TRIM_END, name: str = "run"
) -> np.ndarray:
    """Trim and z-score the responses of one run like :func:`run_design`.

    Parameters
    ----------
    bold : ndarray of shape (n_trs, n_voxels)

    Returns
    -------
    ndarray of shape (n_trs - trim_start - trim_end, n_voxels), float32
    """
    return zscore_columns(trim(np.asarray(bold), trim_start, trim_end, name), name=f"{name} responses")


def sentence_features(
    word_features: np.ndarray, sentence_ids: np.ndarray, pooling: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Pool word-level features into one feature vector per sentence (no delays).

    Parameters
    ----------
    word_features : ndarray of shape (n_words, n_features)
    sentence_ids : ndarray of shape (n_words,)
        Sentence label of each word; the words of a sentence are in reading order.
    pooling : {"mean", "last"}
        Mean over the sentence's words, or the last word (which has seen the whole sentence
        in a causal model).

    Returns
    -------
    sentences : ndarray of shape (n_sentences,)
        Sentence labels in order of first appearance.
    features : ndarray of shape (n_sentences, n_features), float32
    """
    word_features = np.asarray(word_features)
    sentence_ids = np.asarray(sentence_ids)
    if word_features.ndim != 2 or sentence_ids.shape != (word_features.shape[0],):
        raise InputError(
            f"word features of shape {word_features.shape} do not match sentence ids of shape {sentence_ids.shape}"
        )
    if pooling not in SENTENCE_POOLINGS:
        raise InputError(f"sentence pooling {pooling!r} is not one of {SENTENCE_POOLINGS}")
    sentences, first, inverse = np.unique(sentence_ids, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    word_sentence = rank[inverse.ravel()]
    pooled = np.zeros((len(sentences), word_features.shape[1]), dtype=np.float64)
    if pooling == "mean":
        np.add.at(pooled, word_sentence, word_features.astype(np.float64))
        pooled /= np.bincount(word_sentence, minlength=len(sentences))[:, None]
    else:
        last = np.zeros(len(sentences), dtype=np.int64)
        np.maximum.at(last, word_sentence, np.arange(len(word_sentence)))
        pooled[:] = word_features[last]
    return sentences[order], pooled.astype(np.float32)
