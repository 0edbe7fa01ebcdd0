"""The scores file of ``brainphase encode``: per-layer scores, the group apart, noise ceilings.

:class:`LayerScores` collects the held-out scores of every (layer, subject, target) one fit
at a time; :func:`write_scores` writes them (layout: ``docs/hdf5_layout.md``, section
``scores``). The group-average pseudo-subject ``average`` of ``load-fmri --group-average`` is
**never** stored beside the subjects: ``/subjects`` and the subject axis of every per-subject
dataset hold only real subjects, and the group's scores are under ``/group`` with the subject
axis dropped, so nothing downstream can average group and subject scores together.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from brainphase.encoding.noise_ceiling import GROUP_SUBJECT, scored_ceilings
from brainphase.encoding.scoring import fdr_qvalues, noise_normalized, roi_means
from brainphase.errors import InputError
from brainphase.io import atomic_file, atomic_h5, provenance, read_strings, string_array

logger = logging.getLogger(__name__)

#: attributes copied from the activations file onto the scores file
PROPAGATED_ATTRS = ("model_id", "revision", "seed", "step", "tokens", "weights_sha256")


class LayerScores:
    """Held-out scores of every (layer, subject, target), filled one fit at a time.

    Parameters
    ----------
    layers : list of int
        Layer indices, length n_layers.
    subjects : list of str
        Length n_subjects (may include the pseudo-subject ``average``).
    n_targets : int
        Voxels / ROIs / targets per subject.
    args : argparse.Namespace
        ``alphas``, ``permutations`` and ``save_predictions`` are used.

    Attributes
    ----------
    r, r2, alpha : ndarray of shape (n_layers, n_subjects, n_targets), float32
    p_value : ndarray of the same shape, or None without permutations
    conventions : dict of str -> ndarray of the same shape
        Other named scores (``r_fold_mean``, ``r_concatenated``, ...).
    predictions : ndarray of shape (n_layers, n_subjects, n_rows, n_targets), or None
        Held-out predictions (``--save-predictions``), with ``responses`` (n_subjects, n_rows,
        n_targets) and ``folds`` (n_rows,) once :meth:`add_predictions` was called.
    """

    def __init__(self, layers: list[int], subjects: list[str], n_targets: int, args: argparse.Namespace):
        self.layers, self.subjects, self.n_targets, self.args = layers, subjects, n_targets, args
        self.shape = (len(layers), len(subjects), n_targets)
        self.r, self.r2, self.alpha = (np.full(self.shape, np.nan, dtype=np.float32) for _ in range(3))
        self.p_value = np.full(self.shape, np.nan, dtype=np.float32) if getattr(args, "permutations", 0) else None
        self.conventions: dict[str, np.ndarray] = {}
        self.predictions = self.responses = self.folds = None

    def add(self, layer_index: int, subjects: list[str], r: np.ndarray, r2: np.ndarray, fold_alphas: np.ndarray,
            p_value: np.ndarray | None = None, conventions: dict[str, np.ndarray] | None = None) -> None:
        """Store the scores of one fit, whose columns are the subjects' targets stacked.

        Parameters
        ----------
        layer_index : int
            Position of the layer in ``layers``.
        subjects : list of str
            The subjects whose targets are the columns, in order.
        r, r2 : ndarray of shape (len(subjects) * n_targets,)
        fold_alphas : ndarray of shape (n_outer_folds, len(subjects) * n_targets)
            Alpha chosen in each outer fold; the stored alpha is their median on log10.
        p_value : ndarray of shape (len(subjects) * n_targets,), optional
            Required when ``args.permutations`` > 0.
        conventions : dict of str -> ndarray of shape (len(subjects) * n_targets,), optional
            Other named scores, stored under their names.
        """
        index = [self.subjects.index(s) for s in subjects]
        per_subject = (len(subjects), self.n_targets)
        alphas = self.args.alphas
        n_edge = int(np.isin(fold_alphas, [min(alphas), max(alphas)]).sum())
        if n_edge:
            logger.info("layer %d: %d of %d chosen alphas at an end of the grid",
                        self.layers[layer_index], n_edge, fold_alphas.size)
        self.r[layer_index, index] = np.reshape(r, per_subject)
        self.r2[layer_index, index] = np.reshape(r2, per_subject)
        self.alpha[layer_index, index] = (10 ** np.median(np.log10(fold_alphas), axis=0)).reshape(per_subject)
        if self.p_value is not None:
            self.p_value[layer_index, index] = np.reshape(p_value, per_subject)
        for name, values in (conventions or {}).items():
            target = self.conventions.setdefault(name, np.full(self.shape, np.nan, dtype=np.float32))
            target[layer_index, index] = np.reshape(values, per_subject)

    def add_predictions(self, layer_index: int, subjects: list[str], predictions: np.ndarray, responses: np.ndarray,
                        folds: np.ndarray) -> None:
        """Keep the held-out predictions (n_rows, len(subjects) * n_targets) of one fit, the
        responses they predict (same shape) and the outer fold of each row (n_rows,)."""
        n_rows = predictions.shape[0]
        if self.predictions is None:
            self.predictions = np.full((len(self.layers), len(self.subjects), n_rows, self.n_targets), np.nan, np.float32)
            self.responses = np.full((len(self.subjects), n_rows, self.n_targets), np.nan, np.float32)
            self.folds = np.asarray(folds, dtype=np.int64)
        if n_rows != self.predictions.shape[2]:
            raise InputError(f"--save-predictions: subjects have different row counts ({n_rows} vs "
                             f"{self.predictions.shape[2]}); encode them separately (--subjects)")
        for k, sub in enumerate(subjects):
            s = self.subjects.index(sub)
            columns = slice(k * self.n_targets, (k + 1) * self.n_targets)
            self.predictions[layer_index, s] = predictions[:, columns]
            self.responses[s] = responses[:, columns]


def write_maps(maps_dir: Path, resp: h5py.File, r: np.ndarray, layers: list[int], subjects: list[str], path: Path) -> None:
    """NIfTI map of r of each subject's best layer (by mean r), r of shape (n_layers, n_subjects, n_voxels)."""
    import nibabel as nib
    from nilearn.masking import unmask

    try:
        mask = resp["mask/mask"][()]
        affine = resp["mask/affine"][()]
    except KeyError as exc:
        raise InputError(f"{path}: --maps-dir needs /mask/mask and /mask/affine ({exc})") from exc
    if int((mask > 0).sum()) != r.shape[-1]:
        raise InputError(f"{path}: /mask/mask keeps {int((mask > 0).sum())} voxels but the responses have {r.shape[-1]}")
    mask_img = nib.Nifti1Image((mask > 0).astype(np.uint8), affine)
    maps_dir.mkdir(parents=True, exist_ok=True)
    for s, sub in enumerate(subjects):
        best = int(np.nanargmax(np.nanmean(r[:, s, :], axis=1)))
        target = maps_dir / f"{sub}_layer-{layers[best]}_r.nii.gz"
        with atomic_file(target, suffix=".nii.gz") as tmp:
            unmask(r[best, s].astype(np.float32), mask_img).to_filename(tmp)
        logger.info("wrote %s (best layer %d by mean r)", target, layers[best])


def read_rois(resp: h5py.File, n_targets: int, path: Path) -> tuple[np.ndarray, list[str]]:
    """ROI labels (n_targets,) and names; no ROIs (all labels 0, no names) when /rois is absent."""
    if "rois" not in resp:
        logger.info("%s has no /rois: /roi_mean_r has 0 ROIs", path)
        return np.zeros(n_targets, dtype=np.int16), []
    try:
        roi_labels = resp["rois/labels"][()]
        roi_names = read_strings(resp["rois/names"])
    except KeyError as exc:
        raise InputError(f"{path}: /rois needs both /rois/labels and /rois/names ({exc})") from exc
    if roi_labels.shape != (n_targets,):
        raise InputError(f"{path}: /rois/labels has shape {roi_labels.shape}, expected ({n_targets},)")
    return roi_labels, roi_names


def _per_subject(scores: LayerScores, ceilings: dict, roi_labels: np.ndarray, n_rois: int, floor: float,
                 linked: tuple[str, ...]) -> dict[str, tuple[np.ndarray, int]]:
    """Every dataset with a subject axis: name in the scores file -> (values, subject axis).

    Conventions named in ``linked`` (equal to ``/r`` and ``/r2``) are left out: they are
    written as HDF5 hard links to ``/r`` and ``/r2``.
    """
    conventions = {k: v for k, v in scores.conventions.items() if k not in linked}
    data = {name: (values, 1) for name, values in {
        "r": scores.r, "r2": scores.r2, "alpha": scores.alpha, **conventions,
        "roi_mean_r": roi_means(scores.r, roi_labels, n_rois).astype(np.float32)}.items()}
    if ceilings:
        normalized = np.full(scores.shape, np.nan, dtype=np.float32)
        ceiling = np.full(scores.shape[1:], np.nan, dtype=np.float32)
        for s, sub in enumerate(scores.subjects):
            if sub in ceilings:
                normalized[:, s] = noise_normalized(scores.r[:, s], ceilings[sub], floor)
                ceiling[s] = ceilings[sub]
        data["r_normalized"] = (normalized, 1)
        data["noise_ceiling"] = (ceiling, 0)
    if scores.p_value is not None:
        data["p_value"] = (scores.p_value, 1)
        q = np.stack([[fdr_qvalues(p) for p in layer] for layer in scores.p_value]).astype(np.float32)
        data["q_value"] = (q, 1)
    if scores.predictions is not None:
        data["held_out/predictions"] = (scores.predictions, 1)
        data["held_out/responses"] = (scores.responses, 0)
    return data


def write_scores(args: argparse.Namespace, act: h5py.File, resp: h5py.File, scores: LayerScores, runs: list[str],
                 attrs: dict, datasets: dict[str, np.ndarray] | None = None,
                 responses_of: Callable[[str, int, int], np.ndarray] | None = None,
                 repeats_of: Callable[[str, int, int], np.ndarray | None] | None = None) -> None:
    """Write the scores file (layout: ``docs/hdf5_layout.md``), shared by both encoding paths.

    Adds ROI means (when ``/rois`` is present), the noise ceiling on the scored rows and
    ``r_normalized`` (:mod:`brainphase.encoding.noise_ceiling`; voxels below
    ``args.ceiling_floor`` are NaN), FDR q-values (with permutations), the axis labels, the
    attributes propagated from the activations and ``attrs``, the optional held-out
    predictions; then the optional NIfTI maps. The pseudo-subject ``average`` goes to
    ``/group`` (module docstring).

    Parameters
    ----------
    scores : LayerScores
    runs : list of str
        Written as ``/runs`` (empty for sentence-level data).
    attrs : dict
        Path-specific root attributes (``tr``, ``stimulus_kind``, ``cv``, ``r_convention``, ...).
    datasets : dict of str -> ndarray, optional
        Path-specific extra datasets (e.g. ``sentence_folds``).
    responses_of : callable (subject, start, stop) -> ndarray of shape (n_rows, stop - start), optional
        The scored rows of any subject of ``responses.h5``, for the noise ceiling.
    repeats_of : callable (subject, start, stop) -> ndarray of shape (n_repeats, n_rows, stop - start) or None, optional
        Single repeats prepared like the scored rows (repeat ceiling), None where not stored.
    """
    subjects, layers = scores.subjects, scores.layers
    roi_labels, roi_names = read_rois(resp, scores.n_targets, args.responses)
    floor = float(args.ceiling_floor)
    ceilings, ceiling_attrs = scored_ceilings(resp, args.responses, scores.n_targets, responses_of, floor, repeats_of) \
        if responses_of is not None else ({}, {"ceiling_method": "none", "ceiling_rows": "none"})
    missing_ceiling = sorted(set(subjects) - set(ceilings))
    if ceilings and missing_ceiling:
        logger.warning("no noise ceiling for subjects %s: r_normalized NaN there", missing_ceiling)
    simulated = bool(act.attrs.get("simulated", False)) or bool(resp.attrs.get("simulated", False))
    extra = {key: act.attrs[key] for key in PROPAGATED_ATTRS if key in act.attrs}
    missing = [key for key in PROPAGATED_ATTRS if key not in act.attrs]
    if missing:
        logger.warning("%s lacks attributes %s; not propagated", args.activations, missing)
    real = [s for s in subjects if s != GROUP_SUBJECT]
    real_index = [subjects.index(s) for s in real]
    root_attrs = provenance("encode", args, [args.activations, args.responses], simulated=simulated, **attrs, **extra,
                            **ceiling_attrs, ceiling_floor=floor, group_subject=GROUP_SUBJECT if GROUP_SUBJECT in subjects else "")
    with atomic_h5(args.out, root_attrs) as out:
        group = subjects.index(GROUP_SUBJECT) if GROUP_SUBJECT in subjects else None
        primary = attrs.get("r_convention")
        linked = tuple(f"{prefix}_{primary}" for prefix in ("r", "r2") if f"{prefix}_{primary}" in scores.conventions)
        for name, (values, axis) in _per_subject(scores, ceilings, roi_labels, len(roi_names), floor, linked).items():
            out.create_dataset(name, data=np.take(values, real_index, axis=axis))
            if group is not None:
                out.create_dataset(f"group/{name}", data=np.take(values, group, axis=axis))
        for name in linked:  # e.g. /r_fold_mean is /r (one copy on disk)
            prefix = name.split("_", 1)[0]
            out[name] = out[prefix]
            if group is not None:
                out[f"group/{name}"] = out[f"group/{prefix}"]
        if scores.folds is not None:
            out.create_dataset("held_out/fold", data=scores.folds)
        out.create_dataset("layers", data=np.array(layers, dtype=np.int64))
        out.create_dataset("subjects", data=string_array(real))
        out.create_dataset("roi_names", data=string_array(roi_names))
        out.create_dataset("runs", data=string_array(runs))
        for name, values in (datasets or {}).items():
            out.create_dataset(name, data=values)
        if args.maps_dir is not None:
            write_maps(args.maps_dir, resp, scores.r, layers, subjects, args.responses)
    layer_means = [float(np.nanmean(r)) if np.isfinite(r).any() else np.nan for r in scores.r[:, real_index]]
    logger.info(
        "wrote %s: %d layers x %d subjects (+ group: %s) x %d targets; mean r of the best layer %.3f",
        args.out, len(layers), len(real), len(real) < len(subjects), scores.n_targets,
        np.nanmax(layer_means) if np.isfinite(layer_means).any() else np.nan,
    )
