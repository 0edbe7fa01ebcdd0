"""What the figures read from ``trajectory.h5`` (layout: ``docs/hdf5_layout.md``).

:func:`load_figure_data` reads the datasets every figure needs into a :class:`FigureData`;
the per-voxel maps (``/brain/voxel_r``, possibly large) are read on demand by
:func:`read_voxel_maps`, only at the checkpoints a brain-map figure shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from brainphase.errors import InputError
from brainphase.io import attr_text, open_h5, read_strings

#: optional alternative alignment curves (S, T) under ``/brain``, drawn thin beside the main one
ALTERNATIVE_CURVES = {
    "alignment_heldout_layer": "held-out-chosen layer",
    "alignment_layer_mean": "mean over layers",
    "alignment_beyond_baselines": "beyond baselines",
    "alignment_group": "group-average subject",
}
BOUNDARY_COLUMNS = ("tokens", "log10_tokens", "step", "tokens_ci_low", "tokens_ci_high")


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
    metrics : dict of str -> ndarray, shape (n_seeds, n_steps)
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
        ``/phases/segments`` columns (``task`` subgroup left out).
    boundaries : dict of str -> ndarray, shape (n_segments - 1,)
        ``/phases/boundaries`` columns (:data:`BOUNDARY_COLUMNS`).
    has_voxel_maps : bool
        ``/brain/voxel_r`` and ``/mask/mask`` are both present.
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
    has_voxel_maps: bool = False

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
        tokens = np.asarray(tokens, dtype=float)
        zero = self.x[self.tokens == 0][0] if (self.tokens == 0).any() else np.nan
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


def _table(group: h5py.Group | None, columns=None) -> dict[str, np.ndarray]:
    if group is None:
        return {}
    names = columns or [k for k, v in group.items() if isinstance(v, h5py.Dataset)]
    table = {}
    for name in names:
        if name in group:
            dataset = group[name]
            table[name] = np.array(read_strings(dataset)) if dataset.dtype.kind in "OS" else dataset[()]
    return table


def _require(handle: h5py.File, key: str, path: Path) -> np.ndarray:
    if key not in handle:
        raise InputError(f"{path}: no /{key}; pass the trajectory.h5 written by `brainphase phases`")
    return handle[key][()]


def load_figure_data(path: str | Path) -> FigureData:
    """Read ``trajectory.h5`` for the figures.

    Raises
    ------
    InputError
        When the file is missing, was not written by ``brainphase phases``, or lacks a
        required dataset (named in the message).
    """
    path = Path(path)
    with open_h5(path, stage="phases") as handle:
        tokens = _require(handle, "tokens", path)
        n_steps = len(tokens)
        phases = handle.get("phases")
        x = token_positions(tokens)
        if phases is not None and "x" in phases:
            stored = phases["x"][()]
            x = np.where(np.isfinite(stored), stored, x)  # a 1-checkpoint file may have no finite x
        metrics_group = handle.get("metrics", {})
        return FigureData(
            path=path,
            model_id=attr_text(handle, "model_id"),
            simulated=bool(handle.attrs.get("simulated", False)),
            seeds=_require(handle, "seeds", path),
            steps=_require(handle, "steps", path),
            tokens=tokens,
            layers=handle["layers"][()] if "layers" in handle else np.arange(0),
            alignment=_require(handle, "brain/alignment", path).astype(float),
            measure=attr_text(handle["brain/alignment"], "measure", "brain alignment"),
            alternatives={name: handle[f"brain/{name}"][()].astype(float)
                          for name in ALTERNATIVE_CURVES if f"brain/{name}" in handle},
            alignment_layer=handle["brain/alignment_layer"][()].astype(float) if "brain/alignment_layer" in handle else None,
            metrics={name: ds[()].astype(float) for name, ds in metrics_group.items()},
            metric_kinds={name: attr_text(ds, "kind", "continuous") for name, ds in metrics_group.items()},
            x=x,
            status=attr_text(phases, "status", "skipped: no /phases group") if phases is not None else "skipped: no /phases group",
            summary=attr_text(phases, "summary") if phases is not None else "",
            labels=phases["labels"][()].astype(int) if phases is not None and "labels" in phases else np.full(n_steps, -1),
            label_names=read_strings(phases["label_names"]) if phases is not None and "label_names" in phases else [],
            fitted=phases["fitted"][()].astype(float) if phases is not None and "fitted" in phases else np.full(n_steps, np.nan),
            segments=_table(phases.get("segments") if phases is not None else None),
            boundaries=_table(phases.get("boundaries") if phases is not None else None, BOUNDARY_COLUMNS),
            has_voxel_maps="brain/voxel_r" in handle and "mask/mask" in handle,
        )


def read_voxel_maps(path: str | Path, step_indices: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the voxel maps of some checkpoints and the mask they live in.

    Parameters
    ----------
    path : path
        ``trajectory.h5`` with ``/brain/voxel_r`` (n_steps, n_voxels) and ``/mask/mask``,
        ``/mask/affine``.
    step_indices : list of int
        Checkpoint indices (positions along ``/steps``).

    Returns
    -------
    maps : ndarray of float, shape (len(step_indices), n_voxels)
    mask : ndarray of bool, shape (X, Y, Z)
        Voxel ``v`` is the ``v``-th true entry of ``mask`` in C order.
    affine : ndarray, shape (4, 4)
    """
    path = Path(path)
    with open_h5(path, stage="phases") as handle:
        mask = _require(handle, "mask/mask", path).astype(bool)
        affine = _require(handle, "mask/affine", path)
        voxel_r = handle["brain/voxel_r"]
        if voxel_r.shape[1] != int(mask.sum()):
            raise InputError(f"{path}: /brain/voxel_r has {voxel_r.shape[1]} voxels but /mask/mask selects "
                             f"{int(mask.sum())}; the mask must be the one the scores were computed in")
        rows = np.stack([voxel_r[int(i)] for i in step_indices])
    return rows.astype(float), mask, affine
