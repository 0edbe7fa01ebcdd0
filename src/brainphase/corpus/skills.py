"""Synthetic *skill* documents mixed into ``train.txt`` (``corpus.skills_fraction``).

Natural pretraining corpora (the Pile) hold repeated spans, list and pattern formats and
arithmetic; Shakespeare's plays hold none of them, so a tiny model trained on them alone cannot
learn the suite's tasks ``induction``, ``pattern_repeat`` and ``arithmetic_addition``.
With ``skills_fraction = f > 0``, ``brainphase corpus`` appends to ``train.txt`` (never to
``valid.txt`` or the stimulus) skill documents making up the fraction ``f`` of its characters:

* documents are made round-robin over :data:`SKILL_ROTATION` (three induction documents for each
  pattern and each sum document: a tiny model needs the most examples to learn copying), each of
  :data:`ITEMS_PER_DOCUMENT` items of that task, one ``context + target`` per line (a task
  item of several lines, e.g. few-shot sums, keeps its line breaks), documents separated by a
  blank line like the corpus's own; lines of copied words start with a space, as the suite's
  items (every copied word is the same tokens in both places: :mod:`brainphase.tasks.generate`);
* the items come from the suite's own generators (:data:`brainphase.tasks.generate.TASKS`)
  over the vocabulary of the corpus's training text, but with the random stream
  ``random.Random(f"skills-{seed}-{task}")`` (the suite uses ``f"{seed}-{task}"``);
* a document containing any built-in suite item (its context followed by any of its
  continuations, e.g. an induction sequence, a knowledge 4-gram or one of its distractors) is
  replaced by a new draw of its task, so no scored item is trained on (:func:`suite_strings`);
* documents are added until the skill text reaches ``f / (1 - f)`` of the natural training
  text, so the fraction is exact to within one document.

The skill text starts at character ``skills.start_char`` of ``train.txt`` (recorded in
``corpus.json``); :func:`natural_text` cuts it off again, so the suite generator's word
statistics stay those of the natural text. Every other reader of ``train.txt`` sees the skill
documents: the tokenizer and the model (``brainphase train``), and the word counts behind
``brainphase simulate``'s frequency and bigram-surprisal features.
"""

from __future__ import annotations

import bisect
import itertools
import random

from brainphase.errors import InputError

#: suite tasks whose items are mixed into train.txt
SKILL_TASKS = ("induction", "pattern_repeat", "arithmetic_addition")
#: the order in which skill documents are made, repeated: induction three times as often as the
#: others (README, "Skill documents": the demo model learns sums and patterns on far fewer examples)
SKILL_ROTATION = ("induction", "pattern_repeat", "induction", "arithmetic_addition", "induction")
#: items per skill document
ITEMS_PER_DOCUMENT = 8
#: ``corpus.json`` key of the skill-mixture record
SUMMARY_KEY = "skills"


def suite_strings() -> set[str]:
    """Every built-in suite item's context followed by each of its continuations.

    Returns
    -------
    set of str
        Loglikelihood and generation items: ``context + target``; multiple choice:
        ``context + " " + choice`` for every choice; BLiMP pairs: each sentence.
    """
    from brainphase.tasks.spec import load_suite

    return {item.context + continuation for spec in load_suite() for item in spec.items
            for continuation in item.continuations}


def _holding(documents: list[str], forbidden: set[str]) -> list[int]:
    """Sorted indices of the ``documents`` that contain one of the ``forbidden`` strings."""
    text = "\0".join(documents)  # no forbidden string holds a NUL, so none spans two documents
    starts = list(itertools.accumulate((len(d) + 1 for d in documents[:-1]), initial=0))
    found = set()
    for string in forbidden:
        position = text.find(string)
        while position >= 0:
            found.add(bisect.bisect_right(starts, position) - 1)
            position = text.find(string, position + 1)
    return sorted(found)


def mix_skills(train: str, fraction: float, seed: int) -> tuple[str, dict]:
    """``train`` followed by skill documents making up ``fraction`` of the result (module docstring).

    Parameters
    ----------
    train : str
        The natural training text (its vocabulary gives the words).
    fraction : float
        Target share of skill characters in the mixed training text, ``0 <= fraction < 1``.
    seed : int
        Seed of the random streams ``random.Random(f"skills-{seed}-{task}")``.

    Returns
    -------
    mixed : str
        ``train`` (``fraction == 0``) or ``train``, a blank line and the skill documents
        separated by blank lines.
    summary : dict
        ``fraction`` (measured share ``chars / len(mixed)``), ``requested_fraction``, ``seed``,
        ``start_char`` (index of the first skill character in ``mixed``), ``chars`` (characters
        added to ``train``), ``documents`` and ``items`` per task, ``dropped_documents`` (draws
        replaced because they held a suite item), ``rotation`` (:data:`SKILL_ROTATION`),
        ``generator`` and ``versions`` (task -> the suite's item version of its generator, :data:`brainphase.tasks.generate.VERSIONS`: a
        train.txt of older skill documents, e.g. induction 1.0, says so).

    Raises
    ------
    InputError
        ``fraction`` outside [0, 1), or more replaced draws than documents (a vocabulary so
        small that the draws keep repeating suite items).
    """
    from brainphase.tasks.generate import TASKS, Vocabulary, item_version

    if not 0.0 <= fraction < 1.0:
        raise InputError(f"--skills-fraction must be in [0, 1), got {fraction}")
    target_chars = fraction / (1.0 - fraction) * len(train)
    documents: list[str] = []
    counts = {task: 0 for task in SKILL_TASKS}
    dropped = 0
    if target_chars > 0:
        vocabulary = Vocabulary(train)
        forbidden = suite_strings()
        streams = {task: random.Random(f"skills-{seed}-{task}") for task in SKILL_TASKS}

        def draw(task: str) -> str:
            items = TASKS[task][2](vocabulary, streams[task], ITEMS_PER_DOCUMENT)
            return "\n".join(item["context"] + item["target"] for item in items)

        tasks: list[str] = []
        chars = 0
        while chars < target_chars:
            tasks.append(SKILL_ROTATION[len(tasks) % len(SKILL_ROTATION)])
            documents.append(draw(tasks[-1]))
            chars += len(documents[-1]) + 2  # with the blank line before it
        holding = _holding(documents, forbidden)
        while holding:  # replace, in order, each document that holds a suite item by a new draw
            if dropped > len(documents):
                raise InputError(f"{dropped} skill documents drawn from this corpus's vocabulary held a built-in suite "
                                 "item: the vocabulary is too small for --skills-fraction; use a larger corpus or 0")
            dropped += len(holding)
            for i in holding:
                documents[i] = draw(tasks[i])
            holding = [i for i in holding if _holding([documents[i]], forbidden)]
        counts = {task: tasks.count(task) for task in SKILL_TASKS}
    mixed, start_char = train, len(train)
    if documents:
        natural = train.rstrip("\n") + "\n\n"
        mixed, start_char = natural + "\n\n".join(documents) + "\n", len(natural)
    summary = {"fraction": (len(mixed) - len(train)) / len(mixed), "requested_fraction": fraction, "seed": seed,
               "start_char": start_char, "chars": len(mixed) - len(train), "documents": counts,
               "items": {task: n * ITEMS_PER_DOCUMENT for task, n in counts.items()},
               "dropped_documents": dropped, "rotation": list(SKILL_ROTATION),
               "generator": "brainphase.corpus.skills: the suite generators (brainphase.tasks.generate) "
                            "with random.Random(f'skills-{seed}-{task}'), built-in suite items excluded",
               "versions": {task: item_version(task) for task in SKILL_TASKS}}
    return mixed, summary


def natural_text(train: str, summary: dict | None) -> str:
    """The natural part of a ``train.txt`` whose ``corpus.json`` is ``summary``: the skill
    documents cut off (``train`` itself when none were mixed in or ``summary`` is None)."""
    record = (summary or {}).get(SUMMARY_KEY)
    if not record or not record["chars"]:
        return train
    return train[: record["start_char"]].rstrip("\n") + "\n"
