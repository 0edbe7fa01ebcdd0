"""Checkpoint revision names of public model suites and of local training runs.

Pure Python (no torch / transformers at import time): the Snakefile imports this module to
expand the checkpoint steps of a run.

Conventions
-----------
========== ===================================== ==========================================
convention revision name                          source
========== ===================================== ==========================================
``pythia`` ``step{N}``                            ``EleutherAI/pythia-{size}`` branches
                                                  (PolyPythias seeds: :func:`pythia_repo`)
``olmo2``  ``stage1-step{N}-tokens{T}B``          ``allenai/OLMo-2-*`` branches
``olmo``   ``step{N}-tokens{T}B``                 ``allenai/OLMo-*`` branches
``amber``  ``ckpt_{NNN}`` (three digits)          ``LLM360/Amber`` branches
``local``  ``step{N}/`` sub-folders               a folder written by ``brainphase train``
========== ===================================== ==========================================

Without a ``convention`` (see :func:`brainphase.config.plan_models`): a folder holding
``config.json`` is one checkpoint; another local folder is read as ``local``; a Hub id
takes ``revisions`` of any convention (or one name without a step, such as ``main``) and
needs ``convention`` only to turn ``steps`` into names.

A checkpoint whose training step nobody states (one pretrained model, a ``main``
revision) is labelled :data:`UNKNOWN_STEP` (-1), and its tokens seen are
:data:`UNKNOWN_TOKENS` (-1) unless given. Step 0 is the initialisation: 0 tokens, always.

Token counts are integers of tokens. Names that carry a token count (``olmo2``, ``olmo``)
give it in billions, so a parsed count is ``T * 10**9`` and is exact only to the billion;
:func:`revision_name` rounds a count up (``olmo2``) or to the nearest billion (``olmo``), as
the two suites name their branches.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from brainphase.errors import InputError

log = logging.getLogger(__name__)

CONVENTIONS = ("pythia", "olmo2", "olmo", "amber", "local")

#: Step label of a checkpoint whose training step is not known (file names ``step-1.h5``).
UNKNOWN_STEP = -1
#: Tokens-seen label of a checkpoint whose tokens are not known.
UNKNOWN_TOKENS = -1
#: Metadata file written next to each checkpoint by ``brainphase train``.
CHECKPOINT_META = "brainphase_checkpoint.json"

#: Pythia: 1024 sequences x 2048 tokens per optimizer step.
PYTHIA_TOKENS_PER_STEP = 2_097_152
#: Pythia's last step.
PYTHIA_MAX_STEP = 143_000

_BILLION = 10**9
_PATTERNS = {
    "pythia": re.compile(r"^step(?P<step>\d+)$"),
    "local": re.compile(r"^step(?P<step>\d+)$"),
    "olmo2": re.compile(r"^stage1-step(?P<step>\d+)-tokens(?P<tokens>\d+)B$"),
    "olmo": re.compile(r"^step(?P<step>\d+)-tokens(?P<tokens>\d+)B$"),
    "amber": re.compile(r"^ckpt_(?P<step>\d{3})$"),
}


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise InputError(f"unknown revision convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")


def pythia_repo(size: str, seed: int = 0) -> str:
    """Hugging Face repository of a Pythia model; seeds 1-9 are the PolyPythias re-runs.

    Parameters
    ----------
    size : str
        Model size as in the repository name, e.g. ``"160m"`` or ``"1.4b"``.
    seed : int
        0 for the original Pythia run (``EleutherAI/pythia-{size}``), 1-9 for the PolyPythias
        seeds (``EleutherAI/pythia-{size}-seed{seed}``).
    """
    if not re.fullmatch(r"\d+(\.\d+)?[mb]", size):
        raise InputError(f"Pythia size {size!r} is not of the form '160m' or '1.4b'")
    if not 0 <= int(seed) <= 9:
        raise InputError(f"Pythia seed {seed} out of range: 0 is the original run, PolyPythias has seeds 1-9")
    return f"EleutherAI/pythia-{size}" if int(seed) == 0 else f"EleutherAI/pythia-{size}-seed{int(seed)}"


def pythia_steps() -> list[int]:
    """The 154 Pythia checkpoint steps: 0, 1, 2, 4, ..., 512, then 1000 to 143000 every 1000."""
    return [0] + [2**k for k in range(10)] + list(range(1000, PYTHIA_MAX_STEP + 1, 1000))


def tokens_per_step(source: str) -> int | None:
    """Tokens per optimizer step of a known model suite (Pythia, PolyPythias), else None."""
    return PYTHIA_TOKENS_PER_STEP if re.match(r"^EleutherAI/pythia-", str(source)) else None


def revision_name(convention: str, step: int, tokens: int | None = None) -> str:
    """Name of the revision holding training step ``step``.

    Parameters
    ----------
    convention : str
        One of :data:`CONVENTIONS`.
    step : int
        Optimizer step (for ``amber``: the checkpoint index, 0-999).
    tokens : int, optional
        Tokens seen at that step; required by ``olmo2`` and ``olmo``, ignored otherwise.
    """
    _check_convention(convention)
    step = int(step)
    if step < 0:
        raise InputError(f"step must be >= 0, got {step}")
    if convention in ("pythia", "local"):
        return f"step{step}"
    if convention == "amber":
        if step > 999:
            raise InputError(f"Amber checkpoint index {step} does not fit the three-digit 'ckpt_NNN' names")
        return f"ckpt_{step:03d}"
    if tokens is None:
        raise InputError(f"{convention} revision names carry the token count: pass tokens for step {step}")
    billions = math.ceil(tokens / _BILLION) if convention == "olmo2" else round(tokens / _BILLION)
    prefix = "stage1-" if convention == "olmo2" else ""
    return f"{prefix}step{step}-tokens{billions}B"


def parse_revision(convention: str, name: str) -> tuple[int, int | None]:
    """Parse a revision name into ``(step, tokens)``; ``tokens`` is None when the name has none.

    Raises
    ------
    InputError
        If ``name`` does not follow ``convention``.
    """
    _check_convention(convention)
    match = _PATTERNS[convention].match(str(name).rstrip("/"))
    if match is None:
        raise InputError(
            f"revision {name!r} does not follow the {convention!r} convention "
            f"(expected e.g. {revision_name(convention, 100, 4 * _BILLION)!r})"
        )
    tokens = match.groupdict().get("tokens")
    return int(match["step"]), (int(tokens) * _BILLION if tokens is not None else None)


def infer_revision(name: str) -> tuple[int | None, int | None]:
    """``(step, tokens)`` from a revision name of any convention, ``(None, None)`` if none fits."""
    for convention in ("olmo2", "olmo", "amber", "pythia"):
        match = _PATTERNS[convention].match(str(name))
        if match is not None:
            return parse_revision(convention, name)
    return None, None


def list_revisions(source: str | os.PathLike, convention: str) -> list[str]:
    """Revisions available for ``source``, sorted by step.

    Parameters
    ----------
    source : str or path
        For ``local``: a folder with ``step{N}/`` sub-folders. Otherwise a Hugging Face
        repository id whose branches are listed (needs network access).
    convention : str
        One of :data:`CONVENTIONS`; names that do not follow it (e.g. ``main``) are skipped.
    """
    _check_convention(convention)
    if convention == "local":
        folder = Path(source)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder of step{{N}}/ checkpoints (written by `brainphase train`)")
        names = [p.name for p in folder.iterdir() if p.is_dir()]
    else:
        names = _hub_branches(str(source))
    kept = [n for n in names if _PATTERNS[convention].match(n)]
    if len(kept) < len(names):
        log.info("%s: skipped %d revisions not following the %s convention", source, len(names) - len(kept), convention)
    if not kept:
        raise InputError(f"{source}: no revision follows the {convention!r} convention (found {sorted(names)[:10]})")
    return sorted(kept, key=lambda n: parse_revision(convention, n)[0])


def _hub_branches(repo_id: str) -> list[str]:
    import huggingface_hub

    try:
        refs = huggingface_hub.list_repo_refs(repo_id)
    except Exception as exc:  # network, offline mode, missing repo: all mean "cannot list"
        raise InputError(
            f"cannot list the revisions of {repo_id!r} on the Hugging Face Hub ({type(exc).__name__}: {exc}); "
            "check the repository id and network access (HF_HUB_OFFLINE must be unset), "
            "or give the steps explicitly"
        ) from exc
    return [branch.name for branch in refs.branches]


def steps_to_tokens(
    steps: Sequence[int], tokens_per_step: int | None = None, revisions: Sequence[str] | None = None
) -> list[int]:
    """Tokens seen at each step.

    Parameters
    ----------
    steps : sequence of int, shape (n_steps,)
    tokens_per_step : int, optional
        Tokens per optimizer step (e.g. :data:`PYTHIA_TOKENS_PER_STEP`), used for steps whose
        revision name carries no token count.
    revisions : sequence of str, shape (n_steps,), optional
        Revision names aligned with ``steps``; a ``-tokens{T}B`` part gives the count.

    Returns
    -------
    list of int, shape (n_steps,)
    """
    if revisions is not None and len(revisions) != len(steps):
        raise InputError(f"steps_to_tokens: {len(steps)} steps but {len(revisions)} revision names")
    tokens = []
    for i, step in enumerate(steps):
        from_name = infer_revision(revisions[i])[1] if revisions is not None else None
        if from_name is not None:
            tokens.append(from_name)
        elif tokens_per_step is not None:
            tokens.append(int(step) * int(tokens_per_step))
        else:
            raise InputError(
                f"step {step}: the revision name carries no token count and no tokens_per_step was given"
            )
    return tokens


def log_spaced_steps(max_step: int, n: int) -> list[int]:
    """``n`` distinct integer steps from 0 to ``max_step``, log-spaced after 0.

    The steps after 0 follow ``geomspace(1, max_step, n - 1)`` rounded, nudged up where
    rounding collides, so ``log_spaced_steps(512, 11)`` is 0 and the powers of two to 512.

    Returns
    -------
    list of int, shape (n,), strictly increasing, first 0, last ``max_step``.
    """
    max_step, n = int(max_step), int(n)
    if n < 2 or max_step < 1:
        raise InputError(f"log_spaced_steps needs n >= 2 and max_step >= 1 (got n={n}, max_step={max_step})")
    if n > max_step + 1:
        raise InputError(f"cannot pick {n} distinct steps between 0 and {max_step}")
    positive = n - 1
    targets = [max_step ** (k / (positive - 1)) for k in range(positive)] if positive > 1 else [max_step]
    return [0] + _monotone_picks([round(t) for t in targets], lambda v: v, lower=1, upper=max_step)


def _monotone_picks(ideal: list[int], value_of, lower: int, upper: int) -> list[int]:
    """Strictly increasing integers near ``ideal``, each within [lower, upper] and leaving room."""
    picks: list[int] = []
    for k, target in enumerate(ideal):
        remaining = len(ideal) - k - 1
        low = picks[-1] + 1 if picks else lower
        picks.append(min(max(value_of(target), low), upper - remaining))
    return picks


def select_steps(available_steps: Iterable[int], spec) -> list[int]:
    """Choose checkpoint steps among those available.

    Parameters
    ----------
    available_steps : iterable of int
        Steps that exist (any order).
    spec : list of int or dict
        An explicit list (each step must exist) or ``{"log": N}``: N steps log-spaced between
        the first and the last available step (both included), each the available step
        nearest (in log(1 + step)) to its log-spaced target.

    Returns
    -------
    list of int, sorted.
    """
    available = sorted({int(s) for s in available_steps})
    if not available:
        raise InputError("no checkpoint steps are available to select from")
    if isinstance(spec, dict):
        if set(spec) != {"log"}:
            raise InputError(f"step selection {spec!r}: use a list of steps or {{'log': N}}")
        return _log_pick(available, int(spec["log"]))
    if isinstance(spec, (list, tuple)):
        wanted = sorted({int(s) for s in spec})
        missing = [s for s in wanted if s not in set(available)]
        if missing:
            raise InputError(f"steps {missing} are not available; available steps: {available}")
        return wanted
    raise InputError(f"step selection {spec!r}: use a list of steps or {{'log': N}}")


def _log_pick(available: list[int], n: int) -> list[int]:
    if not 2 <= n <= len(available):
        raise InputError(f"{{'log': {n}}}: need 2 <= N <= {len(available)} (the number of available steps)")
    first, last = available[0], available[-1]
    if first == 0:
        targets = [0.0] + [last ** (k / (n - 2)) if n > 2 else float(last) for k in range(n - 1)]
    else:
        targets = [first * (last / first) ** (k / (n - 1)) for k in range(n)]
    logs = [math.log1p(s) for s in available]

    def nearest_index(target: float) -> int:
        return min(range(len(available)), key=lambda i: abs(logs[i] - math.log1p(target)))

    indices = _monotone_picks(targets, nearest_index, lower=0, upper=len(available) - 1)
    return [available[i] for i in indices]
