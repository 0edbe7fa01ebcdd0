"""Tests of the suite generator's item design (brainphase.tasks.generate)."""

from __future__ import annotations

import json
import random

from brainphase.tasks import generate, spec

# "this news" contradicts new/news as a singular/plural noun pair; lord/lords and king/kings agree
TRAIN = ("the lord came . the lords came . the king came . the kings came . the new came . the news came . "
         "the hand came . the hands came . the eye came . the eyes came . the day came . the days came . ") * 3
TRAIN += "this news is good . this lord . these lords . this news ."


def test_determiner_pairs_leave_out_nouns_the_corpus_contradicts():
    corpus = generate.Corpus(TRAIN, "the lord")
    assert ("new", "news") in corpus.noun_pairs and ("new", "news") not in corpus.determiner_pairs
    assert corpus.determiner_pairs == [p for p in corpus.noun_pairs if p != ("new", "news")]


def _noun(sentence: str) -> str:
    return sentence.rstrip(".").split()[-1]


def test_determiner_items_come_in_pairs_so_a_noun_form_preference_scores_one_half():
    corpus = generate.Corpus(TRAIN, "the lord")
    items = generate.blimp_determiner(corpus, random.Random(0), 40)
    for singular, plural in zip(items[::2], items[1::2]):
        assert _noun(singular["sentence_good"]) == _noun(plural["sentence_bad"])
        assert _noun(singular["sentence_bad"]) == _noun(plural["sentence_good"])
        assert singular["sentence_good"].split()[:2] == plural["sentence_good"].split()[:2]  # one frame
    # a scorer that always prefers one noun form (here the singular, as a frequency bias would) is
    # right on exactly half the items, whatever the determiner
    right = [len(_noun(i["sentence_good"])) < len(_noun(i["sentence_bad"])) for i in items]
    assert sum(right) == len(items) // 2


def test_shipped_determiner_items_are_balanced():
    items = [json.loads(line) for line in (spec.SUITE_DIR / "blimp_determiner.jsonl").read_text().splitlines()]
    plural_good = [i["sentence_good"].split()[2] in ("these", "those") for i in items]
    assert sum(plural_good) == len(items) // 2 and plural_good[:4] == [False, True, False, True]
