# Three targets other tooling relies on: setup, run, test. Each installs what it needs.
# Recipes print to stderr, so `make run` can itself be an MCP client's stdio server command.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVER ?= profiles

.PHONY: setup run test test-slow lint bench clean

setup: $(STAMP)

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@echo "installing into $(VENV) (first run: ~2 minutes)" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet "torch==2.13.0" >&2
	@$(PY) -m pip install --quiet -e ".[test]" >&2
	@touch $(STAMP)

# Embedded PostgreSQL + migrations + seeded demo data, then serve over stdio.
run: setup
	@$(VENV)/bin/mcp-suite migrate >&2
	@$(VENV)/bin/mcp-suite demo profiles >&2
	@exec $(VENV)/bin/mcp-suite serve $(SERVER)

test: setup
	$(VENV)/bin/pytest -q

# Full benchmarks and evaluations (minutes).
test-slow: setup
	$(VENV)/bin/pytest -q -m slow -s

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/mcp-suite bench overhead
	$(VENV)/bin/mcp-suite bench search --chunks 100000
	$(VENV)/bin/mcp-suite bench http --workers 1,2
	$(VENV)/bin/mcp-suite bench http --workers 1,2 --protocol sessionless

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
