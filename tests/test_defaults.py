"""One default per parameter: every CLI option that has a config key defaults to the schema's
value (config/schema.yaml), and the docs state no other default alpha grid.

The workflow passes config keys as options (``brainphase.config.cli_options``: key ``a_b`` ->
``--a-b``), so an option's argparse ``dest`` is its key name inside the command's section(s).
"""

import argparse
import importlib
import re
from pathlib import Path

import pytest

from brainphase import cli
from brainphase.config import schema_default

REPO = Path(__file__).resolve().parents[1]

#: command -> schema sections whose keys are its options (first match wins)
SECTIONS = {
    "corpus": ["corpus"],
    "train": ["models.*.train"],
    "simulate": ["fmri.simulate", "fmri"],
    "load-fmri": ["fmri.load", "fmri"],
    "extract": ["extract"],
    "tasks": ["tasks", "extract"],  # --device of tasks is extract.device (one device key)
    "encode": ["encode"],
    "phases": ["phases"],
    "figures": ["figures"],
}


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser `brainphase NAME` builds (as in ``brainphase.cli.main``)."""
    module = importlib.import_module(cli.COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"brainphase {name}")
    add = getattr(module, f"add_{name.replace('-', '_')}_arguments", None) or module.add_arguments
    add(parser)
    return parser


def _schema_key(sections: list[str], dest: str) -> str | None:
    for section in sections:
        try:
            schema_default(f"{section}.{dest}")
        except KeyError:
            continue
        return f"{section}.{dest}"
    return None


def _options_with_schema_keys():
    cases = []
    for name, sections in SECTIONS.items():
        for action in command_parser(name)._actions:
            if action.dest == "help" or not action.option_strings or action.required:
                continue
            key = _schema_key(sections, action.dest)
            if key is not None:
                cases.append(pytest.param(name, action.option_strings[-1], action.default, key,
                                          id=f"{name} {action.option_strings[-1]}"))
    return cases


def _same(a, b) -> bool:
    """Equal as the workflow passes them: a path as its text, a scalar key as a one-value list
    option (``cli_options`` renders ``confounds: auto`` as ``--confounds auto``)."""
    if isinstance(a, Path):
        a = str(a)
    if isinstance(a, (list, tuple)) and len(a) == 1 and not isinstance(b, (list, tuple)):
        a = a[0]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


@pytest.mark.parametrize("command, option, cli_default, key", _options_with_schema_keys())
def test_cli_default_is_the_schema_default(command, option, cli_default, key):
    expected = schema_default(key)
    assert _same(cli_default, expected), (
        f"`brainphase {command} {option}` defaults to {cli_default!r} but config/schema.yaml states "
        f"{key} = {expected!r}; use brainphase.config.schema_default({key!r}) in the parser"
    )


def test_the_main_options_are_covered():
    """The check above really sees the options whose defaults differed before (issue 11)."""
    covered = {(c.values[0], c.values[1]) for c in _options_with_schema_keys()}
    for expected in [("extract", "--context-tokens"), ("tasks", "--batch-size"), ("encode", "--alphas"),
                     ("train", "--lr"), ("load-fmri", "--high-pass")]:
        assert expected in covered, expected


_GRID = re.compile(r"10\^\{?(-?\d+)\}?\s*(?:\.\.|to|–|-)\s*10\^\{?(-?\d+)\}?(?:\s*,\s*(\d+)\s*values)?")
_LOGSPACE = re.compile(r"logspace\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*\)")


def alpha_grids_stated(text: str) -> list[tuple[int, int, int | None]]:
    """``(log10 first, log10 last, count or None)`` of every alpha grid written near 'alpha'."""
    found = []
    for match in re.finditer(r"alpha", text, flags=re.IGNORECASE):
        window = text[match.start() : match.start() + 300]
        for pattern in (_GRID, _LOGSPACE):
            for grid in pattern.finditer(window):
                count = grid.group(3)
                found.append((int(grid.group(1)), int(grid.group(2)), None if count is None else int(count)))
    return found


def test_alpha_grid_finder():
    assert alpha_grids_stated("alphas, default 10^0..10^6, 13 values") == [(0, 6, 13)]
    assert alpha_grids_stated("the alpha grid np.logspace(-2, 4, 7)") == [(-2, 4, 7)]
    assert alpha_grids_stated("alpha per voxel") == []


@pytest.mark.parametrize("doc", ["README.md", "docs/hdf5_layout.md"])
def test_docs_state_the_schema_alpha_grid(doc):
    import math

    alphas = schema_default("encode.alphas")
    schema_grid = (round(math.log10(min(alphas))), round(math.log10(max(alphas))), len(alphas))
    text = (REPO / doc).read_text(encoding="utf-8")
    for first, last, count in alpha_grids_stated(text):
        stated = (first, last, len(alphas) if count is None else count)
        assert stated == schema_grid, (
            f"{doc} states an alpha grid 10^{first}..10^{last}" + (f", {count} values" if count else "")
            + f" but config/schema.yaml's encode.alphas is 10^{schema_grid[0]}..10^{schema_grid[1]}, "
            f"{schema_grid[2]} values"
        )
