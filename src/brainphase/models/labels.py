"""The labels every model-derived output carries (model id, revision, seed, step, tokens) and the
command-line options that set them (``brainphase extract``, ``brainphase tasks``).

Pure Python (no torch): a checkpoint's own labels come from
:func:`brainphase.models.checkpoints.load_checkpoint`'s ``info``.
"""

from __future__ import annotations

import logging

from brainphase.errors import InputError
from brainphase.models.revisions import CHECKPOINT_META, UNKNOWN_STEP, UNKNOWN_TOKENS

log = logging.getLogger(__name__)


#: Seed label of a checkpoint whose seed nobody states (``--seed`` left out, no metadata).
DEFAULT_SEED = 0


def model_attrs(info: dict, model_id: str | None = None, seed: int | None = None, step: int | None = None,
                tokens_per_step: int | None = None, tokens: int | None = None) -> dict:
    """The model provenance attributes of an output file (``model_id``, ``revision``, ``seed``,
    ``step``, ``tokens``, ``weights_sha256``).

    ``model_id`` / ``seed`` override the checkpoint's labels; with neither, the seed is
    :data:`DEFAULT_SEED`. ``step`` fills in a step the checkpoint does not know (a plain local
    folder) and must agree with one it knows; unknown everywhere, it is
    :data:`~brainphase.models.revisions.UNKNOWN_STEP`. Tokens seen: ``tokens`` (must agree
    with the checkpoint's own), else the checkpoint's, else 0 at step 0, else
    ``step * tokens_per_step``; :data:`~brainphase.models.revisions.UNKNOWN_TOKENS` for an
    unknown step; None (unknown) for a known step > 0 without any of these.
    """
    known_step = info["step"]
    if step is not None and known_step is not None and int(step) != int(known_step):
        raise InputError(f"{info['source']}: --step {step} contradicts the checkpoint's own step {known_step}")
    step = UNKNOWN_STEP if known_step is None and step is None else int(known_step if step is None else step)
    known_tokens = info["tokens"]
    if tokens is not None and known_tokens is not None and int(tokens) != int(known_tokens):
        raise InputError(f"{info['source']}: --tokens {tokens} contradicts the checkpoint's own {known_tokens} tokens")
    if tokens is None:
        tokens = known_tokens
    if tokens is None:
        if step == 0:
            tokens = 0
        elif step == UNKNOWN_STEP:
            tokens = UNKNOWN_TOKENS
        elif tokens_per_step is not None:
            tokens = step * int(tokens_per_step)
    if seed is None:
        seed = DEFAULT_SEED if info["seed"] is None else info["seed"]
    return {
        "model_id": model_id or info["model_id"],
        "revision": info["revision"],
        "seed": int(seed),
        "step": step,
        "tokens": None if tokens is None else int(tokens),
        "weights_sha256": info["weights_sha256"],
    }


def add_checkpoint_arguments(parser) -> None:
    """Options of the steps that load one checkpoint (``brainphase extract``, ``brainphase tasks``)."""
    from brainphase.config import schema_default

    parser.add_argument("--model", required=True, help="checkpoint folder or Hugging Face repo id")
    parser.add_argument("--revision", default=None, help="Hub branch/tag/commit, or step{N} sub-folder of --model")
    parser.add_argument("--model-id", default=None, help="label stored in the output (default: from the checkpoint)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"training seed label stored in the output (default: the checkpoint's own, else {DEFAULT_SEED})")
    parser.add_argument("--step", type=int, default=None,
                        help="training step, for folders whose metadata and revision name do not give it "
                             f"(default: unknown, stored as {UNKNOWN_STEP})")
    parser.add_argument("--tokens-per-step", type=int, default=None,
                        help="training tokens per step, when neither metadata nor revision name give the tokens")
    parser.add_argument("--tokens", type=int, default=None,
                        help=f"tokens seen by this checkpoint (default: from the checkpoint, 0 at step 0; {UNKNOWN_TOKENS} "
                             "for an unknown step)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=schema_default("extract.device"))


def cli_model_attrs(info: dict, args) -> dict:
    """:func:`model_attrs` from the options of :func:`add_checkpoint_arguments`. A known step
    > 0 must come with its tokens, since every downstream stage orders checkpoints by them;
    an unknown step or seed is logged."""
    attrs = model_attrs(info, args.model_id, args.seed, args.step, args.tokens_per_step, args.tokens)
    if attrs["tokens"] is None:
        raise InputError(f"{args.model}: the tokens seen at step {attrs['step']} are unknown; pass --tokens-per-step "
                         "(config key models.NAME.tokens_per_step) or --tokens (models.NAME.tokens)")
    if attrs["step"] == UNKNOWN_STEP:
        log.info("%s: training step unknown (not in %s, the revision name or --step): labelled step %d, "
                 "tokens %d", args.model, CHECKPOINT_META, UNKNOWN_STEP, attrs["tokens"])
    if args.seed is None and info["seed"] is None:
        log.info("%s: no --seed and no seed in the checkpoint: labelled seed %d", args.model, DEFAULT_SEED)
    return attrs
