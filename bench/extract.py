"""Benchmark `brainphase extract`: full extraction versus a bare forward loop, same batches.

One run, one checkpoint (random-init GPT-NeoX saved and re-loaded through
``load_checkpoint``), one generated stimulus:

1. a bare ``model(input_ids)`` loop over exactly the batches the extraction uses
   (also ``model.base_model(..., output_hidden_states=True)``, the computation extraction
   needs, for a stricter comparison);
2. the full ``extract_activations`` (tokenization, pooling, device transfer, HDF5 writes).

``extract_vs_forward`` = extraction throughput / bare ``model(...)`` throughput (goal >= 0.9).
Tokens are the real (unpadded) tokens of all word windows.

    python bench/extract.py --quick      # < 60 s: tiny model, ~2000 words
    python bench/extract.py              # 12 layers, d_model 768, 10,000 words (use a GPU)
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model and ~2000 words (< 60 s on a CPU)")
    parser.add_argument("--words", type=int, default=None, help="stimulus words (default 10000, quick 2000)")
    parser.add_argument("--layers", type=int, default=None, help="transformer blocks (default 12, quick 4)")
    parser.add_argument("--d-model", type=int, default=None, help="model width (default 768, quick 128)")
    parser.add_argument("--vocab-size", type=int, default=None, help="tokenizer size (default 8000, quick 1000)")
    parser.add_argument("--context-tokens", type=int, default=None, help="window per word (default 256, quick 128)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    defaults = {"words": (10000, 2000), "layers": (12, 4), "d_model": (768, 128), "vocab_size": (8000, 1000),
                "context_tokens": (256, 128)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def stimulus(n_words: int, words_per_run: int = 2500, seed: int = 0) -> pd.DataFrame:
    """Generated stories cut into runs: columns run, word_index, word, onset, offset."""
    from brainphase.stimuli import generate_stories

    n_runs = -(-n_words // words_per_run)
    words = " ".join(generate_stories(n_runs, words_per_run, seed)).split()[:n_words]
    index = np.arange(n_words)
    return pd.DataFrame({
        "run": [f"run{i // words_per_run + 1:02d}" for i in index],
        "word_index": index % words_per_run,
        "word": words,
        "onset": 0.3 * (index % words_per_run),
        "offset": 0.3 * (index % words_per_run) + 0.25,
    })


def save_random_checkpoint(folder: Path, text: str, args: argparse.Namespace) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from brainphase.models.train import train_tokenizer

    tokenizer = train_tokenizer(text, args.vocab_size)
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=args.d_model, num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.d_model // 64), intermediate_size=4 * args.d_model,
        max_position_embeddings=max(args.context_tokens, 64), tie_word_embeddings=False,
    )
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def timed_forward(model, batches, call) -> float:
    """Seconds to run ``call(model, input_ids)`` over all batches (device synchronised)."""
    import torch

    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            call(model, batch.input_ids.to(device))
    sync()
    return time.perf_counter() - start


def main(argv=None) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would only clutter the timings
    args = parse_args(argv)
    from brainphase.activations import effective_context, extract_activations
    from brainphase.word_windows import iter_word_batches, ordered_words, tokenize_run
    from brainphase.models.checkpoints import load_checkpoint

    words_df = stimulus(args.words)
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        tmp = Path(tmp)
        save_random_checkpoint(tmp / "model", " ".join(words_df["word"]), args)
        checkpoint = load_checkpoint(tmp / "model", device=args.device)
        model, info = checkpoint.model, checkpoint.info
        weights_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30

        context = effective_context(args.context_tokens, info["max_positions"])
        words = ordered_words(words_df)
        runs = [tokenize_run(checkpoint.tokenizer, words, run) for run in pd.unique(words["run"])]
        batches = list(iter_word_batches(runs, context, "last", args.batch_size))
        n_tokens = sum(b.n_tokens for b in batches)

        timed_forward(model, batches[:2], lambda m, ids: m(input_ids=ids))  # warm-up
        forward_s = timed_forward(model, batches, lambda m, ids: m(input_ids=ids))
        base_s = timed_forward(model, batches, lambda m, ids: m.base_model(input_ids=ids, output_hidden_states=True))
        rss_before_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        start = time.perf_counter()
        extract_activations(checkpoint, words_df, tmp / "act.h5", context_tokens=context, pooling="last",
                            batch_size=args.batch_size, storage_dtype="float32")
        extract_s = time.perf_counter() - start
        h5_gib = (tmp / "act.h5").stat().st_size / 2**30

    peak_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux
    print(f"device {info['device']} ({info['dtype']}), {info['n_layers']} layers x d_model {info['d_model']}, "
          f"{len(words_df)} words, context {context}, batch {args.batch_size}, {n_tokens} window tokens")
    print(f"bare model(...) forward      {forward_s:8.2f} s  {n_tokens / forward_s:10.0f} tokens/s")
    print(f"base model + hidden states   {base_s:8.2f} s  {n_tokens / base_s:10.0f} tokens/s")
    print(f"full extraction (incl. HDF5) {extract_s:8.2f} s  {n_tokens / extract_s:10.0f} tokens/s  "
          f"({h5_gib:.3f} GiB written)")
    print(f"extract / base-model forward throughput ratio {base_s / extract_s:.3f}")
    print(f"peak RSS {peak_rss_gib:.3f} GiB ({rss_before_gib:.3f} GiB before the extraction), "
          f"weights {weights_gib:.3f} GiB")
    print(f"RESULT extract_vs_forward={forward_s / extract_s:.3f} tokens_per_s={n_tokens / extract_s:.1f} "
          f"peak_rss_gib={peak_rss_gib:.3f} weights_gib={weights_gib:.3f}")


if __name__ == "__main__":
    main()
