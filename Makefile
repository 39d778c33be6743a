# Two entry points, each doing all set-up on a fresh clone:
#   make demo   -- create .venv if absent, install photopop, run the main job on the embedded default
#   make test   -- create .venv if absent, install photopop with test extras, run the lint contract
#                  (lint-imports: layers and no cycles, [tool.importlinter]; ruff check) and the test suite
#   make lint   -- the lint contract only
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.photopop-installed

.PHONY: demo test lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/photopop demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src tests

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs build src/*.egg-info
