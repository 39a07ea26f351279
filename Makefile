# PowerTrader AI — the two commands: `make run` and `make test`.
# Needs only Python 3.11+ on the machine; everything else is installed into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
RUN_STAMP  := $(VENV)/.run-installed
DEV_STAMP  := $(VENV)/.dev-installed

.PHONY: run test lint typecheck pytest bench xvfb clean check-python desktop

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "PowerTrader AI needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) -V 2>&1)." \
	         "Install a newer Python or run: make PYTHON=python3.12 ..."; exit 1; }

$(PY): | check-python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@ $(RUN_STAMP)

## make run: start the main job (the hub, demo mode by default).
run: $(RUN_STAMP)
	$(PY) pt_hub.py $(ARGS)

## make desktop: a PowerTrader AI launcher in the applications menu (Linux).
desktop: $(RUN_STAMP)
	$(PY) pt_desktop.py --python $(abspath $(PY))

## make test: lint, type-check and the whole test suite with coverage.
test: $(DEV_STAMP) xvfb lint typecheck pytest

xvfb:
	@if command -v Xvfb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Xvfb (virtual display for the GUI tests)..."; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq xvfb xauth >/dev/null; \
	else echo "Xvfb is missing and cannot be installed automatically (not root or no apt-get);" \
	          "GUI tests need it: install the 'xvfb' package."; fi

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP)
	$(PY) -m pytest --cov --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

## make bench: print the benchmarks' figures.
bench: $(RUN_STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
