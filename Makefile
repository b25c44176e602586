# The two commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
COLLECTOR := collector/_build/otelcol-ensemble
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: demo test unit integration lint venv system-deps collector tools bench smoke mutation clean

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

tools: ## Go-built tools (actionlint) into .tools/bin
	scripts/install-tools.sh

lint: venv tools
	$(VENV)/bin/ruff check .

test: venv system-deps collector tools ## everything: lint, unit, integration, deploy checks
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: venv system-deps collector
	$(VENV)/bin/pytest -q tests/integration

bench: venv ## benchmark scripts, each printing ratios against a baseline from the same run
	$(VENV)/bin/python bench/run_all.py

mutation: venv ## mutmut over health/, jsonl.py and the heartbeat check with their unit tests (slow; not in test)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $${MUTATION_JOBS:-2} || true
	$(VENV)/bin/python scripts/mutation_report.py

smoke: venv ## a bot under auto-instrumentation: heartbeat, check, validate --strict
	scripts/smoke.sh

clean:
	rm -rf $(VENV) collector/_build .tools paper_trading_outputs mutants
