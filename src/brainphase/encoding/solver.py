"""Ridge numerics: one eigendecomposition per training matrix serves all alphas and targets.

For every target ``y`` and alpha the system is

    (X^T X + alpha I) w = X^T y,

the same system as himalaya's ``RidgeCV`` (penalty not scaled by the number of samples).
Per cross-validation fold, *one* eigendecomposition of the training features serves all
alphas and all targets:

* primal form (n_features <= n_samples): ``X^T X = V diag(lam) V^T``, so
  ``w = V diag(1 / (lam + alpha)) (X V)^T y``;
* kernel (dual) form (n_features > n_samples): ``X X^T = U diag(lam) U^T``, so
  ``w = X^T U diag(1 / (lam + alpha)) U^T y``.

Both are ``w = R diag(1 / (lam + alpha)) M^T y`` with ``(M, R) = (X V, V)`` or
``(U, X^T U)``, and validation predictions are ``(X_val R) diag(1 / (lam + alpha)) M^T y``.
The Gram / kernel matrix is formed and diagonalised in float64 (cheap: it does not grow
with the number of targets); everything that grows with targets runs in ``dtype``
(float32 by default) in chunks of targets, so memory is bounded whatever the voxel count.

Array backends (numpy on the CPU, torch on CUDA or CPU), the spectral factors, reusable
buffers and the validation R^2 of every alpha; used by
:class:`~brainphase.encoding.ridge.RidgeCV` and :mod:`brainphase.encoding.nested`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from brainphase.errors import InputError

#: auto chunking keeps the per-chunk working set near this many floats (128 MiB in float32)
CHUNK_BUDGET_FLOATS = 1 << 25


def auto_chunk_size(n_samples: int, n_features: int, n_alphas: int, max_val: int) -> int:
    """Targets per chunk so that a chunk's buffers hold about :data:`CHUNK_BUDGET_FLOATS` floats.

    A chunk of ``c`` targets holds its responses, a fold's training and validation rows, the
    projected targets, the stacked validation predictions of all alphas and the refit
    coefficients: ``c * (n_alphas * max_val + 2 * n_samples + 2 * max(n_features, n_samples))``.
    """
    per_target = n_alphas * max_val + 2 * n_samples + 2 * max(n_features, n_samples)
    return max(1, CHUNK_BUDGET_FLOATS // per_target)
SOLVERS = ("auto", "primal", "dual")
BACKENDS = ("numpy", "torch")


# ---------------------------------------------------------------------------- backends
class _NumpyOps:
    """Array operations on numpy (CPU)."""

    name = "numpy"
    xp = np
    float64_dtype = np.float64

    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype)

    def asarray(self, array: Any, dtype: Any = None) -> np.ndarray:
        return np.ascontiguousarray(array, dtype=self.dtype if dtype is None else dtype)

    def index(self, indices: np.ndarray) -> np.ndarray:
        return indices

    def eigh64(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.linalg.eigh(matrix.astype(np.float64, copy=False))

    def float64(self, array: np.ndarray) -> np.ndarray:
        return array.astype(np.float64, copy=False)

    def cast(self, array: np.ndarray) -> np.ndarray:
        return array.astype(self.dtype, copy=False)

    def numpy(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def empty(self, size: int) -> np.ndarray:
        return np.empty(size, dtype=self.dtype)

    def matmul(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.matmul(a, b, out=out)

    def take_rows(self, array: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        # mode="clip" avoids the buffered copy that mode="raise" makes with out= (indices are checked upstream)
        return np.take(array, rows, axis=0, out=out, mode="clip")

    def load(self, source: np.ndarray, out: np.ndarray) -> np.ndarray:
        np.copyto(out, source, casting="same_kind")
        return out

    def all_finite(self, array: np.ndarray) -> bool:
        return bool(np.isfinite(array.sum(0)).all())


class _TorchOps:
    """Array operations on torch (CUDA when available, else CPU)."""

    name = "torch"

    def __init__(self, dtype: str, device: str | None):
        import torch

        self.torch = self.xp = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = getattr(torch, np.dtype(dtype).name)
        self.float64_dtype = torch.float64

    def asarray(self, array: Any, dtype: Any = None):
        if isinstance(array, np.ndarray):
            array = np.ascontiguousarray(array)
        return self.torch.as_tensor(array, dtype=self.dtype if dtype is None else dtype, device=self.device)

    def index(self, indices: np.ndarray):
        return self.torch.as_tensor(indices, dtype=self.torch.long, device=self.device)

    def eigh64(self, matrix):
        return self.torch.linalg.eigh(matrix.double())

    def float64(self, array):
        return array.double()

    def cast(self, array):
        return array.to(self.dtype)

    def numpy(self, array) -> np.ndarray:
        return array.detach().cpu().numpy()

    def empty(self, size: int):
        return self.torch.empty(size, dtype=self.dtype, device=self.device)

    def matmul(self, a, b, out):
        return self.torch.matmul(a, b, out=out)

    def take_rows(self, array, rows, out):
        return self.torch.index_select(array, 0, rows, out=out)

    def load(self, source: np.ndarray, out):
        out.copy_(self.torch.from_numpy(np.ascontiguousarray(source)))
        return out

    def all_finite(self, array) -> bool:
        return bool(self.torch.isfinite(array.sum(0)).all())


def array_ops(backend: str, dtype: str, device: str | None):
    """The array operations of ``backend`` (``numpy`` on the CPU, ``torch`` on ``device``) in ``dtype``."""
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise InputError(f"backend 'numpy' runs on the CPU only (device={device!r}); use backend 'torch'")
        return _NumpyOps(dtype)
    if backend == "torch":
        return _TorchOps(dtype, device)
    raise InputError(f"backend {backend!r} is not one of {BACKENDS}")


# ---------------------------------------------------------------------------- core math
class Spectral:
    """One decomposition of a (centred) training matrix: ``w = R diag(1/(lam+alpha)) M^T y``.

    Attributes
    ----------
    M : array of shape (n_samples, rank)
    R : array of shape (n_features, rank)
    lam : array of shape (rank,), float64, clipped at 0
    """

    def __init__(self, X, ops, form: str):
        X64 = ops.float64(X)
        if form == "primal":
            lam, V = ops.eigh64(X64.T @ X64)
            self.R = ops.cast(V)
            self.M = X @ self.R
        else:
            lam, U = ops.eigh64(X64 @ X64.T)
            self.M = ops.cast(U)
            self.R = X.T @ self.M
        # eigenvalues of a Gram matrix are >= 0; round-off can make the smallest slightly negative
        self.lam = lam.clip(min=0)

    def shrink(self, alphas: np.ndarray, ops):
        """``1 / (lam + alpha)`` for each alpha (float64 array), shape (n_alphas, rank), working dtype."""
        alphas = ops.asarray(alphas, dtype=ops.float64_dtype)
        return ops.cast(1.0 / (self.lam[None, :] + alphas[:, None]))

    def shrink_targets(self, alphas: np.ndarray, ops, out):
        """``1 / (lam + alpha_j)`` for each target's alpha, written into ``out`` of shape (rank, n_targets)."""
        ops.xp.add(ops.cast(self.lam)[:, None], ops.asarray(alphas)[None, :], out=out)
        return ops.xp.reciprocal(out, out=out)


class Workspace:
    """Reusable flat buffers: big temporaries are allocated once per fit, not per chunk.

    (Fresh multi-MiB arrays are mmap-ed and page-faulted on every allocation, which costs
    a third of the GEMM time of a chunk.)
    """

    def __init__(self, ops):
        self.ops = ops
        self.buffers: dict[str, Any] = {}

    def get(self, name: str, shape: tuple[int, ...]):
        size = int(np.prod(shape))
        buffer = self.buffers.get(name)
        if buffer is None or buffer.shape[0] < size:
            buffer = self.buffers[name] = self.ops.empty(size)
        return buffer[:size].reshape(shape)


def solver_form(solver: str, n_samples: int, n_features: int) -> str:
    """``primal`` or ``dual``: ``solver`` itself, or for ``auto`` the dual form when features outnumber samples."""
    if solver == "auto":
        return "dual" if n_features > n_samples else "primal"
    return solver


def column_scale(X_centred):
    """Population standard deviation of each column of a centred matrix, 1 where it is 0.

    Written with elementwise operations so it is the same for numpy arrays and torch tensors
    (``torch.std`` defaults to ``ddof=1``). Shape (n_features,).
    """
    scale = ((X_centred * X_centred).mean(0)) ** 0.5
    return scale + (scale == 0)


def validation_r2(ops, hat, projected, y_val, n_alphas: int, work) -> tuple[np.ndarray, int]:
    """Validation R^2 of every alpha: predictions ``hat @ projected`` against ``y_val``.

    ``hat`` (n_alphas * n_val, k) stacks the validation rows of every alpha, ``projected``
    (k, c) is ``M^T y_train`` and ``y_val`` (n_val, c) is centred like the training targets.
    R^2 = 1 - SSE / SST per column; columns with SST == 0 score 0.

    Returns
    -------
    r2 : ndarray of shape (n_alphas, c)
    n_constant : int
        Number of constant validation columns.
    """
    width = y_val.shape[1]
    residual = ops.matmul(hat, projected, work.get("predicted", (hat.shape[0], width)))
    residual = residual.reshape(n_alphas, y_val.shape[0], width)
    residual -= y_val[None]
    residual *= residual
    centred = y_val - y_val.mean(0)
    total_ss = (centred * centred).sum(0)
    constant = total_ss == 0
    safe = total_ss + constant
    return ops.numpy(1.0 - residual.sum(1) / safe * (~constant)), int(constant.sum())
