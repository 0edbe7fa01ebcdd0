"""Knot search of a continuous piecewise-linear fit over log10(training tokens).

The model for a curve ``y`` sampled at ``x`` (log10 tokens) with ``K`` segments is

    f(x) = b0 + b1 * x + sum_{j=1}^{K-1} c_j * max(0, x - k_j)

(continuous at the knots ``k_j``; the slope of segment ``m`` is ``b1 + c_1 + ... + c_m``),
fitted by weighted least squares with weights ``1 / sigma**2``. Knots lie at or between
checkpoints; every segment spans at least ``min_points`` checkpoints (a checkpoint on a knot
counts for both sides).

For each ``K`` the knots are found by coordinate descent: each knot in turn moves to the
candidate position that minimises chi² with the others fixed (all candidates evaluated at once
by the Schur complement of the added hinge column), started from two initialisations — the
exact dynamic-programming optimum of the *discontinuous* K-segment fit, and greedy forward
addition of knots — until no knot moves, and from the best K+1 fit minus its least useful knot; each result is
then polished to the exact optimum of every knot between its two neighbouring checkpoints
(:meth:`_Fitter.polish`), and the best is kept. The test suite checks the result against pwlf's
global optimiser. :func:`brainphase.phases.segment.segment_curve` drives the search and
chooses ``K``.
"""

from __future__ import annotations

import numpy as np


def _design(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x] + [np.maximum(0.0, x - k) for k in knots])


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve a small normal-equation system; least squares when it is singular (collinear hinges)."""
    try:
        return np.linalg.solve(gram, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(gram, rhs, rcond=None)[0]


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray, knots: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted fit: coefficients and chi²."""
    design = _design(x, knots)
    weighted = design * w[:, None]
    coef = _solve(design.T @ weighted, weighted.T @ y)
    chi2 = float(np.sum((design @ coef - y) ** 2 * w))
    return coef, chi2


def _feasible(x: np.ndarray, knots: np.ndarray, min_points: int) -> bool:
    edges = np.concatenate([[x[0]], np.sort(knots), [x[-1]]])
    if (np.diff(edges) <= 0).any():
        return False
    for lo, hi in zip(edges[:-1], edges[1:]):
        if np.count_nonzero((x >= lo - 1e-12) & (x <= hi + 1e-12)) < min_points:
            return False
    return True


class _Fitter:
    """Knot search for one curve (data with NaN removed)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, min_points: int):
        self.x, self.y, self.w, self.min_points = x, y, w, min_points
        mids = (x[:-1] + x[1:]) / 2
        cands = np.sort(np.concatenate([x[1:-1], mids]))
        self.candidates = cands
        # hinge columns of every candidate, (m, n)
        self.hinges = np.maximum(0.0, x[None, :] - cands[:, None])
        self.weighted_hinges = self.hinges * w[None, :]
        self.hinge_norms = np.einsum("mn,mn->m", self.weighted_hinges, self.hinges)
        self._projections: dict[bytes, tuple] = {}  # fixed knots -> what gains() needs that does not depend on y

    def _projection(self, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Design, (X'WX)^-1 and the hinge denominators of the model with knots ``fixed`` (cached: they
        depend only on x, w and the knots, so resampled curves on the same checkpoints share them)."""
        key = np.asarray(fixed, dtype=np.float64).tobytes()
        if key not in self._projections:
            if len(self._projections) > 4096:
                self._projections.clear()
            design = _design(self.x, fixed)
            gram = design.T @ (design * self.w[:, None])
            try:
                gram_inv = np.linalg.inv(gram)
            except np.linalg.LinAlgError:
                gram_inv = np.linalg.pinv(gram)
            cross = self.weighted_hinges @ design  # (m, p)
            den = self.hinge_norms - np.einsum("mp,pq,mq->m", cross, gram_inv, cross)
            self._projections[key] = (design, gram_inv, den)
        return self._projections[key]

    def chi2(self, knots: np.ndarray) -> float:
        return _wls(self.x, self.y, self.w, np.sort(knots))[1]

    def gains(self, fixed: np.ndarray) -> np.ndarray:
        """Chi² decrease from adding each candidate hinge to the model with knots ``fixed``."""
        y, w = self.y, self.w
        design, gram_inv, den = self._projection(fixed)
        coef = gram_inv @ (design.T @ (w * y))
        resid = y - design @ coef
        num = (self.weighted_hinges @ resid) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(den > 1e-12 * np.maximum(1.0, np.abs(num)), num / den, 0.0)
        return gain

    def feasible_mask(self, fixed: np.ndarray) -> np.ndarray:
        """Candidates that, added to the (feasible) knots ``fixed``, keep every segment >= min_points."""
        x, cands, eps = self.x, self.candidates, 1e-12
        edges = np.concatenate([[x[0]], np.sort(fixed), [x[-1]]])
        slot = np.clip(np.searchsorted(edges, cands, side="right") - 1, 0, len(edges) - 2)
        lo, hi = edges[slot], edges[slot + 1]
        upto = np.searchsorted(x, cands + eps, side="right")   # points <= c
        from_c = np.searchsorted(x, cands - eps, side="left")   # points < c
        left = upto - np.searchsorted(x, lo - eps, side="left")
        right = np.searchsorted(x, hi + eps, side="right") - from_c
        return (cands > lo + eps) & (cands < hi - eps) & (left >= self.min_points) & (right >= self.min_points)

    def best_addition(self, fixed: np.ndarray) -> float | None:
        gain = self.gains(fixed)
        gain[~self.feasible_mask(fixed)] = -np.inf
        if not np.isfinite(gain).any():
            return None
        return float(self.candidates[int(np.argmax(gain))])

    def refine(self, knots: np.ndarray, max_sweeps: int = 20) -> np.ndarray:
        """Coordinate descent: move each knot to its best candidate with the others fixed."""
        knots = np.sort(np.asarray(knots, dtype=float))
        for _ in range(max_sweeps):
            moved = False
            for j in range(len(knots)):
                others = np.delete(knots, j)
                gain = self.gains(others)
                gain[~self.feasible_mask(others)] = -np.inf
                best = int(np.argmax(gain))
                current = np.argmin(np.abs(self.candidates - knots[j]))
                if np.isfinite(gain[best]) and gain[best] > gain[current] + 1e-9 * max(1.0, abs(gain[current])):
                    knots[j] = self.candidates[best]
                    moved = True
            knots = np.sort(knots)
            if not moved:
                break
        return knots

    def polish(self, knots: np.ndarray, sweeps: int = 3) -> np.ndarray:
        """Move each knot to its exact optimum between the two checkpoints around it.

        With the other knots fixed and knot ``b`` in ``[x_i, x_{i+1}]``, the hinge
        ``(x - b)+`` equals ``(x - b) * I`` with ``I = [x >= x_{i+1}]``, so the model is linear in
        ``(c, d) = (c, -c b)`` over the columns ``x * I`` and ``I``; the unconstrained fit gives
        ``b = -d / c``, the optimum when it lies in the interval (Hudson 1966). Intervals on both
        sides of a knot that sits on a checkpoint are tried.
        """
        x, y, w = self.x, self.y, self.w
        knots = np.sort(np.asarray(knots, dtype=float))
        best_chi2 = self.chi2(knots)
        for _ in range(sweeps):
            moved = False
            for j in range(len(knots)):
                others = np.delete(knots, j)
                base = _design(x, others)
                right = np.searchsorted(x, knots[j], side="left")
                for i in {max(right - 1, 0), min(right, len(x) - 2)}:
                    lo, hi = x[i], x[i + 1]
                    step = (x >= hi).astype(float)
                    design = np.column_stack([base, x * step, step])
                    coef = np.linalg.lstsq(design * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
                    c, d = coef[-2], coef[-1]
                    if abs(c) < 1e-15:
                        continue
                    b = -d / c
                    if not lo < b < hi:
                        continue
                    trial = np.sort(np.append(others, b))
                    value = self.chi2(trial)
                    if value < best_chi2 - 1e-12 and _feasible(x, trial, self.min_points):
                        knots, best_chi2, moved = trial, value, True
                        break
            if not moved:
                break
        return knots

    def dp_tables(self, max_segments: int) -> None:
        """Exact optimal *discontinuous* fits (a line per segment) for 1..max_segments, by dynamic programming."""
        x, y, w, n, mp = self.x, self.y, self.w, len(self.x), self.min_points
        # cumulative weighted sums give every segment's line fit over rows [i, j) at once
        cums = [np.concatenate([[0.0], np.cumsum(v)]) for v in (w, w * x, w * x * x, w * y, w * x * y, w * y * y)]
        i_idx, j_idx = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        sw, sx, sxx, sy, sxy, syy = (c[j_idx] - c[i_idx] for c in cums)
        with np.errstate(divide="ignore", invalid="ignore"):
            var_x = sxx - sx ** 2 / sw
            cov = sxy - sx * sy / sw
            cost = syy - sy ** 2 / sw - np.where(var_x > 1e-12, cov ** 2 / var_x, 0.0)
        cost[(j_idx - i_idx) < max(mp - 1, 2)] = np.inf
        cost = np.where(np.isfinite(cost), np.maximum(cost, 0.0), np.inf)
        best = np.full((max_segments + 1, n + 1), np.inf)
        self.dp_arg = np.zeros((max_segments + 1, n + 1), dtype=int)
        best[0, 0] = 0.0
        for k in range(1, max_segments + 1):
            total = best[k - 1][:, None] + cost  # (start i, end j)
            self.dp_arg[k] = np.argmin(total, axis=0)
            best[k] = total[self.dp_arg[k], np.arange(n + 1)]
        self.dp_best = best

    def dp_init(self, n_segments: int) -> np.ndarray | None:
        """Knots (half-way between segments) of the optimal discontinuous fit with ``n_segments``."""
        x, n = self.x, len(self.x)
        if not np.isfinite(self.dp_best[n_segments, n]):
            return None
        starts, end = [], n
        for k in range(n_segments, 0, -1):
            end = self.dp_arg[k, end]
            starts.append(end)
        return np.array([(x[i - 1] + x[i]) / 2 for i in sorted(starts)[1:]])


_FITTERS: dict[bytes, _Fitter] = {}


def _fitter(x: np.ndarray, w: np.ndarray, min_points: int) -> _Fitter:
    """A :class:`_Fitter` for these checkpoints and weights, reused across curves (bootstrap resamples)."""
    key = x.tobytes() + w.tobytes() + bytes([min_points % 256])
    if key not in _FITTERS:
        if len(_FITTERS) > 8:
            _FITTERS.clear()
        _FITTERS[key] = _Fitter(x, np.zeros_like(x), w, min_points)
    return _FITTERS[key]
