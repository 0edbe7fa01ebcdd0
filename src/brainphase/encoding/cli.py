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

Sentence-level responses (``responses.h5`` with ``dataset_kind = "sentences"`` or a
``/sentences`` group; activations from ``brainphase extract --sentences``) take their own
path to the same scores (:mod:`brainphase.encoding.sentences`):

1. Features = each sentence's pooled word vectors (``--sentence-pooling mean|last``,
   :func:`brainphase.encoding.features.sentence_features`), matched to ``/sentences/text``
   by text and order. No Lanczos, delays or trimming (the timing options are ignored).
2. Outer K-fold over sentences (``--sentence-folds``, contiguous blocks, or blocks of whole
   passages when the responses have ``/sentences/passage``); inside, ``RidgeCV`` picks alpha
   per target by leave-one-fold-out over the remaining folds. Features are z-scored with the
   mean and standard deviation of each training part only (``RidgeCV(standardize=True)``:
   outer and inner folds), so no statistic of held-out sentences enters a fit. All subjects
   share the sentences and are fitted in one call.
3. r and R^2 within each outer fold, averaged over folds
   (:func:`brainphase.encoding.sentences.fold_mean_scores`, the Brain-Score convention):
   r on the concatenated folds is biased negative on pure noise, by about
   ``-sqrt(n_folds / n_sentences)``. ``alpha`` as step 3 above.
4. Step 4 above is shared (:class:`LayerScores`, :func:`write_scores`), except
   permutations, which are refused for sentence-level data.

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
from brainphase.encoding import sentences as sents
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
                        help="inner CV folds grouped by run, or by outer fold for sentence-level data "
                             "(0 = leave-one-group-out, the default)")
    parser.add_argument("--word-time", choices=feats.WORD_TIME_ANCHORS, default="onset", help="time of a word event")
    parser.add_argument("--lanczos-window", type=int, default=3, help="Lanczos window (lobes)")
    parser.add_argument("--cutoff-mult", type=float, default=1.0, help="Lanczos cutoff frequency = cutoff_mult / TR")
    parser.add_argument("--maps-dir", type=Path, default=None,
                        help="write NIfTI maps of r of each subject's best layer here")
    parser.add_argument("--permutations", type=int, default=0,
                        help="block permutations for voxel p-values + FDR (0 = none)")
    parser.add_argument("--permutation-block", type=int, default=10, help="block length in TRs for permutations")
    parser.add_argument("--permutation-seed", type=int, default=0, help="seed of the permutations")
    parser.add_argument("--sentence-pooling", choices=feats.SENTENCE_POOLINGS, default="mean",
                        help="sentence-level responses: pool a sentence's word vectors by their mean or take the last word")
    parser.add_argument("--sentence-folds", type=int, default=5,
                        help="sentence-level responses: outer CV folds (contiguous blocks of sentences, or of passages)")


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


def _read_rois(resp: h5py.File, n_targets: int, path: Path) -> tuple[np.ndarray, list[str]]:
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


# ---------------------------------------------------------------------------- shared tail
class LayerScores:
    """Held-out scores of every (layer, subject, target), filled one fit at a time.

    Parameters
    ----------
    layers : list of int
        Layer indices, length n_layers.
    subjects : list of str
        Length n_subjects.
    n_targets : int
        Voxels / ROIs / targets per subject.
    args : argparse.Namespace
        ``alphas``, ``permutations`` and ``permutation_seed`` are used.

    Attributes
    ----------
    r, r2, alpha : ndarray of shape (n_layers, n_subjects, n_targets), float32
    p_value : ndarray of the same shape, or None without permutations
    """

    def __init__(self, layers: list[int], subjects: list[str], n_targets: int, args: argparse.Namespace):
        self.layers, self.subjects, self.n_targets, self.args = layers, subjects, n_targets, args
        self.shape = (len(layers), len(subjects), n_targets)
        self.r, self.r2, self.alpha = (np.full(self.shape, np.nan, dtype=np.float32) for _ in range(3))
        self.p_value = np.full(self.shape, np.nan, dtype=np.float32) if args.permutations else None

    def add(
        self,
        layer_index: int,
        subjects: list[str],
        r: np.ndarray,
        r2: np.ndarray,
        fold_alphas: np.ndarray,
        p_value: np.ndarray | None = None,
    ) -> None:
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


def write_scores(
    args: argparse.Namespace,
    act: h5py.File,
    resp: h5py.File,
    scores: LayerScores,
    runs: list[str],
    attrs: dict,
    datasets: dict[str, np.ndarray] | None = None,
) -> None:
    """Write the scores file (layout: ``docs/hdf5_layout.md``), shared by both encoding paths.

    Adds ROI means (when ``/rois`` is present), ``r_normalized`` (when some subject has a
    noise ceiling), FDR q-values (with permutations), the axis labels, the attributes
    propagated from the activations and ``attrs``; then the optional NIfTI maps.

    Parameters
    ----------
    scores : LayerScores
    runs : list of str
        Written as ``/runs`` (empty for sentence-level data).
    attrs : dict
        Path-specific root attributes (``tr``, ``stimulus_kind``, ...).
    datasets : dict of str -> ndarray, optional
        Path-specific extra datasets (e.g. ``sentence_folds``).
    """
    subjects, layers, shape = scores.subjects, scores.layers, scores.shape
    roi_labels, roi_names = _read_rois(resp, scores.n_targets, args.responses)
    ceilings = {s: resp[f"subjects/{s}/noise_ceiling"][()] for s in subjects if "noise_ceiling" in resp[f"subjects/{s}"]}
    if ceilings and len(ceilings) < len(subjects):
        logger.warning("no noise ceiling for subjects %s: r_normalized NaN there", sorted(set(subjects) - set(ceilings)))
    simulated = bool(act.attrs.get("simulated", False)) or bool(resp.attrs.get("simulated", False))
    extra = {key: act.attrs[key] for key in PROPAGATED_ATTRS if key in act.attrs}
    missing = [key for key in PROPAGATED_ATTRS if key not in act.attrs]
    if missing:
        logger.warning("%s lacks attributes %s; not propagated", args.activations, missing)
    root_attrs = provenance("encode", args, [args.activations, args.responses], simulated=simulated, **attrs, **extra)
    with atomic_h5(args.out, root_attrs) as out:
        out.create_dataset("r", data=scores.r)
        out.create_dataset("r2", data=scores.r2)
        out.create_dataset("alpha", data=scores.alpha)
        out.create_dataset("roi_mean_r", data=roi_means(scores.r, roi_labels, len(roi_names)).astype(np.float32))
        if ceilings:
            normalized = np.full(shape, np.nan, dtype=np.float32)
            for s, sub in enumerate(subjects):
                if sub in ceilings:
                    normalized[:, s] = noise_normalized(scores.r[:, s], ceilings[sub])
            out.create_dataset("r_normalized", data=normalized)
        if scores.p_value is not None:
            out.create_dataset("p_value", data=scores.p_value)
            q = np.stack([[fdr_qvalues(scores.p_value[li, s]) for s in range(len(subjects))] for li in range(len(layers))])
            out.create_dataset("q_value", data=q.astype(np.float32))
        out.create_dataset("layers", data=np.array(layers, dtype=np.int64))
        out.create_dataset("subjects", data=string_array(subjects))
        out.create_dataset("roi_names", data=string_array(roi_names))
        out.create_dataset("runs", data=string_array(runs))
        for name, values in (datasets or {}).items():
            out.create_dataset(name, data=values)
        if args.maps_dir is not None:
            _write_maps(args.maps_dir, resp, scores.r, layers, subjects, args.responses)
    layer_means = [float(np.nanmean(r)) if np.isfinite(r).any() else np.nan for r in scores.r]
    logger.info(
        "wrote %s: %d layers x %d subjects x %d targets; mean r of the best layer %.3f (%d layers without a finite r)",
        args.out, *shape, np.nanmax(layer_means) if np.isfinite(layer_means).any() else np.nan,
        int(np.sum(~np.isfinite(layer_means))),
    )


# ---------------------------------------------------------------------------- time series
def _encode_timeseries(act: h5py.File, resp: h5py.File, layers: list[int], subjects: list[str],
                       estimator: RidgeCV, args: argparse.Namespace) -> None:
    """Time-series responses: Lanczos + delays per run, outer leave-one-run-out."""
    if sents.activation_stimulus_kind(act) == "sentences":
        raise InputError(
            f"{args.activations} holds sentence activations (`extract --sentences`) but {args.responses} holds "
            "time series; extract the activations from the timed stimulus words (`extract --stimulus`)"
        )
    words = _read_words(act, args.activations)
    runs = list(dict.fromkeys(words["run"].tolist()))
    if "tr" not in resp.attrs:
        raise InputError(f"{args.responses}: root attribute 'tr' is missing")
    tr = float(resp.attrs["tr"])
    _check_runs(runs, resp, subjects, args.responses, args.activations)
    designs = _subject_designs(resp, subjects, runs, args.responses, tr)
    n_voxels = resp[f"subjects/{subjects[0]}/runs/{runs[0]}/bold"].shape[1]
    scores = LayerScores(layers, subjects, n_voxels, args)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(designs) * len(layers), desc="encode layers", unit="layer")
    for signature, group_subjects in designs.items():
        Y = _responses(resp, group_subjects, runs, args)
        run_lengths = np.array([n_trs - args.trim_start - args.trim_end for _, n_trs, _, _ in signature])
        groups = np.repeat(np.arange(len(runs)), run_lengths)
        logger.info("subjects %s: %d volumes x %d targets, %d runs", group_subjects, *Y.shape, len(runs))
        for li, layer in enumerate(layers):
            X = _design(act[f"layer_{layer}"][()].astype(np.float32), words, signature, args)
            predictions, fold_alphas, _ = nested_cv_predict(estimator, X, Y, groups, progress=True)
            p_value = block_permutation_pvalues(
                Y, predictions, run_lengths, args.permutations, args.permutation_block, args.permutation_seed
            ) if args.permutations else None
            scores.add(li, group_subjects, pearson_columns(Y, predictions), r2_columns(Y, predictions), fold_alphas, p_value)
            bar.update()
    bar.close()
    write_scores(args, act, resp, scores, runs, {"tr": tr, "stimulus_kind": "words"})


# ---------------------------------------------------------------------------- sentences
def _sentence_responses(resp: h5py.File, subjects: list[str], n_sentences: int, path: Path) -> np.ndarray:
    """Responses of all subjects, shape (n_sentences, n_subjects * n_targets), subjects stacked."""
    tables = []
    for sub in subjects:
        key = f"subjects/{sub}/sentences/responses"
        if key not in resp:
            raise InputError(f"{path}: /{key} is missing (sentence-level responses file)")
        table = resp[key][()].astype(np.float32)
        if table.ndim != 2 or table.shape[0] != n_sentences:
            raise InputError(f"{path}: /{key} has shape {table.shape}, expected ({n_sentences}, n_targets)")
        tables.append(table)
    widths = {t.shape[1] for t in tables}
    if len(widths) != 1:
        raise InputError(f"{path}: subjects have different target counts {sorted(widths)}")
    return np.hstack(tables)


def _encode_sentences(act: h5py.File, resp: h5py.File, layers: list[int], subjects: list[str],
                      estimator: RidgeCV, args: argparse.Namespace) -> None:
    """Sentence-level responses: pooled sentence features, outer K-fold over sentences."""
    if args.maps_dir is not None:
        raise InputError(f"{args.responses}: sentence-level responses have no voxel mask; drop --maps-dir")
    if args.permutations:
        raise InputError(
            f"{args.responses}: --permutations is not available for sentence-level responses (their r is a mean "
            "over folds, which the run-block permutation test does not compute); drop --permutations"
        )
    word_runs, act_texts = sents.activation_sentences(act, args.activations)
    if "sentences/text" not in resp:
        raise InputError(f"{args.responses}: /sentences/text is missing (sentence-level responses file)")
    resp_texts = read_strings(resp["sentences/text"])
    sents.match_sentences(act_texts, resp_texts, args.activations, args.responses)
    passages = read_strings(resp["sentences/passage"]) if "sentences/passage" in resp else None
    folds, grouping = sents.sentence_fold_labels(len(resp_texts), args.sentence_folds, passages)
    Y = _sentence_responses(resp, subjects, len(resp_texts), args.responses)
    n_targets = Y.shape[1] // len(subjects)
    logger.info(
        "sentence-level responses: %d sentences x %d targets x %d subjects, %d outer folds (%s), pooling %s; "
        "--delays, --trim-*, --lanczos-window, --cutoff-mult, --word-time do not apply",
        len(resp_texts), n_targets, len(subjects), args.sentence_folds, grouping, args.sentence_pooling,
    )
    scores = LayerScores(layers, subjects, n_targets, args)
    from tqdm.auto import tqdm

    for li, layer in enumerate(tqdm(layers, desc="encode layers", unit="layer")):
        _, X = feats.sentence_features(act[f"layer_{layer}"][()].astype(np.float32), word_runs, args.sentence_pooling)
        if np.all(X == X[0]):
            logger.warning(
                "layer %d: the %s-pooled features are identical for every sentence (e.g. the embedding of a final "
                "'.' shared by all sentences), so its r is NaN; --sentence-pooling mean avoids this",
                layer, args.sentence_pooling,
            )
        predictions, fold_alphas, _ = nested_cv_predict(estimator, X, Y, folds, progress=True)
        scores.add(li, subjects, *sents.fold_mean_scores(Y, predictions, folds), fold_alphas)
    attrs = {
        "tr": float(resp.attrs.get("tr", np.nan)),
        "stimulus_kind": "sentences",
        "n_sentences": len(resp_texts),
        "sentence_pooling": args.sentence_pooling,
        "sentence_folds": args.sentence_folds,
        "fold_grouping": grouping,
    }
    write_scores(args, act, resp, scores, [], attrs, {"sentence_folds": folds})


# ---------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> None:
    """Run ``brainphase encode``; see the module docstring."""
    if args.permutations < 0:
        raise InputError(f"--permutations must be >= 0 (got {args.permutations})")
    if args.inner_folds < 0 or args.inner_folds == 1:
        raise InputError(f"--inner-folds must be 0 (leave-one-run-out) or >= 2 (got {args.inner_folds})")
    with open_h5(args.activations, stage="extract") as act, open_h5(args.responses, stage="load-fmri") as resp:
        layers = _layer_indices(act, args.activations, args.layers)
        if "subjects" not in resp:
            raise InputError(f"{args.responses}: no /subjects group")
        available = sorted(resp["subjects"])
        subjects = list(dict.fromkeys(args.subjects)) if args.subjects else available
        unknown = sorted(set(subjects) - set(available))
        if unknown:
            raise InputError(f"{args.responses}: subjects {unknown} not found (available: {available})")
        sentence_level = sents.is_sentence_dataset(resp)
        estimator = RidgeCV(
            alphas=args.alphas, cv=args.inner_folds or None, backend=args.backend, dtype=args.dtype,
            chunk_size=args.chunk_size, standardize=sentence_level,
        )
        encode = _encode_sentences if sentence_level else _encode_timeseries
        encode(act, resp, layers, subjects, estimator, args)
