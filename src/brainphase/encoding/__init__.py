"""Encoding stage: word features -> TR design matrices -> ridge with nested CV (over runs, or over
gapped blocks inside runs) -> held-out scores, noise ceilings on the scored rows.

``brainphase encode`` (:mod:`brainphase.encoding.cli`) writes ``scores/.../step{step}.h5``.
"""

from brainphase.encoding.features import (
    DEFAULT_DELAYS,
    DEFAULT_TRIM_END,
    DEFAULT_TRIM_START,
    delay_features,
    lanczos_downsample,
    lanczos_kernel,
    lanczos_weights,
    prepare_responses,
    run_design,
    sentence_features,
    trim,
    volume_times,
    word_times,
    zscore_columns,
)
from brainphase.encoding.blocks import block_layout, blocked_cv_predict, gapped_splits, resolve_cv
from brainphase.encoding.ridge import DEFAULT_ALPHAS, RidgeCV, nested_cv_predict
from brainphase.encoding.splits import grouped_splits
from brainphase.encoding.scoring import (
    block_permutation_pvalues,
    fdr_qvalues,
    noise_normalized,
    pearson_columns,
    r2_columns,
    roi_means,
    run_blocks,
)

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_DELAYS",
    "DEFAULT_TRIM_END",
    "DEFAULT_TRIM_START",
    "RidgeCV",
    "block_layout",
    "blocked_cv_predict",
    "block_permutation_pvalues",
    "delay_features",
    "fdr_qvalues",
    "gapped_splits",
    "grouped_splits",
    "lanczos_downsample",
    "lanczos_kernel",
    "lanczos_weights",
    "nested_cv_predict",
    "noise_normalized",
    "pearson_columns",
    "prepare_responses",
    "r2_columns",
    "resolve_cv",
    "roi_means",
    "run_blocks",
    "run_design",
    "sentence_features",
    "trim",
    "volume_times",
    "word_times",
    "zscore_columns",
]
