"""Internal representation metrics per layer and checkpoint, from the activation files.

:mod:`brainphase.internal.metrics` holds the numerics (TwoNN intrinsic dimension, linear CKA,
effective rank, anisotropy); :mod:`brainphase.internal.cli` the ``brainphase internal`` command
that writes ``internal/{model}/seed{seed}/{chunk}/step{step}.h5`` (docs/hdf5_layout.md).
"""

from brainphase.internal.metrics import (
    anisotropy,
    effective_rank,
    effective_rank_from_singular_values,
    linear_cka,
    twonn_dimension,
)

__all__ = ["anisotropy", "effective_rank", "effective_rank_from_singular_values", "linear_cka", "twonn_dimension"]
