"""Alignment beyond low-level features: baseline encoding models and variance partitioning.

Called by ``brainphase encode`` for time-series responses (:mod:`brainphase.encoding.runner`),
once per group of subjects that share a design, after the layers are scored:

1. The baseline spaces (:mod:`brainphase.encoding.baselines`: ``--baselines`` from the words,
   plus every value column of ``--extra-regressors``) become one design matrix with the same
   Lanczos, delays, trim and z-scoring as a layer. All of them together
   (all spaces together, one penalty) are encoded like a layer
   (:class:`~brainphase.encoding.ridge.RidgeCV`, the same outer CV, held-out R^2 and r on the
   concatenated predictions). Spaces are not fitted one by one: each fit costs about as much
   as a layer's, whatever its width, because the cost grows with the voxels.
2. For the layers selected by ``--partition-layers`` (``all``, ``best`` = the layer with the
   highest mean r over the group's subjects and voxels, or a list of layer indices) the joint
   model ``[baselines, layer]`` is fitted with banded ridge
   (:class:`~brainphase.encoding.banded.BandedRidgeCV`, band-weight ratios ``--banded-ratios``
   x the alpha grid), and its held-out R^2 partitions the variance
   (:func:`~brainphase.encoding.banded.variance_partition`): ``unique_r2 = R2_joint -
   R2_baselines``, ``shared_r2 = R2_layer + R2_baselines - R2_joint``. Layers not selected
   keep NaN.

Sentence-level responses get no baselines (a word rate has no meaning there); a message says so.
Datasets written: ``docs/hdf5_layout.md``, section ``scores``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from brainphase.config import schema_default
from brainphase.encoding import baselines as base
from brainphase.encoding import features as feats
from brainphase.encoding.banded import BandedRidgeCV, ratio_grid, variance_partition
from brainphase.encoding.noise_ceiling import GROUP_SUBJECT
from brainphase.encoding.ridge import RidgeCV, nested_cv_predict
from brainphase.encoding.scoring import scores_by_fold
from brainphase.encoding.stimulus_cache import cached_word_baselines
from brainphase.errors import InputError
from brainphase.io import read_strings, string_array

logger = logging.getLogger(__name__)

NO_BASELINES = "none"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``brainphase encode`` for baselines and variance partitioning (defaults: the schema)."""
    default = lambda key: schema_default(f"encode.{key}")  # noqa: E731
    parser.add_argument("--baselines", nargs="+", choices=base.WORD_BASELINES + (NO_BASELINES,),
                        default=default("baselines"),
                        help="stimulus-only baseline spaces ('none': no baselines and no partitioning)")
    parser.add_argument("--extra-regressors", type=Path, default=None,
                        help="TSV with columns run, time and value columns (e.g. an audio envelope): more baselines")
    parser.add_argument("--frequency-source", choices=base.FREQUENCY_SOURCES, default=default("frequency_source"),
                        help="log_frequency from wordfreq, or from counts in --frequency-corpus")
    parser.add_argument("--frequency-corpus", type=Path, default=None,
                        help="text whose unigram counts give log_frequency with --frequency-source corpus")
    parser.add_argument("--frequency-language", default=default("frequency_language"), help="wordfreq language code")
    parser.add_argument("--partition-layers", nargs="+", default=_as_list(default("partition_layers")),
                        help="layers whose joint [baselines + layer] model partitions variance: all, best, or indices")
    parser.add_argument("--banded-ratios", type=float, nargs="+", default=default("banded_ratios"),
                        help="band-weight ratios gamma_baselines / gamma_layer tried by banded ridge")


def note_sentence_level(args: argparse.Namespace) -> None:
    """Say that sentence-level responses get no baselines (called by the sentence path of encode)."""
    if list(args.baselines) != [NO_BASELINES] or args.extra_regressors is not None:
        logger.info("sentence-level responses: no baselines and no variance partitioning (--baselines, "
                    "--extra-regressors and --partition-layers apply to time series only)")


def _as_list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _partition_choice(values: list[str], layers: list[int]) -> str | list[int]:
    if values in (["all"], ["best"]):
        return values[0]
    try:
        wanted = [int(v) for v in values]
    except ValueError as exc:
        raise InputError(f"--partition-layers {values}: give 'all', 'best' or layer indices") from exc
    missing = sorted(set(wanted) - set(layers))
    if missing:
        raise InputError(f"--partition-layers {missing} are not among the encoded layers {layers}")
    return wanted


class BaselinePartition:
    """Baseline scores and variance partitions, filled one group of subjects at a time.

    Parameters
    ----------
    act : h5py.File
        Activations (``/words/word`` is read).
    resp : h5py.File
        Responses; its word baselines (:mod:`brainphase.encoding.stimulus_cache`) are used when
        they are those of the activations' words.
    args : argparse.Namespace
        ``brainphase encode`` arguments (see :func:`add_arguments`).
    layers, subjects : list
        The axes of the scores.
    n_targets : int
        Voxels per subject.

    Attributes
    ----------
    names : list of str
        Baseline spaces (word spaces, then regressor columns), length n_baselines.
    r, r2 : ndarray of shape (n_subjects, n_targets), float32
        The joint baseline model (all spaces together).
    unique_r2, shared_r2, joint_r2 : ndarray of shape (n_layers, n_subjects, n_targets), float32
        NaN for layers not partitioned.
    """

    def __init__(self, act: h5py.File, resp: h5py.File, args: argparse.Namespace, layers: list[int],
                 subjects: list[str], n_targets: int):
        self.args, self.layers, self.subjects = args, layers, subjects
        self.word_spaces = [s for s in args.baselines if s != NO_BASELINES]
        if NO_BASELINES in args.baselines and len(args.baselines) > 1:
            raise InputError(f"--baselines {args.baselines}: 'none' cannot be combined with other spaces")
        if "words/word" not in act:
            raise InputError(f"{args.activations}: /words/word is missing; baselines need the stimulus words")
        words = read_strings(act["words/word"])
        self.word_features = cached_word_baselines(resp, read_strings(act["words/run"]), words, self.word_spaces,
                                                   args.frequency_source, args.frequency_language)
        if self.word_features is None:
            self.word_features = base.word_baselines(words, self.word_spaces, args.frequency_source,
                                                     args.frequency_corpus, args.frequency_language)
        self.regressors, regressor_names = (None, [])
        if args.extra_regressors is not None:
            self.regressors, regressor_names = base.read_regressors(args.extra_regressors)
        self.names = self.word_spaces + regressor_names
        self.choice = _partition_choice(args.partition_layers, layers)
        self.grid = ratio_grid(args.banded_ratios)
        shape = (len(subjects), n_targets)
        nan = lambda *lead: np.full(lead + shape, np.nan, dtype=np.float32)  # noqa: E731
        self.r, self.r2 = nan(), nan()
        self.unique_r2, self.shared_r2, self.joint_r2 = (nan(len(layers)) for _ in range(3))
        logger.info("baselines %s; variance partitioning for layers: %s", self.names, self.choice)

    @classmethod
    def from_args(cls, act: h5py.File, resp: h5py.File, args: argparse.Namespace, layers: list[int],
                  subjects: list[str], n_targets: int) -> "BaselinePartition | None":
        """The partition of this run, or None when no baselines are configured."""
        if list(args.baselines) == [NO_BASELINES] and args.extra_regressors is None:
            logger.info("no baselines (--baselines none): no variance partitioning")
            return None
        return cls(act, resp, args, layers, subjects, n_targets)

    def _baseline_design(self, signature: tuple, word_design: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
        """Per-space design matrices, each (n_kept_trs, n_columns * n_delays)."""
        designs = [word_design(self.word_features[:, [k]]) for k in range(len(self.word_spaces))]
        if self.regressors is not None:
            a = self.args
            options = dict(delays=a.delays, trim_start=a.trim_start, trim_end=a.trim_end, window=a.lanczos_window,
                           cutoff_mult=a.cutoff_mult)
            names = self.names[len(self.word_spaces):]
            per_run = [base.regressor_run_design(self.regressors, names, run, n_trs, interval, first, a.extra_regressors,
                                                 **options)
                       for run, n_trs, first, interval in signature]
            stacked = np.vstack(per_run)
            n_delays = len(a.delays)
            for k in range(len(names)):  # run_design puts delay blocks of all columns side by side
                designs.append(stacked[:, [d * len(names) + k for d in range(n_delays)]])
        return designs

    def fit_group(
        self,
        group_subjects: list[str],
        signature: tuple,
        Y: np.ndarray,
        groups: np.ndarray,
        word_design: Callable[[np.ndarray], np.ndarray],
        layer_design: Callable[[int], np.ndarray],
        layer_r: np.ndarray,
        layer_r2: np.ndarray,
        estimator: RidgeCV,
        cv_predict: Callable = nested_cv_predict,
        folds: np.ndarray | None = None,
    ) -> None:
        """Fit the baseline and joint models of one group of subjects.

        Parameters
        ----------
        group_subjects : list of str
        signature : tuple of (run, n_trs, first_volume_time, volume_interval)
        Y : ndarray of shape (n_kept_trs, len(group_subjects) * n_targets)
        groups : ndarray of shape (n_kept_trs,)
            Outer CV labels, as for the layers.
        word_design : callable
            Word features (n_words, k) -> design (n_kept_trs, k * n_delays), as for a layer.
        layer_design : callable
            Layer index -> its design matrix.
        layer_r, layer_r2 : ndarray of shape (n_layers, n_subjects, n_targets)
            The layers' scores (all subjects; this group's rows are used).
        estimator : RidgeCV
            The layers' estimator; its settings are reused.
        cv_predict : callable
            ``(estimator, X, Y, groups) -> (predictions, fold_alphas, held_out)``, the layers' outer CV.
        folds : ndarray of shape (n_kept_trs,), optional
            Outer fold of each row when the layers' primary scores are means over folds (blocked
            CV): the baseline and joint scores then use the same convention
            (:func:`brainphase.encoding.sentences.fold_mean_scores`); by default r and R^2 are
            computed on the concatenated held-out predictions, as the layers' with run CV.
        """
        def score(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            scores = scores_by_fold(Y, predictions, groups if folds is None else folds)
            convention = "concatenated" if folds is None else "fold_mean"
            return scores[f"r_{convention}"], scores[f"r2_{convention}"]

        index = [self.subjects.index(s) for s in group_subjects]
        per_subject = (len(group_subjects), -1)
        B = np.hstack(self._baseline_design(signature, word_design))
        predictions, _, _ = cv_predict(estimator, B, Y, groups)
        r_baselines, r2_baselines = score(predictions)
        self.r[index] = np.reshape(r_baselines, per_subject)
        self.r2[index] = np.reshape(r2_baselines, per_subject)
        logger.info("subjects %s: baselines %s, mean r %.3f", group_subjects, self.names, float(np.nanmean(self.r[index])))
        if self.choice == "all":
            chosen = list(range(len(self.layers)))
        elif self.choice == "best":
            means = [np.nanmean(layer_r[li, index]) if np.isfinite(layer_r[li, index]).any() else -np.inf
                     for li in range(len(self.layers))]
            chosen = [int(np.argmax(means))]
        else:
            chosen = [self.layers.index(layer) for layer in self.choice]
        params = estimator.get_params()
        if params.get("standardize"):
            # banded ridge scales each band after any standardisation, so the joint design is z-scored
            # over all rows here (feature statistics only; responses are never involved)
            logger.info("joint [baselines + layer] designs are z-scored over all rows (the layers' estimator "
                        "standardises within training folds, which would undo the band scaling)")
        for li in chosen:
            X = layer_design(self.layers[li])
            joint = np.hstack([B, X])
            if params.get("standardize"):
                joint = feats.zscore_columns(joint, name=f"layer {self.layers[li]} joint design")
            banded = BandedRidgeCV((B.shape[1], X.shape[1]), self.grid, params["alphas"], cv=params["cv"],
                                   fit_intercept=params["fit_intercept"], backend=params["backend"],
                                   device=params["device"], dtype=params["dtype"], chunk_size=params["chunk_size"])
            predictions, _, _ = cv_predict(banded, joint, Y, groups)
            parts = variance_partition(layer_r2[li, index].reshape(-1), r2_baselines, score(predictions)[1])
            for key, values in parts.items():
                getattr(self, key)[li, index] = values.reshape(per_subject)
            logger.info("layer %d: mean held-out R2 joint %.4f, unique %.4f, shared %.4f", self.layers[li],
                        *(float(np.nanmean(parts[k])) for k in ("joint_r2", "unique_r2", "shared_r2")))

    def datasets(self) -> dict[str, np.ndarray]:
        """Datasets for the scores file (names as in ``docs/hdf5_layout.md``), ROI means included."""
        from brainphase.encoding.output import read_rois
        from brainphase.encoding.scoring import roi_means

        with h5py.File(self.args.responses, "r") as resp:
            labels, names = read_rois(resp, self.r.shape[-1], self.args.responses)
        roi = lambda values: roi_means(values, labels, len(names)).astype(np.float32)  # noqa: E731
        per_subject = {  # name -> (values, subject axis)
            "baselines/roi_mean_r": (roi(self.r), 0),
            "variance_partition/roi_mean_unique_r2": (roi(self.unique_r2), 1),
            "variance_partition/roi_mean_shared_r2": (roi(self.shared_r2), 1),
            "variance_partition/roi_mean_joint_r2": (roi(self.joint_r2), 1),
            "baselines/r": (self.r, 0),
            "baselines/r2": (self.r2, 0),
            "variance_partition/unique_r2": (self.unique_r2, 1),
            "variance_partition/shared_r2": (self.shared_r2, 1),
            "variance_partition/joint_r2": (self.joint_r2, 1),
        }
        # the group-average pseudo-subject goes under /group, as the layers' scores (encoding/output.py)
        real = [i for i, s in enumerate(self.subjects) if s != GROUP_SUBJECT]
        group = self.subjects.index(GROUP_SUBJECT) if GROUP_SUBJECT in self.subjects else None
        datasets = {}
        for name, (values, axis) in per_subject.items():
            datasets[name] = np.take(values, real, axis=axis)
            if group is not None:
                datasets[f"group/{name}"] = np.take(values, group, axis=axis)
        datasets.update({
            "baselines/names": string_array(self.names),
            "variance_partition/partitioned": np.isfinite(self.joint_r2).any(axis=(1, 2)),
            "variance_partition/band_ratios": np.asarray(self.args.banded_ratios, dtype=np.float64),
        })
        return datasets
