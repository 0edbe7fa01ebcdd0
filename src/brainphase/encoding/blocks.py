"""Time-series cross-validation over contiguous blocks inside runs, with a gap.

One story = one run is the common naturalistic design, and leave-one-run-out needs at least
3 runs (outer fold + >= 2 inner folds). Blocked CV instead cuts every run into ``n_blocks``
contiguous blocks of (nearly) equal length (``numpy.array_split`` on the run's kept volumes).
Outer fold ``k`` holds out block ``k`` of every run; the training rows are the other blocks
**minus every row within ``gap_trs`` volumes of a held-out row of the same run** (on each
side of the test block). Responses and features are autocorrelated (HRF, slow drifts, FIR
delays and the Lanczos window spread one word over ``max(delays) + window`` volumes), so
rows next to a test block would otherwise carry its information into the fit.

Alpha is chosen by an inner CV over the outer fold's training rows with the same rule:
inner validation block ``j`` (what is left of block ``j``), inner training rows = the other
remaining rows farther than ``gap_trs`` volumes from any inner validation row of the same
run. So no training row of any fit, outer or inner, lies within ``gap_trs`` of the rows it is
validated or tested on. Distances are counted in volumes of the run (positions after
trimming), so rows already removed by a gap still count as time that passed.

Cleaning (detrend, high-pass, confounds) is applied by ``load-fmri`` to whole runs before any
split, and the activations are extracted per run with a sliding causal window that is never
reset inside a run, so blocks cut no model context and no filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brainphase.errors import InputError

#: values of ``encode.cv`` / ``--cv``
CV_SCHEMES = ("auto", "runs", "blocks")
#: ``--cv auto`` uses blocks below this many runs (leave-one-run-out needs 3)
MIN_RUNS_FOR_RUN_CV = 3


def resolve_cv(scheme: str, n_runs: int) -> str:
    """``"runs"`` or ``"blocks"``: ``auto`` gives blocks with fewer than 3 runs, else runs.

    Raises InputError for ``runs`` with fewer than 3 runs (naming ``--cv blocks``).
    """
    if scheme not in CV_SCHEMES:
        raise InputError(f"--cv {scheme!r} is not one of {CV_SCHEMES}")
    if scheme == "auto":
        return "runs" if n_runs >= MIN_RUNS_FOR_RUN_CV else "blocks"
    if scheme == "runs" and n_runs < MIN_RUNS_FOR_RUN_CV:
        raise InputError(
            f"--cv runs (encode.cv: runs): leave-one-run-out with inner CV needs at least {MIN_RUNS_FOR_RUN_CV} runs, "
            f"got {n_runs}; use --cv blocks (contiguous blocks inside runs with a gap) or --cv auto"
        )
    return scheme


def block_layout(run_lengths: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run index, position within the run and block index of every row of concatenated runs.

    Parameters
    ----------
    run_lengths : ndarray of shape (n_runs,)
        Kept volumes per run, in concatenation order.
    n_blocks : int
        Contiguous blocks per run (>= 3: one test block and >= 2 inner folds).

    Returns
    -------
    run_index, position, block : ndarray of shape (n_samples,), int64
        ``block`` is 0 .. n_blocks - 1 within each run (``numpy.array_split`` sizes).
    """
    run_lengths = np.asarray(run_lengths, dtype=np.int64)
    if n_blocks < 3:
        raise InputError(f"--cv-blocks {n_blocks}: need at least 3 (a test block and >= 2 inner folds for alpha)")
    short = [int(n) for n in run_lengths if n < n_blocks]
    if short:
        raise InputError(f"--cv-blocks {n_blocks}: runs with only {short} kept volumes cannot be cut into {n_blocks} blocks")
    run_index = np.repeat(np.arange(len(run_lengths)), run_lengths)
    position = np.concatenate([np.arange(n) for n in run_lengths])
    block = np.concatenate([
        np.repeat(np.arange(n_blocks), [len(part) for part in np.array_split(np.arange(n), n_blocks)])
        for n in run_lengths
    ])
    return run_index, position, block.astype(np.int64)


def _far_from(run_index: np.ndarray, position: np.ndarray, held_out: np.ndarray, gap_trs: int) -> np.ndarray:
    """True for rows more than ``gap_trs`` volumes from every held-out row of their run, shape (n,)."""
    far = np.ones(len(position), dtype=bool)
    for run in np.unique(run_index[held_out]):
        in_run = run_index == run
        held = np.sort(position[held_out & in_run])
        pos = position[in_run]
        after = np.clip(np.searchsorted(held, pos), 0, len(held) - 1)
        before = np.clip(after - 1, 0, len(held) - 1)
        distance = np.minimum(np.abs(pos - held[after]), np.abs(pos - held[before]))
        far[in_run] = distance > gap_trs
    return far


def gapped_splits(
    run_index: np.ndarray, position: np.ndarray, block: np.ndarray, gap_trs: int, context: str = "outer"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-block-out splits whose training rows keep ``gap_trs`` volumes from the held-out block.

    Parameters
    ----------
    run_index, position, block : ndarray of shape (n_samples,)
        From :func:`block_layout` (or a subset of its rows: positions keep their run clock).
    gap_trs : int
        Training rows within this many volumes of a held-out row of the same run are dropped.
    context : str
        ``"outer"`` or ``"inner"``, for messages.

    Returns
    -------
    list of (train, held_out) int64 index arrays into the given rows, one per block label
    """
    if gap_trs < 0:
        raise InputError(f"--gap-trs must be >= 0 (got {gap_trs})")
    splits = []
    for label in np.unique(block):
        held_out = block == label
        train = ~held_out & _far_from(run_index, position, held_out, gap_trs)
        if not train.any():
            raise InputError(
                f"{context} fold of block {label}: --gap-trs {gap_trs} leaves no training rows; "
                "lower encode.gap_trs or encode.cv_blocks, or use longer runs"
            )
        splits.append((np.flatnonzero(train), np.flatnonzero(held_out)))
    if len(splits) < 2:
        raise InputError(
            f"{context} CV has {len(splits)} block(s) left after the gap of {gap_trs} volumes; "
            "raise encode.cv_blocks or lower encode.gap_trs"
        )
    return splits


def blocked_cv_predict(
    estimator: Any,
    X: np.ndarray,
    Y: np.ndarray,
    run_lengths: np.ndarray,
    n_blocks: int,
    gap_trs: int,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Held-out predictions by outer leave-one-block-out with a gap, alpha by inner gapped CV.

    For each block label ``k``: a clone of ``estimator`` whose ``cv`` is set to the inner
    gapped splits of the training rows (:func:`gapped_splits`) is fit on those rows and
    predicts block ``k`` of every run.

    Parameters
    ----------
    estimator : RidgeCV or any estimator with a ``cv`` parameter accepting (train, val) pairs
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_targets)
    run_lengths : ndarray of shape (n_runs,)
        Rows per run, in order (sum = n_samples).
    n_blocks, gap_trs : int
        See :func:`block_layout` and :func:`gapped_splits`.
    progress : bool
        tqdm bar over outer folds.

    Returns
    -------
    predictions : ndarray of shape (n_samples, n_targets)
        Every row predicted exactly once, by a model that saw no row within ``gap_trs`` of it.
    best_alphas : ndarray of shape (n_blocks, n_targets)
    held_out_blocks : list of int
    """
    Y = np.asarray(Y)
    if int(np.sum(run_lengths)) != X.shape[0] or X.shape[0] != Y.shape[0]:
        raise InputError(f"X {X.shape}, Y {Y.shape} and run lengths (sum {int(np.sum(run_lengths))}) disagree")
    run_index, position, block = block_layout(run_lengths, n_blocks)
    outer = gapped_splits(run_index, position, block, gap_trs, "outer")
    predictions = np.empty(Y.shape, dtype=np.dtype(getattr(estimator, "dtype", "float64")))
    alphas = np.empty((len(outer), Y.shape[1]))
    from sklearn.base import clone
    from tqdm.auto import tqdm

    for k, (train, test) in enumerate(tqdm(outer, desc="outer blocks", disable=not progress, leave=False)):
        inner = gapped_splits(run_index[train], position[train], block[train], gap_trs, "inner")
        model = clone(estimator).set_params(cv=inner).fit(X[train], Y[train])
        predictions[test] = model.predict(X[test])
        alphas[k] = model.best_alphas_
    return predictions, alphas, [int(b) for b in np.unique(block)]
