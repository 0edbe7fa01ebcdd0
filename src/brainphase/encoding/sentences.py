"""Sentence-level datasets: per-sentence features, text matching and outer folds.

Sentence-level fMRI benchmarks (Pereira 2018, Tuckute 2024, Blank 2014, as in Brain-Score
Language) have one response per stimulus sentence and target (voxel or ROI), possibly
averaged over subjects: no time series, so no HRF, delays or Lanczos. ``brainphase encode``
(:mod:`brainphase.encoding.runner`) uses these helpers when ``responses.h5`` is sentence-level:

* :func:`activation_sentences` rebuilds each sentence from an activations file written by
  ``brainphase extract --sentences`` (one run per sentence);
* :func:`match_sentences` checks it against ``/sentences/text`` of the responses, in order;
* :func:`sentence_fold_labels` assigns each sentence to an outer cross-validation fold:
  shuffled K-fold with a seed (default without passage labels), contiguous blocks, or
  blocks of whole passages (default when the responses give passages);
* :func:`fold_mean_scores` and :func:`concatenated_scores` compute the two usual r / R^2
  conventions from the held-out predictions; both are stored.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from brainphase.errors import InputError
from brainphase.io import attr_text, read_strings

#: fewest outer folds: nested CV needs >= 2 folds left for the inner choice of alpha
MIN_SENTENCE_FOLDS = 3
#: values of ``encode.sentence_cv`` / ``--sentence-cv``
SENTENCE_CV_SCHEMES = ("auto", "shuffled", "contiguous", "passage")


def is_sentence_dataset(resp: h5py.File) -> bool:
    """True when a ``responses.h5`` holds one response per sentence (``dataset_kind`` or ``/sentences``)."""
    return attr_text(resp, "dataset_kind") == "sentences" or "sentences" in resp


def activation_stimulus_kind(act: h5py.File) -> str:
    """The ``stimulus_kind`` attribute of an activations file (``words``, ``sentences``; ``""`` when absent)."""
    return attr_text(act, "stimulus_kind")


def normalize_whitespace(text: str) -> str:
    """``text`` with runs of whitespace collapsed to single spaces and the ends stripped
    (extraction splits sentences on whitespace and joins the words with single spaces)."""
    return " ".join(text.split())


def activation_sentences(act: h5py.File, path: Path) -> tuple[np.ndarray, list[str]]:
    """The sentences of an activations file written by ``brainphase extract --sentences``.

    Parameters
    ----------
    act : h5py.File
        Open activations file.
    path : Path
        Its path, for messages.

    Returns
    -------
    word_runs : ndarray of shape (n_words,), object
        Run (= sentence) label of each word, row-aligned with ``/layer_{i}``.
    texts : list of str, length n_sentences
        Each run's words joined by single spaces, runs in order of first appearance.
    """
    kind = activation_stimulus_kind(act)
    if kind != "sentences":
        raise InputError(
            f"{path}: activations of a timed word stimulus (stimulus_kind={kind or 'absent'!r}), but the responses "
            "are sentence-level; extract them with `brainphase extract --sentences FILE`"
        )
    try:
        word_runs = np.array(read_strings(act["words/run"]), dtype=object)
        words = read_strings(act["words/word"])
    except KeyError as exc:
        raise InputError(f"{path}: missing /words/run or /words/word ({exc})") from exc
    if len(words) != len(word_runs):
        raise InputError(f"{path}: /words/run has {len(word_runs)} rows but /words/word {len(words)}")
    texts: dict[str, list[str]] = {}
    for run, word in zip(word_runs, words):
        texts.setdefault(run, []).append(word)
    return word_runs, [" ".join(w) for w in texts.values()]


def match_sentences(activation_texts: list[str], response_texts: list[str], act_path: Path, resp_path: Path) -> None:
    """Check that the activations hold the responses' sentences, in the same order.

    Texts are compared after :func:`normalize_whitespace`. Raises InputError naming both
    files, the counts and the first differing sentence (index and both texts).
    """
    ours = [normalize_whitespace(t) for t in activation_texts]
    theirs = [normalize_whitespace(t) for t in response_texts]
    if ours == theirs:
        return
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    n_differ = sum(a != b for a, b in zip(ours, theirs))
    shown_act = repr(ours[first][:80]) if first < len(ours) else "(none)"
    shown_resp = repr(theirs[first][:80]) if first < len(theirs) else "(none)"
    raise InputError(
        f"sentences of {act_path} ({len(ours)}) and {resp_path} /sentences/text ({len(theirs)}) differ "
        f"({n_differ} of the first {min(len(ours), len(theirs))} differ); first mismatch at sentence {first}: "
        f"activations {shown_act} vs responses {shown_resp}; extract the activations from the sentence list of "
        "these responses, in the same order (`brainphase extract --sentences`)"
    )


def sentence_fold_labels(
    n_sentences: int, n_folds: int, passages: list[str] | None = None, scheme: str = "auto", seed: int = 0
) -> tuple[np.ndarray, str]:
    """Outer fold of each sentence.

    * ``shuffled``: ``sklearn.model_selection.KFold(n_folds, shuffle=True, random_state=seed)``
      (the same folds as that splitter: a user can rebuild them in scikit-learn);
    * ``contiguous``: ``n_folds`` contiguous blocks of (nearly) equal size in the stored order
      (``numpy.array_split``);
    * ``passage``: the passages, in order of first appearance, cut into ``n_folds`` contiguous
      blocks; each sentence gets its passage's fold, so a passage is never split;
    * ``auto`` (default): ``passage`` when passage labels are given, else ``shuffled``.

    Parameters
    ----------
    n_sentences : int
    n_folds : int
        At least :data:`MIN_SENTENCE_FOLDS`.
    passages : list of str of length n_sentences, optional
        Passage label of each sentence (``/sentences/passage`` of the responses).
    scheme : {"auto", "shuffled", "contiguous", "passage"}
    seed : int
        Seed of the shuffled folds.

    Returns
    -------
    labels : ndarray of shape (n_sentences,), int64
        Fold index 0 .. n_folds - 1 of each sentence.
    grouping : {"shuffled", "contiguous", "passage"}
        The scheme used.
    """
    if scheme not in SENTENCE_CV_SCHEMES:
        raise InputError(f"--sentence-cv {scheme!r} is not one of {SENTENCE_CV_SCHEMES}")
    if n_folds < MIN_SENTENCE_FOLDS:
        raise InputError(
            f"--sentence-folds {n_folds}: need at least {MIN_SENTENCE_FOLDS} (outer folds, with >= 2 left for the inner CV)"
        )
    if scheme == "auto":
        scheme = "shuffled" if passages is None else "passage"
    if passages is not None and len(passages) != n_sentences:
        raise InputError(f"/sentences/passage has {len(passages)} labels for {n_sentences} sentences")
    if scheme in ("shuffled", "contiguous"):
        if n_folds > n_sentences:
            raise InputError(f"--sentence-folds {n_folds}: more folds than the {n_sentences} sentences")
        if scheme == "contiguous":
            sizes = [len(block) for block in np.array_split(np.arange(n_sentences), n_folds)]
            return np.repeat(np.arange(n_folds), sizes).astype(np.int64), "contiguous"
        from sklearn.model_selection import KFold

        labels = np.empty(n_sentences, dtype=np.int64)
        for fold, (_, test) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(n_sentences))):
            labels[test] = fold
        return labels, "shuffled"
    if passages is None:
        raise InputError(
            "--sentence-cv passage: the responses have no /sentences/passage (give a 'passage' column in "
            "sentences.tsv to load-fmri), or use --sentence-cv shuffled or contiguous"
        )
    order = list(dict.fromkeys(passages))
    if n_folds > len(order):
        raise InputError(
            f"--sentence-folds {n_folds}: more folds than the {len(order)} passages of /sentences/passage "
            "(a passage is never split across folds)"
        )
    passage_fold = {}
    for fold, block in enumerate(np.array_split(np.arange(len(order)), n_folds)):
        passage_fold.update({order[i]: fold for i in block})
    return np.array([passage_fold[p] for p in passages], dtype=np.int64), "passage"


def fold_mean_scores(y_true: np.ndarray, y_pred: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and R^2 of each column within each outer fold, averaged over folds.

    The Brain-Score convention for sentence benchmarks (score per split, mean over splits).
    Pearson r on the concatenation of all folds is biased negative when the features explain
    nothing: a held-out fold's predicted mean is the training folds' mean, anticorrelated with
    the fold's own mean (about ``-sqrt(n_folds / n_sentences)`` on pure noise; still about
    -0.05 for 160 sentences and 5 folds after removing each fold's mean, through the weight
    of each fold's prediction variance). Within a fold the model never saw its sentences, so
    r there is unbiased. (Leave-one-run-out time series have no such term: every run is
    z-scored on its own; blocked CV inside a run has it, through slow drifts between blocks,
    and uses this function too.) A fold where a column is constant makes that column's score NaN.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_sentences, n_columns)
    folds : ndarray of shape (n_sentences,)
        Outer fold of each sentence.

    Returns
    -------
    r, r2 : ndarray of shape (n_columns,), float64
    """
    from brainphase.encoding.scoring import scores_by_fold

    scores = scores_by_fold(y_true, y_pred, folds)
    return scores["r_fold_mean"], scores["r2_fold_mean"]


def concatenated_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and R^2 of each column on all held-out predictions at once (folds concatenated).

    The other common convention (e.g. ``cross_val_predict`` then one correlation). Biased
    negative on pure noise (see :func:`fold_mean_scores`).

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_rows, n_columns)

    Returns
    -------
    r, r2 : ndarray of shape (n_columns,), float64
    """
    from brainphase.encoding.scoring import pearson_columns, r2_columns

    return pearson_columns(y_true, y_pred), r2_columns(y_true, y_pred)
