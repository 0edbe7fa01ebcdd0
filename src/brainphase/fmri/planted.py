"""Planted stimulus features of the simulator (``brainphase simulate``): word statistics, the
word-level feature table, TR binning + HRF, and the variance split between feature groups.

Features (:data:`FEATURE_NAMES`, one column each; all but ``word_rate`` centred over the words):
``word_rate`` (1 per word), ``word_length`` (letters), ``log_unigram_frequency`` (add-one
smoothed, from ``train.txt``), ``bigram_surprisal``, ``phoneme_count`` (CMU dictionary via
:func:`brainphase.encoding.baselines.phoneme_count`) and ``semantic_00..15`` (a fixed random
embedding per word type). :data:`BASELINE_COLUMNS` are computable from the word forms alone
(what ``brainphase encode --baselines`` models); :data:`LEARNABLE_COLUMNS` are what a language
model can learn beyond them.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np
import pandas as pd

N_SEMANTIC = 16
N_LEXICAL = 5  # word_rate, word_length, log_unigram_frequency, bigram_surprisal, phoneme_count
FEATURE_NAMES = ["word_rate", "word_length", "log_unigram_frequency", "bigram_surprisal", "phoneme_count"] + [
    f"semantic_{i:02d}" for i in range(N_SEMANTIC)
]
#: columns computable from the word forms alone (the encoder's baselines)
BASELINE_COLUMNS = np.array([0, 1, 2, 4])
#: columns a language model can learn beyond them
LEARNABLE_COLUMNS = np.array([3] + list(range(N_LEXICAL, N_LEXICAL + N_SEMANTIC)))
TAIL_SECONDS = 10.0
_TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, apostrophes) used for the word statistics."""
    return _TOKEN.findall(text.lower())


def _normalise_word(word: str) -> str:
    tokens = tokenize(word)
    return tokens[0] if tokens else word.lower()


def word_statistics(train_text: str) -> tuple[Counter, Counter]:
    """Unigram and bigram counts of ``train_text`` (lower-cased tokens, bigrams within lines)."""
    unigrams: Counter = Counter()
    bigrams: Counter = Counter()
    for line in train_text.splitlines():
        tokens = tokenize(line)
        unigrams.update(tokens)
        bigrams.update(zip(tokens[:-1], tokens[1:]))
    return unigrams, bigrams


def semantic_vector(word_type: str, seed: int, n_dims: int = N_SEMANTIC) -> np.ndarray:
    """Fixed random unit-variance embedding of a word type, from a seeded hash, shape (n_dims,)."""
    digest = hashlib.sha256(f"{seed}:{word_type}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return rng.standard_normal(n_dims)


def word_features(words: pd.DataFrame, unigrams: Counter, bigrams: Counter, seed: int) -> np.ndarray:
    """Planted word-level features, shape (n_words, n_features) in :data:`FEATURE_NAMES` order.

    Bigram contexts restart at each run. Every column except ``word_rate`` (all ones) is
    centred over the words given.
    """
    n_types = len(unigrams)
    n_tokens = sum(unigrams.values())
    normalised = [_normalise_word(w) for w in words["word"].astype(str)]
    runs = words["run"].astype(str).to_numpy()
    from brainphase.encoding.baselines import phoneme_count  # noqa: PLC0415

    features = np.zeros((len(words), len(FEATURE_NAMES)))
    features[:, 0] = 1.0
    features[:, 4] = phoneme_count(words["word"].astype(str).tolist())
    for i, word in enumerate(normalised):
        previous = normalised[i - 1] if i > 0 and runs[i - 1] == runs[i] else None
        features[i, 1] = sum(ch.isalpha() for ch in words["word"].iloc[i]) or len(word)
        features[i, 2] = np.log((unigrams[word] + 1) / (n_tokens + n_types + 1))
        if previous is None:
            features[i, 3] = -features[i, 2]
        else:
            features[i, 3] = -np.log((bigrams[(previous, word)] + 1) / (unigrams[previous] + n_types + 1))
        features[i, N_LEXICAL:] = semantic_vector(word, seed)
    features[:, 1:] -= features[:, 1:].mean(axis=0)
    return features


def bin_and_convolve(onsets: np.ndarray, features: np.ndarray, n_trs: int, tr: float, first_volume_time: float = 0.0) -> np.ndarray:
    """Sum word features in TR bins and convolve with SPM's HRF.

    Parameters
    ----------
    onsets : ndarray, shape (n_words,)
        Word onsets in stimulus seconds.
    features : ndarray, shape (n_words, n_features)
    n_trs : int
    tr : float
    first_volume_time : float
        Stimulus time of volume 0; word ``i`` goes to bin ``floor((onset - first_volume_time) / tr)``.

    Returns
    -------
    ndarray, shape (n_trs, n_features)
    """
    from nilearn.glm.first_level import spm_hrf  # noqa: PLC0415

    bins = np.floor((np.asarray(onsets) - first_volume_time) / tr).astype(int)
    keep = (bins >= 0) & (bins < n_trs)
    binned = np.zeros((n_trs, features.shape[1]))
    np.add.at(binned, bins[keep], features[keep])
    hrf = spm_hrf(tr, oversampling=1)
    return np.stack([np.convolve(binned[:, j], hrf)[:n_trs] for j in range(binned.shape[1])], axis=1)


def n_trs_for_run(run_words: pd.DataFrame, tr: float) -> int:
    """Number of volumes that cover the run's last word offset plus :data:`TAIL_SECONDS`."""
    return int(np.ceil((float(run_words["offset"].max()) + TAIL_SECONDS) / tr))


def design_matrices(stimulus: pd.DataFrame, unigrams: Counter, bigrams: Counter, tr: float, seed: int) -> dict[str, np.ndarray]:
    """Per-run planted design, each (n_trs, n_features) with n_trs from :func:`n_trs_for_run`.

    Columns are z-scored with the mean and standard deviation over all runs concatenated.
    """
    features = word_features(stimulus, unigrams, bigrams, seed)
    designs = {}
    for run, index in stimulus.groupby("run", sort=False).indices.items():
        run_words = stimulus.iloc[index]
        designs[run] = bin_and_convolve(run_words["onset"].to_numpy(float), features[index], n_trs_for_run(run_words, tr), tr)
    stacked = np.concatenate(list(designs.values()))
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    std[std == 0] = 1.0
    return {run: (d - mean) / std for run, d in designs.items()}


def residualise_learnable(designs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replace the learnable columns by their residuals on the baseline columns (least squares
    over all runs concatenated, one coefficient matrix for every run), shapes kept."""
    stacked = np.concatenate(list(designs.values()))
    baseline = stacked[:, BASELINE_COLUMNS]
    beta, *_ = np.linalg.lstsq(baseline, stacked[:, LEARNABLE_COLUMNS], rcond=None)
    out = {}
    for run, design in designs.items():
        design = design.copy()
        design[:, LEARNABLE_COLUMNS] -= design[:, BASELINE_COLUMNS] @ beta
        out[run] = design
    return out


def split_shares(weights: np.ndarray, design: np.ndarray, first: np.ndarray, share: float) -> np.ndarray:
    """Rescale two column blocks of ``weights`` so that the block ``first`` carries a share
    ``share`` of the summed variance of the two parts of ``design @ weights.T``, per voxel.

    Parameters
    ----------
    weights : ndarray, shape (n_voxels, n_features)
    design : ndarray, shape (n_trs, n_features)
    first : ndarray of int
        Columns of the first block; all other columns form the second.
    share : float in [0, 1]

    Returns
    -------
    ndarray, shape (n_voxels, n_features)
    """
    in_first = np.zeros(weights.shape[1], dtype=bool)
    in_first[first] = True
    part1, part2 = weights * in_first, weights * ~in_first
    std1, std2 = (design @ part1.T).std(axis=0), (design @ part2.T).std(axis=0)
    return part1 * (np.sqrt(share) / std1)[:, None] + part2 * (np.sqrt(1.0 - share) / std2)[:, None]


def baseline_variance(signal: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Variance of each signal column's least-squares projection on the baseline columns.

    Parameters
    ----------
    signal : ndarray, shape (n_trs, n_voxels)
    design : ndarray, shape (n_trs, n_features)

    Returns
    -------
    ndarray, shape (n_voxels,)
    """
    baseline = np.column_stack([np.ones(len(design)), design[:, BASELINE_COLUMNS]])
    beta, *_ = np.linalg.lstsq(baseline, signal, rcond=None)
    return (baseline @ beta).var(axis=0)


def split_variance(weights: np.ndarray, design: np.ndarray, lexical_share: float) -> np.ndarray:
    """Rescale the lexical and semantic blocks of ``weights`` so that, for every voxel, the
    lexical part of ``design @ weights.T`` has a share ``lexical_share`` of the summed variance
    of the two parts.

    Parameters
    ----------
    weights : ndarray, shape (n_voxels, n_features)
    design : ndarray, shape (n_trs, n_features)
    lexical_share : float in [0, 1]

    Returns
    -------
    ndarray, shape (n_voxels, n_features)
    """
    return split_shares(weights, design, np.arange(N_LEXICAL), lexical_share)
