"""``brainphase tasks``: a versioned task suite (lm-eval format) and held-out-text metrics.

Modules: :mod:`~brainphase.tasks.spec` (task files), :mod:`~brainphase.tasks.scoring`
(batched log likelihoods and greedy generation), :mod:`~brainphase.tasks.metrics` (per-item
metrics), :mod:`~brainphase.tasks.heldout` (task ``heldout_text``),
:mod:`~brainphase.tasks.runner` (options, :func:`run_tasks`, the CLI) and
:mod:`~brainphase.tasks.generate` (the generator of the built-in suite in ``suite/``).
"""

from brainphase.tasks.heldout import METRICS, Metric, evaluate, skip_reason, token_windows
from brainphase.tasks.runner import (
    TaskOptions,
    add_arguments,
    add_task_options,
    main,
    run_tasks,
    task_options_from_args,
)

__all__ = ["METRICS", "Metric", "TaskOptions", "add_arguments", "add_task_options", "evaluate", "main", "run_tasks",
           "skip_reason", "task_options_from_args", "token_windows"]
