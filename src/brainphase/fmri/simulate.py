"""``brainphase simulate``: SIMULATED subjects' BOLD written as an fMRIPrep-style BIDS derivatives folder.

The simulated BOLD contains planted responses to stimulus features that do **not** come
from any language model under test, so that the loader and the encoding models can be
checked against a known ground truth (features, binning + HRF and the variance splits are
in :mod:`brainphase.fmri.planted`, re-exported here):

* ``word_rate``: 1 per word (number of word onsets per TR after binning);
* ``word_length``: number of letters of the word;
* ``log_unigram_frequency``: log of the add-one smoothed unigram probability in ``train.txt``;
* ``bigram_surprisal``: ``-log P(word | previous word)`` with add-one smoothing;
* ``phoneme_count``: phonemes of the word (CMU dictionary, one per letter when missing:
  :func:`brainphase.encoding.baselines.phoneme_count`);
* ``semantic_00`` ... ``semantic_15``: a fixed random embedding per word type (seeded hash).

All word-level features except ``word_rate`` are centred over the stimulus words, so their
per-TR sums are not collinear with the word rate. Per run, the word features are summed in
TR bins (word onset in ``[k * tr, (k + 1) * tr)``), convolved with SPM's canonical HRF
(:func:`nilearn.glm.first_level.spm_hrf`, sampled at the TR) and z-scored with the mean and
standard deviation over all runs (:func:`design_matrices`).

Each voxel's signal is ``design @ weights[:, voxel]`` where the weights are non-zero inside
spheres around language-like regions (left IFG, left posterior STG/MTG, left angular gyrus
and weaker right homologues). Inside a sphere the signal amplitude falls off as a Gaussian
of the distance to the (subject-jittered) centre; the feature weights are a region vector
plus a spatially smooth random field plus a subject-specific component. The lexical features
(word rate, length, frequency, surprisal: what a language model can learn to represent) carry
a share ``lexical_share`` of each voxel's signal variance and the random word-type embedding
(which no model can predict beyond memorising word identities) the rest; the two parts are
scaled separately, then the signal of each voxel is scaled to standard deviation ``snr * amplitude`` relative to unit-variance AR(1)
noise. Motion (a smooth random walk, also written as fMRIPrep confounds), a linear drift
and a voxel baseline are added on top: these are nuisances that the loader's cleaning is
meant to remove, so they are *not* part of the noise in the ground truth.

With ``baseline_share`` set, the split is different: the *baseline* features (word rate,
length, log frequency, phoneme count: what ``brainphase encode --baselines`` computes without
a model) carry a share ``baseline_share`` of each voxel's signal variance, and the
*model-learnable* features (bigram surprisal and the word embedding) the rest. The learnable
columns of the design are first residualised on the baseline columns (least squares over all
runs), so their part of the signal is unique to them by construction and the planted shares
are exact (``lexical_share`` is unused then).

Ground truth (``ground_truth.h5``), per subject and voxel: the planted explainable variance
``var(signal) / (var(signal) + var(noise))`` computed on the realised time series
(all runs concatenated) and the implied ceiling on Pearson r, ``sqrt(explainable variance)``;
``baseline_explainable_variance`` = ``var(P_B signal) / var(signal + noise)`` with ``P_B`` the
least-squares projection on the baseline columns of the planted design, and
``unique_explainable_variance`` = ``(var(signal) - var(P_B signal)) / var(signal + noise)``,
the part that only the model-learnable features explain (what variance partitioning's
``unique_r2`` estimates for a layer that represents them perfectly).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.config import schema_default
from brainphase.errors import InputError
from brainphase.fmri.planted import (  # noqa: F401 (re-exported: the simulator's feature API)
    BASELINE_COLUMNS,
    FEATURE_NAMES,
    LEARNABLE_COLUMNS,
    N_LEXICAL,
    N_SEMANTIC,
    TAIL_SECONDS,
    baseline_variance,
    bin_and_convolve,
    design_matrices,
    n_trs_for_run,
    residualise_learnable,
    semantic_vector,
    split_shares,
    split_variance,
    tokenize,
    word_features,
    word_statistics,
)
from brainphase.io import atomic_dir, atomic_h5, provenance, string_array
from brainphase.stimuli import read_stimulus

log = logging.getLogger(__name__)

SPACE = "MNI152NLin2009cAsym"
#: (name, MNI centre in mm, relative amplitude)
REGIONS: list[tuple[str, tuple[float, float, float], float]] = [
    ("L_IFG", (-50.0, 24.0, 8.0), 1.0),
    ("L_pSTG_MTG", (-56.0, -40.0, 4.0), 1.0),
    ("L_AG", (-46.0, -64.0, 30.0), 1.0),
    ("R_IFG", (50.0, 24.0, 8.0), 0.5),
    ("R_pSTG_MTG", (56.0, -40.0, 4.0), 0.5),
    ("R_AG", (46.0, -64.0, 30.0), 0.5),
]
REGION_RADIUS_MM = 12.0
NOISE_AR1 = 0.3


# --------------------------------------------------------------------------- spatial layout
def brain_mask(resolution_mm: float):
    """nilearn's MNI152 brain mask resampled at ``resolution_mm`` (a Nifti1Image, uint8)."""
    from nilearn.datasets import load_mni152_brain_mask  # noqa: PLC0415

    if float(resolution_mm) != int(resolution_mm):
        raise InputError(f"--resolution-mm {resolution_mm}: nilearn's MNI152 template needs a whole number of mm")
    return load_mni152_brain_mask(resolution=int(resolution_mm))


def _voxel_mm(mask_img) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask_img.dataobj) > 0
    ijk = np.argwhere(mask)
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    return mask, xyz


def region_profiles(xyz: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian amplitude profile per voxel and the region label (0 = none).

    Parameters
    ----------
    xyz : ndarray, shape (n_voxels, 3)
        Voxel coordinates (mm).
    centres : ndarray, shape (n_regions, 3)

    Returns
    -------
    amplitude : ndarray, shape (n_voxels,)
        ``region_amplitude * exp(-d^2 / (2 * radius^2))`` inside the nearest sphere, else 0.
    label : ndarray, shape (n_voxels,) int
        Region index + 1 of the nearest sphere containing the voxel, 0 outside all spheres.
    """
    distances = np.linalg.norm(xyz[:, None, :] - centres[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    d = distances[np.arange(len(xyz)), nearest]
    inside = d <= REGION_RADIUS_MM
    region_amp = np.array([r[2] for r in REGIONS])
    sigma = REGION_RADIUS_MM
    amplitude = np.where(inside, region_amp[nearest] * np.exp(-(d**2) / (2 * sigma**2)), 0.0)
    return amplitude, np.where(inside, nearest + 1, 0)


def _smooth_fields(mask: np.ndarray, n_fields: int, sigma_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance spatially smooth random fields sampled inside ``mask``, shape (n_fields, n_mask)."""
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    fields = np.empty((n_fields, int(mask.sum())))
    for k in range(n_fields):
        volume = gaussian_filter(rng.standard_normal(mask.shape), sigma_vox)[mask]
        fields[k] = (volume - volume.mean()) / volume.std()
    return fields


# --------------------------------------------------------------------------- confounds
def _motion(n_trs: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random-walk motion parameters, shape (n_trs, 6): trans (mm) then rot (rad)."""
    steps = rng.standard_normal((n_trs, 6)) * np.array([0.03] * 3 + [0.0006] * 3)
    return np.cumsum(steps, axis=0)


def _with_expansions(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        derivative = np.concatenate([[np.nan], np.diff(values)])
        out[name] = values
        out[f"{name}_derivative1"] = derivative
        out[f"{name}_power2"] = values**2
        out[f"{name}_derivative1_power2"] = derivative**2
    return pd.DataFrame(out)


def _cosine_basis(n_trs: int, tr: float, cutoff_s: float = 128.0) -> pd.DataFrame:
    """fMRIPrep-style discrete cosine drift regressors (``cosine00``...) for a 128 s high-pass."""
    n_basis = int(np.floor(2 * n_trs * tr / cutoff_s))
    times = np.arange(n_trs)
    return pd.DataFrame({f"cosine{k - 1:02d}": np.sqrt(2 / n_trs) * np.cos(np.pi * (2 * times + 1) * k / (2 * n_trs))
                         for k in range(1, n_basis + 1)})


def confounds_table(motion: np.ndarray, bold_masked: np.ndarray, tissue_index: dict[str, np.ndarray], tr: float) -> pd.DataFrame:
    """fMRIPrep-named confounds for one run.

    Parameters
    ----------
    motion : ndarray, shape (n_trs, 6)
    bold_masked : ndarray, shape (n_trs, n_voxels)
    tissue_index : dict
        ``{"csf": idx, "white_matter": idx}`` voxel indices whose mean is the tissue signal.
    """
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    signals = pd.DataFrame({
        "global_signal": bold_masked.mean(axis=1),
        "csf": bold_masked[:, tissue_index["csf"]].mean(axis=1),
        "white_matter": bold_masked[:, tissue_index["white_matter"]].mean(axis=1),
    })
    table = pd.concat([_with_expansions(signals), _with_expansions(pd.DataFrame(motion, columns=names))], axis=1)
    d_motion = np.abs(np.diff(motion, axis=0))
    fd = d_motion[:, :3].sum(axis=1) + 50.0 * d_motion[:, 3:].sum(axis=1)  # Power et al. 2012, 50 mm head
    table["framewise_displacement"] = np.concatenate([[np.nan], fd])
    return pd.concat([table, _cosine_basis(len(motion), tr)], axis=1)


# --------------------------------------------------------------------------- the simulation
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stimulus", required=True, type=Path, help="stimulus_words.tsv (run, word_index, word, onset, offset)")
    parser.add_argument("--corpus-dir", required=True, type=Path, help="folder with train.txt (word statistics)")
    parser.add_argument("--out-dir", required=True, type=Path, help="BIDS derivatives root to write (replaced atomically)")
    parser.add_argument("--n-subjects", type=int, default=schema_default("fmri.simulate.n_subjects"))
    parser.add_argument("--tr", type=float, default=schema_default("fmri.simulate.tr"), help="repetition time (s)")
    parser.add_argument("--resolution-mm", type=float, default=schema_default("fmri.simulate.resolution_mm"),
                        help="isotropic voxel size of the MNI grid (whole mm; default %(default)s keeps a 2-core machine fast)")
    parser.add_argument("--snr", type=float, default=schema_default("fmri.simulate.snr"),
                        help="signal std / noise std at the centre of a full-amplitude region (default 1: ceiling r 0.71)")
    parser.add_argument("--lexical-share", type=float, default=schema_default("fmri.simulate.lexical_share"),
                        help="share of each signal voxel's variance carried by the lexical features (rest: semantic)")
    parser.add_argument("--baseline-share", type=float, default=None,
                        help="share carried by the baseline features (rate, length, frequency, phoneme count); the "
                             "rest by residualised surprisal + embedding (default: unset, the --lexical-share split)")
    parser.add_argument("--seed", type=int, default=schema_default("fmri.simulate.seed"))
    parser.add_argument("--task", default="listening")


def _check_args(args: argparse.Namespace) -> None:
    if args.n_subjects < 1:
        raise InputError(f"--n-subjects {args.n_subjects}: need at least 1 subject")
    if args.tr <= 0 or args.resolution_mm <= 0 or args.snr < 0:
        raise InputError(f"--tr {args.tr}, --resolution-mm {args.resolution_mm}, --snr {args.snr}: tr and resolution must be > 0, snr >= 0")
    if not 0.0 <= args.lexical_share <= 1.0:
        raise InputError(f"--lexical-share {args.lexical_share}: must be between 0 and 1")
    if args.baseline_share is not None and not 0.0 <= args.baseline_share <= 1.0:
        raise InputError(f"--baseline-share {args.baseline_share}: must be between 0 and 1 (or left unset)")
    if not re.fullmatch(r"[A-Za-z0-9]+", args.task):
        raise InputError(f"--task {args.task!r}: a BIDS label must be alphanumeric")


def _res_label(resolution_mm: float) -> str:
    return f"{resolution_mm:g}".replace(".", "p") + "mm"


def main(args: argparse.Namespace) -> None:
    """Write the simulated BIDS derivatives folder and ``ground_truth.h5`` into ``args.out_dir``."""
    import nibabel as nib  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    _check_args(args)
    stimulus = read_stimulus(args.stimulus)
    runs = list(dict.fromkeys(stimulus["run"]))
    bad_runs = [r for r in runs if not re.fullmatch(r"[A-Za-z0-9]+", r)]
    if bad_runs:
        raise InputError(f"{args.stimulus}: run names {bad_runs} are not valid BIDS run labels (alphanumeric only)")
    train_path = Path(args.corpus_dir) / "train.txt"
    if not train_path.is_file():
        raise InputError(f"{train_path}: not found; --corpus-dir must contain train.txt (from `brainphase corpus`)")
    unigrams, bigrams = word_statistics(train_path.read_text(encoding="utf-8"))
    designs = design_matrices(stimulus, unigrams, bigrams, args.tr, args.seed)
    if args.baseline_share is not None:
        designs = residualise_learnable(designs)

    rng = np.random.default_rng(args.seed)
    mask_img = brain_mask(args.resolution_mm)
    mask, xyz = _voxel_mm(mask_img)
    affine = mask_img.affine
    n_voxels, n_features = len(xyz), len(FEATURE_NAMES)
    centres = np.array([r[1] for r in REGIONS])
    region_vectors = rng.standard_normal((len(REGIONS), n_features))
    smooth = _smooth_fields(mask, n_features, sigma_vox=6.0 / args.resolution_mm, rng=rng)  # (n_features, n_voxels)
    # tissue proxies: lowest / highest voxels of the mask stand in for CSF / white matter
    order = np.argsort(xyz[:, 2])
    tissue_index = {"csf": order[: max(1, n_voxels // 50)], "white_matter": order[-max(1, n_voxels // 50):]}
    baseline = 500.0 + 500.0 * rng.random(n_voxels)
    res = _res_label(args.resolution_mm)
    subjects = [f"{i + 1:02d}" for i in range(args.n_subjects)]
    atlas_amp, atlas_label = region_profiles(xyz, centres)

    truth: dict[str, dict[str, np.ndarray]] = {}
    with atomic_dir(args.out_dir) as out:
        _write_description(out, args)
        atlas = np.zeros(mask.shape, np.int16)
        atlas[mask] = atlas_label
        nib.save(nib.Nifti1Image(atlas, affine), out / "atlas-simulated_dseg.nii.gz")
        pd.DataFrame({"index": np.arange(1, len(REGIONS) + 1), "name": [r[0] for r in REGIONS]}).to_csv(
            out / "atlas-simulated_dseg.tsv", sep="\t", index=False)
        design_all = np.concatenate([designs[r] for r in runs])
        for sub in tqdm(subjects, desc="simulate subjects"):
            sub_centres = centres + rng.normal(0.0, 2.0, centres.shape)
            amplitude, label = region_profiles(xyz, sub_centres)
            signal_idx = np.flatnonzero(amplitude > 0)
            sub_vectors = 0.8 * region_vectors + 0.6 * rng.standard_normal(region_vectors.shape)
            weights = sub_vectors[label[signal_idx] - 1] + 0.5 * smooth[:, signal_idx].T  # (n_signal, n_features)
            if args.baseline_share is None:
                weights = split_variance(weights, design_all, args.lexical_share)
            else:
                weights = split_shares(weights, design_all, BASELINE_COLUMNS, args.baseline_share)
            weights *= (args.snr * amplitude[signal_idx] / (design_all @ weights.T).std(axis=0))[:, None]
            loadings = rng.standard_normal((6, n_voxels)) * np.array([8.0] * 3 + [400.0] * 3)[:, None]
            drift = rng.standard_normal(n_voxels) * 5.0
            moments = np.zeros((4, n_voxels))  # sum and sum of squares of signal, then of signal + noise
            func = out / f"sub-{sub}" / "func"
            func.mkdir(parents=True)
            for run in runs:
                n_trs = designs[run].shape[0]
                signal = np.zeros((n_trs, n_voxels))
                signal[:, signal_idx] = designs[run] @ weights.T
                total = signal + _ar1_noise(n_trs, n_voxels, NOISE_AR1, rng)
                moments += [signal.sum(0), (signal**2).sum(0), total.sum(0), (total**2).sum(0)]
                motion = _motion(n_trs, rng)
                bold = total + (motion - motion.mean(axis=0)) @ loadings
                bold += np.linspace(-1.0, 1.0, n_trs)[:, None] * drift + baseline
                _write_run(func, sub, run, args, res, bold.astype(np.float32), mask, affine, motion, tissue_index,
                           stimulus[stimulus["run"] == run])
            n_total = len(design_all)
            signal_var = moments[1] / n_total - (moments[0] / n_total) ** 2
            total_var = moments[3] / n_total - (moments[2] / n_total) ** 2
            explainable = signal_var / total_var
            signal_all = design_all @ weights.T  # (n_total, n_signal)
            baseline_ev = np.zeros(n_voxels)
            baseline_ev[signal_idx] = baseline_variance(signal_all, design_all) / total_var[signal_idx]
            truth[sub] = {
                "explainable_variance": _volume(explainable, mask),
                "ceiling_r": _volume(np.sqrt(explainable), mask),
                "baseline_explainable_variance": _volume(baseline_ev, mask),
                "unique_explainable_variance": _volume(explainable - baseline_ev, mask),
                "signal_mask": _volume(amplitude > 0, mask).astype(np.uint8),
                "region_labels": _volume(label, mask).astype(np.int16),
                "signal_voxel_ijk": np.argwhere(mask)[signal_idx].astype(np.int32),
                "weights": weights.astype(np.float32),
                "region_centres_mm": sub_centres,
            }
        _write_ground_truth(out / "ground_truth.h5", args, truth, mask, affine, subjects)
    log.info("wrote SIMULATED BIDS derivatives for %d subjects x %d runs to %s", len(subjects), len(runs), args.out_dir)


def _volume(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    volume = np.zeros(mask.shape, dtype=np.float32 if values.dtype.kind == "f" else values.dtype)
    volume[mask] = values
    return volume


def _ar1_noise(n_trs: int, n_voxels: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) Gaussian noise, shape (n_trs, n_voxels)."""
    innovations = rng.standard_normal((n_trs, n_voxels))
    noise = np.empty_like(innovations)
    noise[0] = innovations[0]
    scale = np.sqrt(1 - rho**2)
    for t in range(1, n_trs):
        noise[t] = rho * noise[t - 1] + scale * innovations[t]
    return noise


def _write_description(out: Path, args: argparse.Namespace) -> None:
    description = {
        "Name": "brainphase SIMULATED fMRI (not real data)",
        "BIDSVersion": "1.8.0",
        "DatasetType": "derivative",
        "Description": "SIMULATED BOLD with planted responses to word rate, word length, log unigram frequency, "
                       "bigram surprisal and random word embeddings in language-like regions. Not real data.",
        "GeneratedBy": [{"Name": "brainphase simulate", "Version": __import__("brainphase").__version__,
                         "Description": "SIMULATED data"}],
        "SIMULATED": True,
        "SimulationSettings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not callable(v)},
    }
    (out / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")


def _write_run(func: Path, sub: str, run: str, args: argparse.Namespace, res: str, bold: np.ndarray, mask: np.ndarray,
               affine: np.ndarray, motion: np.ndarray, tissue_index: dict[str, np.ndarray], words: pd.DataFrame) -> None:
    """Write the BOLD, its sidecar, brain mask, confounds and events of one run (bold: (n_trs, n_voxels))."""
    import nibabel as nib  # noqa: PLC0415

    stem = f"sub-{sub}_task-{args.task}_run-{run}"
    volume = np.zeros(mask.shape + (bold.shape[0],), np.float32)
    volume[mask] = bold.T
    image = nib.Nifti1Image(volume, affine)
    image.header.set_zooms((args.resolution_mm,) * 3 + (args.tr,))
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = b"brainphase SIMULATED BOLD"
    prefix = f"{stem}_space-{SPACE}_res-{res}"
    nib.save(image, func / f"{prefix}_desc-preproc_bold.nii.gz")
    (func / f"{prefix}_desc-preproc_bold.json").write_text(json.dumps({
        "RepetitionTime": args.tr, "TaskName": args.task, "SkullStripped": False,
        "SIMULATED": True, "Description": "SIMULATED BOLD written by brainphase simulate; not real data",
    }, indent=2) + "\n")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), func / f"{prefix}_desc-brain_mask.nii.gz")
    confounds_table(motion, bold, tissue_index, args.tr).to_csv(
        func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
    pd.DataFrame({"onset": words["onset"].to_numpy(float),
                  "duration": (words["offset"] - words["onset"]).to_numpy(float),
                  "trial_type": "word", "word": words["word"].to_numpy()}).to_csv(
        func / f"{stem}_events.tsv", sep="\t", index=False)


def _write_ground_truth(path: Path, args: argparse.Namespace, truth: dict, mask: np.ndarray, affine: np.ndarray,
                        subjects: list[str]) -> None:
    inputs = [args.stimulus, Path(args.corpus_dir) / "train.txt"]
    attrs = provenance("simulate", args, inputs, simulated=True, tr=args.tr, resolution_mm=args.resolution_mm,
                       snr=args.snr, lexical_share=args.lexical_share,
                       baseline_share=np.nan if args.baseline_share is None else args.baseline_share, noise_ar1=NOISE_AR1, region_radius_mm=REGION_RADIUS_MM,
                       subjects=[f"sub-{s}" for s in subjects],
                       definition="explainable_variance = var(signal) / var(signal + noise) over all runs "
                                  "concatenated (motion, drift and baseline excluded); ceiling_r = sqrt of it")
    with atomic_h5(path, attrs) as handle:
        handle.create_dataset("mask/mask", data=mask.astype(np.uint8))
        handle.create_dataset("mask/affine", data=affine)
        handle.create_dataset("feature_names", data=string_array(FEATURE_NAMES))
        handle.create_dataset("region_names", data=string_array([r[0] for r in REGIONS]))
        handle.create_dataset("region_centres_mm", data=np.array([r[1] for r in REGIONS]))
        for sub, arrays in truth.items():
            group = handle.create_group(f"subjects/sub-{sub}")
            for key, value in arrays.items():
                group.create_dataset(key, data=value, compression="gzip" if value.ndim == 3 else None)
