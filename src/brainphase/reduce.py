"""Reduced activation storage: a per-layer Gaussian random projection (``extract.reduce``).

All-layer activations of thousands of checkpoints at full width outgrow any disk
(``brainphase plan`` prints the numbers). With ``extract.reduce: random_projection`` the
activations are stored as ``h @ R`` with

    R[i, j] ~ N(0, 1 / reduce_dim),  R of shape (width, reduce_dim),

drawn by :func:`projection_matrix` from ``numpy.random.default_rng([PROJECTION_SEED, width])``:
the documented fixed seed and the layer width only. Every layer, checkpoint, seed and job of a
model therefore uses the same matrix, with no file shared between jobs and no dependency of one
checkpoint on another (a PCA fitted on a first checkpoint would need both), and two models of the
same width share it too.

Why it is safe for what is computed downstream: by the Johnson-Lindenstrauss lemma the
squared distances (and norms, and inner products up to the same relative error) between any
``n`` word vectors are kept within a factor ``1 +- eps`` with high probability once
``reduce_dim >= 8 ln(n) / eps^2`` (Dasgupta & Gupta 2003, "An elementary proof of a theorem of
Johnson and Lindenstrauss"); and a linear encoding model of ``h`` is a linear model of ``h @ R``
as long as ``R`` keeps the directions the model uses, which it does for the low effective
dimension of language-model hidden states (tests/test_reduce.py: planted ridge R^2 and
pairwise distances). The projection is no substitute for full width when a metric needs exact
geometry (e.g. per-dimension statistics): keep ``reduce: none`` for those.
"""

from __future__ import annotations

import numpy as np

from brainphase.errors import InputError

#: ``extract.reduce`` values: store full width, or a Gaussian random projection to ``reduce_dim``.
REDUCTIONS = ("none", "random_projection")
#: Seed of every projection matrix (with the layer width: ``default_rng([PROJECTION_SEED, width])``).
PROJECTION_SEED = 20_240_614


def check_reduction(reduce: str, reduce_dim: int, width: int) -> None:
    """Refuse an unknown reduction, or a ``reduce_dim`` that would not reduce ``width``.

    Raises
    ------
    InputError
        ``reduce`` not in :data:`REDUCTIONS`; ``reduce_dim < 1``; or ``reduce_dim >= width``
        with ``random_projection`` (a projection to as many or more dimensions stores more than
        the activations themselves).
    """
    if reduce not in REDUCTIONS:
        raise InputError(f"--reduce {reduce!r}: choose one of {', '.join(REDUCTIONS)}")
    if reduce == "random_projection" and not 1 <= reduce_dim < width:
        raise InputError(
            f"--reduce-dim {reduce_dim} with --reduce random_projection: the model's layers are {width} wide, so "
            f"reduce_dim must lie in 1..{width - 1}; lower extract.reduce_dim, or set extract.reduce: none to store "
            "the full width")


def projection_matrix(width: int, reduce_dim: int) -> np.ndarray:
    """The projection of every ``width``-wide layer to ``reduce_dim`` dimensions.

    Parameters
    ----------
    width : int
        Layer width (``d_model``).
    reduce_dim : int
        Stored dimensions, ``1 <= reduce_dim < width``.

    Returns
    -------
    ndarray of shape (width, reduce_dim), float32
        Entries i.i.d. N(0, 1 / reduce_dim), so that ``E ||h @ R||^2 = ||h||^2``; the same
        matrix for the same ``(width, reduce_dim)`` in every process.
    """
    check_reduction("random_projection", reduce_dim, width)
    rng = np.random.default_rng([PROJECTION_SEED, width])
    return (rng.standard_normal((width, reduce_dim)) / np.sqrt(reduce_dim)).astype(np.float32)


def stored_width(reduce: str, reduce_dim: int, width: int) -> int:
    """Columns stored per layer: ``reduce_dim`` under ``random_projection``, else ``width``."""
    return reduce_dim if reduce == "random_projection" else width


def reduction_attrs(reduce: str, reduce_dim: int) -> dict:
    """Root attributes of an activations file: ``reduce``, ``reduce_dim`` (0 when not reduced) and
    ``projection_seed`` (-1 when not reduced)."""
    projected = reduce == "random_projection"
    return {"reduce": reduce, "reduce_dim": int(reduce_dim) if projected else 0,
            "projection_seed": PROJECTION_SEED if projected else -1}
