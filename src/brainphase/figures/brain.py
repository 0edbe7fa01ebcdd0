"""Glass-brain maps of per-voxel alignment at the phase boundaries (nilearn, offline)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from brainphase.figures.data import FigureData
from brainphase.figures.style import new_figure, no_data_panel, phase_name, title, token_label

NO_MAPS_TEXT = "no voxel maps in these scores"


def map_checkpoints(data: FigureData) -> list[tuple[int, str]]:
    """Checkpoints to map: the first, the nearest to each boundary, the last (no repeats).

    Returns
    -------
    list of (step index, panel label)
    """
    chosen: list[tuple[int, str]] = [(0, "first checkpoint")]
    if data.labelled:
        steps = list(data.steps)
        for k, step in enumerate(data.boundaries.get("step", ())):
            index = int(np.argmin(np.abs(np.asarray(steps) - int(step))))
            before, after = _phases_around(data, k)
            chosen.append((index, f"boundary {k + 1}: {before} → {after}"))
    chosen.append((len(data.steps) - 1, "last checkpoint"))
    seen: dict[int, str] = {}
    for index, label in chosen:
        seen[index] = label if index not in seen or label.startswith("boundary") else seen[index]
    return sorted(seen.items())


def _phases_around(data: FigureData, k: int) -> tuple[str, str]:
    phases = data.segments.get("phase")
    if phases is not None and len(phases) > k + 1:
        return str(phases[k]), str(phases[k + 1])
    codes = [c for c in dict.fromkeys(data.labels[data.labels >= 0].tolist())]
    if len(codes) > k + 1:
        return phase_name(data, codes[k]), phase_name(data, codes[k + 1])
    return "?", "?"


def plot_brain_maps(data: FigureData) -> Figure:
    """Glass brains of ``/brain/voxel_r`` (seed- and subject-mean r) at :func:`map_checkpoints`.

    One row per checkpoint, a shared symmetric colour scale (±99th percentile of |r| over
    the shown maps). Without ``/brain/voxel_r`` or ``/mask`` the figure is still written,
    with one panel saying :data:`NO_MAPS_TEXT` (gid ``no-maps``), so that workflow outputs
    do not depend on the data.
    """
    if not data.has_voxel_maps:
        figure = new_figure(7.0, 2.4)
        no_data_panel(figure.add_subplot(), f"{NO_MAPS_TEXT}\n(trajectory.h5 has no /brain/voxel_r with /mask: ROI "
                      "tables, sentence data or scores without voxel maps)", "no-maps")
        title(figure, data, "alignment maps at phase boundaries")
        return figure

    import nibabel
    from nilearn import plotting

    chosen = map_checkpoints(data)
    maps, mask, affine = data.voxel_r[[index for index, _ in chosen]].astype(float), data.mask, data.affine
    finite = np.abs(maps[np.isfinite(maps)])
    vmax = float(np.percentile(finite, 99)) if finite.size and np.percentile(finite, 99) > 0 else 1.0
    row_height = 2.3
    figure = new_figure(9.0, row_height * len(chosen) + 0.7, constrained=False)
    top = 1.0 - 0.6 / figure.get_figheight()
    for row, ((index, label), values) in enumerate(zip(chosen, maps)):
        volume = np.zeros(mask.shape, dtype=np.float32)
        volume[mask] = np.nan_to_num(values, nan=0.0)
        image = nibabel.Nifti1Image(volume, affine)
        height = (top - 0.02) / len(chosen)
        rect = (0.01, top - (row + 1) * height, 0.98, height * 0.84)
        tokens = float(data.tokens[index])
        display = plotting.plot_glass_brain(
            image, figure=figure, axes=rect, plot_abs=False, colorbar=True, vmin=-vmax, vmax=vmax,
            cmap="RdBu_r", threshold=1e-9, display_mode="ortho", annotate=False,
        )
        figure.text(0.02, top - row * height - 0.004, f"{label}: step {int(data.steps[index])} "
                    f"({token_label(tokens) if tokens > 0 else '0'} tokens)", ha="left", va="top", fontsize=10,
                    fontweight="bold", gid=f"map-title-{index}")
        display.frame_axes.set_gid(f"map-{index}")
    boundaries = any(label.startswith("boundary") for _, label in chosen)
    title(figure, data, "alignment maps at phase boundaries" if boundaries else
          "alignment maps at the first and last checkpoints (no phase boundaries)")
    figure.text(0.5, 1.0 - 0.42 / figure.get_figheight(), "colour: held-out r per voxel, mean over seeds and subjects; "
                "voxels with r = 0 exactly (outside the mask) not drawn", ha="center", va="top", fontsize=8)
    return figure
