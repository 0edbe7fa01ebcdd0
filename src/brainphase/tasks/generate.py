"""Generate the built-in task suite from a training corpus (deterministic for a seed).

``python -m brainphase.tasks.generate --corpus-dir results/corpus --out src/brainphase/tasks/suite --seed 0``
reads ``train.txt`` and ``valid.txt`` (``brainphase corpus``) and writes one lm-eval task YAML
and one JSONL file per task. Skill documents mixed into ``train.txt`` (``corpus.skills_fraction``,
:mod:`brainphase.corpus.skills`) are cut off first, as ``corpus.json`` records them, so the
statistics below are those of the natural text. Words are the corpus's own: a *segment* is a run of words between
punctuation or line breaks; the *vocabulary* is the lower-case words ranked by count in
train.txt; *noun pairs* are words ``w`` / ``ws`` that both follow "the" at least 3 times.
``blimp_determiner`` uses the noun pairs whose number train.txt never contradicts ("this ws" and
"these w" never occur: this drops adjectives such as new / news), each noun pair in a singular and
a plural item (same frame and determiner pair), so a preference for one noun form, e.g. the more
frequent singular, scores exactly 0.5 and only agreement scores above it.

=====================  ===============  ===================================================================
task                   output type      item
=====================  ===============  ===================================================================
induction              loglikelihood    " w1 .. w6 w1" of 6 random vocabulary words; target: " w2 .. w6"
blimp_agreement        multiple_choice  "The lord is/are gone." (is/are, was/were, has/have), good first
blimp_determiner       multiple_choice  "I saw this lord." vs "I saw this lords.", then the same with "these" (pairs)
blimp_word_order       multiple_choice  a valid.txt segment vs the same with two adjacent words swapped
pattern_repeat         generate_until   3 shots of " w -> w w", then " w ->" of a new word; target: " w w"
arithmetic_addition    generate_until   4 shots of "a + b = c" (digits 0-9), then a new sum
knowledge_recurring    multiple_choice  3 words of a 4-gram seen >= 5 times in train.txt; choose the 4th
knowledge_heldout      multiple_choice  the same for 4-grams of valid.txt never seen in train.txt
=====================  ===============  ===================================================================

A copied word is written after a space wherever it occurs (``induction`` and ``pattern_repeat``
items start with a space): byte-level BPE (GPT-2, Pythia, ``brainphase train``) folds a leading
space into the word's tokens, so a word at the start of a line would be other tokens than its
copy, and the copy could not be predicted by copying tokens (no induction head could score
``acc``; the demo model scored exactly 0). Every word of the span and its copy are the same tokens
(``tests/test_tasks_copy.py``).

Knowledge distractors are 3 vocabulary words of frequency rank within 30 of the answer's whose
4-gram with the same 3 words never occurs in train.txt or valid.txt; the answer's position is
random. Every random choice uses ``random.Random(f"{seed}-{task}")``. Each YAML names the lm-eval
data loader ``custom_dataset: !function local_jsonl.load_docs`` (``suite/local_jsonl.py``, copied
into ``--out``), since lm-eval resolves ``data_files`` against the working directory.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import json
import random
import re
import shutil
import sys
from pathlib import Path

from brainphase.corpus import skills
from brainphase.errors import InputError
from brainphase.tasks.spec import SUITE_DIR

N_ITEMS = 60
#: version of each task's items, bumped whenever the generator changes them (others: 1.0).
#: blimp_determiner 2.0: pairs of singular and plural items over the determiner_pairs nouns;
#: induction 2.0, pattern_repeat 2.0: every copied word after a space (module docstring)
VERSIONS = {"blimp_determiner": 2.0, "induction": 2.0, "pattern_repeat": 2.0}
#: words of the random span of an induction item
INDUCTION_SPAN = 6
#: The lm-eval data loader every generated YAML names (copied next to generated YAML files).
CUSTOM_DATASET = "!function local_jsonl.load_docs"
_SEGMENT_SPLIT = re.compile(r"[^A-Za-z' ]+")
_AUXILIARIES = (("is", "are", "gone here dead true mad welcome"),
                ("was", "were", "gone here dead true mad welcome"),
                ("has", "have", "done spoken come seen heard"))
_FRAMES = ("I saw", "I know", "We love", "You found", "He heard", "She kept")
_DETERMINERS = (("this", "these"), ("that", "those"))
_FIELDS = {"loglikelihood": {"doc_to_text": "{{context}}", "doc_to_target": "{{target}}"},
           "multiple_choice": {"doc_to_text": "{{context}}", "doc_to_target": "{{label}}", "doc_to_choice": "{{choices}}"},
           "blimp": {"doc_to_text": "", "doc_to_target": 0, "doc_to_choice": "{{[sentence_good, sentence_bad]}}"},
           "generate_until": {"doc_to_text": "{{context}}", "doc_to_target": "{{target}}"}}


def segments(text: str) -> list[list[str]]:
    """Runs of words between punctuation and line breaks (apostrophes kept inside words)."""
    result = []
    for part in _SEGMENT_SPLIT.split(text):
        words = [w.strip("'") for w in part.split()]
        words = [w for w in words if w]
        if words:
            result.append(words)
    return result


def ngram_counts(segs: list[list[str]], n: int) -> collections.Counter:
    """Counts of the lower-case word n-grams inside segments."""
    counts = collections.Counter()
    for words in segs:
        lower = [w.lower() for w in words]
        counts.update(tuple(lower[i : i + n]) for i in range(len(lower) - n + 1))
    return counts


class Vocabulary:
    """The lower-case words of a training text ranked by count (all the skill tasks need)."""

    def __init__(self, train_text: str):
        self.train = segments(train_text)
        words = collections.Counter(w.lower() for seg in self.train for w in seg)
        self.vocabulary = sorted((w for w in words if w.isalpha()), key=lambda w: (-words[w], w))
        self.rank = {w: i for i, w in enumerate(self.vocabulary)}

    def common(self, n: int, min_length: int = 3) -> list[str]:
        """The ``n`` most frequent vocabulary words of at least ``min_length`` letters."""
        return list(itertools.islice((w for w in self.vocabulary if len(w) >= min_length), n))


class Corpus(Vocabulary):
    """Word statistics of train.txt and valid.txt."""

    def __init__(self, train_text: str, valid_text: str):
        super().__init__(train_text)
        self.valid = segments(valid_text)
        self.train4 = ngram_counts(self.train, 4)
        self.valid4 = ngram_counts(self.valid, 4)
        train2 = ngram_counts(self.train, 2)
        after_the = collections.Counter({b: c for (a, b), c in train2.items() if a == "the"})
        self.noun_pairs = sorted((w, w + "s") for w in after_the if after_the[w] >= 3 and w.isalpha()
                                 and len(w) >= 3 and not w.endswith("s") and after_the[w + "s"] >= 3)
        self.determiner_pairs = [(w, ws) for w, ws in self.noun_pairs
                                 if train2[("this", ws)] == 0 and train2[("these", w)] == 0]
        if len(self.determiner_pairs) < 5:
            raise InputError(f"the corpus has {len(self.noun_pairs)} noun pairs (w / ws after 'the', >= 3 times each), "
                             f"{len(self.determiner_pairs)} of them never after 'these' / 'this'; at least 5 are "
                             "needed for the formal tasks: use a larger corpus")


def _sample(rng: random.Random, pool: list, n: int, what: str) -> list:
    if len(pool) < n:
        raise InputError(f"the corpus gives only {len(pool)} candidate {what}, {n} are needed: use a larger corpus")
    return rng.sample(pool, n)


def _spaced(words: list[str]) -> str:
    """``words`` each after a space: ``" w1 w2 .."`` (so a word and its copy are the same tokens)."""
    return "".join(f" {w}" for w in words)


def induction(corpus: Vocabulary, rng: random.Random, n_items: int) -> list[dict]:
    pool = corpus.common(300)
    items = []
    for _ in range(n_items):
        words = _sample(rng, pool, INDUCTION_SPAN, "common words")
        items.append({"context": _spaced(words + words[:1]), "target": _spaced(words[1:])})
    return items


def blimp_agreement(corpus: Corpus, rng: random.Random, n_items: int) -> list[dict]:
    items = []
    for _ in range(n_items):
        singular, plural = rng.choice(corpus.noun_pairs)
        aux_singular, aux_plural, complements = rng.choice(_AUXILIARIES)
        complement = rng.choice(complements.split())
        is_plural = rng.random() < 0.5
        noun, good, bad = (plural, aux_plural, aux_singular) if is_plural else (singular, aux_singular, aux_plural)
        items.append({"sentence_good": f"The {noun} {good} {complement}.", "sentence_bad": f"The {noun} {bad} {complement}."})
    return items


def blimp_determiner(corpus: Corpus, rng: random.Random, n_items: int) -> list[dict]:
    items = []
    while len(items) < n_items:  # a singular and a plural item of one noun pair, determiner pair and frame
        singular, plural = rng.choice(corpus.determiner_pairs)
        det_singular, det_plural = rng.choice(_DETERMINERS)
        frame = rng.choice(_FRAMES)
        for det, good, bad in ((det_singular, singular, plural), (det_plural, plural, singular)):
            items.append({"sentence_good": f"{frame} {det} {good}.", "sentence_bad": f"{frame} {det} {bad}."})
    return items[:n_items]


def blimp_word_order(corpus: Corpus, rng: random.Random, n_items: int) -> list[dict]:
    known = set(corpus.vocabulary[:2000])
    pool = sorted({tuple(seg) for seg in corpus.valid if 5 <= len(seg) <= 9
                   and all(w.lower() in known for w in seg) and len({w.lower() for w in seg}) == len(seg)})
    items = []
    for words in _sample(rng, pool, n_items, "valid.txt segments of 5-9 distinct common words"):
        i = rng.randrange(len(words) - 1)
        swapped = list(words)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        items.append({"sentence_good": " ".join(words) + ".", "sentence_bad": " ".join(swapped) + "."})
    return items


def pattern_repeat(corpus: Vocabulary, rng: random.Random, n_items: int) -> list[dict]:
    pool = corpus.common(500, min_length=4)
    items = []
    for _ in range(n_items):
        words = _sample(rng, pool, 4, "common words")
        shots = "".join(f"{_spaced([w])} ->{_spaced([w, w])}\n" for w in words[:3])
        items.append({"context": f"{shots}{_spaced(words[3:])} ->", "target": _spaced([words[3]] * 2)})
    return items


def arithmetic_addition(corpus: Vocabulary, rng: random.Random, n_items: int) -> list[dict]:
    items = []
    for _ in range(n_items):
        pairs = [(rng.randrange(10), rng.randrange(10)) for _ in range(5)]
        shots = "".join(f"{a} + {b} = {a + b}\n" for a, b in pairs[:4])
        a, b = pairs[4]
        items.append({"context": f"{shots}{a} + {b} =", "target": f" {a + b}"})
    return items


def _knowledge(corpus: Corpus, rng: random.Random, candidates: list[tuple[str, ...]], n_items: int) -> list[dict]:
    items = []
    for gram in candidates:
        if len(items) == n_items:
            break
        rank = corpus.rank[gram[3]]
        near = [w for w in corpus.vocabulary[max(0, rank - 30) : rank + 31] if w != gram[3]
                and corpus.train4[gram[:3] + (w,)] == 0 and corpus.valid4[gram[:3] + (w,)] == 0]
        if len(near) < 3:
            continue
        choices = rng.sample(near, 3)
        label = rng.randrange(4)
        choices.insert(label, gram[3])
        items.append({"context": " ".join(gram[:3]), "choices": choices, "label": label})
    if len(items) < n_items:
        raise InputError(f"the corpus gives only {len(items)} knowledge items, {n_items} are needed: use a larger corpus")
    return items


def _lowercase_grams(segs: list[list[str]]) -> set[tuple[str, ...]]:
    return {tuple(seg[i : i + 4]) for seg in segs for i in range(len(seg) - 3)
            if all(w.isalpha() and w.islower() for w in seg[i : i + 4])}


def knowledge_recurring(corpus: Corpus, rng: random.Random, n_items: int) -> list[dict]:
    known = set(corpus.vocabulary[:3000])
    pool = sorted(g for g in _lowercase_grams(corpus.train) if corpus.train4[g] >= 5 and g[3] in known)
    rng.shuffle(pool)
    return _knowledge(corpus, rng, pool, n_items)


def knowledge_heldout(corpus: Corpus, rng: random.Random, n_items: int) -> list[dict]:
    known = set(corpus.vocabulary[:3000])
    pool = sorted(g for g in _lowercase_grams(corpus.valid) if corpus.train4[g] == 0 and g[3] in known)
    rng.shuffle(pool)
    return _knowledge(corpus, rng, pool, n_items)


def item_version(name: str) -> float:
    """The version of task ``name``'s items (:data:`VERSIONS`, else 1.0)."""
    return VERSIONS.get(name, 1.0)


#: task name -> (family, output type or "blimp", generator function, max_gen_toks)
TASKS = {
    "induction": ("induction", "loglikelihood", induction, 0),
    "blimp_agreement": ("formal", "blimp", blimp_agreement, 0),
    "blimp_determiner": ("formal", "blimp", blimp_determiner, 0),
    "blimp_word_order": ("formal", "blimp", blimp_word_order, 0),
    "pattern_repeat": ("pattern", "generate_until", pattern_repeat, 8),
    "arithmetic_addition": ("arithmetic", "generate_until", arithmetic_addition, 4),
    "knowledge_recurring": ("knowledge", "multiple_choice", knowledge_recurring, 0),
    "knowledge_heldout": ("knowledge", "multiple_choice", knowledge_heldout, 0),
}


def task_yaml(name: str, family: str, kind: str, max_gen_toks: int, seed: int, corpus_sha256: str) -> dict:
    """The lm-eval task config of one generated task."""
    output_type = "multiple_choice" if kind == "blimp" else kind
    metric = {"loglikelihood": "acc", "multiple_choice": "acc", "generate_until": "exact_match"}[output_type]
    config = {"task": f"brainphase_{name}", "dataset_path": "json",
              "dataset_kwargs": {"data_files": {"test": f"{name}.jsonl"}}, "test_split": "test",
              "output_type": output_type, **_FIELDS[kind]}
    if output_type == "generate_until":
        config["generation_kwargs"] = {"until": ["\n"], "max_gen_toks": max_gen_toks, "do_sample": False}
    metrics = [{"metric": metric, "aggregation": "mean", "higher_is_better": True}]
    if output_type == "multiple_choice":
        metrics.append({"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True})
    config["metric_list"] = metrics
    config["metadata"] = {"version": item_version(name), "family": family,
                          "generator": f"python -m brainphase.tasks.generate --seed {seed}",
                          "corpus_sha256": corpus_sha256}
    return config


def generate(corpus_dir: str | Path, out: str | Path, seed: int = 0, n_items: int = N_ITEMS) -> list[Path]:
    """Write the YAML and JSONL files of :data:`TASKS` (``n_items`` items each) into ``out``;
    returns the YAML paths."""
    import yaml

    from brainphase.io import read_nonempty_text

    corpus_dir, out = Path(corpus_dir), Path(out)
    texts = [read_nonempty_text(corpus_dir / name, "run `brainphase corpus` first") for name in ("train.txt", "valid.txt")]
    summary_path = corpus_dir / "corpus.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    texts[0] = skills.natural_text(texts[0], summary)
    corpus = Corpus(*texts)
    corpus_sha256 = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    # every task's items before any file is written (a corpus too small for one task writes nothing)
    items = {name: function(corpus, random.Random(f"{seed}-{name}"), n_items)
             for name, (_, _, function, _) in TASKS.items()}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (family, kind, _, max_gen_toks) in TASKS.items():
        lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items[name])
        (out / f"{name}.jsonl").write_text(lines, encoding="utf-8")
        config = task_yaml(name, family, kind, max_gen_toks, seed, corpus_sha256)
        header = f"# generated by `python -m brainphase.tasks.generate --seed {seed}`; do not edit by hand\n"
        body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        # lm-eval reads the JSONL files relative to the task folder through this loader (suite/local_jsonl.py)
        body = body.replace("test_split: test\n", f"test_split: test\ncustom_dataset: {CUSTOM_DATASET}\n", 1)
        (out / f"{name}.yaml").write_text(header + body, encoding="utf-8")
        written.append(out / f"{name}.yaml")
    loader = SUITE_DIR / "local_jsonl.py"
    if out.resolve() != SUITE_DIR.resolve():
        shutil.copyfile(loader, out / loader.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brainphase.tasks.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-dir", required=True, help="folder with train.txt and valid.txt (brainphase corpus)")
    parser.add_argument("--out", required=True, help="output folder of the task files")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: %(default)s)")
    parser.add_argument("--n-items", type=int, default=N_ITEMS, help="items per task (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        for path in generate(args.corpus_dir, args.out, args.seed, args.n_items):
            print(path)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
