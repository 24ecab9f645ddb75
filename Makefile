# Every target is what CI runs too. `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# The pins the venv is built with: requirements/constraints-oldest.txt (with VENV=.venv-oldest)
# tests the oldest MLflow the dependency range admits.
CONSTRAINTS ?= requirements/constraints.txt
# `make test` runs its files on this many pytest-xdist workers (each with its own tracking
# server); the suite mostly waits on servers and subprocesses. TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 2

.PHONY: install test test-docker docker-engine docker-engine-stop lint typecheck demo bench lock clean \
        check promote rollback history status serve build

# CI calls these with MODEL=..., VERSION=..., TO=... (MESSAGE='why' for promote and rollback;
# ARGS for any other mlgate option, parsed by the shell). GNU make exits 2 whenever a recipe
# fails, so a failing target prints mlgate's own exit code and its meaning (3: a gate said no,
# 4: conflict, ...); call mlgate directly where a script needs that code itself.
# On a developer's checkout (no MLFLOW_TRACKING_URI, no MLGATE_HOME, not CI) they use the store
# and policy `make demo` left in DEMO (a --policy in ARGS wins), or say how to point at yours.
ROOT    := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
DEMO    ?= $(ROOT)/mlruns_example
MODEL   ?= example-classifier
TO      ?= challenger
ARGS    ?=
MESSAGE ?=

# $(call run_mlgate,ARGUMENTS): run mlgate (scripts/make_mlgate.py: the demo's store on a
# developer's checkout); on failure say which exit code it gave and what it means.
define run_mlgate
@$(BIN)/python $(ROOT)/scripts/make_mlgate.py '$(DEMO)' $(1)
endef
# --reason 'MESSAGE', quoted for the shell whatever MESSAGE holds ($(value) keeps a $ as typed).
reason = $(if $(value MESSAGE),--reason '$(subst ','"'"',$(value MESSAGE))')

# A target that needs a variable stops before anything runs, naming it (not with a misleading
# mlgate usage error from an empty argument): needs.TARGET lists them, example.TARGET shows a call.
need = $(if $(strip $($(1))),,$(error $(1) is not set (e.g. make $(2) $(example.$(2)))))
needs.check    = MODEL VERSION TO
needs.promote  = MODEL VERSION TO
needs.rollback = MODEL
needs.history  = MODEL
needs.status   = MODEL
needs.serve    = MODEL
needs.build    = $(if $(strip $(REF)),,MODEL VERSION)
example.check    = MODEL=churn VERSION=7 TO=champion
example.promote  = MODEL=churn VERSION=7 TO=champion MESSAGE='why'
example.rollback = MODEL=churn MESSAGE='why'
example.history  = MODEL=churn
example.status   = MODEL=churn
example.serve    = MODEL=churn
example.build    = MODEL=churn VERSION=7 or make build REF=churn@champion
$(foreach goal,$(MAKECMDGOALS),$(foreach var,$(needs.$(goal)),$(call need,$(var),$(goal))))

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[dev]' && touch $(STAMP)

install: $(STAMP)  ## create .venv with mlgate and the dev tools, at the pinned versions

test: $(STAMP)  ## the test suite against a real mlflow server (Docker tests excluded)
	$(BIN)/python -m pytest -m "not docker" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The Docker tests alone. Uses the engine that answers (Docker Desktop, GitHub Actions); where none
# does, scripts/docker-engine.sh starts a private one (root; Debian's docker.io, debootstrap base).
test-docker: $(STAMP)  ## build and run real images (tests marked docker)
	engine_env="$$(scripts/docker-engine.sh start)" && eval "$$engine_env" && \
	  $(BIN)/python -m pytest -m docker $(PYTEST_ARGS)

docker-engine:  ## start (or find) a Docker engine; prints the environment to use it
	@scripts/docker-engine.sh start

docker-engine-stop:  ## stop the engine scripts/docker-engine.sh started (and no other)
	@scripts/docker-engine.sh stop

lint: $(STAMP)  ## ruff, and the architecture's import contracts (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check src tests benchmarks mlruns_example && $(BIN)/ruff format --check src tests
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# The demo asks for the embedded store by name (MLGATE_ALLOW_EMBEDDED=1), so that it also runs
# where CI or GITHUB_ACTIONS is set (the ci.yml demo job), where mlgate does not fall back to it.
demo: $(STAMP)  ## the whole story on the embedded SQLite store, nothing else started
	cd mlruns_example && MLGATE_ALLOW_EMBEDDED=1 ../$(BIN)/python demo.py

bench: $(STAMP)  ## all benchmarks/ scripts (serving needs wrk)
	$(BIN)/python benchmarks/fingerprint.py && $(BIN)/python benchmarks/promotion.py && $(BIN)/python benchmarks/serving.py

check: $(STAMP)  ## run the gates for MODEL/VERSION -> TO; never changes anything
	$(call run_mlgate,check $(MODEL) --version $(VERSION) --to $(TO) $(ARGS))

promote: $(STAMP)  ## gates, then a guarded move of TO to MODEL/VERSION (MESSAGE='why')
	$(call run_mlgate,promote $(MODEL) --version $(VERSION) --to $(TO) $(reason) $(ARGS))

rollback: $(STAMP)  ## move the champion back to the version before (MESSAGE='why')
	$(call run_mlgate,rollback $(MODEL) $(reason) $(ARGS))

history: $(STAMP)
	$(call run_mlgate,history $(MODEL) $(ARGS))

status: $(STAMP)
	$(call run_mlgate,status $(MODEL) $(ARGS))

build: $(STAMP)  ## image of MODEL/VERSION (or REF=MODEL@ALIAS); ARGS=--push etc.
	$(call run_mlgate,build $(or $(REF),$(MODEL)/$(VERSION)) $(ARGS))

serve: $(STAMP)  ## serve MODEL's champion and challenger on PORT (default 8080)
	$(call run_mlgate,serve $(MODEL) --port $(or $(PORT),8080) $(ARGS))

lock: $(STAMP)  ## re-pin requirements/constraints.txt from the current .venv
	(echo "# Exact versions CI and 'make install' use (pip install -c). Regenerate with 'make lock'."; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^mlgate' | sort) > requirements/constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mlruns_example/mlflow.db mlruns_example/mlruns
