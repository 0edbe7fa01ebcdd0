"""Benchmark the task suite: batched scoring versus one item at a time, in one run.

Scores every task of the built-in suite (items encoded and checked, log likelihoods, greedy
generation, per-item metrics; :func:`brainphase.tasks.runner.score_task`) on one checkpoint,
first with ``--batch-size`` sequences per forward pass, then with one. The held-out text
task is left out (its windows were batched before the suite existed).

``tasks_items_per_s`` = task items / seconds of the batched pass;
``batch_speedup`` = seconds one at a time / seconds batched (goal >= 5).

    python bench/tasks.py --quick     # < 60 s: tiny test model (tests/_models.py), 15 items per task, 1 thread
    python bench/tasks.py --checkpoint results/models/tiny-neox/seed1/step128
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="without --checkpoint: the tests' tiny model (2 layers, d_model 32) instead of 4 x 128")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder to score (default: a random-init model)")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per forward pass (default: tasks.batch_size)")
    parser.add_argument("--names", nargs="*", default=[], help="tasks to score (default: all)")
    parser.add_argument("--max-items", type=int, default=None, help="first items of each task (default: all; quick 15)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own; quick 1, as a busy 2-core machine runs faster so)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_items = args.max_items or 15
        args.threads = args.threads or 1
    return args


def build_checkpoint(folder: Path, quick: bool) -> Path:
    """A random-init GPT-NeoX (128 positions) with the tests' tokenizer, saved in ``folder``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import _models
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tokenizer = _models.train_tokenizer(folder / "tokenizer")
    if quick:
        model = _models.build_model(len(tokenizer), seed=0, max_positions=128)
    else:
        config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=512, max_position_embeddings=128, rotary_pct=0.25)
        model = GPTNeoXForCausalLM(config).eval()
    return _models.save_checkpoint(folder / "step16", tokenizer, model)


def score_suite(checkpoint, specs, batch_size: int) -> tuple[float, int]:
    """Seconds to encode and score ``specs``, and their item count."""
    from brainphase.models.architecture import pad_token_id
    from brainphase.tasks.runner import prepare_task, score_task

    begin = time.perf_counter()
    n_items = 0
    for spec in specs:
        task = prepare_task(spec, checkpoint.tokenizer, checkpoint.info["max_positions"])
        score_task(task, checkpoint.model, checkpoint.tokenizer, batch_size, pad_token_id(checkpoint.tokenizer))
        n_items += len(spec.items)
    return time.perf_counter() - begin, n_items


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    from brainphase.config import schema_default
    from brainphase.models.checkpoints import load_checkpoint
    from brainphase.tasks.spec import load_suite

    batch_size = args.batch_size or schema_default("tasks.batch_size")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or build_checkpoint(Path(tmp), args.quick)
        checkpoint = load_checkpoint(path, device=args.device)
        specs = [dataclasses.replace(spec, items=spec.items[: args.max_items]) for spec in load_suite(names=args.names)]
        score_suite(checkpoint, specs[:1], batch_size)  # warm-up (allocator, kernels)
        batched_s, n_items = score_suite(checkpoint, specs, batch_size)
        alone_s, _ = score_suite(checkpoint, specs, 1)
    info = checkpoint.info
    print(f"checkpoint {path}: {info['n_layers']} layers, d_model {info['d_model']}, {info['device']}/{info['dtype']}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{len(specs)} tasks, {n_items} items: batched ({batch_size} per pass) {batched_s:.2f} s, "
          f"one at a time {alone_s:.2f} s")
    print(f"RESULT tasks_items_per_s={n_items / batched_s:.1f} batch_speedup={alone_s / batched_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
