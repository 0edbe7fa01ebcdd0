"""How sudden a rise is: the sharpness measure and the mirage check.

**Sharpness** of a curve ``y`` over training tokens is the largest rise within any window of
``window_decades`` (default half a decade) of tokens, divided by the total rise:

    sharpness = max_a [f(a + w) - f(a)] / max_{x1 < x2} [f(x2) - f(x1)]

where ``f`` is the curve linearly interpolated over log10 tokens (step 0 placed by
:func:`brainphase.phases.segment.log_token_axis`, one log-spacing before the first positive
checkpoint) and ``w = window_decades``. The total rise is the largest rise over the whole run
(the net rise for a monotone curve). Sharpness lies in [0, 1]: 1 when all of the rise happens
within half a decade, about ``w / span`` for a rise spread evenly over ``span`` decades. For a
logistic curve in log10 tokens with scale ``s`` decades it is ``tanh(w / (4 s))``: 0.5 for a
10-90 % rise over about one decade. Between checkpoints the curve is taken as linear, so a jump
between two checkpoints ``g`` decades apart cannot score above ``w / g`` when ``g > w``:
the measure is limited by the checkpoint schedule. It is NaN for a curve that never rises.

**Mirage check** (Schaeffer et al. 2023): a discontinuous metric (exact match, thresholded
accuracy) can turn smooth progress into an apparent jump. The check computes the sharpness of
the discontinuous and of the continuous metric of one task and states whether the jump
survives the continuous metric (:func:`mirage_check`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainphase.config import schema_default
from brainphase.errors import InputError
from brainphase.phases.segment import log_token_axis

# defaults are stated once, in config/schema.yaml (section `emergence`)
#: width of the sharpness window, decades of tokens
DEFAULT_WINDOW_DECADES = schema_default("emergence.window_decades")
#: a curve is "sharp" when at least this share of its total rise happens within one window
DEFAULT_SHARP_THRESHOLD = schema_default("emergence.sharp_threshold")

SHARP_IN_BOTH = "sharp in both"
SHARP_ONLY_DISCONTINUOUS = "sharp only in the discontinuous metric (likely a metric artefact)"
SHARP_ONLY_CONTINUOUS = "sharp only in the continuous metric"
SMOOTH = "smooth"


def _curve(tokens, curve, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = log_token_axis(tokens)
    y = np.asarray(curve, dtype=np.float64)
    if y.shape != x.shape:
        raise InputError(f"{name} must have shape (n_steps,) = {x.shape} like tokens, got {y.shape}; "
                         "pass one curve (e.g. the mean over seeds)")
    keep = np.isfinite(y)
    if keep.sum() < 2:
        raise InputError(f"{name} has fewer than 2 finite checkpoints; sharpness needs a curve")
    return x[keep], y[keep]


def sharpness(tokens, curve, window_decades: float = DEFAULT_WINDOW_DECADES) -> float:
    """Largest rise over any window of ``window_decades`` of tokens relative to the total rise.

    Parameters
    ----------
    tokens : array_like of int, shape (n_steps,)
        Tokens seen at each checkpoint, strictly increasing, >= 0.
    curve : array_like of float, shape (n_steps,)
        The metric at each checkpoint (higher is better; negate a loss). NaN checkpoints are
        dropped.
    window_decades : float
        Window width in decades of tokens; must be shorter than the span of the curve.

    Returns
    -------
    float
        In [0, 1]; NaN when the curve never rises.
    """
    x, y = _curve(tokens, curve, "curve")
    if not window_decades > 0:
        raise InputError(f"window_decades must be > 0, got {window_decades}")
    span = x[-1] - x[0]
    if span <= window_decades:
        raise InputError(f"the finite checkpoints span {span:.2f} decades of tokens, not more than the "
                         f"{window_decades} decade window: sharpness cannot tell sudden from gradual; "
                         "use more checkpoints or a smaller window_decades")
    # largest rise over the whole run: the value minus the running minimum before it
    total_rise = float(np.max(y - np.minimum.accumulate(y)))
    if total_rise <= 0:
        return float("nan")
    # f(a + w) - f(a) is piecewise linear in a, so its maximum lies where a or a + w is a checkpoint
    starts = np.concatenate([x, x - window_decades])
    starts = starts[(starts >= x[0]) & (starts <= x[-1] - window_decades)]
    window_rise = np.interp(starts + window_decades, x, y) - np.interp(starts, x, y)
    return float(min(np.max(window_rise) / total_rise, 1.0))


@dataclass(frozen=True)
class MirageCheck:
    """Result of :func:`mirage_check`.

    Attributes
    ----------
    verdict : str
        One of :data:`SHARP_IN_BOTH`, :data:`SHARP_ONLY_DISCONTINUOUS`,
        :data:`SHARP_ONLY_CONTINUOUS`, :data:`SMOOTH`.
    sharpness_discontinuous, sharpness_continuous : float
        :func:`sharpness` of each metric (NaN, counted as not sharp, for a curve that never rises).
    sharp_threshold : float
    """

    verdict: str
    sharpness_discontinuous: float
    sharpness_continuous: float
    sharp_threshold: float


def mirage_check(tokens, discontinuous, continuous, sharp_threshold: float = DEFAULT_SHARP_THRESHOLD,
                 window_decades: float = DEFAULT_WINDOW_DECADES) -> MirageCheck:
    """Does a jump in a discontinuous metric survive the task's continuous metric?

    Parameters
    ----------
    tokens : array_like of int, shape (n_steps,)
    discontinuous : array_like of float, shape (n_steps,)
        E.g. exact match or thresholded accuracy, averaged over seeds.
    continuous : array_like of float, shape (n_steps,)
        E.g. the probability of the correct answer (higher is better).
    sharp_threshold : float
        A curve with :func:`sharpness` >= this is called sharp, in (0, 1].
    window_decades : float

    Returns
    -------
    MirageCheck
    """
    if not 0 < sharp_threshold <= 1:
        raise InputError(f"sharp_threshold must lie in (0, 1], got {sharp_threshold}")
    s_discontinuous = sharpness(tokens, discontinuous, window_decades)
    s_continuous = sharpness(tokens, continuous, window_decades)
    sharp_d = bool(s_discontinuous >= sharp_threshold)  # NaN compares False: no rise is not sharp
    sharp_c = bool(s_continuous >= sharp_threshold)
    if sharp_d and sharp_c:
        verdict = SHARP_IN_BOTH
    elif sharp_d:
        verdict = SHARP_ONLY_DISCONTINUOUS
    elif sharp_c:
        verdict = SHARP_ONLY_CONTINUOUS
    else:
        verdict = SMOOTH
    return MirageCheck(verdict=verdict, sharpness_discontinuous=s_discontinuous,
                       sharpness_continuous=s_continuous, sharp_threshold=float(sharp_threshold))
