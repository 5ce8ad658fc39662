.PHONY: install demo test lint fmt bench clean

VENV ?= .venv
PY ?= python3.11

$(VENV)/bin/automl: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/bin/automl

demo: install
	$(VENV)/bin/automl demo --workspace demo-workspace

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf demo-workspace .pytest_cache .mypy_cache .ruff_cache
