# Two entry points for people (README): `make demo` and `make test`.
# Both work on a fresh machine: they create .venv, install the project, start a
# Docker engine if none answers, and build the local images (cached).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install engine images chromium bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

engine:
	bash .ci/ensure-docker.sh

chromium:
	bash .ci/ensure-chromium.sh

images: install engine
	$(BIN)/clnrm images build

demo: images
	$(BIN)/clnrm run scenarios/demo

test: images chromium
	$(BIN)/python -m pytest -q tests

bench: images
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/memory.py

lint: install
	$(BIN)/ruff check clnrm agents memory ray_cluster tests bench

clean:
	-$(BIN)/clnrm gc
	rm -rf $(VENV) .pytest_cache .hypothesis
