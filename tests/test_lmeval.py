"""The built-in task suite through lm-evaluation-harness equals brainphase's own evaluator.

The slow test needs the optional extra (``pip install -e '.[lmeval]'``; ``make test-slow``
installs it). It fails, never skips, when lm-eval is missing: a skipped cross-check could not
fail in CI.
"""

import h5py
import numpy as np
import pytest
import scipy.special

from _models import build_model, save_checkpoint, tiny_tokenizer_dir  # noqa: F401
from brainphase.errors import InputError
from brainphase.tasks.lmeval import _lm_eval_names, run_lm_eval

#: One log-likelihood task and two multiple-choice tasks: BLiMP pairs (empty context, so the
#: prefix token is used; gold always 0) and knowledge cloze (4 choices, gold varies).
TASKS = ("induction", "blimp_agreement", "knowledge_recurring")


@pytest.fixture(scope="module")
def suite_checkpoint(tmp_path_factory, tiny_tokenizer_dir):  # noqa: F811
    """A tiny GPT-NeoX with 128 positions (every built-in item fits, so neither side truncates)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    return save_checkpoint(tmp_path_factory.mktemp("lmeval") / "step16", tokenizer,
                           build_model(len(tokenizer), seed=11, max_positions=128))


@pytest.mark.slow
def test_lm_eval_and_brainphase_agree_on_the_suite(suite_checkpoint, tmp_path, monkeypatch):
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.tasks import TaskOptions, run_tasks
    from brainphase.tasks.spec import load_suite

    monkeypatch.chdir(tmp_path)  # the shipped YAMLs find their data from any working directory
    reference = run_lm_eval(suite_checkpoint, TASKS, device="cpu", batch_size=16)
    out = tmp_path / "step16.h5"
    run_tasks(load_checkpoint(suite_checkpoint, device="cpu"), TaskOptions(names=TASKS), out, {})
    specs = {spec.name: spec for spec in load_suite(names=TASKS)}
    with h5py.File(out, "r") as handle:
        for name in TASKS:
            lm, spec = reference[name], specs[name]
            items = {metric: handle[f"items/{name}/{metric}"][()] for metric in handle[f"items/{name}"]}
            assert lm["output_type"] == spec.output_type and lm["version"] == spec.version
            assert lm["n_items"] == len(spec.items) == handle[f"metrics/{name}"].attrs["n_items"]
            loglik = lm["loglikelihoods"]
            if spec.output_type == "loglikelihood":
                assert loglik.shape == (len(spec.items), 1)
                np.testing.assert_allclose(items["logprob"], loglik[:, 0], rtol=0, atol=1e-4, err_msg=name)
                np.testing.assert_array_equal(items["acc"], lm["items"]["acc"], err_msg=name)
                np.testing.assert_array_equal(items["acc"], lm["is_greedy"][:, 0].astype(float), err_msg=name)
                continue
            gold = lm["gold"]
            np.testing.assert_array_equal(gold, [item.gold for item in spec.items], err_msg=name)
            rows = np.arange(len(gold))
            np.testing.assert_allclose(items["logprob_correct"], loglik[rows, gold], rtol=0, atol=1e-4, err_msg=name)
            # every choice's log likelihood enters the probability mass and the Brier score
            q = scipy.special.softmax(loglik, axis=1)
            np.testing.assert_allclose(items["prob_mass"], q[rows, gold], rtol=0, atol=1e-4, err_msg=name)
            onehot = np.eye(loglik.shape[1])[gold]
            np.testing.assert_allclose(items["brier"], ((q - onehot) ** 2).sum(axis=1), rtol=0, atol=1e-4, err_msg=name)
            for metric in ("acc", "acc_norm"):
                np.testing.assert_array_equal(items[metric], lm["items"][metric], err_msg=f"{name}/{metric}")
                assert handle[f"metrics/{name}/{metric}"][()] == pytest.approx(lm["metrics"][metric], abs=1e-12)
        # the comparison is informative: not all-equal choices, not a constant accuracy
        assert 0 < reference["knowledge_recurring"]["metrics"]["acc"] < 1
        assert np.ptp(reference["induction"]["loglikelihoods"]) > 1


def test_task_names_map_to_lm_eval_names_with_did_you_mean():
    known = ["brainphase_induction", "brainphase_blimp_agreement", "my_task"]
    assert _lm_eval_names(["induction", "brainphase_blimp_agreement", "my_task"], known) == {
        "induction": "brainphase_induction", "blimp_agreement": "brainphase_blimp_agreement", "my_task": "my_task"}
    with pytest.raises(InputError, match="did you mean 'induction'"):
        _lm_eval_names(["inducton"], known)
    with pytest.raises(InputError, match="at least one task"):
        _lm_eval_names([], known)


def test_missing_checkpoint_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint folder"):
        run_lm_eval(tmp_path / "absent", ["induction"])
