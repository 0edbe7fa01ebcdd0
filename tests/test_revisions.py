"""Revision naming conventions, step spacing and step selection."""

import math
import subprocess
import sys

import numpy as np
import pytest

from brainphase.errors import InputError
from brainphase.models import revisions as rv


@pytest.mark.parametrize(
    ("convention", "step", "tokens", "name"),
    [
        ("pythia", 0, None, "step0"),
        ("pythia", 143000, None, "step143000"),
        ("local", 128, None, "step128"),
        ("amber", 7, None, "ckpt_007"),
        ("amber", 359, None, "ckpt_359"),
        # OLMo 2 7B: 4,194,304 tokens per step; branches round the billions up.
        ("olmo2", 1000, 1000 * 4_194_304, "stage1-step1000-tokens5B"),
        ("olmo2", 928646, 928646 * 4_194_304, "stage1-step928646-tokens3896B"),
        # OLMo 1B: 4,194,304 tokens per step; branches round to the nearest billion.
        ("olmo", 20000, 20000 * 4_194_304, "step20000-tokens84B"),
    ],
)
def test_revision_names_follow_the_published_branch_names(convention, step, tokens, name):
    assert rv.revision_name(convention, step, tokens) == name
    parsed_step, parsed_tokens = rv.parse_revision(convention, name)
    assert parsed_step == step
    if tokens is None:
        assert parsed_tokens is None
    else:
        assert parsed_tokens % 10**9 == 0 and abs(parsed_tokens - tokens) < 10**9
        assert rv.revision_name(convention, parsed_step, parsed_tokens) == name  # round trip


def test_parse_rejects_names_of_another_convention():
    with pytest.raises(InputError, match="olmo2"):
        rv.parse_revision("olmo2", "step1000-tokens4B")
    with pytest.raises(InputError, match="amber"):
        rv.parse_revision("amber", "ckpt_7")
    with pytest.raises(InputError, match="unknown revision convention"):
        rv.revision_name("gpt5", 1)
    with pytest.raises(InputError, match="token count"):
        rv.revision_name("olmo", 10)


def test_pythia_repo_and_steps():
    assert rv.pythia_repo("160m") == "EleutherAI/pythia-160m"
    assert rv.pythia_repo("1.4b", seed=3) == "EleutherAI/pythia-1.4b-seed3"
    with pytest.raises(InputError):
        rv.pythia_repo("160m", seed=10)
    steps = rv.pythia_steps()
    assert len(steps) == 154
    assert steps[:12] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    assert steps[-1] == 143000 and np.all(np.diff(steps) > 0)


def test_steps_to_tokens_prefers_the_revision_name():
    assert rv.steps_to_tokens([0, 1, 1000], tokens_per_step=rv.PYTHIA_TOKENS_PER_STEP) == [
        0,
        2_097_152,
        2_097_152_000,
    ]
    names = ["stage1-step1000-tokens5B", "step2000"]
    assert rv.steps_to_tokens([1000, 2000], tokens_per_step=7, revisions=names) == [5 * 10**9, 14000]
    with pytest.raises(InputError, match="step 2000"):
        rv.steps_to_tokens([1000, 2000], revisions=names)
    with pytest.raises(InputError, match="2 steps but 1"):
        rv.steps_to_tokens([1, 2], tokens_per_step=1, revisions=["step1"])


def test_tokens_per_step_of_known_suites():
    assert rv.tokens_per_step("EleutherAI/pythia-160m-seed2") == rv.PYTHIA_TOKENS_PER_STEP
    assert rv.tokens_per_step("allenai/OLMo-2-1124-7B") is None


def test_log_spaced_steps_are_powers_of_two_when_they_fit():
    assert rv.log_spaced_steps(512, 11) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert rv.log_spaced_steps(10, 11) == list(range(11))  # every step when n = max + 1
    assert rv.log_spaced_steps(1000, 2) == [0, 1000]


@pytest.mark.parametrize(("max_step", "n"), [(143000, 8), (50, 30), (2**20, 13), (7, 5)])
def test_log_spaced_steps_are_distinct_and_log_uniform(max_step, n):
    steps = rv.log_spaced_steps(max_step, n)
    assert len(steps) == n and steps[0] == 0 and steps[-1] == max_step
    assert np.all(np.diff(steps) > 0)
    if max_step > 1000 * n:  # away from integer collisions the ratios are geometric
        ratios = np.diff(np.log(steps[4:]))  # past the small integers that rounding distorts
        assert np.allclose(ratios, math.log(max_step) / (n - 2), atol=0.01)


def test_log_spaced_steps_rejects_impossible_requests():
    with pytest.raises(InputError, match="cannot pick 12"):
        rv.log_spaced_steps(10, 12)
    with pytest.raises(InputError):
        rv.log_spaced_steps(10, 1)


def test_select_steps_explicit_list_names_missing_steps():
    available = [0, 1, 2, 4, 8, 1000]
    assert rv.select_steps(available, [8, 0]) == [0, 8]
    with pytest.raises(InputError) as info:
        rv.select_steps(available, [3, 8, 5])
    message = str(info.value)
    assert "[3, 5]" in message and "1000" in message  # the missing ones and what exists


def test_select_steps_log_picks_from_what_exists():
    picks = rv.select_steps(rv.pythia_steps(), {"log": 11})
    assert picks[0] == 0 and picks[-1] == 143000 and len(set(picks)) == 11
    assert set(picks) <= set(rv.pythia_steps())
    # targets are 143000**(k/9): each pick is the nearest available step in log(1 + step)
    assert picks == [0, 1, 4, 16, 64, 256, 1000, 3000, 10000, 38000, 143000]
    # an available range not starting at 0
    assert rv.select_steps(range(5, 200, 5), {"log": 6}) == [5, 10, 20, 45, 95, 195]
    # asking for everything returns everything
    assert rv.select_steps([3, 1, 2], {"log": 3}) == [1, 2, 3]
    with pytest.raises(InputError, match="N <= 3"):
        rv.select_steps([1, 2, 3], {"log": 4})
    with pytest.raises(InputError):
        rv.select_steps([1, 2, 3], {"every": 2})


def test_list_revisions_local_folder(tmp_path):
    for name in ["step0", "step16", "step2", "notes", "main"]:
        (tmp_path / name).mkdir()
    (tmp_path / "step4").write_text("a file, not a checkpoint folder")
    assert rv.list_revisions(tmp_path, "local") == ["step0", "step2", "step16"]
    with pytest.raises(InputError, match="not a folder"):
        rv.list_revisions(tmp_path / "absent", "local")


def test_list_revisions_offline_hub_is_a_clear_error(tmp_path):
    code = (
        "from brainphase.models.revisions import list_revisions\n"
        "from brainphase.errors import InputError\n"
        "try:\n    list_revisions('EleutherAI/pythia-14m', 'pythia')\n"
        "except InputError as exc:\n    print('INPUTERROR', exc)\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "INPUTERROR cannot list the revisions of 'EleutherAI/pythia-14m'" in out.stdout, out.stderr


def test_revisions_module_does_not_import_torch():
    code = "import sys, brainphase.models.revisions; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
