"""Noise ceilings on exactly the rows that ``brainphase encode`` scores.

``load-fmri`` stores a ceiling per subject computed on whole cleaned runs
(``/subjects/{sub}/noise_ceiling``, method in the root attribute ``ceiling_method``). The
encoder scores r on other rows: trimmed (``--trim-start`` / ``--trim-end``) and z-scored per
run. A ceiling that normalises r must be estimated on the same rows, so ``encode``
recomputes it (:func:`scored_ceilings`):

* ``ceiling_method = loso`` (a stimulus heard once by several subjects): the
  leave-one-subject-out estimator with Spearman-Brown correction
  (:func:`brainphase.fmri.ceiling.ceiling_loso`) over **all** real subjects of
  ``responses.h5`` (whatever ``--subjects`` selects: the ceiling of one subject does not
  depend on which others are encoded), on their scored rows; the pseudo-subject ``average``
  gets the group ceiling of :func:`brainphase.fmri.ceiling.ceiling_loso` (signed reliabilities averaged).
* ``ceiling_method = repeats``: when every run of every real subject has its single cleaned
  repeats as ``/subjects/{sub}/runs/{run}/repeats`` (n_repeats, n_trs, n_voxels), the
  signal-power ceiling (:func:`brainphase.fmri.ceiling.ceiling_from_repeats`) is recomputed
  on them, each repeat trimmed and z-scored like the scored rows; ``average`` again gets
  ``ceiling_of_average``. Without them (``responses.h5`` keeps only the mean over repeats)
  the stored full-run ceiling is used and the scores file says so
  (``ceiling_rows = "load-fmri full runs"``), with a warning.
* ``ceiling_method = none``: no ceiling. Attribute absent (older files): the stored
  ceilings, as for ``repeats``.

``ceiling_floor``: voxels whose ceiling is below it get ``r_normalized = NaN`` (excluded).
"""

from __future__ import annotations

import logging
from typing import Callable

import h5py
import numpy as np

from brainphase.errors import InputError
from brainphase.fmri.ceiling import ceiling_from_repeats, ceiling_loso, ceiling_of_average, reliability_from_isc
from brainphase.io import attr_text

logger = logging.getLogger(__name__)

#: name of the group-average pseudo-subject written by ``load-fmri --group-average``
GROUP_SUBJECT = "average"
#: floats of one voxel block of the LOSO computation (512 MiB in float64)
CEILING_BUDGET_FLOATS = 1 << 26


def real_subjects(resp: h5py.File) -> list[str]:
    """Subjects of ``responses.h5`` other than the group-average pseudo-subject, sorted."""
    return sorted(s for s in resp["subjects"] if s != GROUP_SUBJECT)


def null_ceiling_level(n_rows: int, n_subjects: int) -> float:
    """LOSO ceiling of a voxel without shared signal whose ISC is 2 null standard errors (2 / sqrt(n_rows)).

    About the 97.7th percentile of the ceiling estimate on pure noise; a floor below it keeps
    noise voxels in ``r_normalized``.
    """
    isc = min(1.0, 2.0 / np.sqrt(max(n_rows, 1)))
    return float(np.sqrt(reliability_from_isc(np.array([isc]), max(n_subjects, 2))[0]))


def scored_ceilings(
    resp: h5py.File,
    path,
    n_targets: int,
    responses_of: Callable[[str, int, int], np.ndarray],
    floor: float,
    repeats_of: Callable[[str, int, int], np.ndarray | None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Per-subject noise ceilings on the scored rows, and the attributes that describe them.

    Parameters
    ----------
    resp : h5py.File
        Open ``responses.h5``.
    path : Path
        Its path, for messages.
    n_targets : int
        Voxels / targets per subject.
    responses_of : callable (subject, start, stop) -> ndarray of shape (n_rows, stop - start)
        The rows that r is scored on (trimmed, z-scored per run; or the sentence table), for
        targets ``start:stop`` of one subject.
    floor : float
        ``encode.ceiling_floor``; only used to warn when it is below the noise level.
    repeats_of : callable (subject, start, stop) -> ndarray of shape (n_repeats, n_rows, stop - start) or None
        The single repeats prepared like the scored rows; None when the file does not keep them.

    Returns
    -------
    ceilings : dict of str -> ndarray of shape (n_targets,)
        By subject name (``average`` included when present); empty without a ceiling.
    attrs : dict
        ``ceiling_method`` and ``ceiling_rows`` (``scored``, ``load-fmri full runs`` or ``none``).
    """
    method = attr_text(resp, "ceiling_method")
    if method == "none":
        return {}, {"ceiling_method": "none", "ceiling_rows": "none"}
    subjects = real_subjects(resp)
    if method == "repeats" and repeats_of is not None and all(repeats_of(s, 0, 1) is not None for s in subjects):
        return _repeat_ceilings(resp, subjects, n_targets, repeats_of)
    if method != "loso":
        stored = {s: resp[f"subjects/{s}/noise_ceiling"][()].astype(np.float64)
                  for s in resp["subjects"] if "noise_ceiling" in resp[f"subjects/{s}"]}
        if stored:
            logger.warning(
                "%s: ceiling_method %r cannot be recomputed on the scored rows (responses.h5 keeps no single repeats); "
                "r_normalized uses load-fmri's ceiling of the full runs", path, method or "absent",
            )
        return stored, {"ceiling_method": method or "stored", "ceiling_rows": "load-fmri full runs" if stored else "none"}
    if len(subjects) < 2:
        raise InputError(f"{path}: ceiling_method 'loso' needs at least 2 subjects, found {subjects}")
    first = responses_of(subjects[0], 0, 1)
    n_rows = first.shape[0]
    block = max(1, min(n_targets, CEILING_BUDGET_FLOATS // (len(subjects) * n_rows)))
    ceilings = np.empty((len(subjects), n_targets))
    group = np.empty(n_targets)
    for start in range(0, n_targets, block):
        stop = min(start + block, n_targets)
        parts = [np.asarray(responses_of(s, start, stop), dtype=np.float64) for s in subjects]
        rows = {p.shape[0] for p in parts}
        if len(rows) != 1:
            raise InputError(f"{path}: subjects have different numbers of scored rows {sorted(rows)}; "
                             "a leave-one-subject-out ceiling needs the same stimulus rows for every subject")
        ceilings[:, start:stop], group[start:stop] = ceiling_loso(np.stack(parts), with_group=True)
    result = {s: ceilings[i] for i, s in enumerate(subjects)}
    if GROUP_SUBJECT in resp["subjects"]:
        result[GROUP_SUBJECT] = group
    null_level = null_ceiling_level(n_rows, len(subjects))
    if floor < null_level:
        logger.warning(
            "ceiling floor %.3g is below %.3g, the ceiling a voxel without shared signal reaches at 2 null SE "
            "(%d subjects, %d rows): raise encode.ceiling_floor to exclude such voxels from r_normalized",
            floor, null_level, len(subjects), n_rows,
        )
    logger.info("noise ceiling (loso) on the %d scored rows: median over voxels %.3f", n_rows, float(np.nanmedian(ceilings)))
    return result, {"ceiling_method": "loso", "ceiling_rows": "scored"}


def _repeat_ceilings(resp: h5py.File, subjects: list[str], n_targets: int,
                     repeats_of: Callable[[str, int, int], np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Signal-power ceiling of every real subject from its prepared single repeats, in voxel blocks."""
    first = repeats_of(subjects[0], 0, 1)
    block = max(1, min(n_targets, CEILING_BUDGET_FLOATS // (first.shape[0] * first.shape[1])))
    ceilings = np.empty((len(subjects), n_targets))
    for s, subject in enumerate(subjects):
        for start in range(0, n_targets, block):
            stop = min(start + block, n_targets)
            ceilings[s, start:stop] = ceiling_from_repeats(repeats_of(subject, start, stop))
    result = {s: ceilings[i] for i, s in enumerate(subjects)}
    if GROUP_SUBJECT in resp["subjects"]:
        result[GROUP_SUBJECT] = ceiling_of_average(ceilings)
    logger.info("noise ceiling (repeats) on the %d scored rows: median over voxels %.3f", first.shape[1],
                float(np.nanmedian(ceilings)))
    return result, {"ceiling_method": "repeats", "ceiling_rows": "scored"}
