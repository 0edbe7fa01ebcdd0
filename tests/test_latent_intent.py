"""Tests of the latent-intent corpus source and its in-context task (brainphase.corpus.latent_intent)."""

from __future__ import annotations

import json
import math
import random

import pytest

from brainphase import stimuli
from brainphase.cli import main as cli_main
from brainphase.corpus import latent_intent
from brainphase.errors import InputError
from brainphase.tasks.spec import load_suite, load_task


def _corpus(tmp_path, *extra, name="corpus", epsilon="0.3", seed="3"):
    out = tmp_path / name
    argv = ["corpus", "--source", "latent-intent", "--out-dir", str(out), "--max-train-chars", "40000",
            "--stimulus-runs", "2", "--stimulus-words", "150", "--seed", seed, "--latent-intents", "6",
            "--latent-epsilon", epsilon, "--latent-phrasings", "12", *extra]
    assert cli_main(argv) == 0
    return out


def test_empirical_ambiguity_on_a_hand_counted_corpus():
    # "a" occurs under intents 0 and 1 (2 occurrences), "b" "c" "d" under one intent each: 2 of 5
    assert latent_intent.empirical_ambiguity([0, 1, 0], [["a", "b"], ["a", "c"], ["d"]]) == pytest.approx(0.4)
    assert latent_intent.empirical_ambiguity([0, 0], [["a"], ["a", "b"]]) == 0.0
    with pytest.raises(InputError, match="no examples"):
        latent_intent.empirical_ambiguity([0], [[]])


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3, 0.6])
def test_empirical_ambiguity_matches_epsilon(epsilon):
    model = latent_intent.LatentIntentModel(n_intents=6, epsilon=epsilon, n_phrasings=12, seed=1)
    rng = random.Random(7)
    intents = [rng.randrange(6) for _ in range(1500)]
    documents = [model.document(rng, intent, 6) for intent in intents]
    n_examples = 1500 * 6
    observed = latent_intent.empirical_ambiguity(intents, documents)
    # binomial standard error of the shared-pool fraction; 4 sigma plus a little slack
    tolerance = 4 * math.sqrt(epsilon * (1 - epsilon) / n_examples) + 0.002
    assert abs(observed - epsilon) <= tolerance
    if epsilon == 0.0:
        assert observed == 0.0


def test_pools_share_no_word_and_phrasings_are_distinct():
    model = latent_intent.LatentIntentModel(n_intents=5, epsilon=0.2, n_phrasings=10, seed=0)
    pools = [*model.own_pools, model.shared_pool]
    vocabularies = [{w for phrasing in pool for w in phrasing.split()} for pool in pools]
    for i, a in enumerate(vocabularies):
        assert len(a) <= latent_intent.POOL_WORDS
        for b in vocabularies[i + 1 :]:
            assert not a & b
    for pool in pools:
        assert len(pool) == len(set(pool)) == 10
        assert all(3 <= len(p.split()) <= 5 for p in pool)


def test_model_is_deterministic_per_seed():
    a = latent_intent.LatentIntentModel(4, 0.2, 8, seed=11)
    b = latent_intent.LatentIntentModel(4, 0.2, 8, seed=11)
    c = latent_intent.LatentIntentModel(4, 0.2, 8, seed=12)
    assert a.own_pools == b.own_pools and a.shared_pool == b.shared_pool
    assert a.own_pools != c.own_pools


@pytest.mark.parametrize(("args", "match"), [((1, 0.0, 8), "latent_intents"), ((4, 1.5, 8), "latent_epsilon"),
                                             ((4, 0.0, 3), "latent_phrasings"), ((4, 0.0, 2000), "latent_phrasings")])
def test_bad_parameters_are_clear(args, match):
    with pytest.raises(InputError, match=match):
        latent_intent.LatentIntentModel(*args, seed=0)


def test_corpus_files_layout_and_holdout(tmp_path):
    out = _corpus(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted([*stimuli.CORPUS_FILES, stimuli.TASKS_DIR])
    assert sorted(p.name for p in (out / "tasks").iterdir()) == ["latent_intent.jsonl", "latent_intent.yaml",
                                                                 "local_jsonl.py"]
    train, valid = (out / "train.txt").read_text(), (out / "valid.txt").read_text()
    summary = json.loads((out / "corpus.json").read_text())
    words = stimuli.read_stimulus(out / "stimulus_words.tsv")
    assert 35000 < len(train) <= 40000
    assert 0.02 < len(valid) / (len(train) + len(valid)) < 0.15
    assert words.groupby("run").size().tolist() == [150, 150]
    info = summary["source"]["latent_intent"]
    assert info["intents"] == 6 and info["epsilon"] == 0.3 and info["examples_per_document"] == 16
    assert abs(info["empirical_ambiguity"] - 0.3) < 0.05
    assert summary["source"]["licence"] == latent_intent.LATENT_INTENT_LICENCE
    # every line of train.txt is one example: a phrasing of some pool followed by " ."
    phrasings = {p for pool in [*info["own_pools"], info["shared_pool"]] for p in pool}
    lines = [line for line in train.split("\n") if line]
    assert lines and all(line.endswith(" .") and line[:-2] in phrasings for line in lines)
    assert not set(summary["stimulus_runs"].values()) & set(summary["training_documents"])
    # rerunning into the same folder (which now holds tasks/) is allowed
    _corpus(tmp_path)


def test_corpus_is_deterministic_per_seed(tmp_path):
    a = _corpus(tmp_path, name="a")
    b = _corpus(tmp_path, name="b")
    c = _corpus(tmp_path, name="c", seed="4")
    for name in ("train.txt", "valid.txt", "stimulus_words.tsv", "tasks/latent_intent.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train.txt").read_bytes() != (c / "train.txt").read_bytes()


@pytest.mark.parametrize("epsilon", ["0.0", "0.5", "1.0"])
def test_task_loads_and_answers_follow_from_the_intents(tmp_path, epsilon):
    out = _corpus(tmp_path, epsilon=epsilon)
    info = json.loads((out / "corpus.json").read_text())["source"]["latent_intent"]
    own = [set(pool) for pool in info["own_pools"]]
    shared = set(info["shared_pool"])
    spec = load_task(out / "tasks" / "latent_intent.yaml")
    assert spec.name == "latent_intent" and spec.output_type == "multiple_choice"
    assert len(spec.items) == latent_intent.TASK_ITEMS
    docs = [json.loads(line) for line in (out / "tasks" / "latent_intent.jsonl").read_text().splitlines()]
    n_shared_shots = 0
    for item, doc in zip(spec.items, docs, strict=True):
        shots = [line[:-2] for line in item.context.split("\n") if line]
        assert len(shots) == latent_intent.TASK_SHOTS and item.context.endswith(" .\n")
        n_shared_shots += sum(shot in shared for shot in shots)
        # ideal Bayesian observer from the pools alone: the intents under which every shot can occur
        compatible = {k for k in range(len(own)) if all(shot in own[k] or shot in shared for shot in shots)}
        assert compatible == {doc["intent"]}
        # the choices follow the line break directly; exactly the gold one is an own phrasing of that intent
        assert item.continuations == item.choice_texts
        answers = [k for k, choice in enumerate(item.choice_texts) if choice[:-2] in own[doc["intent"]]]
        assert answers == [item.gold]
        assert item.choice_texts[item.gold][:-2] not in shots
        assert len({next(k for k in range(len(own)) if c[:-2] in own[k]) for c in item.choice_texts}) == 4
    fraction_shared = n_shared_shots / (len(docs) * latent_intent.TASK_SHOTS)
    if epsilon == "0.0":
        assert fraction_shared == 0.0
    elif epsilon == "1.0":  # one shot per item is made unambiguous
        assert fraction_shared == pytest.approx(2 / 3)
    else:
        assert 0.35 < fraction_shared < 0.6
    # the folder works as tasks.suite
    assert "latent_intent" in {s.name for s in load_suite([out / "tasks"])}
