# `make run`: set up and run the toy-world pipeline (dvc repro). `make test`: set up and run the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run snakemake test bench screenshot clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	# constraints pin the CPU torch wheel: without them pip pulls a CUDA torch (~4 GB)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[pipeline,slurm,test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install  ## toy-world default: dvc.yaml for params.yaml (`eraselab graph`), then every stage -> reports/
	eraselab graph
	dvc repro

snakemake: install  ## the same graph through Snakemake (it builds its rules from params.yaml itself)
	snakemake --cores 2 reports/

test: install
	$(BIN)/python -m pytest -q -ra --durations=25

BENCH_THREADS ?= 2
BENCH_OUT ?= logs/benchmarks
bench: install  ## after `make run`: every benchmark table (docs/benchmarks.md); JSON in $(BENCH_OUT)/
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/base_model.py --threads $(BENCH_THREADS)
	$(BIN)/python benchmarks/sampler.py --threads $(BENCH_THREADS) --json $(BENCH_OUT)/sampler.json
	$(BIN)/python benchmarks/steps.py --threads $(BENCH_THREADS) --json $(BENCH_OUT)/steps.json
	if [ -d logs/stages ]; then $(BIN)/python benchmarks/stages.py --png logs/stages.png; \
	  else echo "stages.py skipped: no logs/stages (run \`make run\` first)"; fi
	if [ -d reports ] && [ -d metrics/cells ]; then $(BIN)/python benchmarks/grid.py && $(BIN)/python benchmarks/noop.py; \
	  else echo "grid.py, noop.py skipped: no full run here (run \`make run\` first)"; fi
	$(BIN)/python benchmarks/sd14_cost.py --json $(BENCH_OUT)/sd14_cost.json

screenshot:  ## after `make run`: look at the report as a person would (headless Chromium, offline)
	mkdir -p logs && chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
	  --disable-component-update --disable-sync --no-first-run --user-data-dir=$$(mktemp -d) \
	  --window-size=1200,2600 --screenshot=logs/report.png file://$(CURDIR)/reports/index.html
	@echo "open logs/report.png"

clean:
	rm -rf data/world data/prompts data/generated data/targets data/searches data/attacks models metrics plots reports .snakemake
