"""Tests of brainphase.corpus.skills: skill documents mixed into train.txt (corpus.skills_fraction)."""

from __future__ import annotations

import json

import pytest

from brainphase.cli import main as cli_main
from brainphase.config import schema_default
from brainphase.corpus import skills
from brainphase.errors import InputError
from brainphase.stimuli import generate_stories
from brainphase.tasks import generate, spec

NATURAL = "\n\n".join(generate_stories(40, 400, seed=0)) + "\n"


def _corpus(tmp_path, fraction, name, seed=5):
    out = tmp_path / name
    argv = ["corpus", "--source", "generated", "--out-dir", str(out), "--max-train-chars", "120000",
            "--stimulus-runs", "2", "--stimulus-words", "100", "--seed", str(seed), "--skills-fraction", str(fraction)]
    assert cli_main(argv) == 0
    return out


def test_schema_default_is_no_mixture_and_the_cli_uses_it(tmp_path):
    assert schema_default("corpus.skills_fraction") == 0.0
    out = tmp_path / "corpus"
    assert cli_main(["corpus", "--source", "generated", "--out-dir", str(out), "--max-train-chars", "20000",
                     "--stimulus-runs", "2", "--stimulus-words", "100"]) == 0
    summary = json.loads((out / "corpus.json").read_text())
    assert summary["settings"]["skills_fraction"] == 0.0
    assert summary["skills"]["chars"] == 0 and summary["skills"]["documents"] == dict.fromkeys(skills.SKILL_TASKS, 0)
    assert summary["counts"]["train"]["chars"] == len((out / "train.txt").read_text())


@pytest.mark.parametrize("fraction", [0.05, 0.3])
def test_fraction_is_respected_within_one_document(fraction):
    mixed, summary = skills.mix_skills(NATURAL, fraction, seed=1)
    added = len(mixed) - len(NATURAL)
    assert summary["chars"] == added and summary["fraction"] == pytest.approx(added / len(mixed))
    longest = max(len(d) for d in mixed[summary["start_char"]:].split("\n\n"))
    # documents are added until the target is reached, so it is passed by less than one document
    assert 0 <= added - fraction / (1 - fraction) * len(NATURAL) <= longest + 2
    assert abs(summary["fraction"] - fraction) < 0.02
    assert set(summary["documents"]) == set(skills.SKILL_TASKS)
    # round-robin over SKILL_ROTATION: three induction documents for each pattern and each sum document
    counts = summary["documents"]
    assert summary["rotation"] == list(skills.SKILL_ROTATION)
    assert abs(counts["pattern_repeat"] - counts["arithmetic_addition"]) <= 1
    assert abs(counts["induction"] - 3 * counts["arithmetic_addition"]) <= 3


def test_mixture_is_deterministic_by_seed_and_appends_skills_only():
    a, summary = skills.mix_skills(NATURAL, 0.1, seed=1)
    b, _ = skills.mix_skills(NATURAL, 0.1, seed=1)
    c, _ = skills.mix_skills(NATURAL, 0.1, seed=2)
    assert a == b and a != c
    assert a.startswith(NATURAL.rstrip("\n") + "\n\n") and summary["start_char"] == len(NATURAL) + 1
    assert skills.natural_text(a, {"skills": summary}) == NATURAL
    skill_text = a[summary["start_char"]:]
    assert skill_text.count(" -> ") == 4 * summary["items"]["pattern_repeat"]
    assert skill_text.count(" + ") == 5 * summary["items"]["arithmetic_addition"]
    # an induction line is a span of words, then the same span again, every word after a space as in the suite
    span = generate.INDUCTION_SPAN
    lines = [line for line in skill_text.splitlines() if " -> " not in line and " + " not in line and line]
    induction = [line.split() for line in lines]
    assert len(induction) == summary["items"]["induction"]
    assert all(len(words) == 2 * span and words[:span] == words[span:] for words in induction)
    assert all(line == "".join(f" {w}" for w in words) for line, words in zip(lines, induction))
    assert all(line == " {0} -> {0} {0}".format(line.split()[0]) for line in skill_text.splitlines() if " -> " in line)
    # the skill documents' format is the built-in suite's: the same item versions
    assert summary["versions"] == {s.name: float(s.version) for s in spec.load_suite(names=list(skills.SKILL_TASKS))}
    unmixed, none = skills.mix_skills(NATURAL, 0.0, seed=1)
    assert unmixed == NATURAL and none["chars"] == 0 and none["fraction"] == 0.0


def test_cli_mixes_train_only_and_the_suite_generator_ignores_the_skills(tmp_path):
    plain = _corpus(tmp_path, 0.0, "plain")
    mixed = _corpus(tmp_path, 0.2, "mixed")
    for name in ("valid.txt", "stimulus_words.tsv"):
        assert (plain / name).read_bytes() == (mixed / name).read_bytes()
    train = (mixed / "train.txt").read_text()
    summary = json.loads((mixed / "corpus.json").read_text())
    assert summary["skills"]["fraction"] == pytest.approx(0.2, abs=0.02)
    assert summary["counts"]["train"]["chars"] == len(train)
    assert skills.natural_text(train, summary) == (plain / "train.txt").read_text()
    assert " -> " in train and " -> " not in (mixed / "valid.txt").read_text()


def test_the_suite_generator_ignores_the_skills(tmp_path):
    """The generator reads corpus.json and cuts the skill documents off: the same tasks as without them."""
    stories = generate_stories(60, 400, seed=0)
    valid = "\n\n".join(stories[50:]) + "\n"
    natural = "\n\n".join(stories[:50]) + "\n"
    mixed, summary = skills.mix_skills(natural, 0.2, seed=0)
    for name, train in (("plain", natural), ("mixed", mixed)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.txt").write_text(train)
        (tmp_path / name / "valid.txt").write_text(valid)
    (tmp_path / "mixed" / "corpus.json").write_text(json.dumps({"skills": summary}))
    generate.generate(tmp_path / "plain", tmp_path / "suite_plain", seed=0, n_items=10)
    generate.generate(tmp_path / "mixed", tmp_path / "suite_mixed", seed=0, n_items=10)
    for path in sorted((tmp_path / "suite_plain").iterdir()):
        assert path.read_bytes() == (tmp_path / "suite_mixed" / path.name).read_bytes(), path.name
    # without corpus.json the skill words would count: the vocabulary-driven tasks differ
    (tmp_path / "mixed" / "corpus.json").unlink()
    generate.generate(tmp_path / "mixed", tmp_path / "suite_unaware", seed=0, n_items=10)
    assert any(path.read_bytes() != (tmp_path / "suite_unaware" / path.name).read_bytes()
               for path in (tmp_path / "suite_plain").glob("*.jsonl"))


def test_no_built_in_suite_item_is_trained_on(tmp_path):
    mixed = _corpus(tmp_path, 0.2, "mixed")
    train = (mixed / "train.txt").read_text()
    skill_text = train[json.loads((mixed / "corpus.json").read_text())["skills"]["start_char"]:]
    forbidden = skills.suite_strings()
    assert not [text for text in forbidden if text in skill_text]
    by_name = {s.name: s for s in spec.load_suite()}
    for name in skills.SKILL_TASKS:
        for item in by_name[name].items:
            assert item.context + item.target not in train
    # every item of every built-in task is covered: sequences, each knowledge choice, each BLiMP sentence
    induction = by_name["induction"].items[0]
    assert induction.context + induction.target in forbidden
    knowledge = by_name["knowledge_heldout"].items[0]
    assert {knowledge.context + " " + choice for choice in knowledge.choice_texts} <= forbidden
    assert set(by_name["blimp_agreement"].items[0].continuations) <= forbidden


def test_a_document_holding_a_suite_item_is_replaced(monkeypatch):
    """Plant a collision: forbid a line of the first document the generators would draw."""
    monkeypatch.setattr(skills, "suite_strings", lambda: set())
    free, free_summary = skills.mix_skills(NATURAL, 0.1, seed=3)
    planted = free[free_summary["start_char"]:].splitlines()[1]
    assert planted and free_summary["dropped_documents"] == 0
    monkeypatch.setattr(skills, "suite_strings", lambda: {planted})
    mixed, summary = skills.mix_skills(NATURAL, 0.1, seed=3)
    assert planted not in mixed[summary["start_char"]:]
    assert summary["dropped_documents"] >= 1
    assert abs(summary["fraction"] - free_summary["fraction"]) < 0.01


def test_unavoidable_suite_items_are_an_input_error(monkeypatch):
    monkeypatch.setattr(skills, "suite_strings", lambda: {" + "})  # every sum document holds it
    with pytest.raises(InputError, match="too small for --skills-fraction"):
        skills.mix_skills(NATURAL, 0.1, seed=3)


def test_holding_finds_documents_and_never_spans_two():
    documents = ["x y", "z 1 + 2 = 3", "w", "1 + 2 = 3"]
    assert skills._holding(documents, {"1 + 2 = 3", "y"}) == [0, 1, 3]
    assert skills._holding(documents, {"y\nz", "y z", "w1"}) == []


@pytest.mark.parametrize("fraction", ["-0.1", "1", "1.5"])
def test_fraction_outside_zero_one_is_refused(tmp_path, capsys, fraction):
    out = tmp_path / "corpus"
    assert cli_main(["corpus", "--source", "generated", "--out-dir", str(out), "--skills-fraction", fraction]) == 2
    assert "--skills-fraction" in capsys.readouterr().err and not out.exists()
