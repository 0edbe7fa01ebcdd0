"""Per-item task metrics: the discontinuous one lm-eval reports and continuous companions.

=================  ===================  ===========================================  =============  ======
output type        metric               per item                                     kind           better
=================  ===================  ===========================================  =============  ======
loglikelihood      ``acc``              every target token is the argmax             discontinuous  higher
loglikelihood      ``logprob``          ``sum_t log p(target_t)`` (nats)             continuous     higher
loglikelihood      ``token_accuracy``   fraction of target tokens that are argmax    continuous     higher
loglikelihood      ``target_prob``      ``exp(logprob)``                             continuous     higher
multiple_choice    ``acc``              ``argmax_k ll_k == gold``                    discontinuous  higher
multiple_choice    ``acc_norm``         ``argmax_k ll_k / len(choice_k) == gold``    discontinuous  higher
multiple_choice    ``logprob_correct``  ``ll_gold``                                  continuous     higher
multiple_choice    ``prob_mass``        ``q_gold``, ``q = softmax_k(ll_k)``          continuous     higher
multiple_choice    ``brier``            ``sum_k (q_k - 1[k == gold])²``              continuous     lower
generate_until     ``exact_match``      greedy text (stripped) == target (stripped)  discontinuous  higher
generate_until     ``edit_distance``    token Levenshtein(generated, target)         continuous     lower
generate_until     ``logprob``          ``sum_t log p(target_t)`` given the context  continuous     higher
=================  ===================  ===========================================  =============  ======

``ll_k`` is the log likelihood of choice ``k`` (with its target delimiter) and ``len(choice_k)``
its length in characters without delimiter, as lm-eval's ``acc_norm``. A task's metric is the
mean over its items.
"""

from __future__ import annotations

import numpy as np
import scipy.special

from brainphase.tasks.heldout import Metric
from brainphase.tasks.scoring import LoglikResult, token_edit_distance

METRICS_BY_OUTPUT_TYPE = {
    "loglikelihood": (
        Metric("acc", True, "discontinuous"),
        Metric("logprob", True, "continuous"),
        Metric("token_accuracy", True, "continuous"),
        Metric("target_prob", True, "continuous"),
    ),
    "multiple_choice": (
        Metric("acc", True, "discontinuous"),
        Metric("acc_norm", True, "discontinuous"),
        Metric("logprob_correct", True, "continuous"),
        Metric("prob_mass", True, "continuous"),
        Metric("brier", False, "continuous"),
    ),
    "generate_until": (
        Metric("exact_match", True, "discontinuous"),
        Metric("edit_distance", False, "continuous"),
        Metric("logprob", True, "continuous"),
    ),
}


def loglikelihood_items(results: list[LoglikResult]) -> dict[str, np.ndarray]:
    """Per-item metrics of a log-likelihood task (one result per item).

    Returns
    -------
    dict of ndarray, each of shape (n_items,)
    """
    logprob = np.array([r.loglik for r in results])
    return {
        "acc": np.array([float(r.is_greedy) for r in results]),
        "logprob": logprob,
        "token_accuracy": np.array([r.n_greedy / r.n_tokens for r in results]),
        "target_prob": np.exp(logprob),
    }


def multiple_choice_items(logliks: list[np.ndarray], choice_lengths: list[np.ndarray],
                          gold: np.ndarray) -> dict[str, np.ndarray]:
    """Per-item metrics of a multiple-choice task.

    Parameters
    ----------
    logliks : list of ndarray, each of shape (n_choices_i,)
    choice_lengths : list of ndarray, each of shape (n_choices_i,)
        Characters of each choice (without the target delimiter).
    gold : ndarray of int, shape (n_items,)

    Returns
    -------
    dict of ndarray, each of shape (n_items,)
    """
    values = {name: [] for name in ("acc", "acc_norm", "logprob_correct", "prob_mass", "brier")}
    for ll, lengths, correct in zip(logliks, choice_lengths, gold):
        q = scipy.special.softmax(ll)
        onehot = np.arange(len(ll)) == correct
        values["acc"].append(float(np.argmax(ll) == correct))
        values["acc_norm"].append(float(np.argmax(ll / lengths) == correct))
        values["logprob_correct"].append(ll[correct])
        values["prob_mass"].append(q[correct])
        values["brier"].append(float(((q - onehot) ** 2).sum()))
    return {name: np.array(v, dtype=np.float64) for name, v in values.items()}


def generation_items(generated_ids: list[list[int]], target_ids: list[list[int]], generated: list[str],
                     targets: list[str], results: list[LoglikResult]) -> dict[str, np.ndarray]:
    """Per-item metrics of a generation task.

    Parameters
    ----------
    generated_ids, target_ids : list of list of int
        Tokens of the stripped generated text and of the stripped target.
    generated, targets : list of str
    results : list of LoglikResult
        Log likelihood of each target given its context.
    """
    return {
        "exact_match": np.array([float(g.strip() == t.strip()) for g, t in zip(generated, targets)]),
        "edit_distance": np.array([float(token_edit_distance(g, t)) for g, t in zip(generated_ids, target_ids)]),
        "logprob": np.array([r.loglik for r in results]),
    }
