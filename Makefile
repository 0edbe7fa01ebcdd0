# brainphase: set-up, demo, tests and benchmarks. Every target sets up .venv first if needed.
#   make demo       set up, then run the embedded demo workflow (snakemake --cores all)
#   make test       set up, then run the default test suite (< 10 min on 2 cores)
#   make test-slow  the slower tests (marked @pytest.mark.slow); installs the extra [lmeval] first
#   make bench      the benchmarks in bench/ (quick modes)
PYTHON ?= python3
VENV ?= .venv
# torch first and pinned to the CPU build: a bare `torch` requirement would pull a multi-GB CUDA
# build. On a GPU machine use e.g. `make setup TORCH=torch==2.13.0` with your CUDA wheel source.
TORCH ?= torch==2.13.0
CORES ?= all
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow bench report clean-results

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/snakemake --cores $(CORES)

report: setup
	$(BIN)/snakemake --report report.html

test: setup
	$(BIN)/python -m pytest

# the slow tests include the lm-eval cross-check (tests/test_lmeval.py): install the extra first
test-slow: setup $(VENV)/.installed-lmeval
	$(BIN)/python -m pytest -m slow

# lm_eval[hf] (~190 s, ~0.5 GB; leaves torch, numpy and transformers as they are) only for test-slow
$(VENV)/.installed-lmeval: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,lmeval]'
	touch $@

bench: setup
	$(BIN)/python bench/extract.py --quick
	$(BIN)/python bench/ridge.py --quick
	$(BIN)/python bench/banded.py --quick
	$(BIN)/python bench/encode.py --quick
	$(BIN)/python bench/load_fmri.py --quick
	$(BIN)/python bench/phases.py --quick
	$(BIN)/python bench/tasks.py --quick
	$(BIN)/python bench/internal.py --quick
	$(BIN)/python bench/plan.py

clean-results:
	rm -rf results .snakemake
