# `make run`: install into .venv and start the dashboard on the embedded digits data.
# `make test`: install test dependencies into .venv, lint, and run the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev lint screenshots bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt

install-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt

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
	$(BIN)/pip install -q -r requirements-bench.txt
	$(BIN)/python -m core bench
