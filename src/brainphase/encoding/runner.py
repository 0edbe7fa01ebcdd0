"""The work of ``brainphase encode``: read the inputs, fit every layer, write the scores.

:func:`_encode_timeseries` handles time-series responses (Lanczos + delays per run, outer
leave-one-run-out or gapped blocks), :func:`_encode_sentences` sentence-level responses
(pooled sentence features, outer K-fold over sentences); both write through
:mod:`brainphase.encoding.output`. :mod:`brainphase.encoding.cli` parses the options, checks
them and calls one of the two; its docstring describes the procedure.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from brainphase.encoding import features as feats
from brainphase.encoding import sentences as sents
from brainphase.encoding import partition as vpart
from brainphase.encoding.blocks import blocked_cv_predict, block_layout, resolve_cv
from brainphase.encoding.output import LayerScores, write_scores
from brainphase.encoding.ridge import RidgeCV, nested_cv_predict
from brainphase.encoding.scoring import block_permutation_pvalues, scores_by_fold
from brainphase.errors import InputError
from brainphase.io import read_strings

logger = logging.getLogger(__name__)


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


def _scored_rows(resp: h5py.File, runs: list[str], args) -> Callable[[str, int, int], np.ndarray]:
    """``rows(subject, start, stop)``: the trimmed, per-run z-scored responses of targets
    ``start:stop`` of any subject, runs concatenated, shape (n_kept_trs, stop - start)."""
    def rows(subject: str, start: int, stop: int) -> np.ndarray:
        return np.vstack([
            feats.prepare_responses(resp[f"subjects/{subject}/runs/{run}/bold"][:, start:stop], args.trim_start,
                                    args.trim_end, name=f"{subject}/{run}")
            for run in runs
        ])
    return rows


def _scored_repeats(resp: h5py.File, runs: list[str], args) -> Callable[[str, int, int], np.ndarray | None]:
    """``repeats(subject, start, stop)``: the single repeats ``/subjects/{sub}/runs/{run}/repeats``
    (n_repeats, n_trs, n_voxels) of targets ``start:stop``, each trimmed and z-scored like the
    scored rows, runs concatenated: shape (n_repeats, n_kept_trs, stop - start); None when
    some run of the subject has no ``repeats``."""
    def repeats(subject: str, start: int, stop: int) -> np.ndarray | None:
        keys = [f"subjects/{subject}/runs/{run}/repeats" for run in runs]
        if not all(key in resp for key in keys):
            return None
        counts = {resp[key].shape[0] for key in keys}
        if len(counts) != 1:
            raise InputError(f"{args.responses}: {subject} has {sorted(counts)} repeats in different runs; the repeat "
                             "ceiling needs the same number of repeats in every run")
        return np.concatenate([
            np.stack([feats.prepare_responses(repeat, args.trim_start, args.trim_end, name=key)
                      for repeat in resp[key][:, :, start:stop]])
            for key in keys
        ], axis=1)
    return repeats


def _design(layer_features: np.ndarray, words: dict, signature: tuple, args, zscore: bool) -> np.ndarray:
    """Design matrix of all runs, shape (n_kept_trs, d_model * n_delays)."""
    blocks = []
    for run, n_trs, first_volume_time, interval in signature:
        rows = words["run"] == run
        blocks.append(feats.run_design(
            layer_features[rows], words["onset"][rows], words["offset"][rows], n_trs, interval, first_volume_time,
            delays=args.delays, trim_start=args.trim_start, trim_end=args.trim_end, window=args.lanczos_window,
            cutoff_mult=args.cutoff_mult, anchor=args.word_time, name=run, zscore=zscore,
        ))
    return np.vstack(blocks)


def _both_conventions(Y: np.ndarray, predictions: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """r and R^2 per target in both conventions: within each outer fold averaged, and concatenated."""
    return scores_by_fold(Y, predictions, folds)


# ---------------------------------------------------------------------------- time series
def _check_words_fit_runs(words: dict[str, np.ndarray], designs: dict[tuple, list[str]], args) -> None:
    """Refuse activations whose words outlast a run's volumes by over half the run: another stimulus's activations.

    The loaders already refuse a run that ends over one volume before its words; the looser bound here
    only catches a mix-up of stimuli, e.g. activations of other stories under the same run names.
    """
    for signature, group_subjects in designs.items():
        for run, n_trs, first_volume_time, interval in signature:
            last_offset = float(words["offset"][words["run"] == run].max())
            end = first_volume_time + n_trs * interval
            if last_offset > end + max(interval, 0.5 * (end - first_volume_time)):
                raise InputError(
                    f"{args.activations}: the words of run {run!r} last until {last_offset:g} s but {args.responses} "
                    f"({group_subjects[0]}) covers only {first_volume_time:g}-{end:g} s: the activations come from a "
                    "different stimulus; re-run `brainphase extract` with the stimulus given to `brainphase load-fmri`")


def _encode_timeseries(act: h5py.File, resp: h5py.File, layers: list[int], subjects: list[str],
                       estimator: RidgeCV, args: argparse.Namespace) -> None:
    """Time-series responses: Lanczos + delays per run, outer leave-one-run-out or gapped blocks."""
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
    cv = resolve_cv(args.cv, len(runs))
    if cv == "blocks":
        if args.permutations:
            raise InputError("--permutations is available with --cv runs only (the block-permutation test assumes "
                             "r on concatenated runs); drop --permutations or use --cv runs with >= 3 runs")
        if args.inner_folds:
            raise InputError(f"--inner-folds {args.inner_folds}: with --cv blocks the inner CV is leave-one-block-out "
                             "over the training blocks; drop --inner-folds")
        estimator.set_params(standardize=True)
    _check_runs(runs, resp, subjects, args.responses, args.activations)
    designs = _subject_designs(resp, subjects, runs, args.responses, tr)
    _check_words_fit_runs(words, designs, args)
    n_voxels = resp[f"subjects/{subjects[0]}/runs/{runs[0]}/bold"].shape[1]
    scores = LayerScores(layers, subjects, n_voxels, args)
    scored_rows = _scored_rows(resp, runs, args)
    partition = vpart.BaselinePartition.from_args(act, resp, args, layers, subjects, n_voxels)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(designs) * len(layers), desc="encode layers", unit="layer")
    for signature, group_subjects in designs.items():
        Y = np.hstack([scored_rows(sub, 0, n_voxels) for sub in group_subjects])
        run_lengths = np.array([n_trs - args.trim_start - args.trim_end for _, n_trs, _, _ in signature])
        groups = np.repeat(np.arange(len(runs)), run_lengths)
        folds = groups if cv == "runs" else block_layout(run_lengths, args.cv_blocks)[2]
        logger.info("subjects %s: %d volumes x %d targets, %d runs, outer CV over %s%s", group_subjects, *Y.shape,
                    len(runs), cv, f" ({args.cv_blocks} per run, gap {args.gap_trs} volumes)" if cv == "blocks" else "")
        for li, layer in enumerate(layers):
            X = _design(act[f"layer_{layer}"][()].astype(np.float32), words, signature, args, zscore=cv == "runs")
            if cv == "runs":
                predictions, fold_alphas, _ = nested_cv_predict(estimator, X, Y, groups, progress=True)
            else:
                predictions, fold_alphas, _ = blocked_cv_predict(estimator, X, Y, run_lengths, args.cv_blocks,
                                                                 args.gap_trs, progress=True)
            p_value = block_permutation_pvalues(
                Y, predictions, run_lengths, args.permutations, args.permutation_block, args.permutation_seed
            ) if args.permutations else None
            conventions = _both_conventions(Y, predictions, folds)
            primary = "concatenated" if cv == "runs" else "fold_mean"
            scores.add(li, group_subjects, conventions[f"r_{primary}"], conventions[f"r2_{primary}"], fold_alphas,
                       p_value, conventions)
            if args.save_predictions:
                scores.add_predictions(li, group_subjects, predictions, Y, folds)
            bar.update()
        if partition is not None:  # baselines and variance partitioning (encoding/partition.py)
            partition.fit_group(
                group_subjects, signature, Y, groups,
                lambda f: _design(f, words, signature, args, zscore=cv == "runs"),
                lambda layer: _design(act[f"layer_{layer}"][()].astype(np.float32), words, signature, args,
                                      zscore=cv == "runs"),
                scores.r, scores.r2, estimator,
                nested_cv_predict if cv == "runs" else lambda est, X_, Y_, _: blocked_cv_predict(
                    est, X_, Y_, run_lengths, args.cv_blocks, args.gap_trs),
                folds=None if cv == "runs" else folds,
            )
    bar.close()
    attrs = {"tr": tr, "stimulus_kind": "words", "cv": cv, "r_convention": primary,
             "cv_blocks": args.cv_blocks if cv == "blocks" else 0, "gap_trs": args.gap_trs if cv == "blocks" else 0}
    write_scores(args, act, resp, scores, runs, attrs, partition.datasets() if partition is not None else None,
                 responses_of=scored_rows, repeats_of=_scored_repeats(resp, runs, args))


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
    vpart.note_sentence_level(args)
    word_runs, act_texts = sents.activation_sentences(act, args.activations)
    if "sentences/text" not in resp:
        raise InputError(f"{args.responses}: /sentences/text is missing (sentence-level responses file)")
    resp_texts = read_strings(resp["sentences/text"])
    sents.match_sentences(act_texts, resp_texts, args.activations, args.responses)
    passages = read_strings(resp["sentences/passage"]) if "sentences/passage" in resp else None
    folds, grouping = sents.sentence_fold_labels(len(resp_texts), args.sentence_folds, passages, args.sentence_cv,
                                                 args.cv_seed)
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
        conventions = _both_conventions(Y, predictions, folds)
        scores.add(li, subjects, conventions["r_fold_mean"], conventions["r2_fold_mean"], fold_alphas, None, conventions)
        if args.save_predictions:
            scores.add_predictions(li, subjects, predictions, Y, folds)
    attrs = {
        "tr": float(resp.attrs.get("tr", np.nan)),
        "stimulus_kind": "sentences",
        "n_sentences": len(resp_texts),
        "sentence_pooling": args.sentence_pooling,
        "sentence_folds": args.sentence_folds,
        "fold_grouping": grouping,
        "cv_seed": args.cv_seed,
        "r_convention": "fold_mean",
    }

    def table_rows(subject: str, start: int, stop: int) -> np.ndarray:
        return resp[f"subjects/{subject}/sentences/responses"][:, start:stop]

    write_scores(args, act, resp, scores, [], attrs, {"sentence_folds": folds}, responses_of=table_rows)
