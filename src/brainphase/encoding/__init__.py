"""Encoding stage: word features -> TR design matrices -> run-grouped ridge -> held-out scores.

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
from brainphase.encoding.ridge import DEFAULT_ALPHAS, RidgeCV, grouped_splits, nested_cv_predict
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
    "block_permutation_pvalues",
    "delay_features",
    "fdr_qvalues",
    "grouped_splits",
    "lanczos_downsample",
    "lanczos_kernel",
    "lanczos_weights",
    "nested_cv_predict",
    "noise_normalized",
    "pearson_columns",
    "prepare_responses",
    "r2_columns",
    "roi_means",
    "run_blocks",
    "run_design",
    "sentence_features",
    "trim",
    "volume_times",
    "word_times",
    "zscore_columns",
]
