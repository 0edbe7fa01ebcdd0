"""Regions of interest over the voxels of the shared mask (``--kind bids``): a label atlas or MNI spheres."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.fmri.common import bids_entities

log = logging.getLogger(__name__)


def _image_space(path: Path) -> str | None:
    return bids_entities(path.name).get("space")


def on_grid(image, path: Path, reference, reference_path: Path, space: str, interpolation: str = "nearest"):
    """Return ``image`` on the reference grid; resample (with a warning) if the space matches, else error.

    An image with the reference's grid size but another affine is refused, not resampled: the same
    voxel grid placed elsewhere means one of the two headers is wrong.
    """
    from nilearn.image import resample_to_img  # noqa: PLC0415

    if image.shape[:3] == reference.shape[:3] and np.allclose(image.affine, reference.affine, atol=1e-4):
        return image
    image_space = _image_space(path)
    if image_space is not None and image_space != space:
        raise InputError(f"{path}: space {image_space!r} differs from the BOLD space {space!r} ({reference_path}); "
                         "give an image in the same space")
    if image.shape[:3] == reference.shape[:3] and not np.allclose(image.affine, reference.affine, atol=1e-3):
        raise InputError(f"{path}: same grid size {image.shape[:3]} as {reference_path} but a different affine "
                         f"(max difference {np.abs(image.affine - reference.affine).max():.3g}), so one of the two "
                         "headers is wrong; fix the affine (or resample the image onto the BOLD grid yourself)")
    log.warning("%s: shape %s / affine differ from %s %s; resampled (%s) to the BOLD grid", path, image.shape[:3],
                reference_path, reference.shape[:3], interpolation)
    return resample_to_img(image, reference, interpolation=interpolation, force_resample=True, copy_header=True)


def roi_labels(args: argparse.Namespace, mask_img, space: str) -> tuple[list[str], np.ndarray] | None:
    """ROI names and per-voxel labels (index + 1, 0 = none) over the mask voxels, or None without ROIs."""
    import nibabel as nib  # noqa: PLC0415

    mask = np.asarray(mask_img.dataobj) > 0
    if args.atlas is not None:
        atlas_path = Path(args.atlas)
        if not atlas_path.is_file():
            raise InputError(f"--atlas {atlas_path}: file not found")
        atlas = on_grid(nib.load(atlas_path), atlas_path, mask_img, Path("the shared mask"), space)
        values = np.rint(np.asarray(atlas.dataobj)).astype(int)[mask]
        names_path = Path(str(atlas_path).split(".nii")[0] + ".tsv")
        if not names_path.is_file():
            raise InputError(f"--atlas {atlas_path}: names table {names_path.name} (columns index, name) not found beside it")
        table = pd.read_csv(names_path, sep="\t")
        if not {"index", "name"} <= set(table.columns):
            raise InputError(f"{names_path}: needs columns index and name, has {list(table.columns)}")
        labels = np.zeros(len(values), np.int16)
        for position, (index, name) in enumerate(zip(table["index"], table["name"])):
            labels[values == int(index)] = position + 1
        unnamed = np.setdiff1d(np.unique(values[values > 0]), table["index"].to_numpy())
        if len(unnamed):
            log.warning("%s: atlas values %s have no name in %s; their voxels get no ROI", atlas_path, unnamed.tolist(), names_path)
        return [str(n) for n in table["name"]], labels
    if args.spheres is not None:
        return sphere_labels(Path(args.spheres), args.sphere_radius, mask_img)
    return None


def sphere_labels(path: Path, default_radius: float, mask_img) -> tuple[list[str], np.ndarray]:
    """Spheres (NiftiSpheresMasker semantics: voxel centres within ``radius`` mm) as per-voxel labels.

    A voxel inside several spheres goes to the nearest centre (counted in the log).
    """
    if not path.is_file():
        raise InputError(f"--spheres {path}: file not found")
    table = pd.read_csv(path, sep="\t")
    if not {"name", "x", "y", "z"} <= set(table.columns):
        raise InputError(f"{path}: needs columns name, x, y, z (MNI mm) and optionally radius; has {list(table.columns)}")
    radius = table["radius"].to_numpy(float) if "radius" in table else np.full(len(table), default_radius)
    mask = np.asarray(mask_img.dataobj) > 0
    ijk = np.argwhere(mask)
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    centres = table[["x", "y", "z"]].to_numpy(float)
    distance = np.linalg.norm(xyz[:, None, :] - centres[None], axis=2)
    inside = distance <= radius[None, :]
    overlap = int((inside.sum(axis=1) > 1).sum())
    if overlap:
        log.info("%s: %d voxels lie in several spheres; each goes to the nearest centre", path, overlap)
    nearest = np.where(inside, distance, np.inf).argmin(axis=1)
    labels = np.where(inside.any(axis=1), nearest + 1, 0).astype(np.int16)
    empty = [str(n) for k, n in enumerate(table["name"]) if not (labels == k + 1).any()]
    if empty:
        raise InputError(f"{path}: spheres {empty} contain no voxel of the shared mask; move them or enlarge the radius")
    return [str(n) for n in table["name"]], labels
