# Every target is what CI runs too. `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-docker docker-engine docker-engine-stop lint typecheck demo bench lock clean \
        check promote rollback history status serve build

# CI calls these with MODEL=..., VERSION=..., TO=...; each fails with mlgate's exit code
# (3: a gate said no, 4: conflict), so the pipeline fails where the gate says no.
MLGATE := $(BIN)/mlgate
MODEL  ?= example-classifier
TO     ?= challenger
ARGS   ?=

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev]' && touch $(STAMP)

install: $(STAMP)  ## create .venv with mlgate and the dev tools, at the pinned versions

test: $(STAMP)  ## the test suite against a real mlflow server (Docker tests excluded)
	$(BIN)/python -m pytest -m "not docker" $(PYTEST_ARGS)

# The Docker tests alone. Uses the engine that answers (Docker Desktop, GitHub Actions); where none
# does, scripts/docker-engine.sh starts a private one (root; Debian's docker.io, debootstrap base).
test-docker: $(STAMP)  ## build and run real images (tests marked docker)
	engine_env="$$(scripts/docker-engine.sh start)" && eval "$$engine_env" && \
	  $(BIN)/python -m pytest -m docker $(PYTEST_ARGS)

docker-engine:  ## start (or find) a Docker engine; prints the environment to use it
	@scripts/docker-engine.sh start

docker-engine-stop:  ## stop the engine scripts/docker-engine.sh started (and no other)
	@scripts/docker-engine.sh stop

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks mlruns_example && $(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

demo: $(STAMP)  ## the whole story on the embedded SQLite store, nothing else started
	cd mlruns_example && ../$(BIN)/python demo.py

bench: $(STAMP)  ## all benchmarks/ scripts (serving needs wrk)
	$(BIN)/python benchmarks/fingerprint.py && $(BIN)/python benchmarks/promotion.py && $(BIN)/python benchmarks/serving.py

check: $(STAMP)  ## run the gates for MODEL/VERSION -> TO; never changes anything
	$(MLGATE) check $(MODEL) --version $(VERSION) --to $(TO) $(ARGS)

promote: $(STAMP)  ## gates, then a guarded move of TO to MODEL/VERSION
	$(MLGATE) promote $(MODEL) --version $(VERSION) --to $(TO) $(ARGS)

rollback: $(STAMP)  ## move the champion back to the version before
	$(MLGATE) rollback $(MODEL) $(ARGS)

history: $(STAMP)
	$(MLGATE) history $(MODEL) $(ARGS)

status: $(STAMP)
	$(MLGATE) status $(MODEL) $(ARGS)

build: $(STAMP)  ## image of MODEL/VERSION (or REF=MODEL@ALIAS); ARGS=--push etc.
	$(MLGATE) build $(or $(REF),$(MODEL)/$(VERSION)) $(ARGS)

serve: $(STAMP)  ## serve MODEL's champion and challenger on PORT (default 8080)
	$(MLGATE) serve $(MODEL) --port $(or $(PORT),8080) $(ARGS)

lock: $(STAMP)  ## re-pin requirements/constraints.txt from the current .venv
	(echo "# Exact versions CI and 'make install' use (pip install -c). Regenerate with 'make lock'."; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^mlgate' | sort) > requirements/constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mlruns_example/mlflow.db mlruns_example/mlruns
