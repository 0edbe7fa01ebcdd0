"""Run the task suite through lm-evaluation-harness (optional extra ``brainphase[lmeval]``).

The built-in task files (``brainphase/tasks/suite``) are lm-eval 0.4 task YAMLs, so the same
tasks run through lm-eval's own Python API on a local checkpoint folder, offline. The result
is lm-eval's per-task metrics and its per-item log likelihoods, for a cross-check of
brainphase's batched evaluator (``tests/test_lmeval.py``) or for users who report lm-eval
numbers. From a shell the same folder runs with::

    lm_eval --model hf --model_args pretrained=CHECKPOINT_DIR,dtype=float32 \\
        --include_path "$(python -c 'import brainphase.tasks.spec as s; print(s.SUITE_DIR)')" \\
        --tasks brainphase_induction,brainphase_blimp_agreement --device cpu

lm-eval task names carry the prefix ``brainphase_`` (:data:`~brainphase.tasks.spec.PREFIX`);
:func:`run_lm_eval` takes brainphase's short names (as ``tasks.names``) and keys its result by
them.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from pathlib import Path

import numpy as np

from brainphase.errors import InputError
from brainphase.tasks.spec import PREFIX, SUITE_DIR

#: Environment that keeps lm-eval, datasets and huggingface_hub off the network.
OFFLINE_ENVIRONMENT = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@contextlib.contextmanager
def _offline():
    """Set :data:`OFFLINE_ENVIRONMENT` for the duration of the block (then restore)."""
    saved = {key: os.environ.get(key) for key in OFFLINE_ENVIRONMENT}
    os.environ.update(OFFLINE_ENVIRONMENT)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _import_lm_eval():
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as error:
        raise InputError(f"lm-evaluation-harness is not installed ({error}); install the extra: "
                         "pip install 'brainphase[lmeval]'") from None
    return lm_eval, HFLM, TaskManager


def _include_paths(include_path) -> list[str]:
    """The built-in suite followed by the extra folders (resolved, each once)."""
    if include_path is None:
        extra = []
    elif isinstance(include_path, (str, os.PathLike)):
        extra = [include_path]
    else:
        extra = list(include_path)
    folders = []
    for folder in [SUITE_DIR, *extra]:
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise InputError(f"include_path: {folder} is not a folder of task YAML files")
        if str(folder) not in folders:
            folders.append(str(folder))
    return folders


def _lm_eval_names(task_names, known: list[str]) -> dict[str, str]:
    """Map brainphase's short task names to lm-eval's (``brainphase_`` prefix where needed)."""
    if not task_names:
        raise InputError("run_lm_eval: name at least one task (e.g. ['induction'])")
    short_known = sorted(name[len(PREFIX):] if name.startswith(PREFIX) else name for name in known)
    mapping = {}
    for name in task_names:
        for candidate in (PREFIX + name, name):
            if candidate in known:
                mapping[name[len(PREFIX):] if name.startswith(PREFIX) else name] = candidate
                break
        else:
            close = difflib.get_close_matches(name, short_known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"run_lm_eval: unknown task {name!r}; {hint}known tasks: {', '.join(short_known)}")
    return mapping


def _task_result(samples: list[dict], metrics: dict, config: dict, version) -> dict:
    """Per-task entry of :func:`run_lm_eval`'s result, items ordered by ``doc_id``."""
    samples = sorted(samples, key=lambda sample: sample["doc_id"])
    output_type = config["output_type"]
    metric_names = [entry["metric"] for entry in config.get("metric_list", [])]
    result = {
        "output_type": output_type,
        "version": str(version),
        "n_items": len(samples),
        "metrics": {name: float(metrics[f"{name},none"]) for name in metric_names if f"{name},none" in metrics},
        "items": {name: np.array([float(sample[name]) for sample in samples]) for name in metric_names
                  if all(name in sample for sample in samples)},
    }
    if output_type in ("loglikelihood", "multiple_choice"):
        pairs = [[tuple(response[0]) for response in sample["resps"]] for sample in samples]
        result["loglikelihoods"] = np.array([[loglik for loglik, _ in item] for item in pairs], dtype=np.float64)
        result["is_greedy"] = np.array([[bool(greedy) for _, greedy in item] for item in pairs])
    if output_type == "multiple_choice":
        result["gold"] = np.array([int(sample["target"]) for sample in samples])
    else:
        result["generations"] = [sample["filtered_resps"][0] for sample in samples]
    return result


def run_lm_eval(checkpoint_dir, task_names, include_path=None, device: str = "cpu", batch_size: int = 16,
                dtype: str = "float32") -> dict:
    """Score tasks of the suite on a local checkpoint folder with lm-eval's ``simple_evaluate``.

    Parameters
    ----------
    checkpoint_dir : str or path
        A local Hugging Face model folder with its tokenizer (e.g. ``.../step1000``); never
        looked up on the Hub (``HF_HUB_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1`` while running).
    task_names : sequence of str
        brainphase task names (``induction``) or lm-eval names (``brainphase_induction``).
    include_path : str, path or sequence of them, optional
        Extra task folders (as ``tasks.suite``), scanned after the built-in suite. lm-eval's
        own ~10k built-in tasks are not indexed (``include_defaults=False``).
    device : str
        Torch device for lm-eval's ``HFLM`` (``cpu``, ``cuda``, ``cuda:0``).
    batch_size : int
        Requests per forward pass.
    dtype : str
        Model weights' dtype in lm-eval (``float32``, ``bfloat16``, ``auto``).

    Returns
    -------
    dict of str to dict
        Per brainphase task name: ``output_type``, ``version``, ``n_items``, ``metrics``
        (lm-eval's aggregated metrics of the task's ``metric_list``, e.g. ``acc``,
        ``acc_norm``, ``exact_match``), ``items`` (per-item values of those metrics, each an
        ndarray of shape (n_items,)), and for log-likelihood and multiple-choice tasks
        ``loglikelihoods`` (ndarray float64 of shape (n_items, n_choices); n_choices is 1 for
        a log-likelihood task) and ``is_greedy`` (bool, same shape); for multiple-choice tasks
        ``gold`` (int ndarray of shape (n_items,), the correct choice); for generation tasks
        ``generations`` (list of n_items str). Items are in file order (lm-eval ``doc_id``).

    Raises
    ------
    InputError
        lm-eval not installed (names the extra), a missing checkpoint folder or task folder,
        or an unknown task name (with "did you mean").
    """
    checkpoint_dir = Path(checkpoint_dir).expanduser()
    if not checkpoint_dir.is_dir():
        raise InputError(f"{checkpoint_dir}: no such checkpoint folder (run_lm_eval reads local folders only)")
    folders = _include_paths(include_path)
    with _offline():
        lm_eval, HFLM, TaskManager = _import_lm_eval()
        manager = TaskManager(include_path=folders, include_defaults=False)
        mapping = _lm_eval_names(task_names, manager.all_tasks)
        model = HFLM(pretrained=str(checkpoint_dir), device=device, batch_size=batch_size, dtype=dtype)
        output = lm_eval.simple_evaluate(model=model, tasks=list(mapping.values()), task_manager=manager,
                                         log_samples=True, bootstrap_iters=0)
    results = {}
    for short, name in mapping.items():
        results[short] = _task_result(output["samples"][name], output["results"][name], output["configs"][name],
                                      output["versions"].get(name))
    return results
