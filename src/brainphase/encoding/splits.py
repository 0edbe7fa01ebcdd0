"""Run-grouped cross-validation splits: no run (story) on both sides of a fold.

:func:`grouped_splits` turns ``cv`` (``None``: leave-one-group-out, ``int k``: ``GroupKFold``,
a scikit-learn splitter, or explicit index pairs) into checked (train, validation) index arrays
for :class:`~brainphase.encoding.ridge.RidgeCV`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from brainphase.errors import InputError


def grouped_splits(
    n_samples: int, groups: np.ndarray | None, cv: Any = None, X: Any = None, Y: Any = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation splits that never put a group in both training and validation.

    Parameters
    ----------
    n_samples : int
    groups : ndarray of shape (n_samples,) or None
        Run (story) label of each sample.
    cv : None, int, splitter, or iterable of (train, validation) index arrays
        ``None``: leave-one-group-out; ``int k``: ``GroupKFold(k)``; a scikit-learn splitter
        (``split(X, Y, groups)``); or explicit index pairs.

    Returns
    -------
    list of (train, validation) int arrays

    Raises
    ------
    InputError
        No groups where the splitter needs them, a single group, fewer samples than folds,
        an empty part, an index out of range, or a group in both parts of a fold.
    """
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_samples,):
            raise InputError(f"groups has shape {groups.shape} but X has {n_samples} samples; give one run label per sample")
        unique = np.unique(groups)
        if len(unique) < 2:
            raise InputError(
                f"groups: all {n_samples} samples belong to one run ({unique[0]!r} if any); "
                "run-grouped cross-validation needs at least 2 runs"
            )
    if cv is None or isinstance(cv, (int, np.integer)):
        from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

        if groups is None:
            raise InputError("groups is required: give the run (story) label of each sample so folds are grouped by run")
        if cv is not None:
            if cv > n_samples:
                raise InputError(f"cv={cv} folds but only {n_samples} samples")
            if cv > len(unique):
                raise InputError(f"cv={cv} folds but only {len(unique)} runs in groups; use at most {len(unique)} folds")
            cv = GroupKFold(n_splits=int(cv))
        else:
            cv = LeaveOneGroupOut()
    if hasattr(cv, "split"):
        n_splits = cv.get_n_splits(X, Y, groups) if hasattr(cv, "get_n_splits") else None
        if n_splits is not None and n_splits > n_samples:
            raise InputError(f"{n_splits} folds but only {n_samples} samples")
        splits = [(np.asarray(tr), np.asarray(va)) for tr, va in cv.split(np.zeros((n_samples, 1)), None, groups)]
    else:
        splits = [(np.asarray(tr), np.asarray(va)) for tr, va in cv]
    if len(splits) < 2:
        raise InputError(f"cross-validation gave {len(splits)} fold(s) for {n_samples} samples; need at least 2")
    for k, (train, val) in enumerate(splits):
        if len(train) == 0 or len(val) == 0:
            raise InputError(f"fold {k}: empty training ({len(train)}) or validation ({len(val)}) part")
        if max(train.max(), val.max()) >= n_samples or min(train.min(), val.min()) < 0:
            raise InputError(f"fold {k}: sample index outside 0..{n_samples - 1}")
        if groups is not None:
            leaked = np.intersect1d(groups[train], groups[val])
            if len(leaked):
                raise InputError(
                    f"fold {k}: runs {leaked.tolist()} are in both training and validation; "
                    "use a group-aware splitter (default: leave-one-run-out)"
                )
    return splits
