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
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[pipeline,test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install  ## toy-world default: world -> base model -> judge/clip -> generate -> evaluate -> reports/
	dvc repro

snakemake: install  ## the same graph through Snakemake
	snakemake --cores 2 reports/

test: install
	$(BIN)/python -m pytest -q -ra

bench: install  ## after `make run`: training time and generation throughput, as a Markdown table
	$(BIN)/python benchmarks/base_model.py

screenshot:  ## after `make run`: look at the report as a person would (headless Chromium, offline)
	mkdir -p logs && chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
	  --disable-component-update --disable-sync --no-first-run --user-data-dir=$$(mktemp -d) \
	  --window-size=1200,2600 --screenshot=logs/report.png file://$(CURDIR)/reports/index.html
	@echo "open logs/report.png"

clean:
	rm -rf data/world data/prompts data/generated models metrics plots reports .snakemake
