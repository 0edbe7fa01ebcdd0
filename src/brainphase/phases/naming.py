"""Name the segments of an alignment curve with the phases of Nakagi et al. (2025).

Nakagi et al. (2025, arXiv:2502.20779) describe three phases of brain alignment over training:
*alignment* (alignment rises), *detachment* (it falls or stalls after a rise) and *realignment*
(it rises again). Operationally (:func:`name_segments`), each segment of the continuous
piecewise-linear fit of :mod:`brainphase.phases.segment` is *rising*, *falling* or *flat* by the
95 % confidence interval of its slope (per decade of tokens), and the sequence is read in order:

- before any rise: flat = ``initial plateau``, falling = ``initial decline``;
- rising = ``alignment`` until the first segment that is not rising;
- flat or falling after alignment = ``detachment``; rising after a detachment = ``realignment``;
- after realignment: flat = ``plateau``, falling = ``second detachment``, and a rise after
  either = ``second realignment`` (then ``third ...``), instead of folding them into realignment.

Task metrics never enter the segmentation: :func:`task_changes` reports the change of a task
metric over each segment beside it, with its CI over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from brainphase.phases.segment import Segmentation, flat_segment_test

#: phase names; a checkpoint's label is the index of its phase's name here (-1 = not labelled)
LABEL_NAMES = ("alignment", "detachment", "realignment", "plateau", "second detachment", "second realignment",
               "third detachment", "third realignment", "initial plateau", "initial decline", "later change")
UNDETERMINED = -1
#: two-sided confidence level of every interval
CONFIDENCE = 0.95
_ORDINALS = ("", "second ", "third ")


def _ordinal(count: int, name: str) -> str:
    return f"{_ORDINALS[count]}{name}" if count < len(_ORDINALS) else "later change"


def slope_trend(slope: float, se: float, z: float) -> str:
    """``rising`` / ``falling`` / ``flat`` from a slope and its standard error (CI ``slope ± z se``)."""
    if slope - z * se > 0:
        return "rising"
    if slope + z * se < 0:
        return "falling"
    return "flat"


def name_segments(trends: list[str]) -> list[str]:
    """Map the trend of each segment, in order, to a phase name (see the module docstring).

    Parameters
    ----------
    trends : list of str
        ``rising``, ``falling`` or ``flat`` per segment, in training order.

    Returns
    -------
    list of str
        One name of :data:`LABEL_NAMES` per segment.
    """
    names: list[str] = []
    state, n_detachments, n_realignments = "before", 0, 0
    for trend in trends:
        rising = trend == "rising"
        if state == "before":
            name = {"rising": "alignment", "flat": "initial plateau", "falling": "initial decline"}[trend]
            state = "rising" if rising else "before"
        elif rising and state == "rising":
            name = names[-1]
        elif rising:  # after a detachment or a plateau
            name, state = _ordinal(n_realignments, "realignment"), "rising"
            n_realignments += 1
        elif state == "detached":
            name = names[-1]
        elif state == "plateau" and trend == "flat":
            name = "plateau"
        elif state == "rising" and n_realignments and trend == "flat":
            name, state = "plateau", "plateau"
        else:  # falling after any rise or plateau, or flat after the first alignment
            name, state = _ordinal(n_detachments, "detachment"), "detached"
            n_detachments += 1
        names.append(name)
    return names


def segment_labels(x: np.ndarray, knots: np.ndarray, names: list[str]) -> np.ndarray:
    """Label code (index into :data:`LABEL_NAMES`) of each checkpoint; a checkpoint on a knot goes to the earlier segment."""
    segment = np.searchsorted(np.sort(knots), x, side="left")
    return np.array([LABEL_NAMES.index(names[k]) for k in segment], dtype=np.int8)


def _segment_trends(seg: Segmentation, z: float, x: np.ndarray | None = None, y: np.ndarray | None = None,
                    sigma: np.ndarray | None = None, min_points: int = 3) -> list[str]:
    """Trend of each segment.

    With the data given: flat when the likelihood-ratio test with the segment's knots re-fitted
    does not reject a zero slope at the 95 % level (:func:`~brainphase.phases.segment.flat_segment_test`,
    chi²(1)), else rising or falling by the sign of the slope. Without (the bootstrap, where
    speed matters): by the 95 % Wald interval of the slope given the knots.
    """
    if x is None:
        return [slope_trend(s, e, z) for s, e in zip(seg.slopes, seg.slope_se_fixed_knots)]
    critical = stats.chi2.ppf(CONFIDENCE, 1)
    return ["flat" if flat_segment_test(x, y, sigma, seg.knots, m, min_points) < critical
            else ("rising" if seg.slopes[m] > 0 else "falling") for m in range(seg.n_segments)]


def _change(x: np.ndarray, values: np.ndarray, lo: float, hi: float) -> float:
    """Change of one seed's metric over [lo, hi]: OLS slope x length, or interpolated difference with < 3 points."""
    inside = (x >= lo - 1e-12) & (x <= hi + 1e-12) & np.isfinite(values)
    if inside.sum() >= 3:
        slope = np.polyfit(x[inside], values[inside], 1)[0]
        return float(slope * (hi - lo))
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return float("nan")
    return float(np.interp(hi, x[ok], values[ok]) - np.interp(lo, x[ok], values[ok]))


def task_changes(x: np.ndarray, edges: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Change of a task metric over each segment, with its CI over seeds.

    Parameters
    ----------
    x : ndarray, shape (n_steps,)
    edges : ndarray, shape (n_segments + 1,)
        Segment edges in log10 tokens (first checkpoint, knots, last checkpoint).
    values : ndarray, shape (n_seeds, n_steps)

    Returns
    -------
    DataFrame
        One row per segment: ``change`` (mean over seeds), ``change_ci_low``, ``change_ci_high``
        (t interval over seeds; NaN with one seed), ``trend`` (``rising``/``falling``/``stagnant``
        when the CI excludes or includes 0; ``stagnant`` with no CI only when the change is 0).
    """
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        per_seed = np.array([_change(x, v, lo, hi) for v in values])
        per_seed = per_seed[np.isfinite(per_seed)]
        mean = float(per_seed.mean()) if len(per_seed) else float("nan")
        if len(per_seed) >= 2:
            half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(per_seed) - 1) * per_seed.std(ddof=1) / np.sqrt(len(per_seed))
            low, high = mean - half, mean + half
        else:
            low = high = float("nan")
        tiny = 1e-12 * max(1.0, abs(mean))  # identical seeds: a zero-width CI around rounding error
        if np.isfinite(low) and low > tiny:
            trend = "rising"
        elif np.isfinite(high) and high < -tiny:
            trend = "falling"
        elif np.isfinite(low) or mean == 0:
            trend = "stagnant"
        else:
            trend = "unknown"
        rows.append({"change": mean, "change_ci_low": low, "change_ci_high": high, "trend": trend})
    return pd.DataFrame(rows)
