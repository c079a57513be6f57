# Three targets other tooling relies on: setup, run, test. Each installs what it needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVER ?= profiles

.PHONY: setup run test test-slow lint bench clean

setup: $(STAMP)

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Embedded PostgreSQL + migrations + seeded demo data, then serve over stdio.
run: setup
	$(VENV)/bin/mcp-suite migrate >&2
	$(VENV)/bin/mcp-suite demo profiles >&2
	exec $(VENV)/bin/mcp-suite serve $(SERVER)

test: setup
	$(VENV)/bin/pytest -q

test-slow: setup
	$(VENV)/bin/pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/mcp-suite bench overhead

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
