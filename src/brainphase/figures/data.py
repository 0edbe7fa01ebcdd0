"""What the figures read from ``trajectory.h5`` (layout: ``docs/hdf5_layout.md``).

:func:`load_figure_data` reads the file with the phases stage's own reader
(:func:`brainphase.phases.read.load_trajectory`) and keeps what the figures draw in a
:class:`FigureData`, with checkpoint positions on the token axis and the phase tables as
plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainphase.errors import InputError

#: optional alternative alignment curves (S, T) under ``/brain``, drawn thin beside the main one
ALTERNATIVE_CURVES = {
    "alignment_heldout_layer": "held-out-chosen layer",
    "alignment_layer_mean": "mean over layers",
    "alignment_beyond_baselines": "beyond baselines",
    "alignment_group": "group-average subject",
}


@dataclass
class FigureData:
    """Contents of ``trajectory.h5`` that the figures draw.

    Attributes
    ----------
    path : Path
    model_id : str
    simulated : bool
        Root attribute ``simulated`` (the fMRI was generated, not measured).
    seeds : ndarray of int, shape (n_seeds,)
    steps, tokens : ndarray of int, shape (n_steps,)
    layers : ndarray of int, shape (n_layers,)
    alignment : ndarray, shape (n_seeds, n_steps)
        ``/brain/alignment``, the curve the phases are computed on (NaN = gap).
    measure : str
        Its ``measure`` attribute (what the number is).
    alternatives : dict of str -> ndarray, shape (n_seeds, n_steps)
        The optional curves of :data:`ALTERNATIVE_CURVES` present in the file.
    alignment_layer : ndarray, shape (n_seeds, n_steps, n_layers), or None
    roi_names : list of str
    alignment_roi : ndarray, shape (n_seeds, n_steps, n_rois), or None
    roi_mean_r : ndarray, shape (n_seeds, n_steps, n_layers, n_subjects, n_rois), or None
    metrics : dict of str -> ndarray, shape (n_seeds, n_steps)
        Task metrics ``"{task}/{metric}"`` (plain names in older files and tables).
    metric_kinds : dict of str -> str
        ``"continuous"`` or ``"discontinuous"`` (attribute ``kind``).
    x : ndarray, shape (n_steps,)
        Position of each checkpoint on the token axis: ``/phases/x`` (log10 tokens; step 0
        one log-spacing before the first positive checkpoint), see :func:`token_positions`.
    status, summary : str
        ``/phases`` attributes (``status`` is ``"labelled"`` or ``"skipped: <reason>"``).
    labels : ndarray of int, shape (n_steps,)
        Phase code per checkpoint, -1 = not labelled.
    label_names : list of str
        Names of codes 0..K-1.
    fitted : ndarray, shape (n_steps,)
        Piecewise-linear fit at each checkpoint (NaN where absent).
    segments : dict of str -> ndarray, shape (n_segments,)
        ``/phases/segments`` columns (task changes as ``task/{metric}/change`` etc.).
    boundaries : dict of str -> ndarray, shape (n_segments - 1,)
        ``/phases/boundaries`` columns (``tokens``, ``log10_tokens``, ``step``, ``tokens_ci_low``, ``tokens_ci_high``).
    has_voxel_maps : bool
        ``/brain/voxel_r`` and ``/mask/mask`` are both present.
    voxel_r : ndarray, shape (n_steps, n_voxels), or None
        Seed- and subject-mean r per voxel of the held-out-chosen layer.
    mask : ndarray of bool, shape (X, Y, Z), or None
        Voxel ``v`` is the ``v``-th true entry of ``mask`` in C order.
    affine : ndarray, shape (4, 4), or None
    metric_families : dict of str -> str
        Task family of each metric (``""`` when the file gives none).
    metric_higher_is_better : dict of str -> bool
    internal_metrics : dict of str -> ndarray, shape (n_seeds, n_steps, n_internal_layers)
        ``/internal/{name}`` (empty dict when the trajectory has none).
    internal_layers : ndarray of int, shape (n_internal_layers,)
    internal_descriptions : dict of str -> str
    """

    path: Path
    model_id: str
    simulated: bool
    seeds: np.ndarray
    steps: np.ndarray
    tokens: np.ndarray
    layers: np.ndarray
    alignment: np.ndarray
    measure: str
    alternatives: dict[str, np.ndarray]
    alignment_layer: np.ndarray | None
    metrics: dict[str, np.ndarray]
    metric_kinds: dict[str, str]
    x: np.ndarray
    status: str
    summary: str
    labels: np.ndarray
    label_names: list[str]
    fitted: np.ndarray
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    boundaries: dict[str, np.ndarray] = field(default_factory=dict)
    roi_names: list[str] = field(default_factory=list)
    alignment_roi: np.ndarray | None = None
    roi_mean_r: np.ndarray | None = None
    has_voxel_maps: bool = False
    voxel_r: np.ndarray | None = None
    mask: np.ndarray | None = None
    affine: np.ndarray | None = None
    metric_families: dict[str, str] = field(default_factory=dict)
    metric_higher_is_better: dict[str, bool] = field(default_factory=dict)
    internal_metrics: dict[str, np.ndarray] = field(default_factory=dict)
    internal_layers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    internal_descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Phases were labelled (status not "skipped", at least 4 checkpoints, some label set)."""
        return (not self.status.startswith("skipped") and len(self.steps) >= 4
                and bool((self.labels >= 0).any()))

    @property
    def n_boundaries(self) -> int:
        return len(self.boundaries.get("tokens", ()))

    def position(self, tokens: np.ndarray | float) -> np.ndarray:
        """Axis position of token counts: log10 for positive ones, the step-0 position for 0.

        Parameters
        ----------
        tokens : float or ndarray, any shape

        Returns
        -------
        ndarray, same shape (NaN stays NaN).
        """
        return tokens_position(tokens, self.x, self.tokens)


def tokens_position(tokens: np.ndarray | float, x: np.ndarray, reference_tokens: np.ndarray) -> np.ndarray:
    """Token-axis position of token counts: log10 for positive ones, the step-0 position of
    the reference checkpoints for 0, NaN for NaN.

    Parameters
    ----------
    tokens : float or ndarray, any shape
    x, reference_tokens : ndarray, shape (n_steps,)
        Positions and token counts of the checkpoints that define the axis
        (:func:`token_positions`).

    Returns
    -------
    ndarray, shape of ``tokens``
    """
    tokens = np.asarray(tokens, dtype=float)
    zero = x[reference_tokens == 0][0] if (reference_tokens == 0).any() else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tokens > 0, np.log10(np.where(tokens > 0, tokens, 1.0)), np.where(tokens == 0, zero, np.nan))


def token_positions(tokens: np.ndarray) -> np.ndarray:
    """log10 of each checkpoint's tokens; 0 tokens one log-spacing before the first positive one.

    The log-spacing is the gap between the first two positive checkpoints (one decade when
    there are fewer than two), as ``brainphase.phases.segment.log_token_axis`` documents.

    Parameters
    ----------
    tokens : ndarray of int, shape (n_steps,)

    Returns
    -------
    ndarray of float, shape (n_steps,)
    """
    tokens = np.asarray(tokens, dtype=float)
    positive = np.sort(tokens[tokens > 0])
    logs = np.log10(positive)
    spacing = logs[1] - logs[0] if logs.size >= 2 else 1.0
    zero = (logs[0] if logs.size else 0.0) - spacing
    with np.errstate(divide="ignore"):
        return np.where(tokens > 0, np.log10(np.where(tokens > 0, tokens, 1.0)), zero)


def load_figure_data(path: str | Path) -> FigureData:
    """Read ``trajectory.h5`` for the figures (through :func:`brainphase.phases.read.load_trajectory`).

    Raises
    ------
    InputError
        When the file is missing or was not written by ``brainphase phases``, or when
        ``/brain/voxel_r`` does not match ``/mask/mask``.
    """
    from brainphase.phases.read import load_trajectory

    path = Path(path)
    try:
        traj = load_trajectory(path)
    except KeyError as exc:
        raise InputError(f"{path}: missing {exc}; pass the trajectory.h5 written by `brainphase phases`") from exc
    x = token_positions(traj.tokens)
    stored = np.asarray(traj.x, dtype=float)
    if stored.shape == x.shape:
        x = np.where(np.isfinite(stored), stored, x)  # a file without a positive checkpoint has no finite x
    has_maps = traj.voxel_r is not None and traj.mask is not None and traj.affine is not None
    if has_maps and traj.voxel_r.shape[1] != int(np.count_nonzero(traj.mask)):
        raise InputError(f"{path}: /brain/voxel_r has {traj.voxel_r.shape[1]} voxels but /mask/mask selects "
                         f"{int(np.count_nonzero(traj.mask))}; the mask must be the one the scores were computed in")
    return FigureData(
        path=path,
        model_id=traj.model_id,
        simulated=traj.simulated,
        seeds=traj.seeds,
        steps=traj.steps,
        tokens=traj.tokens,
        layers=traj.layers,
        alignment=traj.alignment.astype(float),
        measure=traj.measure or "brain alignment",
        alternatives={f"alignment_{name}": values.astype(float) for name, values in traj.curves.items()
                      if f"alignment_{name}" in ALTERNATIVE_CURVES},
        alignment_layer=None if traj.alignment_layer is None else traj.alignment_layer.astype(float),
        metrics={name: values.astype(float) for name, values in traj.metrics.items()},
        metric_kinds=dict(traj.metric_kinds),
        x=x,
        status=str(traj.phase_attrs.get("status", "skipped: no status attribute on /phases")),
        summary=str(traj.phase_attrs.get("summary", "")),
        labels=np.asarray(traj.labels, dtype=int),
        label_names=list(traj.label_names),
        fitted=np.asarray(traj.fitted, dtype=float),
        segments={column: traj.segments[column].to_numpy() for column in traj.segments.columns},
        boundaries={column: traj.boundaries[column].to_numpy() for column in traj.boundaries.columns},
        roi_names=list(traj.roi_names),
        alignment_roi=traj.alignment_roi,
        roi_mean_r=traj.roi_mean_r,
        has_voxel_maps=has_maps,
        voxel_r=traj.voxel_r if has_maps else None,
        mask=np.asarray(traj.mask).astype(bool) if has_maps else None,
        affine=traj.affine if has_maps else None,
        metric_families=dict(traj.metric_families),
        metric_higher_is_better=dict(traj.metric_higher_is_better),
        internal_metrics={name: values.astype(float) for name, values in traj.internal_metrics.items()},
        internal_layers=np.asarray(traj.internal_layers),
        internal_descriptions=dict(traj.internal_descriptions),
    )
