# The two commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
COLLECTOR := collector/_build/otelcol-ensemble
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: demo test unit integration lint venv system-deps collector backends tools bench smoke fleet mutation clean

demo: venv ## replay real market data through an instrumented paper bot
	$(VENV)/bin/ensemble-otel demo $(DEMO_ARGS)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,demo]'
	touch $@

venv: $(STAMP)

system-deps: ## Debian packages: prometheus (promtool), chromium
	scripts/install-system-deps.sh

collector: ## build collector/_build/otelcol-ensemble (no-op when current)
	collector/build.sh

backends: ## pinned Prometheus 3, VictoriaMetrics, VictoriaLogs, Jaeger, telemetrygen into .tools/bin (no-op when current)
	scripts/build-backends.sh

tools: ## Go-built tools (actionlint) into .tools/bin
	scripts/install-tools.sh

lint: venv tools
	$(VENV)/bin/ruff check .

test: venv system-deps collector backends tools test-pythons ## everything: lint, unit, integration, deploy checks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

unit: venv
	$(VENV)/bin/pytest -q tests/unit

# The unit suite with every direct dependency (runtime, dev, demo) at the floor pyproject.toml
# declares: the constraints file is generated from it, so the two cannot drift.
LOWEST := .venv-lowest
.PHONY: test-lowest test-pythons clean-venvs

$(LOWEST)/.installed: pyproject.toml scripts/lowest_constraints.py
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q --upgrade pip packaging 'tomli; python_version < "3.11"'
	$(LOWEST)/bin/python scripts/lowest_constraints.py pyproject.toml > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install -q -c $(LOWEST)/constraints.txt -e '.[dev,demo]'
	touch $@

test-lowest: $(LOWEST)/.installed ## unit suite at the declared floors (.venv-lowest)
	$(LOWEST)/bin/python -m pytest -q -x tests/unit

# The unit suite on every Python the package declares, each in .venv-X.Y, from pyenv's newest
# X.Y or pythonX.Y on the PATH; an interpreter not found is skipped with a message. The main
# venv's Python is left to `make unit`/`make test`.
PYTHONS ?= 3.10 3.11 3.12 3.13

.venv-3.%/.installed: pyproject.toml
	test -x $(@D)/bin/python || $(INTERPRETER) -m venv $(@D)
	$(@D)/bin/python -m pip install -q --upgrade pip
	$(@D)/bin/python -m pip install -q -e '.[dev,demo]'
	touch $@

test-pythons: venv ## unit suite on each other declared Python found (.venv-X.Y)
	@main=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); failed=; \
	for v in $(PYTHONS); do \
	  if [ "$$v" = "$$main" ]; then echo "test-pythons: Python $$v is $(VENV)'s, tested by make unit"; continue; fi; \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); \
	  py=$${py:-$$(command -v python$$v)}; \
	  if [ -z "$$py" ]; then echo "test-pythons: SKIPPED Python $$v: no python$$v in ~/.pyenv/versions or on PATH"; continue; fi; \
	  echo "test-pythons: Python $$v ($$py)"; \
	  $(MAKE) --no-print-directory .venv-$$v/.installed INTERPRETER=$$py || exit 1; \
	  .venv-$$v/bin/python -m pytest -q -x tests/unit || failed="$$failed $$v"; \
	done; \
	test -z "$$failed" || { echo "test-pythons: unit tests FAILED on Python$$failed"; exit 1; }

clean: clean-venvs
clean-venvs:
	rm -rf $(LOWEST) .venv-3.*

integration: venv system-deps collector backends
	$(VENV)/bin/pytest -q tests/integration

bench: venv ## benchmark scripts, each printing ratios against a baseline from the same run
	$(VENV)/bin/python bench/run_all.py

fleet: venv collector backends ## 24 bots on two "hosts", agents -> one gateway (TLS + token) -> VictoriaMetrics, VictoriaLogs, Prometheus 3; prints the table
	$(VENV)/bin/python bench/fleet.py $(FLEET_ARGS)

mutation: venv ## mutmut over health/, jsonl.py and the heartbeat check with their unit tests (slow; not in test)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $${MUTATION_JOBS:-2} || true
	$(VENV)/bin/python scripts/mutation_report.py

smoke: venv ## a bot under auto-instrumentation: heartbeat, check, validate --strict
	scripts/smoke.sh

clean:
	rm -rf $(VENV) collector/_build .tools paper_trading_outputs mutants
