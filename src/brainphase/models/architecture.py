"""What kind of language model a checkpoint is, and the special tokens its inputs carry.

Two kinds are supported:

``causal``
    Decoder-only models with a next-token head (GPT-NeoX/Pythia, OLMo, GPT-2, Llama...),
    loaded with ``AutoModelForCausalLM``. A word's context is the text before it.
``encoder``
    Masked (bidirectional) encoders (BERT, RoBERTa, ELECTRA...), loaded with ``AutoModel``
    (no head). Each context window is wrapped in the model's own special tokens as its
    tokenizer adds them (``[CLS] ... [SEP]``), and every token of the window sees every other
    one: the context is bidirectional *within* the window, which still ends at the word's last
    token. They have no next-token head, so they get no task metrics.

Encoder-decoder models (T5, BART) and model types with neither class are refused.
"""

from __future__ import annotations

from brainphase.errors import InputError

KINDS = ("causal", "encoder")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def model_kind(config, where: str) -> str:
    """``"causal"`` or ``"encoder"`` for a ``transformers`` model config.

    Causal: the saved architecture is a ``*ForCausalLM`` / ``*LMHeadModel`` of a decoder
    (a BERT-type config counts only with ``is_decoder``), or the model type has a causal-LM
    class and no masked-LM class. Encoder: a model type with a masked-LM class whose config is
    not a decoder (e.g. BERT saved as ``BertModel`` or ``BertForMaskedLM``).

    Parameters
    ----------
    config : transformers.PretrainedConfig
    where : str
        Checkpoint named in error messages.

    Raises
    ------
    InputError
        Encoder-decoder models, and model types that are neither.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        raise InputError(f"{where}: {model_type} is an encoder-decoder model; brainphase supports decoder-only "
                         "(causal) and encoder-only (masked) language models")
    is_decoder = bool(getattr(config, "is_decoder", False))
    masked = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    causal_type = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    saved_causal = any(str(a).endswith(_CAUSAL_SUFFIXES) for a in (getattr(config, "architectures", None) or []))
    if masked and not is_decoder:
        return "encoder"
    if causal_type and (saved_causal or is_decoder or not masked):
        return "causal"
    raise InputError(f"{where}: model type {model_type!r} has neither a causal-LM nor a masked-LM class in "
                     "transformers; brainphase cannot extract its word representations")


def special_token_frame(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids the tokenizer puts before and after a text (``[CLS]`` and ``[SEP]`` for BERT).

    Found by tokenizing the same text with and without special tokens, so it holds for any
    tokenizer whose special tokens wrap the text.

    Returns
    -------
    prefix, suffix : list of int
    """
    sample = "a"
    plain = list(tokenizer(sample, add_special_tokens=False)["input_ids"])
    framed = list(tokenizer(sample, add_special_tokens=True)["input_ids"])
    for start in range(len(framed) - len(plain) + 1):
        if framed[start : start + len(plain)] == plain:
            return framed[:start], framed[start + len(plain) :]
    raise InputError(f"the tokenizer {type(tokenizer).__name__} does not keep a text's tokens inside its special "
                     "tokens; cannot frame context windows")


def pad_token_id(tokenizer) -> int:
    """The tokenizer's padding id, else its end-of-text id, else 0 (padding is always masked)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
