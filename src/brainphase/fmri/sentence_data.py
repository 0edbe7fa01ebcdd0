"""``load-fmri --kind sentences``: item-level responses (one per sentence) -> responses.h5.

Files in ``--root``: ``sentences.tsv`` (column ``text``, one row per sentence, in presentation
order or any fixed order; optional column ``passage``, the passage / story each sentence belongs
to, stored as ``/sentences/passage`` so that ``brainphase encode`` can keep a passage in one
fold) and one table per subject ``sub-<subject>_sentences.tsv|csv|npy|npz`` (n_sentences,
n_targets), rows in the order of ``sentences.tsv``. No timing, no detrending or filtering;
each target is z-scored over sentences unless ``--standardize none``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.errors import InputError
from brainphase.fmri.common import TABLE_SUFFIXES, bids_entities, choose_ceiling, drop_bad_columns, read_table, same_names
from brainphase.io import atomic_h5, provenance, string_array

log = logging.getLogger(__name__)


def load_sentences(args: argparse.Namespace) -> None:
    """``--kind sentences``: one response per sentence and target -> ``/subjects/{sub}/sentences/responses``."""
    root = Path(args.root)
    text_path = root / "sentences.tsv"
    if not text_path.is_file():
        raise InputError(f"{text_path}: not found; --kind sentences needs sentences.tsv (column text) in --root")
    sentences = pd.read_csv(text_path, sep="\t", keep_default_na=False)
    if "text" not in sentences:
        raise InputError(f"{text_path}: needs a column 'text' (one sentence per row), has {list(sentences.columns)}")
    if "passage" in sentences and (sentences["passage"].astype(str).str.strip() == "").any():
        first = int(np.flatnonzero(sentences["passage"].astype(str).str.strip() == "")[0])
        raise InputError(f"{text_path}: column 'passage' is blank in row {first + 2}; give every sentence its passage label")
    if args.detrend or args.high_pass:
        log.info("--kind sentences: detrending and high-pass do not apply to item responses; skipped")
    wanted = {s.removeprefix("sub-") for s in args.subjects} if args.subjects else None
    tables, names, sources = {}, {}, {}
    for path in sorted(root.rglob("sub-*_sentences.*")):
        if path.suffix not in TABLE_SUFFIXES:
            continue
        subject = bids_entities(path.name)["sub"]
        if wanted is not None and subject not in wanted:
            continue
        data, names[path] = read_table(path)
        if len(data) != len(sentences):
            raise InputError(f"{path}: {len(data)} rows but {text_path} has {len(sentences)} sentences")
        tables[f"sub-{subject}"], sources[f"sub-{subject}"] = data, path
    if not tables:
        raise InputError(f"--root {root}: no sub-*_sentences.tsv|csv|npy|npz response tables found")
    target_names = same_names(names)
    subjects = sorted(tables)
    columns, n_dropped = drop_bad_columns(tables, str(root))
    attrs = provenance("load-fmri", args, [text_path] + list(sources.values()), simulated=False, tr=np.nan,
                       dataset_kind="sentences", subjects=subjects + (["average"] if args.group_average else []),
                       runs=[], n_dropped_voxels=n_dropped, n_voxels=len(columns), n_sentences=len(sentences))
    with atomic_h5(args.out, attrs) as out:
        out.create_dataset("sentences/text", data=string_array(sentences["text"].astype(str)))
        out.create_dataset("sentences/target_names", data=string_array([target_names[c] for c in columns]))
        if "passage" in sentences:
            out.create_dataset("sentences/passage", data=string_array(sentences["passage"].astype(str)))
        responses = {}
        for subject in subjects:
            values = tables[subject][:, columns]
            if args.standardize != "none":
                values = (values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
            responses[subject] = values.astype(np.float32)
            out.create_dataset(f"subjects/{subject}/sentences/responses", data=responses[subject])
        if args.group_average:
            out.create_dataset("subjects/average/sentences/responses", data=np.mean(list(responses.values()), axis=0))
        method = choose_ceiling(args.ceiling, subjects, ["sentences"], {})
        out.attrs["ceiling_method"] = method
        if method != "none":
            from brainphase.fmri.ceiling import ceiling_loso  # noqa: PLC0415

            ceilings, group = ceiling_loso(np.stack([responses[s] for s in subjects]), with_group=True)
            for s, subject in enumerate(subjects):
                out.create_dataset(f"subjects/{subject}/noise_ceiling", data=ceilings[s].astype(np.float32))
            if args.group_average:
                out.create_dataset("subjects/average/noise_ceiling", data=group.astype(np.float32))
    log.info("wrote %s: %d subjects x %d sentences, %d targets", args.out, len(subjects), len(sentences), len(columns))
