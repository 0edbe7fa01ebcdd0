"""Brain alignment of one checkpoint from its voxel scores, without layer-selection bias.

For one scores file, ``A[l, s]`` = mean held-out r of layer ``l`` and subject ``s`` over the
selected voxels (those in an ROI, or all). Two summaries over layers are computed
(:func:`checkpoint_summary`):

``layer_mean``
    ``mean_l A[l, s]``: no selection at all.
``heldout_layer``
    The layer is chosen on data that the reported value does not use. With >= 2 subjects,
    subject ``s`` is reported at the layer that is best on the *other* subjects
    (``argmax_l mean_{s' != s} A[l, s']``, leave-one-subject-out). With one subject, the
    selected voxels are split into two halves (even and odd positions in voxel order): the
    layer chosen on one half is reported on the other and the two values are averaged. With
    one subject and one voxel (e.g. one ROI time series) there is nothing to hold out:
    the layer is chosen on the mean over every checkpoint and seed instead
    (:func:`fixed_layer_choice`), which is recorded as the method.

Choosing the best layer on the same held-out r that is reported (``max_l A[l, s]``) biases
alignment upward by the largest of several noisy values; the bias is larger where layers are
alike (early, untrained checkpoints), which distorts the shape of the curve over training.
"""

from __future__ import annotations

import warnings

import numpy as np

from brainphase.errors import InputError
from brainphase.phases.voxel_blocks import split_half_blocks

HELDOUT_SUBJECTS = "leave-one-subject-out: each subject at the layer best on the other subjects"
HELDOUT_VOXELS = "split-half voxels: layer chosen on even voxels reported on odd ones and vice versa, averaged"
FIXED_LAYER = "fixed layer: one subject and one voxel, layer best on the mean over all seeds and checkpoints"


def voxel_mean(r: np.ndarray, voxels: np.ndarray | None, allow_empty: bool = False) -> np.ndarray:
    """Mean score over the selected voxels, per layer and subject.

    Parameters
    ----------
    r : ndarray, shape (n_layers, n_subjects, n_voxels)
        Held-out Pearson r (or r / noise ceiling). NaN voxels are left out of the mean.
    voxels : ndarray of bool, shape (n_voxels,), or None
        Selected voxels; ``None`` uses every voxel.
    allow_empty : bool
        Give NaN for a (layer, subject) without any finite score (e.g. r / ceiling where every
        ceiling is below the floor) instead of raising.

    Returns
    -------
    ndarray of float64, shape (n_layers, n_subjects)

    Raises
    ------
    InputError
        When a (layer, subject) has no finite score among the selected voxels and not ``allow_empty``.
    """
    selected = r if voxels is None else r[:, :, voxels]
    if not allow_empty and not np.isfinite(selected).any(axis=2).all():
        raise InputError("a (layer, subject) has no finite score among the selected voxels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(selected.astype(np.float64), axis=2)


def heldout_layers(layer_subject: np.ndarray, halves: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Alignment per subject at a layer chosen on held-out data (see the module docstring).

    Parameters
    ----------
    layer_subject : ndarray, shape (n_layers, n_subjects)
        ``A[l, s]``.
    halves : ndarray, shape (n_layers, n_subjects, 2), or None
        ``A`` on the even and the odd selected voxels (used with one subject).

    Returns
    -------
    value : ndarray, shape (n_subjects,)
        Alignment of each subject at its held-out-chosen layer; NaN when nothing can be held out.
    position : ndarray of int, shape (n_subjects,)
        Position (into the layer axis) of the chosen layer (the even-half choice with one subject).
    choice_score : ndarray, shape (n_layers, n_subjects)
        The scores the layer was chosen on.
    method : str
    """
    n_layers, n_subjects = layer_subject.shape
    if n_subjects >= 2:
        others = (layer_subject.sum(axis=1, keepdims=True) - layer_subject) / (n_subjects - 1)
        position = np.argmax(others, axis=0)
        return layer_subject[position, np.arange(n_subjects)], position, others, HELDOUT_SUBJECTS
    if halves is not None and np.isfinite(halves).all():
        even, odd = halves[:, 0, 0], halves[:, 0, 1]
        on_even, on_odd = int(np.argmax(even)), int(np.argmax(odd))
        value = np.array([(odd[on_even] + even[on_odd]) / 2])
        return value, np.array([on_even]), halves[:, :, 0], HELDOUT_VOXELS
    return np.full(n_subjects, np.nan), np.zeros(n_subjects, dtype=int), layer_subject, FIXED_LAYER


def fixed_layer_choice(layer_subject: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One layer per subject for every checkpoint: best on the mean over seeds and steps.

    Parameters
    ----------
    layer_subject : ndarray, shape (n_seeds, n_steps, n_layers, n_subjects)

    Returns
    -------
    value : ndarray, shape (n_seeds, n_steps, n_subjects)
    position : ndarray of int, shape (n_seeds, n_steps, n_subjects)
    """
    position = np.argmax(np.nanmean(layer_subject, axis=(0, 1)), axis=0)  # (n_subjects,)
    n_subjects = layer_subject.shape[-1]
    value = layer_subject[:, :, position, np.arange(n_subjects)]
    return value, np.broadcast_to(position, value.shape).copy()


def voxel_halves(r: np.ndarray, voxels: np.ndarray | None) -> np.ndarray | None:
    """Mean r over the even and the odd selected voxels, shape (n_layers, n_subjects, 2); None with < 2 voxels."""
    index = np.flatnonzero(np.ones(r.shape[2], dtype=bool) if voxels is None else voxels)
    if len(index) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN half gives NaN, checked by the caller
        return np.stack([np.nanmean(r[:, :, index[0::2]].astype(np.float64), axis=2),
                         np.nanmean(r[:, :, index[1::2]].astype(np.float64), axis=2)], axis=2)


def checkpoint_summary(r: np.ndarray, voxels: np.ndarray | None,
                       block_starts: np.ndarray | None = None) -> dict[str, np.ndarray | str | None]:
    """Alignment summaries of one checkpoint's voxel scores.

    Parameters
    ----------
    r : ndarray, shape (n_layers, n_subjects, n_voxels)
    voxels : ndarray of bool, shape (n_voxels,), or None
    block_starts : ndarray of int, shape (n_blocks,), optional
        Voxel blocks (:func:`brainphase.phases.voxel_blocks.block_starts`): with the split-half
        method, the blocks of the held-out value are returned too.

    Returns
    -------
    dict
        ``layer_subject`` (n_layers, n_subjects); ``layer_mean_subject`` (n_subjects,);
        ``heldout_layer_subject`` (n_subjects,) (NaN when nothing can be held out: see
        :func:`fixed_layer_choice`); ``heldout_position`` (n_subjects,); ``method`` (str);
        ``heldout_blocks``: (means, weights) each (1, n_blocks) with the split-half method and
        ``block_starts``, else None (the blocks of the chosen layer are the held-out ones).
    """
    layer_subject = voxel_mean(r, voxels)
    halves = voxel_halves(r, voxels)
    value, position, _, method = heldout_layers(layer_subject, halves)
    blocks = None
    if method == HELDOUT_VOXELS and block_starts is not None:
        blocks = split_half_blocks(r, voxels, block_starts, int(position[0]), int(np.argmax(halves[:, 0, 1])))
    return {"layer_subject": layer_subject, "layer_mean_subject": layer_subject.mean(axis=0),
            "heldout_layer_subject": value, "heldout_position": position, "method": method, "heldout_blocks": blocks}
