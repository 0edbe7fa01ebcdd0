"""Data loader of this task folder for lm-evaluation-harness (``custom_dataset``).

lm-eval 0.4 hands ``dataset_kwargs.data_files`` to ``datasets.load_dataset``, which resolves a
relative path against the current directory, so ``lm_eval --include_path DIR`` would find the
JSONL files only when started inside DIR. Every task YAML of this folder therefore names this
loader::

    custom_dataset: !function local_jsonl.load_docs

lm-eval resolves ``!function local_jsonl.load_docs`` to this file next to the YAML and calls
``load_docs(**metadata, **dataset_kwargs)``; the JSONL files are read relative to this file's
folder (the YAML's folder), from any working directory. brainphase's own loader
(``brainphase.tasks.spec``) reads the same ``data_files`` relative to the YAML file, so both
see the same items in the same order. A folder of your own tasks copies this file next to its
YAML files.

Pure standard library plus ``datasets`` (installed with lm-eval): no brainphase import, so
the folder also runs where brainphase is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets


def load_docs(data_files: dict | None = None, **metadata) -> datasets.DatasetDict:
    """Read each split's JSONL file (one JSON object per line, blank lines skipped).

    Parameters
    ----------
    data_files : dict of str to str
        Split name -> JSONL file name relative to this folder (the YAML's
        ``dataset_kwargs.data_files``).
    **metadata
        The task's ``metadata`` (and lm-eval's ``config_source``); used only in messages.

    Returns
    -------
    datasets.DatasetDict
        One dataset per split, rows in file order.

    Raises
    ------
    ValueError
        ``data_files`` missing, a file missing, a line that is not a JSON object, or no items.
    """
    import datasets

    source = metadata.get("config_source", "a task YAML")
    if not isinstance(data_files, dict) or not data_files:
        raise ValueError(f"{source}: dataset_kwargs.data_files must map a split (e.g. test) to a JSONL file "
                         f"next to the YAML, got {data_files!r}")
    folder = Path(__file__).resolve().parent
    splits = {}
    for split, name in data_files.items():
        path = folder / str(name)
        if not path.is_file():
            raise ValueError(f"{source}: data file {path} (dataset_kwargs.data_files.{split}) not found")
        docs = []
        for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError(f"{path}:{line_number}: each line must be a JSON object")
            docs.append(doc)
        if not docs:
            raise ValueError(f"{path}: no items")
        splits[split] = datasets.Dataset.from_list(docs)
    return datasets.DatasetDict(splits)
