"""Task files: the shipped suite, lm-eval rendering rules, bad input, and the generator."""

import json

import pytest
import yaml

from brainphase.errors import InputError
from brainphase.stimuli import generate_stories
from brainphase.tasks import generate, spec


def write_task(folder, name="mine", data=None, **fields):
    """A valid multiple-choice task file with its data, fields overridden by ``fields``
    (a value of None removes the field)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"task": f"brainphase_{name}", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": f"{name}.jsonl"}},
              "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "Q: {{question}}",
              "doc_to_target": "{{label}}", "doc_to_choice": "{{choices}}", "metadata": {"version": 2, "family": "knowledge"}}
    for key, value in fields.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    data = data or [{"question": "two", "choices": ["1", "2", "it's"], "label": 1},
                    {"question": "three", "choices": ["3", "4"], "label": "0"}]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in data))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_shipped_suite_covers_the_families():
    specs = spec.load_suite()
    # next_token comes from tasks.text, latent_intent from a latent-intent corpus (`brainphase corpus`)
    assert {s.family for s in specs} == set(spec.FAMILIES) - {"next_token", "latent_intent"}
    assert {s.output_type for s in specs} == set(spec.OUTPUT_TYPES)
    for task in specs:
        assert 50 <= len(task.items) <= 100 and task.version == str(generate.VERSIONS.get(task.name, 1.0)), task.name
        assert (spec.SUITE_DIR / f"{task.name}.yaml") == task.source
    formal = [s for s in specs if s.family == "formal"]
    assert len(formal) == 3
    for task in formal:  # BLiMP style: empty context, good sentence first, delimiter " "
        item = task.items[0]
        assert item.context == "" and item.gold == 0 and item.continuations[0] == " " + item.choice_texts[0]


def test_rendering_follows_lm_eval(tmp_path):
    path = write_task(tmp_path, doc_to_text="question")  # a plain column name gives the column
    task = spec.load_task(path)
    assert (task.name, task.version, task.family, task.output_type) == ("mine", "2", "knowledge", "multiple_choice")
    first, second = task.items
    assert first.context == "two" and first.gold == 1 and first.continuations == (" 1", " 2", " it's")
    assert second.gold == 0 and second.target == "3"
    task = spec.load_task(write_task(tmp_path / "b", doc_to_target=1, target_delimiter="", doc_to_text="Q: {{question}}"))
    assert task.items[0].context == "Q: two" and task.items[0].continuations == ("1", "2", "it's")
    assert [item.gold for item in task.items] == [1, 1]
    # a target given as the text of a choice; digits are an index (as lm-eval)
    data = [{"question": "sky", "choices": ["red", "blue"], "answer": "blue"},
            {"question": "one", "choices": ["0", "1", "one"], "answer": "1"}]
    task = spec.load_task(write_task(tmp_path / "c", data=data, doc_to_target="answer"))
    assert [item.gold for item in task.items] == [1, 1]
    assert [item.target for item in task.items] == ["blue", "1"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"output_type": None}, "missing field 'output_type'"),
    ({"doc_to_choice": None}, "missing field 'doc_to_choice'"),
    ({"output_type": "rolling"}, "field 'output_type' is 'rolling'"),
    ({"metadata": {"version": "v1", "family": "knowledge"}}, "field 'metadata.version' must be a number"),
    ({"metadata": {"family": "knowledge"}}, "field 'metadata.version' must be a number"),
    ({"metadata": {"version": 1, "family": "trivia"}}, "field 'metadata.family' is 'trivia'"),
    ({"doc_to_text": "{{nope}}"}, "field 'doc_to_text': 'nope' is undefined"),
    ({"doc_to_target": "{{label + 5}}"}, "doc_to_target must give a choice index"),
    ({"dataset_kwargs": {"data_files": {"test": "missing.jsonl"}}}, "missing.jsonl"),
    ({"output_type": "generate_until"}, "missing field 'generation_kwargs'"),
    ({"num_fewshot": 5}, "field 'num_fewshot' is not supported"),
    ({"process_docs": "x"}, "field 'process_docs' is not supported"),
])
def test_bad_task_file_names_file_and_field(tmp_path, fields, message):
    path = write_task(tmp_path, **fields)
    with pytest.raises(InputError, match="mine.yaml") as error:
        spec.load_task(path)
    assert message in str(error.value)


def test_names_subset_extra_folder_and_did_you_mean(tmp_path):
    write_task(tmp_path / "extra")
    names = [s.name for s in spec.load_suite([tmp_path / "extra"], ["mine", "induction"])]
    assert names == ["induction", "mine"]  # suite order: built-in first, then the extra folder
    with pytest.raises(InputError, match="unknown task 'inducton'; did you mean 'induction'"):
        spec.load_suite(names=["inducton"])
    with pytest.raises(InputError, match="unknown task 'heldout_text'"):
        spec.load_suite(names=["heldout_text"])
    assert spec.load_suite(names=["heldout_text"], with_heldout=True) == []
    write_task(tmp_path / "dup", name="induction")
    with pytest.raises(InputError, match="task 'induction' is also defined"):
        spec.load_suite([tmp_path / "dup"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty holds no task YAML"):
        spec.load_suite([tmp_path / "empty"])
    with pytest.raises(InputError, match="is not a folder"):
        spec.load_suite([tmp_path / "nowhere"])


def test_generator_is_deterministic_and_its_tasks_load(tmp_path):
    stories = generate_stories(60, 400, seed=0)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.txt").write_text("\n\n".join(stories[:50]))
    (corpus / "valid.txt").write_text("\n\n".join(stories[50:]))
    first = generate.generate(corpus, tmp_path / "a", seed=3, n_items=10)
    generate.generate(corpus, tmp_path / "b", seed=3, n_items=10)
    assert [p.name for p in first] == [f"{name}.yaml" for name in generate.TASKS]
    assert (tmp_path / "a" / "local_jsonl.py").read_bytes() == (spec.SUITE_DIR / "local_jsonl.py").read_bytes()
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    generate.generate(corpus, tmp_path / "c", seed=4, n_items=10)
    assert (tmp_path / "c" / "induction.jsonl").read_bytes() != (tmp_path / "a" / "induction.jsonl").read_bytes()
    train = (corpus / "train.txt").read_text().lower()
    for path in first:
        task = spec.load_task(path)
        assert len(task.items) == 10 and task.family == generate.TASKS[task.name][0]
        if task.name == "knowledge_recurring":  # the answer's 4-gram recurs in train, the distractors' never
            for item in task.items:
                assert train.count(f"{item.context} {item.target}") >= 5
                assert all(f"{item.context} {c} " not in train for c in item.choice_texts if c != item.target)
    with pytest.raises(InputError, match="noun pairs"):
        (tmp_path / "tiny").mkdir()
        (tmp_path / "tiny" / "train.txt").write_text("the cat sat on the mat")
        (tmp_path / "tiny" / "valid.txt").write_text("the dog")
        generate.generate(tmp_path / "tiny", tmp_path / "d")


def test_shipped_suite_is_the_generators_output():
    for path in spec.SUITE_DIR.glob("*.yaml"):
        config = yaml.load(path.read_text(), Loader=spec._task_loader())
        assert config.pop("custom_dataset") == generate.CUSTOM_DATASET  # lm-eval's loader, suite/local_jsonl.py
        assert config["metadata"]["generator"] == "python -m brainphase.tasks.generate --seed 0"
        assert path.read_text().startswith("# generated by")
        kind = "blimp" if config["doc_to_text"] == "" else config["output_type"]
        family, expected_kind, _, max_gen_toks = generate.TASKS[path.stem]
        expected = generate.task_yaml(path.stem, family, expected_kind, max_gen_toks, 0, config["metadata"]["corpus_sha256"])
        assert (kind, config) == (expected_kind, expected)
