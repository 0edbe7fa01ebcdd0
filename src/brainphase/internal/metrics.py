"""Representation metrics of one layer's word vectors (pure numpy, no files).

- :func:`twonn_dimension`: TwoNN intrinsic dimension (Facco et al. 2017). For each point
  ``mu = r2 / r1`` (distances to its second and first nearest neighbour); the largest 10% of
  ``mu`` are discarded and ``-log(1 - F(mu))`` is fitted against ``log(mu)`` by a line through
  the origin, ``F(mu_(i)) = i / N`` (the convention of scikit-dimension and dadapy). Duplicate
  points (identical vectors, e.g. one word type at the token-embedding layer) are merged first,
  since ``r1 = 0`` has no ratio.
- :func:`linear_cka`: linear centred kernel alignment (Kornblith et al. 2019) in feature space,
  ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` for column-centred ``X``, ``Y``.
- :func:`effective_rank`: ``exp(-sum p_i log p_i)``, ``p_i = s_i / sum(s)`` over the singular
  values ``s`` of the column-centred matrix (Roy & Vetterli 2007).
- :func:`anisotropy`: mean cosine similarity over the ``n (n - 1) / 2`` distinct pairs of the
  raw (uncentred) vectors, in closed form ``(||sum_i u_i||^2 - n) / (n (n - 1))`` with
  ``u_i = x_i / ||x_i||``.

:class:`CentredLayer` holds what several metrics share (the centred features, their Gram
matrix) so that :func:`layer_metrics` and :func:`cka_between` compute each product once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: share of the largest ratios mu = r2 / r1 left out of the TwoNN fit (Facco et al. 2017)
TWONN_DISCARD_FRACTION = 0.1
#: candidate neighbours per point taken from the float32 search before the exact float64 check
_NN_CANDIDATES = 4
#: rows of the distance matrix handled at once in the neighbour search
_ROW_CHUNK = 256


def centre_columns(features: np.ndarray) -> np.ndarray:
    """``features`` (n, d) minus its column means, as float64 (n, d)."""
    features = np.asarray(features, dtype=np.float64)
    return features - features.mean(axis=0, keepdims=True)


def distinct_rows(points: np.ndarray) -> np.ndarray:
    """The distinct rows of ``points`` (n, d), in their original order (m, d), m <= n.

    Rows are grouped by a hash of their bytes; only rows sharing a hash are compared in full.
    ``-0.0`` and ``0.0`` count as equal (they are at distance 0).
    """
    points = np.ascontiguousarray(np.asarray(points) + 0.0)  # + 0.0 turns -0.0 into 0.0
    if len(points) < 2:
        return points
    keys = np.fromiter((hash(row.tobytes()) for row in points), dtype=np.int64, count=len(points))
    order = np.argsort(keys, kind="stable")
    shared = np.flatnonzero(np.diff(keys[order]) == 0)  # order[i] and order[i + 1] share a key
    if len(shared) == 0:
        return points
    keep = np.ones(len(points), dtype=bool)
    starts = shared[np.r_[True, np.diff(shared) > 1]]
    for start in starts:  # each run of equal keys: keep the first occurrence of each distinct row
        stop = start + 1
        while stop < len(order) and keys[order[stop]] == keys[order[start]]:
            stop += 1
        group = np.sort(order[start:stop])
        rows = np.ascontiguousarray(points[group])
        row_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        _, first = np.unique(row_bytes, return_index=True)
        keep[group] = False
        keep[group[first]] = True
    return points[keep]


def nearest_two_distances(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each point to its nearest and second-nearest other point.

    Brute force: the squared distances come from one float32 Gram matrix of the centred
    points (a BLAS ``syrk``, n x n float32 in memory) in chunks of rows; the
    :data:`_NN_CANDIDATES` closest candidates of each point are then measured again exactly in
    float64 and sorted, so float32 rounding can only matter if it reorders a point's 2nd and
    5th neighbour.

    Parameters
    ----------
    points : ndarray, shape (n, d)
        n >= 3 points.

    Returns
    -------
    r1, r2 : ndarray, shape (n,)
        float64 distances to the first and second nearest neighbour (``r1 <= r2``).
    """
    n = len(points)
    if n < 3:
        raise ValueError(f"nearest_two_distances needs at least 3 points, got {n}")
    centred = centre_columns(points)
    centred32 = centred.astype(np.float32)
    gram = centred32 @ centred32.T  # (n, n); numpy calls syrk for a @ a.T
    squared_norms = np.einsum("ij,ij->i", centred32, centred32)
    n_candidates = min(_NN_CANDIDATES, n - 1)
    # row i becomes |x_j|^2 - 2 x_i.x_j: the squared distance less |x_i|^2 (same ranking in a row)
    gram *= -2.0
    gram += squared_norms[None, :]
    np.fill_diagonal(gram, np.inf)  # a point is not its own neighbour
    r1, r2 = np.empty(n), np.empty(n)
    distances = np.empty((min(n, _ROW_CHUNK), n_candidates))
    for start in range(0, n, _ROW_CHUNK):
        stop = min(n, start + _ROW_CHUNK)
        rows = np.arange(stop - start)
        block = gram[start:stop]  # a view: taken candidates are set to inf in place
        for k in range(n_candidates):
            candidates = np.argmin(block, axis=1)
            block[rows, candidates] = np.inf
            differences = centred[start:stop] - centred[candidates]
            distances[: stop - start, k] = np.sqrt(np.einsum("cd,cd->c", differences, differences))
        nearest = np.sort(distances[: stop - start], axis=1)
        r1[start:stop], r2[start:stop] = nearest[:, 0], nearest[:, 1]
    return r1, r2


def twonn_fit(ratios: np.ndarray, discard_fraction: float = TWONN_DISCARD_FRACTION) -> float:
    """TwoNN dimension from the ratios ``mu = r2 / r1`` (n,) of n points.

    The ``int(n * (1 - discard_fraction))`` smallest ``mu`` are kept; with
    ``F_i = i / n`` (i = 1..n_keep) the slope of ``-log(1 - F_i)`` on ``log(mu_(i))`` through
    the origin is ``sum(x y) / sum(x^2)``. NaN when fewer than 2 ratios are kept or all kept
    ratios are 1 (a lattice: every point equidistant from its two neighbours).
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if np.any(~np.isfinite(ratios)) or np.any(ratios < 1):
        raise ValueError("TwoNN ratios r2 / r1 must be finite and >= 1 (remove duplicate points first)")
    n = len(ratios)
    n_keep = int(n * (1.0 - discard_fraction))
    if n_keep < 2:
        return float("nan")
    log_ratios = np.sort(np.log(ratios))[:n_keep]
    y = -np.log(1.0 - np.arange(1, n_keep + 1) / n)
    denominator = float(log_ratios @ log_ratios)
    return float(log_ratios @ y / denominator) if denominator > 0 else float("nan")


def twonn_dimension(points: np.ndarray, discard_fraction: float = TWONN_DISCARD_FRACTION) -> tuple[float, int]:
    """TwoNN intrinsic dimension of the distinct rows of ``points`` (n, d).

    Returns
    -------
    dimension : float
        NaN when fewer than 3 distinct points remain.
    n_points : int
        Distinct points used.
    """
    unique = distinct_rows(points)
    if len(unique) < 3:
        return float("nan"), len(unique)
    r1, r2 = nearest_two_distances(unique)
    return twonn_fit(r2 / r1, discard_fraction), len(unique)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n items, in float64.

    Parameters
    ----------
    x : ndarray, shape (n, d1)
    y : ndarray, shape (n, d2)

    Returns
    -------
    float
        ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` in [0, 1]; NaN when either
        representation is constant over items.
    """
    if len(x) != len(y):
        raise ValueError(f"linear_cka: {len(x)} rows in x but {len(y)} in y")
    xc, yc = centre_columns(x), centre_columns(y)
    denominator = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(np.linalg.norm(yc.T @ xc) ** 2 / denominator) if denominator > 0 else float("nan")


def effective_rank_from_singular_values(singular_values: np.ndarray) -> float:
    """``exp(entropy)`` of ``s / sum(s)`` (Roy & Vetterli 2007); NaN when all are zero."""
    singular_values = np.clip(np.asarray(singular_values, dtype=np.float64), 0.0, None)
    total = singular_values.sum()
    if total <= 0:
        return float("nan")
    shares = singular_values[singular_values > 0] / total
    return float(np.exp(-np.sum(shares * np.log(shares))))


def effective_rank(features: np.ndarray) -> float:
    """Effective rank of the column-centred ``features`` (n, d), from its SVD."""
    return effective_rank_from_singular_values(np.linalg.svd(centre_columns(features), compute_uv=False))


def anisotropy(features: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of rows of ``features`` (n, d), n >= 2.

    Raises
    ------
    ValueError
        A row is all zeros (its cosine is undefined).
    """
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n < 2:
        raise ValueError(f"anisotropy needs at least 2 vectors, got {n}")
    norms = np.linalg.norm(features, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"{int(np.sum(norms == 0))} of {n} vectors are all zeros; their cosine is undefined")
    unit_sum = (features / norms[:, None]).sum(axis=0)
    return float((unit_sum @ unit_sum - n) / (n * (n - 1)))


@dataclass
class CentredLayer:
    """One layer's word vectors, centred, with their Gram matrix's Frobenius norm.

    Attributes
    ----------
    features32 : ndarray, shape (n, d)
        Column-centred features (centred in float64), stored as float32 for the cross products.
    gram_eigenvalues : ndarray, shape (d,), or None
        Eigenvalues of ``Xc^T Xc`` (float64 Gram): the squared singular values of ``Xc``
        (None when not asked for).
    gram_norm : float
        ``||Xc^T Xc||_F = sqrt(sum(eigenvalues^2))``.
    """

    features32: np.ndarray
    gram_eigenvalues: np.ndarray | None
    gram_norm: float

    @classmethod
    def from_features(cls, features: np.ndarray, spectrum: bool = True) -> CentredLayer:
        """Centre ``features`` (n, d); Gram matrix in float64, its eigenvalues only when
        ``spectrum`` (for the effective rank; CKA needs only the norm)."""
        centred = centre_columns(features)
        gram = centred.T @ centred
        if not spectrum:
            return cls(centred.astype(np.float32), None, float(np.linalg.norm(gram)))
        eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
        return cls(centred.astype(np.float32), eigenvalues, float(np.sqrt(np.sum(eigenvalues**2))))


def cka_between(a: CentredLayer, b: CentredLayer) -> float:
    """Linear CKA of two centred layers over the same words (float32 cross product, float64
    sums; agrees with :func:`linear_cka` to about 1e-6). NaN when either layer is constant."""
    if len(a.features32) != len(b.features32):
        raise ValueError(f"cka_between: {len(a.features32)} words versus {len(b.features32)}")
    denominator = a.gram_norm * b.gram_norm
    if denominator <= 0:
        return float("nan")
    cross = b.features32.T @ a.features32
    return float(np.square(cross, dtype=np.float64).sum() / denominator)


def layer_metrics(features: np.ndarray, centred: CentredLayer) -> dict[str, float]:
    """The metrics of one layer that need no other checkpoint.

    Parameters
    ----------
    features : ndarray, shape (n, d)
        The raw word vectors.
    centred : CentredLayer
        ``CentredLayer.from_features(features)``.

    Returns
    -------
    dict
        ``twonn_dimension``, ``twonn_points`` (distinct vectors used), ``effective_rank``,
        ``anisotropy``.
    """
    dimension, n_points = twonn_dimension(features)
    return {
        "twonn_dimension": dimension,
        "twonn_points": float(n_points),
        "effective_rank": effective_rank_from_singular_values(np.sqrt(centred.gram_eigenvalues)),
        "anisotropy": anisotropy(features),
    }
