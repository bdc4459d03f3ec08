# Two commands set everything up on a fresh machine with Python 3.11+: `make dev` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install dev test lint docs docs-serve compose-check bench clean lock mutation

# Every install comes from the hashed lock (PyPI only): two machines get the same bytes. `make lock` rewrites the
# locks after a dependency change in pyproject.toml, keeping every other pin; `make lock UPGRADE=1` moves all pins
# to the newest releases, `make lock LOCK_ARGS='--upgrade-package temporalio'` one of them.
DEV_LOCK := requirements/dev.lock
PROD_LOCK := requirements/prod.lock
# --no-config and --index-url: the lock never records a local index or a machine's own wheels.
LOCK_FLAGS := --quiet --no-config --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--index-url https://pypi.org/simple --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) $(LOCK_ARGS)

# The lock holds the build backend too, so the project itself is built without fetching anything.
$(BIN)/.installed: pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/.installed

$(BIN)/uv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.5'

# The runtime-only lock (the Docker image) takes the dev lock's versions, without the extras.
lock: $(BIN)/uv
	$(BIN)/uv pip compile $(LOCK_FLAGS) --extra test --extra bench --extra embedded \
		pyproject.toml requirements/build.in -o $(DEV_LOCK)
	$(BIN)/uv pip compile $(LOCK_FLAGS) --constraint $(DEV_LOCK) pyproject.toml requirements/build.in -o $(PROD_LOCK)

dev: $(BIN)/.installed
	$(BIN)/booking-saga dev

test: $(BIN)/.installed lint docs
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# The manual (docs/, mkdocs.yml) as a site in .site/: strict, so a broken link or anchor fails `make test`.
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .site

docs-serve: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

bench: $(BIN)/.installed
	$(BIN)/booking-saga bench

# The compose file's required variables (every secret) come from the environment or an .env file; .ci/run passes
# placeholders.
compose-check:
	docker-compose -f docker-compose.yml config --quiet

clean:
	rm -rf $(VENV) .data .bench .site .pytest_cache .ruff_cache .hypothesis

# Mutation testing of the ledger (outside CI: the ledger tests run once per mutant). `mutmut browse` shows survivors.
mutation: $(BIN)/.installed
	$(BIN)/mutmut run; $(BIN)/mutmut results
