"""``brainphase load-fmri``: preprocessed fMRI -> ``responses.h5`` (layout in ``docs/hdf5_layout.md``).

One command for three kinds of input (``--kind``), each in its own module:

``bids`` (:mod:`brainphase.fmri.bids`)
    fMRIPrep-style derivatives (BOLD, brain masks, confounds, events), masked and cleaned with
    nilearn; ROIs from an atlas or spheres (:mod:`brainphase.fmri.rois`).
``roi-table`` (:mod:`brainphase.fmri.roi_tables`)
    One volume x ROI table per subject and run (TSV/CSV/NPZ/NPY); TR from ``--tr`` or a JSON
    sidecar; run labels with any characters matched to stimulus runs through ``--run-map``.
``sentences`` (:mod:`brainphase.fmri.sentence_data`)
    One response per sentence: ``sentences.tsv`` plus one table per subject.

Cleaning, timing, the group average and the noise ceiling are shared
(:mod:`brainphase.fmri.common`). Timing (``bids``, ``roi-table``): ``--first-volume-time`` is the
stimulus time (s) at the start of the first retained volume (after ``--dummy-scans``), e.g. 20
when that volume starts 20 s into the audio; volumes follow every ``tr / time_scale`` stimulus
seconds. Runs are matched to the stimulus by name (``--run-map``: file run label -> stimulus
run; default identical).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brainphase.config import schema_default
from brainphase.errors import InputError
from brainphase.fmri.bids import load_bids
from brainphase.fmri.common import CONFOUND_STRATEGIES
from brainphase.fmri.roi_tables import load_roi_tables
from brainphase.fmri.sentence_data import load_sentences

KINDS = ("bids", "roi-table", "sentences")


def _default(key: str):
    """The default of ``fmri.<key>`` as stated in config/schema.yaml (list-valued for ``nargs`` options)."""
    value = schema_default(f"fmri.{key}")
    return [value] if key == "load.confounds" and isinstance(value, str) else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``brainphase load-fmri``; defaults of the keys in the config come from config/schema.yaml."""
    parser.add_argument("--kind", choices=KINDS, default="bids")
    parser.add_argument("--root", type=Path, required=True, help="BIDS derivatives root, or folder of ROI / sentence tables")
    parser.add_argument("--task", default=_default("task"), help="BIDS task label")
    parser.add_argument("--space", default=_default("space"), help="BIDS space label of the BOLD to load")
    parser.add_argument("--res", default=None, help="BIDS res label to load when several resolutions exist (e.g. 2 or 2mm)")
    parser.add_argument("--subjects", nargs="+", default=None, help="subject labels to keep (01 or sub-01); default all")
    parser.add_argument("--stimulus", type=Path, help="stimulus_words.tsv (run names and durations; not for --kind sentences)")
    parser.add_argument("--out", type=Path, required=True, help="responses.h5 to write")
    parser.add_argument("--run-map", nargs="+", default=None,
                        help="file run label -> stimulus run: label=run pairs, a JSON object, or a JSON file; "
                             "default identical names")
    parser.add_argument("--standardize", choices=["zscore_sample", "none"], default=_default("load.standardize"))
    parser.add_argument("--detrend", action=argparse.BooleanOptionalAction, default=_default("load.detrend"))
    parser.add_argument("--high-pass", type=float, default=_default("load.high_pass"),
                        help="Butterworth high-pass cut-off (Hz); default %(default)s (0.008 = 128 s, SPM/fMRIPrep "
                             "convention); 0 = off")
    parser.add_argument("--confounds", nargs="+", default=_default("load.confounds"),
                        choices=["auto", "none", *CONFOUND_STRATEGIES],
                        help="nilearn load_confounds strategies regressed out; auto = motion wm_csf for bids, "
                             "none for roi-table and sentences")
    parser.add_argument("--motion", choices=["basic", "derivatives", "power2", "full"], default=_default("load.motion"),
                        help="motion model of the 'motion' strategy: basic = 6 rigid-body parameters (default), "
                             "full = 24-parameter Friston expansion (costs signal on short runs)")
    parser.add_argument("--dummy-scans", type=int, default=_default("load.dummy_scans"),
                        help="initial volumes to drop from every file")
    parser.add_argument("--first-volume-time", type=float, default=_default("load.first_volume_time"),
                        help="stimulus time (s) at the start of the first retained volume (after --dummy-scans): "
                             "20 when it starts 20 s into the audio, negative when it starts before the audio")
    parser.add_argument("--time-offset", type=float, default=None, help=argparse.SUPPRESS)  # removed: clear error
    parser.add_argument("--time-scale", type=float, default=_default("load.time_scale"),
                        help="scanner seconds per stimulus second")
    parser.add_argument("--tr", type=float, default=None,
                        help="repetition time (s) of ROI tables (--kind roi-table), unless each has a JSON sidecar "
                             "with RepetitionTime")
    parser.add_argument("--tr-tolerance", type=float, default=0.01, help="largest TR difference (s) between files/runs")
    parser.add_argument("--atlas", type=Path, default=None, help="label NIfTI for ROI summaries (+ names TSV beside it)")
    parser.add_argument("--spheres", type=Path, default=None, help="TSV of name, x, y, z (MNI mm) [, radius]")
    parser.add_argument("--sphere-radius", type=float, default=8.0, help="sphere radius (mm) when the spheres file has none")
    parser.add_argument("--group-average", action=argparse.BooleanOptionalAction, default=_default("load.group_average"),
                        help='add the pseudo-subject "average" (mean over subjects)')
    parser.add_argument("--ceiling", choices=["auto", "repeats", "loso", "none"], default=_default("load.ceiling"),
                        help="noise ceiling: repeats when a run was presented more than once, else leave-one-subject-out")


def time_offset_error(time_offset: float, dummy_scans: int, time_scale: float) -> str:
    """The message for the removed ``time_offset``: the new key, its sign convention and the conversion."""
    if dummy_scans == 0:
        converted = f"here --first-volume-time {-time_offset / time_scale:g} (the opposite sign of the old time_offset)"
    else:
        converted = (f"here --first-volume-time ({dummy_scans} x TR - {time_offset:g}) / {time_scale:g}, "
                     "i.e. (dummy_scans x TR - time_offset) / time_scale")
    return ("--time-offset (fmri.load.time_offset) was removed: give --first-volume-time (fmri.load.first_volume_time), "
            "the stimulus time in s at the start of the first retained volume, e.g. 20 when that volume starts 20 s "
            f"into the audio; {converted}")


def check_args(args: argparse.Namespace) -> None:
    """Errors for inconsistent options, naming the option and the fix."""
    if args.time_offset is not None:
        raise InputError(time_offset_error(args.time_offset, args.dummy_scans, args.time_scale))
    if args.dummy_scans < 0:
        raise InputError(f"--dummy-scans {args.dummy_scans}: must be >= 0")
    if args.time_scale <= 0:
        raise InputError(f"--time-scale {args.time_scale}: must be > 0")
    if args.high_pass < 0:
        raise InputError(f"--high-pass {args.high_pass}: must be >= 0 (0 switches it off)")
    if args.kind != "sentences" and args.stimulus is None:
        raise InputError(f"--kind {args.kind} needs --stimulus (stimulus_words.tsv) for run names and durations")
    if args.atlas is not None and args.spheres is not None:
        raise InputError("--atlas and --spheres are exclusive: give one ROI definition")
    if args.kind != "bids" and (args.atlas is not None or args.spheres is not None):
        raise InputError(f"--atlas/--spheres need voxel data (--kind bids), not --kind {args.kind}")
    if args.tr is not None and args.kind != "roi-table":
        raise InputError(f"--tr (fmri.tr) is for --kind roi-table; --kind {args.kind} "
                         + ("reads the TR from the NIfTI header / JSON sidecar" if args.kind == "bids" else "has no TR"))
    if args.tr is not None and args.tr <= 0:
        raise InputError(f"--tr {args.tr:g}: the repetition time must be > 0 s")
    special = {"auto", "none"} & set(args.confounds)
    if special and len(args.confounds) > 1:
        raise InputError(f"--confounds {' '.join(args.confounds)}: {sorted(special)[0]!r} cannot be combined with strategies")


def main(args: argparse.Namespace) -> None:
    """Load the responses named by ``args`` and write ``args.out``."""
    check_args(args)
    if args.kind == "bids":
        load_bids(args)
    elif args.kind == "roi-table":
        load_roi_tables(args)
    else:
        load_sentences(args)
