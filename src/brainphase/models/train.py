"""Train a tiny GPT-NeoX (Pythia architecture) on ``train.txt`` and save HF checkpoints.

``brainphase train`` reads top to bottom like nanoGPT:

1. train a byte-level BPE tokenizer on ``train.txt`` (deterministic) and encode both splits;
2. build a ``GPTNeoXForCausalLM`` (Pythia layout: parallel residual, rotary on ``--rotary-pct``
   of each head (Pythia: 25%), untied embeddings, no dropout) from ``torch.manual_seed(seed)``;
3. AdamW with linear warmup then cosine decay to 10% of ``--lr``; each step draws
   ``batch_size`` random windows of ``seq_len + 1`` tokens with ``numpy.random.default_rng(seed)``;
4. at every step of ``--steps`` (step 0 = the initial weights) write ``out-dir/step{N}/``
   atomically: ``save_pretrained`` weights (safetensors), the tokenizer and
   ``brainphase_checkpoint.json``.

Reproducibility: the same seed, device and ``--threads`` give bitwise identical weights;
another seed changes the initial weights and the order of the training windows.

``train_log.csv`` has one row per step: ``step, tokens, train_loss, lr, valid_loss``. Row
``s >= 1`` holds the loss of the batch of update ``s`` (before the update) and the learning
rate used for it; row 0 has no train loss. ``valid_loss`` (mean token cross-entropy, nats,
on ``EVAL_WINDOWS`` fixed windows spread over ``valid.txt``) is filled at checkpoints and
every ``--eval-every`` steps. Rows are appended and flushed to ``train_log.csv.partial`` as
training goes (a crash keeps them); the file is renamed to ``train_log.csv`` at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from brainphase import __version__
from brainphase.config import schema_default
from brainphase.errors import InputError
from brainphase.io import atomic_dir, read_nonempty_text, to_jsonable
from brainphase.models.revisions import CHECKPOINT_META

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"  # also BOS, as in Pythia
PAD_TOKEN = "<|padding|>"
N_BYTE_TOKENS = 256
#: number of fixed validation windows (seq_len + 1 tokens each) used for valid_loss
EVAL_WINDOWS = 64
LOG_COLUMNS = ("step", "tokens", "train_loss", "lr", "valid_loss")
MIN_LR_FRACTION = 0.1


# --------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus-dir", required=True, type=Path, help="directory with train.txt and valid.txt")
    parser.add_argument("--out-dir", required=True, type=Path, help="e.g. results/models/tiny/seed1")
    parser.add_argument("--model-id", default="tiny-neox", help="label stored in every checkpoint (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the initial weights and the data order")
    parser.add_argument("--steps", type=int, nargs="+", required=True,
                        help="save checkpoints at these steps (sorted, must include 0; the last is the number "
                             "of training steps)")
    def default(key):  # config/schema.yaml states every default once
        return schema_default(f"models.*.train.{key}")

    parser.add_argument("--n-layers", type=int, default=default("n_layers"))
    parser.add_argument("--d-model", type=int, default=default("d_model"))
    parser.add_argument("--n-heads", type=int, default=default("n_heads"))
    parser.add_argument("--rotary-pct", type=float, default=default("rotary_pct"),
                        help="share of each head's dimensions with rotary position embeddings (Pythia: 0.25)")
    parser.add_argument("--seq-len", type=int, default=default("seq_len"), help="training context length in tokens")
    parser.add_argument("--batch-size", type=int, default=default("batch_size"))
    parser.add_argument("--lr", type=float, default=default("lr"), help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=default("warmup_steps"))
    parser.add_argument("--vocab-size", type=int, default=default("vocab_size"),
                        help="BPE vocabulary size (incl. 256 bytes + 2 specials)")
    parser.add_argument("--eval-every", type=int, default=default("eval_every"),
                        help="steps between validation-loss evaluations; 0 = only at checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def check_args(args: argparse.Namespace) -> None:
    """Raise InputError for settings that cannot train."""
    steps = list(args.steps)
    if steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise InputError(f"--steps {' '.join(map(str, steps))}: must start at 0 and strictly increase "
                         "(e.g. --steps 0 1 2 4 8 ... 1024)")
    if len(steps) < 2:
        raise InputError("--steps needs at least one step after 0 (the last one is the number of training steps)")
    min_vocab = N_BYTE_TOKENS + 2 + 1
    if args.vocab_size < min_vocab:
        raise InputError(f"--vocab-size {args.vocab_size} is too small: the byte-level BPE needs 256 byte tokens, "
                         f"2 special tokens and at least one merge (>= {min_vocab})")
    if args.d_model % args.n_heads:
        raise InputError(f"--d-model {args.d_model} is not divisible by --n-heads {args.n_heads}")
    if not 0 < args.rotary_pct <= 1:
        raise InputError(f"--rotary-pct must be in (0, 1], got {args.rotary_pct}")
    head_dims = args.d_model // args.n_heads
    rotary_dims = int(head_dims * args.rotary_pct)  # as transformers' GPT-NeoX rounds it
    if rotary_dims < 2 or rotary_dims % 2:
        raise InputError(f"--rotary-pct {args.rotary_pct} of a head of --d-model / --n-heads = "
                         f"{head_dims} dimensions gives {rotary_dims} rotary dimensions: "
                         "rotary embeddings act in pairs, so this must be an even number >= 2")
    for name in ("n_layers", "d_model", "n_heads", "seq_len", "batch_size", "threads"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0 or args.warmup_steps < 0 or args.eval_every < 0:
        raise InputError("--lr must be > 0 and --warmup-steps, --eval-every >= 0")


def read_split(corpus_dir: Path, name: str) -> str:
    """The text of ``corpus_dir/name``, with an InputError if it is missing or empty."""
    return read_nonempty_text(Path(corpus_dir) / name, f"run `brainphase corpus --out-dir {corpus_dir}` first")


# --------------------------------------------------------------------------------------
# tokenizer and data
# --------------------------------------------------------------------------------------


def train_tokenizer(text: str, vocab_size: int):
    """A byte-level BPE tokenizer trained on ``text``, as a ``PreTrainedTokenizerFast``.

    Token 0 is ``<|endoftext|>`` (BOS and EOS), token 1 ``<|padding|>``; no special token is
    added on encoding. Training is deterministic (same text and size, same merges).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=[EOS_TOKEN, PAD_TOKEN], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_paragraphs(text), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, model_max_length=None)


def _paragraphs(text: str, chunk_chars: int = 1 << 16) -> list[str]:
    """``text`` in pieces of about ``chunk_chars`` cut after a blank line, concatenating back to ``text``."""
    pieces, start = [], 0
    while start < len(text):
        cut = text.find("\n\n", start + chunk_chars)
        end = len(text) if cut < 0 else cut + 2
        pieces.append(text[start:end])
        start = end
    return pieces


def encode(tokenizer, text: str) -> np.ndarray:
    """Token ids of ``text``, shape (n_tokens,), int64 (encoded in paragraph-aligned pieces)."""
    encodings = tokenizer.backend_tokenizer.encode_batch(_paragraphs(text), add_special_tokens=False)
    return np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])


def eval_windows(tokens: np.ndarray, seq_len: int, n_windows: int = EVAL_WINDOWS) -> np.ndarray:
    """Up to ``n_windows`` windows of ``seq_len + 1`` tokens evenly spread over ``tokens``.

    Returns
    -------
    ndarray, shape (n_windows, seq_len + 1), int64
    """
    n_possible = len(tokens) - seq_len
    starts = np.unique(np.linspace(0, n_possible - 1, num=min(n_windows, n_possible)).round().astype(np.int64))
    return np.stack([tokens[s : s + seq_len + 1] for s in starts])


# --------------------------------------------------------------------------------------
# model and schedule
# --------------------------------------------------------------------------------------


def build_model(args: argparse.Namespace, tokenizer):
    """A randomly initialised Pythia-style ``GPTNeoXForCausalLM`` (float32)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=args.d_model, num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads, intermediate_size=4 * args.d_model, rotary_pct=args.rotary_pct,
        max_position_embeddings=args.seq_len, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=False, use_parallel_residual=True,
    )
    return GPTNeoXForCausalLM(config)


def learning_rate(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of update ``step`` (1-based): linear warmup, then cosine to 10% of ``peak``."""
    if step <= warmup_steps:
        return peak * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * (MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, lr: float):
    """AdamW (betas 0.9/0.95), weight decay 0.1 on matrices only (not on biases and norms)."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


def token_loss(model, windows, autocast):
    """Mean next-token cross-entropy (nats) of windows, shape (batch, seq_len + 1)."""
    import torch.nn.functional as F

    with autocast():
        logits = model(input_ids=windows[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


def validation_loss(model, windows, batch_size: int, autocast) -> float:
    """Mean token loss over fixed validation windows, shape (n_windows, seq_len + 1)."""
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size]
            total += token_loss(model, batch, autocast).item() * len(batch)
    model.train()
    return total / len(windows)


# --------------------------------------------------------------------------------------
# checkpoints and log
# --------------------------------------------------------------------------------------


def save_checkpoint(out_dir: Path, model, tokenizer, args: argparse.Namespace, step: int) -> Path:
    """Write ``out_dir/step{step}/`` atomically: weights (safetensors), tokenizer, metadata."""
    path = out_dir / f"step{step}"
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {"model_id": args.model_id, "seed": args.seed, "step": step,
                "tokens_seen": step * args.batch_size * args.seq_len,
                "train_config": to_jsonable(args), "brainphase_version": __version__}
        (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def _prepare_out_dir(out_dir: Path) -> None:
    """Remove an earlier run's checkpoints and log from ``out_dir``; refuse other content."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(f"--out-dir {out_dir} is a file; give a directory")
    ours = [p for p in out_dir.iterdir()
            if (p.is_dir() and (p / CHECKPOINT_META).is_file()) or p.name in ("train_log.csv", "train_log.csv.partial")]
    foreign = sorted(p.name for p in out_dir.iterdir() if p not in ours)
    if foreign:
        raise InputError(f"--out-dir {out_dir} holds files that are not brainphase checkpoints "
                         f"({', '.join(foreign[:5])}); give an empty directory or an earlier run's directory")
    if ours:
        import shutil

        logger.warning("removing %d checkpoint(s)/log(s) of an earlier run in %s", len(ours), out_dir)
        for p in ours:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase train``."""
    check_args(args)
    import contextlib

    import torch
    import transformers
    from tqdm import tqdm

    from brainphase.models.checkpoints import resolve_device

    transformers.utils.logging.disable_progress_bar()  # one bar (ours) per run is enough

    device, compute_dtype = resolve_device(args.device)
    train_text = read_split(args.corpus_dir, "train.txt")
    valid_text = read_split(args.corpus_dir, "valid.txt")
    torch.set_num_threads(args.threads)
    if compute_dtype == torch.float32:
        autocast = contextlib.nullcontext
    else:
        autocast = lambda: torch.autocast(device.type, dtype=compute_dtype)  # noqa: E731

    # 1. tokenizer and data
    tokenizer = train_tokenizer(train_text, args.vocab_size)
    if len(tokenizer) < args.vocab_size:
        logger.warning("the BPE vocabulary stopped at %d tokens, below --vocab-size %d: train.txt has too few "
                       "repeated pairs; the model uses %d", len(tokenizer), args.vocab_size, len(tokenizer))
    train_tokens = encode(tokenizer, train_text)
    valid_tokens = encode(tokenizer, valid_text)
    for name, tokens in (("train.txt", train_tokens), ("valid.txt", valid_tokens)):
        if len(tokens) < args.seq_len + 1:
            raise InputError(f"{args.corpus_dir / name}: {len(tokens)} tokens, fewer than --seq-len + 1 = "
                             f"{args.seq_len + 1}; give more text or a shorter --seq-len")
    logger.info("tokenizer: %d tokens; train %d tokens, valid %d tokens", len(tokenizer), len(train_tokens),
                len(valid_tokens))
    valid_windows = torch.from_numpy(eval_windows(valid_tokens, args.seq_len)).to(device)
    train_tokens_t = torch.from_numpy(train_tokens)
    data_rng = np.random.default_rng(args.seed)

    # 2. model and optimizer
    torch.manual_seed(args.seed)
    model = build_model(args, tokenizer).to(device)
    model.train()
    optimizer = make_optimizer(model, args.lr)
    n_params = sum(p.numel() for p in model.parameters())
    total_steps = args.steps[-1]
    save_steps = set(args.steps)
    logger.info("model: %d parameters; %d steps on %s, %d thread(s)", n_params, total_steps, device, args.threads)

    # 3. training loop
    out_dir = Path(args.out_dir)
    _prepare_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial_log = out_dir / "train_log.csv.partial"
    offsets = torch.arange(args.seq_len + 1)
    with open(partial_log, "w", newline="") as log_file:
        log = csv.writer(log_file, lineterminator="\n")
        log.writerow(LOG_COLUMNS)
        valid0 = validation_loss(model, valid_windows, args.batch_size, autocast)
        save_checkpoint(out_dir, model, tokenizer, args, 0)
        log.writerow([0, 0, "", 0.0, f"{valid0:.6f}"])
        log_file.flush()
        progress = tqdm(range(1, total_steps + 1), desc=f"train seed {args.seed}", unit="step", dynamic_ncols=True)
        for step in progress:
            lr = learning_rate(step, args.lr, args.warmup_steps, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            starts = torch.from_numpy(data_rng.integers(0, len(train_tokens) - args.seq_len, size=args.batch_size))
            windows = train_tokens_t[starts[:, None] + offsets].to(device)
            loss = token_loss(model, windows, autocast)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

            valid = ""
            if step in save_steps or (args.eval_every and step % args.eval_every == 0):
                valid = f"{validation_loss(model, valid_windows, args.batch_size, autocast):.6f}"
                progress.set_postfix(train=f"{loss.item():.3f}", valid=valid)
            if step in save_steps:
                save_checkpoint(out_dir, model, tokenizer, args, step)
            log.writerow([step, step * args.batch_size * args.seq_len, f"{loss.item():.6f}", f"{lr:.6g}", valid])
            log_file.flush()
    os.replace(partial_log, out_dir / "train_log.csv")
    logger.info("saved %d checkpoints in %s", len(save_steps), out_dir)
