"""The fmri config section: example configs validate, CLI defaults equal the schema's, the
workflow passes the roi-table options, and a removed key names its replacement."""

import argparse
import copy
import json
import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml

from brainphase.config import check_config
from brainphase.encoding import cli as encode_cli
from brainphase.errors import InputError
from brainphase.fmri import load

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def test_story_roi_tables_example_validates():
    path = REPO / "config" / "examples" / "story_roi_tables.yaml"
    config = check_config(yaml.safe_load(path.read_text()), [str(path)])
    fmri = config["fmri"]
    assert fmri["kind"] == "roi-table" and fmri["tr"] == 2.0
    assert fmri["load"]["first_volume_time"] == 20 and fmri["load"]["confounds"] == "auto"
    model = config["models"]["my-model"]
    assert model["kind"] == "pretrained" and "convention" not in model and "revisions" not in model
    assert config["encode"]["word_time"] == "onset"


def _cli_defaults(add_arguments):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return {action.dest: action.default for action in parser._actions}


def test_load_fmri_cli_defaults_equal_the_schema():
    """Every fmri.load key with a schema default has the same default in `brainphase load-fmri`."""
    defaults = _cli_defaults(load.add_arguments)
    section = SCHEMA["properties"]["fmri"]["properties"]
    checked = 0
    for key, spec in [*section["load"]["properties"].items(), ("task", section["task"]), ("space", section["space"])]:
        if "default" not in spec:
            continue
        cli_default = defaults[key]
        assert cli_default == spec["default"] or cli_default == [spec["default"]], key  # nargs="+" options hold a list
        checked += 1
    assert checked >= 11
    assert _cli_defaults(encode_cli.add_arguments)["word_time"] == SCHEMA["properties"]["encode"]["properties"]["word_time"]["default"]


def test_removed_time_offset_key_names_first_volume_time_and_the_sign():
    config = {"models": {"m": {"kind": "train", "seeds": [1]}},
              "fmri": {"kind": "roi-table", "root": "tables", "tr": 2.0, "load": {"time_offset": -20}}}
    with pytest.raises(InputError, match=r"my.yaml: config key 'fmri.load.time_offset' was removed: use first_volume_time, "
                                         r"the stimulus time in s at the start of the first retained volume.*opposite sign"):
        check_config(copy.deepcopy(config), ["my.yaml"])
    config["fmri"]["load"] = {"confounds": []}
    with pytest.raises(InputError, match="fmri.load.confounds"):
        check_config(config, ["my.yaml"])


def test_workflow_passes_tr_first_volume_time_and_run_map_to_load_fmri(tmp_path):
    from test_workflow import TINY, snakemake

    words = pd.DataFrame({"run": "story one", "word_index": [0, 1], "word": ["a", "b"], "onset": [1.0, 2.0], "offset": [1.5, 2.5]})
    words.to_csv(tmp_path / "words.tsv", sep="\t", index=False)
    (tmp_path / "tables").mkdir()
    config = dict(TINY, corpus={"stimulus": str(tmp_path / "words.tsv")},
                  fmri={"kind": "roi-table", "root": str(tmp_path / "tables"), "tr": 2.0,
                        "run_map": {"story 1=a's": "story one"}, "load": {"first_volume_time": 20}})
    result = snakemake(tmp_path, "-n", "-p", "--forceall", "results/fmri/responses.h5", config=config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    command = next(line for line in result.stdout.splitlines() if "brainphase load-fmri" in line)
    assert "--kind roi-table" in command and "--tr 2.0" in command and "--first-volume-time 20" in command
    assert "--confounds auto" in command
    run_map = command.split("--run-map ")[1]
    assert json.loads(shlex.split(run_map)[0]) == {"story 1=a's": "story one"}
    config["fmri"]["load"] = {"time_offset": -20}
    result = snakemake(tmp_path, "-n", config=config)
    assert result.returncode != 0 and "was removed: use first_volume_time" in result.stdout + result.stderr


def test_readme_your_own_data_configs_validate():
    """Every YAML block of the README section "Your own data" passes the schema."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Your own data\n", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]
    assert len(blocks) >= 3
    kinds = set()
    for block in blocks:
        config = yaml.safe_load(block)
        config.setdefault("models", {"m": {"kind": "train", "seeds": [1]}})
        kinds.add(check_config(config, ["README.md"])["fmri"]["kind"])
    assert kinds == {"bids", "roi-table", "sentences"}
