# Every target is what CI runs too. `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-docker lint typecheck demo bench lock clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev]' && touch $(STAMP)

install: $(STAMP)  ## create .venv with mlgate and the dev tools, at the pinned versions

test: $(STAMP)  ## the test suite against a real mlflow server (Docker tests excluded)
	$(BIN)/python -m pytest -m "not docker" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks mlruns_example && $(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

demo: $(STAMP)  ## the whole story on the embedded SQLite store, nothing else started
	cd mlruns_example && ../$(BIN)/python demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/fingerprint.py

lock: $(STAMP)  ## re-pin requirements/constraints.txt from the current .venv
	(echo "# Exact versions CI and 'make install' use (pip install -c). Regenerate with 'make lock'."; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^mlgate' | sort) > requirements/constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mlruns_example/mlflow.db mlruns_example/mlruns
