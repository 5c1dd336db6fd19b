# `make test` and `make demo` set everything up on a fresh machine (Python 3.11+, pip, Debian apt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test demo bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: on Debian, apt-get install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	scripts/ensure-postgres
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	scripts/ensure-postgres
	$(VENV)/bin/ddbsync demo

bench: install
	scripts/ensure-postgres
	$(PY) bench/stream_apply.py

lint: install
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
