"""Each seed's phase boundaries and their spread around the pooled boundaries (``/phases/seed_boundaries``
and ``/phases/boundary_spread`` of ``trajectory.h5``).

Every seed is segmented on its own (:func:`brainphase.phases.label.analyse_trajectory`, the
per-seed segment tables); its boundaries are the knots between consecutive segments.

Matching rule
    A seed boundary is matched to the pooled boundary (of the seed-mean curve) nearest to it in
    log10 tokens, so it lies within that pooled boundary's neighbours (between the midpoints to
    the adjacent pooled boundaries). Where one seed has several boundaries matched to the same
    pooled boundary, only the nearest counts; the others, and every boundary of a curve
    without pooled boundaries, are unmatched (``pooled_boundary`` = -1).

Spread
    Per pooled boundary, over the seeds matched to it: ``n_seeds`` and the min, median, max and
    sample standard deviation (ddof = 1; NaN with fewer than 2 seeds) of the seeds' boundary
    tokens and log10 tokens (:func:`spread`, also used by ``brainphase emergence`` for the loss at
    the boundaries).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEED_BOUNDARY_COLUMNS = ["seed", "boundary", "log10_tokens", "tokens", "step", "from_phase", "to_phase",
                         "pooled_boundary"]
STATISTICS = ("min", "median", "max", "std")


def seed_boundaries(seed_segments: pd.DataFrame, boundaries: pd.DataFrame) -> pd.DataFrame:
    """One row per boundary of each seed's own segmentation, matched to the pooled boundaries.

    Parameters
    ----------
    seed_segments : DataFrame
        Per-seed segment tables (``/phases/seed_segments``): ``seed`` (seed id), ``phase``,
        ``end_log10_tokens``, ``end_tokens``, ``end_step``, one row per segment in order.
    boundaries : DataFrame
        Pooled boundary table (``/phases/boundaries``): ``log10_tokens`` (n_pooled,); may be empty.

    Returns
    -------
    DataFrame
        Columns :data:`SEED_BOUNDARY_COLUMNS`: ``seed``, ``boundary`` (0-based within the seed),
        ``log10_tokens`` (the knot), ``tokens`` (10 ** knot), ``step`` (checkpoint nearest the
        knot), ``from_phase``, ``to_phase`` (names of the seed's segments on either side),
        ``pooled_boundary`` (index into ``boundaries``, -1 = unmatched; see the module docstring).
    """
    rows = []
    for seed, table in (seed_segments.groupby("seed", sort=True) if len(seed_segments) else ()):
        table = table.reset_index(drop=True)
        for k in range(len(table) - 1):
            rows.append({"seed": int(seed), "boundary": k, "log10_tokens": float(table.loc[k, "end_log10_tokens"]),
                         "tokens": float(table.loc[k, "end_tokens"]), "step": int(table.loc[k, "end_step"]),
                         "from_phase": str(table.loc[k, "phase"]), "to_phase": str(table.loc[k + 1, "phase"])})
    out = pd.DataFrame(rows, columns=SEED_BOUNDARY_COLUMNS[:-1])
    pooled = boundaries["log10_tokens"].to_numpy(dtype=np.float64) if len(boundaries) else np.empty(0)
    matched = np.full(len(out), -1, dtype=np.int64)
    if len(pooled) and len(out):
        distance = np.abs(out["log10_tokens"].to_numpy()[:, None] - pooled[None, :])  # (rows, n_pooled)
        nearest = distance.argmin(axis=1)
        own = distance[np.arange(len(out)), nearest]
        for (_, k), index in out.groupby([out["seed"], nearest]).groups.items():
            index = np.asarray(index)
            matched[index[np.argmin(own[index])]] = k
    out["pooled_boundary"] = matched
    return out


def spread(values: np.ndarray) -> dict:
    """``min``, ``median``, ``max``, ``std`` (ddof = 1) of the finite values; NaN where undefined."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return dict.fromkeys(STATISTICS, float("nan"))
    return {"min": float(finite.min()), "median": float(np.median(finite)), "max": float(finite.max()),
            "std": float(finite.std(ddof=1)) if len(finite) >= 2 else float("nan")}


def spread_table(matched: pd.DataFrame, n_pooled: int, columns: tuple[str, ...]) -> pd.DataFrame:
    """Per pooled boundary, the spread of ``columns`` over the seed boundaries matched to it.

    Parameters
    ----------
    matched : DataFrame
        Seed boundaries with ``pooled_boundary`` and ``seed`` (:func:`seed_boundaries`, maybe
        with more columns such as ``loss``).
    n_pooled : int
        Number of pooled boundaries (one output row each, also without any matched seed).
    columns : tuple of str
        Columns whose spread is reported as ``{column}_{min,median,max,std}``.

    Returns
    -------
    DataFrame
        ``pooled_boundary``, ``n_seeds`` and the spread columns, n_pooled rows.
    """
    rows = []
    for k in range(n_pooled):
        group = matched[matched["pooled_boundary"] == k]
        row = {"pooled_boundary": k, "n_seeds": int(group["seed"].nunique())}
        for column in columns:
            row.update({f"{column}_{name}": value for name, value in spread(group[column].to_numpy()).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=["pooled_boundary", "n_seeds"] + [f"{c}_{s}" for c in columns for s in STATISTICS])


def boundary_spread(matched: pd.DataFrame, boundaries: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Per pooled boundary: where it is, the phases on either side, and the seeds' spread around it.

    Parameters
    ----------
    matched : DataFrame
        :func:`seed_boundaries`.
    boundaries, segments : DataFrame
        Pooled boundary and segment tables (``/phases/boundaries``, ``/phases/segments``).

    Returns
    -------
    DataFrame
        One row per pooled boundary: ``pooled_boundary``, ``log10_tokens``, ``tokens`` (the pooled
        knot), ``from_phase``, ``to_phase``, ``n_seeds`` and ``tokens_*``, ``log10_tokens_*``
        (min, median, max, std over the matched seeds).
    """
    n_pooled = len(boundaries)
    table = spread_table(matched, n_pooled, ("tokens", "log10_tokens"))
    phases = segments["phase"].astype(str).to_numpy() if n_pooled else np.empty(0, dtype=str)
    table.insert(1, "log10_tokens", boundaries["log10_tokens"].to_numpy(dtype=np.float64) if n_pooled else [])
    table.insert(2, "tokens", boundaries["tokens"].to_numpy(dtype=np.float64) if n_pooled else [])
    table.insert(3, "from_phase", phases[:-1] if n_pooled else [])
    table.insert(4, "to_phase", phases[1:] if n_pooled else [])
    return table
