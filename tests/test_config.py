"""Config validation (schema + readable errors), the run plan and CLI option rendering."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from brainphase.config import check_config, cli_options, plan_models, schema_default
from brainphase.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def demo_config():
    with open(REPO / "config" / "config.yaml") as handle:
        return yaml.safe_load(handle)


def test_demo_config_validates_and_gets_defaults():
    config = check_config(demo_config(), ["config/config.yaml"])
    assert config["encode"]["trim_start"] == 5
    assert config["models"]["tiny-neox"]["train"]["lr"] == 0.003
    assert config["fmri"]["load"]["confounds"] == schema_default("fmri.load.confounds")
    assert config["extract"]["context_tokens"] == 32 != schema_default("extract.context_tokens")  # set by the demo


@pytest.mark.parametrize("name", ["pythia.yaml", "olmo.yaml", "scaling.yaml"])
def test_example_configs_validate(name):
    with open(REPO / "config" / name) as handle:
        check_config(yaml.safe_load(handle), [name])


def test_unknown_key_names_key_and_file():
    config = demo_config()
    config["encode"]["dealys"] = [1, 2]
    with pytest.raises(InputError, match=r"my\.yaml: unknown config key\(s\) 'dealys' under 'encode'"):
        check_config(config, ["my.yaml"])


def test_wrong_type_names_key_expected_type_and_file():
    config = demo_config()
    config["models"]["tiny-neox"]["train"]["d_model"] = "64"
    with pytest.raises(InputError, match=r"my\.yaml: config key 'models\.tiny-neox\.train\.d_model' must be of type integer, got string '64'"):
        check_config(config, ["my.yaml"])


def test_trained_plan_uses_log_spaced_steps_and_local_folders():
    config = check_config(demo_config(), ["c"])
    plan = plan_models(config, "res")["tiny-neox"]
    assert plan.trained and plan.seeds == [1, 2]
    steps = plan.steps[1]
    assert len(steps) == 12 and steps[0] == 0 and steps[-1] == 2048  # config.yaml: max_steps 2048
    assert steps == sorted(set(steps))
    assert plan.source[2, 2048] == "res/models/tiny-neox/seed2/step2048"
    assert plan.revision[2, 2048] is None


def test_pretrained_plan_maps_seed_to_repo_and_step_to_revision():
    with open(REPO / "config" / "pythia.yaml") as handle:
        config = check_config(yaml.safe_load(handle), ["pythia.yaml"])
    plan = plan_models(config, "res")["pythia-160m"]
    assert not plan.trained
    assert plan.source[1, 1000] == "EleutherAI/pythia-160m-seed1"
    assert plan.source[0, 1000] == "EleutherAI/pythia-160m"
    assert plan.revision[0, 143000] == "step143000"


def test_local_convention_points_at_step_folders(tmp_path):
    for step in (0, 10, 100, 1000):
        (tmp_path / f"step{step}").mkdir()
        (tmp_path / f"step{step}" / "config.json").write_text("{}")
    config = demo_config()
    config["models"] = {"mine": {"kind": "pretrained", "source": str(tmp_path), "convention": "local",
                                 "seeds": [0], "steps": {"log": 3}}}
    plan = plan_models(check_config(config, ["c"]), "res")["mine"]
    assert plan.steps[0][0] == 0 and plan.steps[0][-1] == 1000 and len(plan.steps[0]) == 3
    assert plan.source[0, 1000] == str(tmp_path / "step1000")


def test_missing_seed_source_is_a_clear_error():
    with open(REPO / "config" / "pythia.yaml") as handle:
        config = check_config(yaml.safe_load(handle), ["pythia.yaml"])
    config = copy.deepcopy(config)
    config["models"]["pythia-160m"]["seeds"].append(7)
    with pytest.raises(InputError, match="no entry for seed 7"):
        plan_models(config, "res")


def test_cli_options_renders_lists_bools_and_skips_none():
    rendered = cli_options({"context_tokens": 128, "delays": [1, 2], "detrend": False, "group_average": True,
                            "atlas": None, "name": "a b"}, exclude=("name",))
    assert rendered == "--context-tokens 128 --delays 1 2 --no-detrend --group-average"


def _pretrained(tmp_path=None, **entry):
    config = demo_config()
    config["models"] = {"mine": {"kind": "pretrained", "seeds": [0], **entry}}
    return plan_models(check_config(config, ["c"]), "res")["mine"]


def test_single_checkpoint_folder_needs_no_convention_nor_steps(tmp_path):
    folder = tmp_path / "gpt2-local"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    plan = _pretrained(source=str(folder))
    assert plan.steps == {0: [-1]}  # one checkpoint, step unknown
    assert (plan.source[0, -1], plan.revision[0, -1]) == (str(folder), None)
    # convention: local and an explicit step label are accepted too
    plan = _pretrained(source=str(folder), convention="local", steps=[5000], tokens=10**9)
    assert plan.steps == {0: [5000]} and plan.source[0, 5000] == str(folder)
    # the folder's brainphase_checkpoint.json gives the step
    (folder / "brainphase_checkpoint.json").write_text('{"step": 64}')
    assert _pretrained(source=str(folder)).steps == {0: [64]}
    with pytest.raises(InputError, match=r"steps: .* is one checkpoint"):
        _pretrained(source=str(folder), steps=[1, 2])
    with pytest.raises(InputError, match="convention: 'pythia' names Hub revisions"):
        _pretrained(source=str(folder), convention="pythia")


def test_missing_local_folder_is_never_sent_to_the_hub(tmp_path):
    with pytest.raises(InputError, match=r"folder /nonexistent/model does not exist \(a local path"):
        _pretrained(source="/nonexistent/model")
    with pytest.raises(InputError, match="no checkpoint folder .*step7.*available: step0"):
        (tmp_path / "step0").mkdir()
        (tmp_path / "step0" / "config.json").write_text("{}")
        _pretrained(source=str(tmp_path), convention="local", steps=[0, 7])


def test_hub_revisions_without_convention_and_main(tmp_path):
    plan = _pretrained(source="org/model", revisions=["main"])
    assert plan.steps == {0: [-1]} and plan.revision[0, -1] == "main"
    assert _pretrained(source="org/model", revisions=["main"], steps=[143000]).steps == {0: [143000]}
    assert _pretrained(source="org/model", convention="pythia", revisions=["main"]).revision[0, -1] == "main"
    plan = _pretrained(source="org/model", revisions=["step1000", "stage1-step20-tokens2B"])
    assert plan.steps == {0: [20, 1000]} and plan.revision[0, 20] == "stage1-step20-tokens2B"
    assert _pretrained(source="org/model").revision == {(0, -1): "main"}  # no steps: the final model
    with pytest.raises(InputError, match="'main' carry no training step"):
        _pretrained(source="org/model", revisions=["main", "step1000"])
    with pytest.raises(InputError, match=r"models\.mine\.convention is required .* 'org/model'"):
        _pretrained(source="org/model", steps=[0, 1000])
    with pytest.raises(InputError, match=r"models\.mine\.tokens labels a single checkpoint"):
        _pretrained(source="org/model", convention="pythia", steps=[0, 1000], tokens=5)


def test_is_local_source():
    from brainphase.config import is_local_source

    assert not is_local_source("EleutherAI/pythia-160m") and not is_local_source("gpt2")
    for path in ("/data/models/x", "./model", "../m", "~/m", "a/b/c"):
        assert is_local_source(path), path


def test_schema_default_reads_the_shipped_schema():
    from brainphase.config import SCHEMA_PATH, schema_default

    assert SCHEMA_PATH.resolve() == (REPO / "config" / "schema.yaml").resolve()
    # shipped as package data (the symlink is packaged as a real file) for non-editable installs
    assert re.search(r'^brainphase = \[.*"schema\.yaml"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert schema_default("extract.context_tokens") == 128
    assert schema_default("models.*.train.lr") == 0.003
    with pytest.raises(KeyError, match="no config key 'extract.nope'"):
        schema_default("extract.nope")
    with pytest.raises(KeyError, match="has no default"):
        schema_default("corpus.stimulus")
