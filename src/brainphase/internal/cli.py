"""``brainphase internal``: representation metrics of every layer of one checkpoint.

Reads the activation files written by ``brainphase extract`` (or ``measure``): the checkpoint's
own, the final checkpoint's and, when there is one, the previous checkpoint's of the same
(model, seed); nothing is recomputed from the model. All metrics use one seeded subsample of at
most ``--max-words`` words, drawn from the word count alone, so every checkpoint of a model
(same stimulus, hence the same words table, which is checked) uses the same words.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainphase.errors import InputError
from brainphase.internal.metrics import CentredLayer, cka_between, layer_metrics
from brainphase.io import atomic_h5, open_h5, provenance

log = logging.getLogger(__name__)

#: metric name -> description (the datasets under /metrics, each (n_layers,) float64)
METRICS: dict[str, str] = {
    "twonn_dimension": "TwoNN intrinsic dimension (Facco et al. 2017) of the distinct word vectors, top 10% of "
                       "r2/r1 discarded, line through the origin",
    "cka_final": "linear CKA (centred features) to the same layer of the final checkpoint, same words",
    "cka_previous": "linear CKA (centred features) to the same layer of the previous checkpoint (NaN: none)",
    "effective_rank": "exp(entropy of the normalised singular values) of the centred word vectors "
                      "(Roy & Vetterli 2007)",
    "anisotropy": "mean cosine similarity over distinct pairs of the raw word vectors",
}
#: root attributes copied from the activation file (model labels)
MODEL_LABELS = ("model_id", "revision", "seed", "step", "tokens", "weights_sha256")
#: words read from an activation file at once
_READ_BLOCK_WORDS = 4096


@dataclass
class ActivationFile:
    """What ``internal`` needs to know of one activation file before reading its layers."""

    path: Path
    n_layers: int
    n_words: int
    step: int
    labels: dict


def _read_words(handle, path: Path) -> dict[str, np.ndarray]:
    if "words" not in handle:
        raise InputError(f"{path}: no /words table; is it an activation file written by `brainphase extract`?")
    return {name: handle["words"][name][()] for name in sorted(handle["words"])}


def _first_difference(first: dict, second: dict) -> str:
    if sorted(first) != sorted(second):
        return f"columns {sorted(first)} versus {sorted(second)}"
    for name, a in first.items():
        b = second[name]
        if a.shape != b.shape:
            return f"{len(a)} versus {len(b)} words"
        equal = a == b
        if a.dtype.kind == "f":
            equal |= np.isnan(a) & np.isnan(b)
        if not np.all(equal):
            row = int(np.flatnonzero(~equal)[0])
            return f"column {name!r}, row {row}: {a[row]!r} versus {b[row]!r}"
    return ""


def open_activation_file(path: str | os.PathLike) -> tuple[ActivationFile, dict[str, np.ndarray]]:
    """Describe one activation file and return its words table (column -> (n_words,) array)."""
    path = Path(path)
    with open_h5(path) as handle:
        words = _read_words(handle, path)
        n_layers = sum(1 for name in handle if name.startswith("layer_"))
        if n_layers == 0 or any(f"layer_{i}" not in handle for i in range(n_layers)):
            raise InputError(f"{path}: expected datasets /layer_0 .. /layer_{{n-1}}, found "
                             f"{sorted(n for n in handle if n.startswith('layer_'))}")
        n_words = handle["layer_0"].shape[0]
        for i in range(n_layers):
            shape = handle[f"layer_{i}"].shape
            if len(shape) != 2 or shape[0] != n_words:
                raise InputError(f"{path}: /layer_{i} has shape {shape}, expected ({n_words}, d_model)")
        if any(len(column) != n_words for column in words.values()):
            raise InputError(f"{path}: the /words table and /layer_0 ({n_words} rows) differ in length")
        labels = {key: _plain(handle.attrs[key]) for key in MODEL_LABELS if key in handle.attrs}
    step = int(labels.get("step", -1))
    return ActivationFile(path, n_layers, n_words, step, labels), words


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


def word_subsample(n_words: int, max_words: int, seed: int) -> np.ndarray:
    """Sorted row indices of the words used: all when ``n_words <= max_words``, else a seeded
    uniform draw without replacement of ``max_words`` (depends only on the three arguments)."""
    if max_words < 3:
        raise InputError(f"--max-words {max_words}: at least 3 words are needed (config key internal.max_words)")
    if n_words <= max_words:
        return np.arange(n_words)
    return np.sort(np.random.default_rng(seed).choice(n_words, size=max_words, replace=False))


def _read_layer(path: Path, layer: int, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted) of ``/layer_{layer}`` as float64, read in blocks of words so that
    memory stays near the subsample's size."""
    with open_h5(path) as handle:
        dataset = handle[f"layer_{layer}"]
        blocks = []
        for start in range(0, dataset.shape[0], _READ_BLOCK_WORDS):
            stop = start + _READ_BLOCK_WORDS
            wanted = rows[(rows >= start) & (rows < stop)]
            if len(wanted):
                blocks.append(dataset[start:stop][wanted - start].astype(np.float64))
    values = np.concatenate(blocks) if blocks else np.empty((0, dataset.shape[1]))
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: /layer_{layer} holds non-finite values")
    return values


def compute_internal(activations: str | os.PathLike, final: str | os.PathLike,
                     previous: str | os.PathLike | None, max_words: int, word_sample_seed: int):
    """Internal metrics of every layer of one checkpoint.

    Parameters
    ----------
    activations, final, previous : path
        Activation files of this checkpoint, the final one and the previous one (or None)
        of the same model and seed; their words tables must be identical.
    max_words : int
        Most words used (seeded subsample above it).
    word_sample_seed : int
        Seed of the subsample.

    Returns
    -------
    metrics : dict
        name (:data:`METRICS`) -> (n_layers,) float64.
    info : dict
        ``own``, ``final``, ``previous`` (:class:`ActivationFile` or None), ``rows`` (the word
        indices used) and ``twonn_points`` ((n_layers,) distinct vectors of the TwoNN fits).
    """
    own, own_words = open_activation_file(activations)
    others = {"final": final, "previous": previous}
    files = {"own": own}
    for role, path in others.items():
        if path is None:
            files[role] = None
            continue
        described, words = open_activation_file(path)
        difference = _first_difference(own_words, words)
        if difference:
            raise InputError(f"{path} and {own.path} have different words tables ({difference}); internal metrics "
                             "compare the same words across checkpoints: extract every checkpoint with the same stimulus")
        if described.n_layers != own.n_layers:
            raise InputError(f"{path} has {described.n_layers} layers but {own.path} has {own.n_layers}; "
                             "pass checkpoints of the same model")
        files[role] = described
    rows = word_subsample(own.n_words, max_words, word_sample_seed)
    log.info("%s: %d layers, %d of %d words (seed %d)", own.path, own.n_layers, len(rows), own.n_words,
             word_sample_seed)
    metrics = {name: np.full(own.n_layers, np.nan) for name in METRICS}
    twonn_points = np.zeros(own.n_layers, dtype=np.int64)
    started = time.perf_counter()
    for layer in range(own.n_layers):
        features = _read_layer(own.path, layer, rows)
        centred = CentredLayer.from_features(features)
        try:
            values = layer_metrics(features, centred)
        except ValueError as exc:
            raise InputError(f"{own.path}: /layer_{layer}: {exc}") from exc
        twonn_points[layer] = int(values.pop("twonn_points"))
        for name, value in values.items():
            metrics[name][layer] = value
        for role in ("final", "previous"):
            other = files[role]
            if other is None:
                continue
            same = other.path.resolve() == own.path.resolve()
            other_centred = (centred if same else
                             CentredLayer.from_features(_read_layer(other.path, layer, rows), spectrum=False))
            metrics[f"cka_{role}"][layer] = cka_between(centred, other_centred)
        log.info("layer %d: %s (%.1f s)", layer,
                 ", ".join(f"{name}={metrics[name][layer]:.4g}" for name in METRICS), time.perf_counter() - started)
    return metrics, {**files, "rows": rows, "twonn_points": twonn_points}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brainphase internal``."""
    from brainphase.config import schema_default

    parser.add_argument("--activations", required=True, help="activation file of the checkpoint (step{N}.h5)")
    parser.add_argument("--final", required=True,
                        help="activation file of the final checkpoint of the same model and seed (for cka_final)")
    parser.add_argument("--previous", default=None,
                        help="activation file of the previous checkpoint (for cka_previous; NaN when left out)")
    parser.add_argument("--out", required=True, help="output internal .h5")
    parser.add_argument("--max-words", type=int, default=schema_default("internal.max_words"),
                        help="most words used, a seeded subsample above it (default: %(default)s)")
    parser.add_argument("--word-sample-seed", type=int, default=schema_default("internal.word_sample_seed"),
                        help="seed of the word subsample (default: %(default)s)")


def main(args: argparse.Namespace) -> None:
    """Run ``brainphase internal``."""
    metrics, info = compute_internal(args.activations, args.final, args.previous, args.max_words,
                                     args.word_sample_seed)
    own, final, previous = info["own"], info["final"], info["previous"]
    inputs = [p for p in (args.activations, args.final, args.previous) if p is not None]
    attrs = provenance("internal", args, list(dict.fromkeys(inputs)), **own.labels, n_words=len(info["rows"]),
                       n_words_total=own.n_words, word_sample_seed=args.word_sample_seed, n_layers=own.n_layers,
                       final_step=final.step, previous_step=-1 if previous is None else previous.step)
    with atomic_h5(args.out, attrs) as handle:
        group = handle.create_group("metrics")
        for name, description in METRICS.items():
            dataset = group.create_dataset(name, data=metrics[name].astype(np.float64))
            dataset.attrs["description"] = description
        group["twonn_dimension"].attrs["n_points"] = info["twonn_points"]
    log.info("wrote %s", args.out)
