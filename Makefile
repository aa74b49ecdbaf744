# `make run`: install this project (editable, with its pinned dependencies) into .venv and start the
# dashboard on the embedded digits data; .venv/bin/convgan is the CLI from any folder.
# `make test`: the same with the test dependencies (the `dev` extra), lint, and the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev lint screenshots bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

run: install
	$(BIN)/streamlit run app.py

lint: install-dev
	$(BIN)/ruff check .

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -x -q -n 2 --dist loadgroup

screenshots: install-dev
	$(BIN)/python scripts/screenshots.py

bench:
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench
