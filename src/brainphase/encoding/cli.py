"""``brainphase encode``: voxelwise ridge encoding models of every layer of one checkpoint.

Procedure (per layer; all subjects whose runs have the same volumes are fitted in one call,
their voxels stacked as targets):

1. Word features -> per-run design matrices (:func:`brainphase.encoding.features.run_design`:
   Lanczos at the run's volume times, FIR delays, trim, z-score within run); responses get
   the same trim and z-score.
2. Outer leave-one-run-out: for each held-out run, :class:`~brainphase.encoding.ridge.RidgeCV`
   picks alpha per voxel by inner run-grouped CV over the remaining runs, refits, and
   predicts the held-out run.
3. The held-out predictions of all outer folds are concatenated (every volume predicted
   exactly once, by a model that never saw its run); Pearson r and R^2 per voxel are
   computed on this concatenation. ``alpha`` is the median over outer folds of the chosen
   alpha (taken on log10 alpha, so an even number of folds gives the geometric mean of the
   two middle values).
4. ROI means of r, r / noise ceiling, and optionally block-permutation p-values with
   Benjamini-Hochberg FDR over each subject's voxels.

Output layout: ``docs/hdf5_layout.md`` (section ``scores``).
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import h5py
import numpy as np

from brainphase.encoding import features as feats
from brainphase.encoding.ridge import DEFAULT_ALPHAS, BACKENDS, RidgeCV, nested_cv_predict
from brainphase.encoding.scoring import (
    block_permutation_pvalues,
    fdr_qvalues,
    noise_normalized,
    pearson_columns,
    r2_columns,
    roi_means,
)
from brainphase.errors import InputError
from brainphase.io import atomic_file, atomic_h5, open_h5, provenance, read_strings, string_array

logger = logging.getLogger(__name__)

#: attributes copied from the activations file onto the scores file
PROPAGATED_ATTRS = ("model_id", "revision", "seed", "step", "tokens", "weights_sha256")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase encode``."""
    parser.add_argument("--activations", required=True, type=Path, help="activations .h5 (from `brainphase extract`)")
    parser.add_argument("--responses", required=True, type=Path, help="responses.h5 (from `brainphase load-fmri`)")
    parser.add_argument("--out", required=True, type=Path, help="scores .h5 to write")
    parser.add_argument("--delays", type=int, nargs="+", default=list(feats.DEFAULT_DELAYS), help="FIR delays in TRs")
    parser.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS),
                        help="ridge penalties to try (default 13 values, 10^0..10^6 in half decades)")
    parser.add_argument("--trim-start", type=int, default=feats.DEFAULT_TRIM_START, help="volumes dropped at each run's start")
    parser.add_argument("--trim-end", type=int, default=feats.DEFAULT_TRIM_END, help="volumes dropped at each run's end")
    parser.add_argument("--backend", choices=BACKENDS, default="numpy", help="ridge backend (torch uses CUDA when present)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="ridge working precision")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="layer indices (default: all)")
    parser.add_argument("--subjects", nargs="+", default=None, help="subjects (default: all in responses.h5)")
    parser.add_argument("--chunk-size", type=int, default=None, help="voxels per ridge chunk (default: ~128 MiB)")
    parser.add_argument("--inner-folds", type=int, default=0,
                        help="inner CV folds grouped by run (0 = leave-one-run-out, the default)")
    parser.add_argument("--word-time", choices=feats.WORD_TIME_ANCHORS, default="onset", help="time of a word event")
    parser.add_argument("--lanczos-window", type=int, default=3, help="Lanczos window (lobes)")
    parser.add_argument("--cutoff-mult", type=float, default=1.0, help="Lanczos cutoff frequency = cutoff_mult / TR")
    parser.add_argument("--maps-dir", type=Path, default=None,
                        help="write NIfTI maps of r of each subject's best layer here")
    parser.add_argument("--permutations", type=int, default=0,
                        help="block permutations for voxel p-values + FDR (0 = none)")
    parser.add_argument("--permutation-block", type=int, default=10, help="block length in TRs for permutations")
    parser.add_argument("--permutation-seed", type=int, default=0, help="seed of the permutations")


# ---------------------------------------------------------------------------- inputs
def _layer_indices(act: h5py.File, path: Path, wanted: list[int] | None) -> list[int]:
    available = sorted(int(m.group(1)) for k in act if (m := re.fullmatch(r"layer_(\d+)", k)))
    if not available:
        raise InputError(f"{path}: no /layer_{{i}} datasets; is this an activations file from `brainphase extract`?")
    if wanted is None:
        return available
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise InputError(f"{path}: --layers {missing} not present (available: {available})")
    return list(dict.fromkeys(wanted))


def _read_words(act: h5py.File, path: Path) -> dict[str, np.ndarray]:
    try:
        group = act["words"]
        words = {
            "run": np.array(read_strings(group["run"]), dtype=object),
            "onset": group["onset"][()].astype(np.float64),
            "offset": group["offset"][()].astype(np.float64),
        }
    except KeyError as exc:
        raise InputError(f"{path}: missing /words/run, /words/onset or /words/offset ({exc})") from exc
    if not (len(words["run"]) == len(words["onset"]) == len(words["offset"])):
        raise InputError(f"{path}: /words columns have different lengths")
    return words


def _check_runs(activation_runs: list[str], resp: h5py.File, subjects: list[str], path: Path, act_path: Path) -> None:
    wanted = set(activation_runs)
    problems = []
    for sub in subjects:
        if "runs" not in resp[f"subjects/{sub}"]:
            raise InputError(f"{path}: /subjects/{sub}/runs is missing")
        present = set(resp[f"subjects/{sub}/runs"])
        only_act, only_resp = sorted(wanted - present), sorted(present - wanted)
        if only_act or only_resp:
            problems.append(f"{sub}: in activations only {only_act}, in responses only {only_resp}")
    if problems:
        raise InputError(
            f"runs of {act_path} and {path} differ ({'; '.join(problems)}); extract activations for the "
            "stimulus of these responses, or load the fMRI of these stories"
        )


def _subject_designs(resp: h5py.File, subjects: list[str], runs: list[str], path: Path, tr: float) -> dict[tuple, list[str]]:
    """Group subjects by design: identical (n_trs, first_volume_time, volume_interval) for every run.

    ``volume_interval`` is the time between volumes on the stimulus clock (``tr / time_scale``
    when the loader stretched the timings; ``tr`` when the attribute is absent).
    """
    designs: dict[tuple, list[str]] = {}
    n_voxels = set()
    for sub in subjects:
        signature = []
        for run in runs:
            group = resp[f"subjects/{sub}/runs/{run}"]
            if "bold" not in group or "first_volume_time" not in group.attrs:
                raise InputError(f"{path}: /subjects/{sub}/runs/{run} lacks 'bold' or its 'first_volume_time' attribute")
            n_trs, voxels = group["bold"].shape
            n_voxels.add(voxels)
            interval = float(group.attrs.get("volume_interval", tr))
            signature.append((run, n_trs, float(group.attrs["first_volume_time"]), interval))
        designs.setdefault(tuple(signature), []).append(sub)
    if len(n_voxels) != 1:
        raise InputError(f"{path}: runs have different voxel counts {sorted(n_voxels)}; all subjects share one mask")
    return designs


def _responses(resp: h5py.File, subjects: list[str], runs: list[str], args) -> np.ndarray:
    """Trimmed, z-scored responses, shape (n_kept_trs, n_subjects * n_voxels), subjects stacked."""
    return np.hstack([
        np.vstack([
            feats.prepare_responses(
                resp[f"subjects/{sub}/runs/{run}/bold"][()], args.trim_start, args.trim_end, name=f"{sub}/{run}"
            )
            for run in runs
        ])
        for sub in subjects
    ])


def _design(layer_features: np.ndarray, words: dict, signature: tuple, args) -> np.ndarray:
    """Design matrix of all runs, shape (n_kept_trs, d_model * n_delays)."""
    blocks = []
    for run, n_trs, first_volume_time, interval in signature:
        rows = words["run"] == run
        blocks.append(feats.run_design(
            layer_features[rows], words["onset"][rows], words["offset"][rows], n_trs, interval, first_volume_time,
            delays=args.delays, trim_start=args.trim_start, trim_end=args.trim_end, window=args.lanczos_window,
            cutoff_mult=args.cutoff_mult, anchor=args.word_time, name=run,
        ))
    return np.vstack(blocks)


def _write_maps(maps_dir: Path, resp: h5py.File, r: np.ndarray, layers: list[int], subjects: list[str], path: Path) -> None:
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


# ---------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> None:
    """Run ``brainphase encode``; see the module docstring."""
    if args.permutations < 0:
        raise InputError(f"--permutations must be >= 0 (got {args.permutations})")
    if args.inner_folds < 0 or args.inner_folds == 1:
        raise InputError(f"--inner-folds must be 0 (leave-one-run-out) or >= 2 (got {args.inner_folds})")
    with open_h5(args.activations, stage="extract") as act, open_h5(args.responses, stage="load-fmri") as resp:
        layers = _layer_indices(act, args.activations, args.layers)
        words = _read_words(act, args.activations)
        runs = list(dict.fromkeys(words["run"].tolist()))
        if "tr" not in resp.attrs:
            raise InputError(f"{args.responses}: root attribute 'tr' is missing")
        tr = float(resp.attrs["tr"])
        if "subjects" not in resp:
            raise InputError(f"{args.responses}: no /subjects group")
        available = sorted(resp["subjects"])
        subjects = list(dict.fromkeys(args.subjects)) if args.subjects else available
        unknown = sorted(set(subjects) - set(available))
        if unknown:
            raise InputError(f"{args.responses}: subjects {unknown} not found (available: {available})")
        _check_runs(runs, resp, subjects, args.responses, args.activations)
        designs = _subject_designs(resp, subjects, runs, args.responses, tr)
        try:
            roi_labels = resp["rois/labels"][()]
            roi_names = read_strings(resp["rois/names"])
        except KeyError as exc:
            raise InputError(f"{args.responses}: missing /rois/labels or /rois/names ({exc})") from exc
        n_voxels = resp[f"subjects/{subjects[0]}/runs/{runs[0]}/bold"].shape[1]
        if roi_labels.shape != (n_voxels,):
            raise InputError(f"{args.responses}: /rois/labels has shape {roi_labels.shape}, expected ({n_voxels},)")

        shape = (len(layers), len(subjects), n_voxels)
        r, r2, alpha = (np.full(shape, np.nan, dtype=np.float32) for _ in range(3))
        p_value = np.full(shape, np.nan, dtype=np.float32) if args.permutations else None
        estimator = RidgeCV(
            alphas=args.alphas, cv=args.inner_folds or None, backend=args.backend, dtype=args.dtype,
            chunk_size=args.chunk_size,
        )
        from tqdm.auto import tqdm

        bar = tqdm(total=len(designs) * len(layers), desc="encode layers", unit="layer")
        for signature, group_subjects in designs.items():
            index = [subjects.index(s) for s in group_subjects]
            Y = _responses(resp, group_subjects, runs, args)
            run_lengths = np.array([n_trs - args.trim_start - args.trim_end for _, n_trs, _, _ in signature])
            groups = np.repeat(np.arange(len(runs)), run_lengths)
            logger.info("subjects %s: %d volumes x %d targets, %d runs", group_subjects, *Y.shape, len(runs))
            for li, layer in enumerate(layers):
                X = _design(act[f"layer_{layer}"][()].astype(np.float32), words, signature, args)
                predictions, fold_alphas, _ = nested_cv_predict(estimator, X, Y, groups, progress=True)
                n_edge = int(np.isin(fold_alphas, [min(args.alphas), max(args.alphas)]).sum())
                if n_edge:
                    logger.info("layer %d: %d of %d chosen alphas at an end of the grid", layer, n_edge, fold_alphas.size)
                per_subject = (len(group_subjects), n_voxels)
                r[li, index] = pearson_columns(Y, predictions).reshape(per_subject)
                r2[li, index] = r2_columns(Y, predictions).reshape(per_subject)
                alpha[li, index] = (10 ** np.median(np.log10(fold_alphas), axis=0)).reshape(per_subject)
                if p_value is not None:
                    p_value[li, index] = block_permutation_pvalues(
                        Y, predictions, run_lengths, args.permutations, args.permutation_block, args.permutation_seed
                    ).reshape(per_subject)
                bar.update()
        bar.close()

        ceilings = {s: resp[f"subjects/{s}/noise_ceiling"][()] for s in subjects if "noise_ceiling" in resp[f"subjects/{s}"]}
        if ceilings and len(ceilings) < len(subjects):
            logger.warning("no noise ceiling for subjects %s: r_normalized NaN there", sorted(set(subjects) - set(ceilings)))

        simulated = bool(act.attrs.get("simulated", False)) or bool(resp.attrs.get("simulated", False))
        extra = {key: act.attrs[key] for key in PROPAGATED_ATTRS if key in act.attrs}
        missing = [key for key in PROPAGATED_ATTRS if key not in act.attrs]
        if missing:
            logger.warning("%s lacks attributes %s; not propagated", args.activations, missing)
        attrs = provenance("encode", args, [args.activations, args.responses], simulated=simulated, tr=tr, **extra)
        with atomic_h5(args.out, attrs) as out:
            out.create_dataset("r", data=r)
            out.create_dataset("r2", data=r2)
            out.create_dataset("alpha", data=alpha)
            out.create_dataset("roi_mean_r", data=roi_means(r, roi_labels, len(roi_names)).astype(np.float32))
            if ceilings:
                normalized = np.full(shape, np.nan, dtype=np.float32)
                for s, sub in enumerate(subjects):
                    if sub in ceilings:
                        normalized[:, s] = noise_normalized(r[:, s], ceilings[sub])
                out.create_dataset("r_normalized", data=normalized)
            if p_value is not None:
                out.create_dataset("p_value", data=p_value)
                q = np.stack([[fdr_qvalues(p_value[li, s]) for s in range(len(subjects))] for li in range(len(layers))])
                out.create_dataset("q_value", data=q.astype(np.float32))
            out.create_dataset("layers", data=np.array(layers, dtype=np.int64))
            out.create_dataset("subjects", data=string_array(subjects))
            out.create_dataset("roi_names", data=string_array(roi_names))
            out.create_dataset("runs", data=string_array(runs))
            if args.maps_dir is not None:
                _write_maps(args.maps_dir, resp, r, layers, subjects, args.responses)
        logger.info(
            "wrote %s: %d layers x %d subjects x %d voxels; mean r of the best layer %.3f",
            args.out, len(layers), len(subjects), n_voxels, float(np.nanmax(np.nanmean(r, axis=(1, 2)))),
        )
