# medzoo: `make demo` runs the whole job on the built-in tiny default; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo lint format speed bench clean

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest --durations=30

test-all: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

demo: $(STAMP)
	$(VENV)/bin/medzoo run

lint: $(STAMP)
	$(VENV)/bin/ruff check .

speed bench: $(STAMP)
	$(VENV)/bin/medzoo speed

clean:
	rm -rf $(VENV) build *.egg-info runs
