"""``brainphase encode``: voxelwise ridge encoding models of every layer of one checkpoint.

Procedure (per layer; all subjects whose runs have the same volumes are fitted in one call,
their voxels stacked as targets):

1. Word features -> per-run design matrices (:func:`brainphase.encoding.features.run_design`:
   Lanczos at the run's volume times, FIR delays, trim, z-score within run); responses get
   the same trim and z-score (one affine map per voxel and run: r and R^2 of a run are
   unchanged by it, as ridge with an intercept is equivariant to it).
2. Outer CV (``--cv``; ``auto`` = ``runs`` with >= 3 runs, else ``blocks``):

   * ``runs``: leave-one-run-out; :class:`~brainphase.encoding.ridge.RidgeCV` picks alpha
     per voxel by inner run-grouped CV over the remaining runs, refits, predicts the run.
   * ``blocks`` (one story = one run): every run cut into ``--cv-blocks`` contiguous blocks;
     block ``k`` of every run held out, training rows within ``--gap-trs`` volumes of it
     dropped; alpha by inner leave-one-block-out over the training rows with the same gap
     (:mod:`brainphase.encoding.blocks`). Features are not z-scored per run here but on the
     training rows of every fit (``RidgeCV(standardize=True)``), so no statistic of a held-out
     block enters a fit.

3. Scores: ``r_concatenated`` / ``r2_concatenated`` on the held-out predictions of all outer
   folds concatenated, ``r_fold_mean`` / ``r2_fold_mean`` within each outer fold (run or
   block) and averaged. ``/r`` is ``r_concatenated`` for ``runs`` (each run is z-scored on
   its own) and ``r_fold_mean`` for ``blocks`` (concatenated r is biased negative there: a
   block's predicted mean is the other blocks' mean, anticorrelated with its own through
   slow drifts). ``alpha`` is the median over outer folds of the chosen alpha (on log10).
4. ROI means of r, the noise ceiling recomputed on the scored rows
   (:mod:`brainphase.encoding.noise_ceiling`) and r / ceiling with a floor, and optionally
   block-permutation p-values with Benjamini-Hochberg FDR over each subject's voxels.

Sentence-level responses (``responses.h5`` with ``dataset_kind = "sentences"`` or a
``/sentences`` group; activations from ``brainphase extract --sentences``) take their own
path to the same scores (:mod:`brainphase.encoding.sentences`):

1. Features = each sentence's pooled word vectors (``--sentence-pooling mean|last``,
   :func:`brainphase.encoding.features.sentence_features`), matched to ``/sentences/text``
   by text and order. No Lanczos, delays or trimming (the timing options are ignored).
2. Outer K-fold over sentences (``--sentence-folds``; ``--sentence-cv``: ``shuffled`` with
   ``--cv-seed`` = scikit-learn ``KFold(shuffle=True)``, ``contiguous``, or ``passage``
   blocks; ``auto`` = passage when the responses have ``/sentences/passage``, else
   shuffled); inside, ``RidgeCV`` picks alpha per target by leave-one-fold-out over the
   remaining folds. Features are z-scored with the mean and standard deviation of each
   training part only (``RidgeCV(standardize=True)``: outer and inner folds). All subjects
   share the sentences and are fitted in one call.
3. ``/r`` = ``r_fold_mean`` (within each outer fold, averaged; Brain-Score convention);
   ``r_concatenated`` is stored too. ``alpha`` as step 3 above.
4. Step 4 above is shared (:mod:`brainphase.encoding.output`), except permutations, which
   are refused for sentence-level data (and for ``--cv blocks``).

The group-average pseudo-subject ``average`` is scored like a subject but written under
``/group``, never beside the subjects. Output layout: ``docs/hdf5_layout.md`` (``scores``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brainphase.config import schema_default
from brainphase.encoding import features as feats
from brainphase.encoding import sentences as sents
from brainphase.encoding import partition as vpart
from brainphase.encoding.blocks import CV_SCHEMES
from brainphase.encoding.ridge import RidgeCV
from brainphase.encoding.runner import _encode_sentences, _encode_timeseries, _layer_indices
from brainphase.encoding.solver import BACKENDS
from brainphase.errors import InputError
from brainphase.io import open_h5


def _default(key: str):
    """Default of ``encode.{key}`` from config/schema.yaml (the one place defaults are stated)."""
    return schema_default(f"encode.{key}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase encode``; defaults of keys of the ``encode`` config section come from the schema."""
    parser.add_argument("--activations", required=True, type=Path, help="activations .h5 (from `brainphase extract`)")
    parser.add_argument("--responses", required=True, type=Path, help="responses.h5 (from `brainphase load-fmri`)")
    parser.add_argument("--out", required=True, type=Path, help="scores .h5 to write")
    parser.add_argument("--delays", type=int, nargs="+", default=_default("delays"), help="FIR delays in TRs")
    parser.add_argument("--alphas", type=float, nargs="+", default=_default("alphas"),
                        help="ridge penalties to try (default: config/schema.yaml encode.alphas, 10^0..10^6 in half decades)")
    parser.add_argument("--trim-start", type=int, default=_default("trim_start"), help="volumes dropped at each run's start")
    parser.add_argument("--trim-end", type=int, default=_default("trim_end"), help="volumes dropped at each run's end")
    parser.add_argument("--backend", choices=BACKENDS, default=_default("backend"), help="ridge backend (torch uses CUDA when present)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="ridge working precision")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="layer indices (default: all)")
    parser.add_argument("--subjects", nargs="+", default=None, help="subjects (default: all in responses.h5)")
    parser.add_argument("--chunk-size", type=int, default=None, help="voxels per ridge chunk (default: ~128 MiB)")
    parser.add_argument("--inner-folds", type=int, default=0,
                        help="--cv runs: inner CV folds grouped by run; sentence-level: grouped by outer fold "
                             "(0 = leave-one-group-out, the default; --cv blocks: always leave-one-block-out)")
    parser.add_argument("--cv", choices=CV_SCHEMES, default=_default("cv"),
                        help="time series: leave-one-run-out (runs), blocks inside runs with a gap (blocks), or auto "
                             "(runs with >= 3 runs, else blocks)")
    parser.add_argument("--cv-blocks", type=int, default=_default("cv_blocks"), help="--cv blocks: blocks per run")
    parser.add_argument("--gap-trs", type=int, default=_default("gap_trs"),
                        help="--cv blocks: training rows within this many volumes of a held-out block are dropped")
    parser.add_argument("--word-time", choices=feats.WORD_TIME_ANCHORS, default=_default("word_time"),
                        help="time of a word event")
    parser.add_argument("--lanczos-window", type=int, default=3, help="Lanczos window (lobes)")
    parser.add_argument("--cutoff-mult", type=float, default=1.0, help="Lanczos cutoff frequency = cutoff_mult / TR")
    parser.add_argument("--maps-dir", type=Path, default=None,
                        help="write NIfTI maps of r of each subject's best layer here")
    parser.add_argument("--permutations", type=int, default=_default("permutations"),
                        help="block permutations for voxel p-values + FDR (0 = none)")
    parser.add_argument("--permutation-block", type=int, default=10, help="block length in TRs for permutations")
    parser.add_argument("--permutation-seed", type=int, default=0, help="seed of the permutations")
    parser.add_argument("--sentence-pooling", choices=feats.SENTENCE_POOLINGS, default=_default("sentence_pooling"),
                        help="sentence-level responses: pool a sentence's word vectors by their mean or take the last word")
    parser.add_argument("--sentence-folds", type=int, default=_default("sentence_folds"),
                        help="sentence-level responses: outer CV folds")
    parser.add_argument("--sentence-cv", choices=sents.SENTENCE_CV_SCHEMES, default=_default("sentence_cv"),
                        help="sentence-level outer folds: shuffled (KFold with --cv-seed), contiguous, passage, or auto "
                             "(passage when the responses have passages, else shuffled)")
    parser.add_argument("--cv-seed", type=int, default=_default("cv_seed"), help="seed of the shuffled sentence folds")
    parser.add_argument("--save-predictions", action=argparse.BooleanOptionalAction, default=_default("save_predictions"),
                        help="store the held-out predictions and the responses they predict under /held_out")
    parser.add_argument("--ceiling-floor", type=float, default=_default("ceiling_floor"),
                        help="voxels whose noise ceiling is below this get NaN in r_normalized")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint (folder or Hub id) the activations must come from: its weights are hashed and "
                             "compared with the activations' weights_sha256 (default: not checked)")
    parser.add_argument("--checkpoint-revision", default=None, help="revision of --checkpoint (Hub ref or step{N} sub-folder)")
    vpart.add_arguments(parser)  # baselines and variance partitioning (encoding/partition.py)


# ---------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> None:
    """Run ``brainphase encode``; see the module docstring."""
    if args.permutations < 0:
        raise InputError(f"--permutations must be >= 0 (got {args.permutations})")
    if args.inner_folds < 0 or args.inner_folds == 1:
        raise InputError(f"--inner-folds must be 0 (leave-one-run-out) or >= 2 (got {args.inner_folds})")
    if not 0 <= args.ceiling_floor <= 1:
        raise InputError(f"--ceiling-floor must lie in [0, 1] (got {args.ceiling_floor})")
    if args.checkpoint is not None:  # refuse activations of other weights than the configured checkpoint
        from brainphase.verify import check_activations_checkpoint
        check_activations_checkpoint(args.activations, args.checkpoint, args.checkpoint_revision)
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
