# Two commands on a fresh machine with Python 3.11 or 3.12 and make:
#   make serve   set up .venv, start the server on embedded defaults
#   make test    set up .venv, lint, type-check and run the whole suite
# PYTHON=python3.12 make test picks the interpreter.

PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' 2>/dev/null \
	&& echo $$p && break; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck bench fixtures clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/voxsouth serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The dashboard's browser tests drive the system's Chromium (Playwright brings no browser here).
# As root (CI on Debian) a missing one is installed; otherwise those tests skip, unless
# VOXSOUTH_REQUIRE_BROWSER=1 (set by .ci/run) makes a missing browser a failure.
test: lint typecheck
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || true
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.frame_path
	$(BIN)/python -m bench.streams
	$(BIN)/python -m bench.alert_latency
	$(BIN)/python -m bench.detector_eval

fixtures:
	bash tests/fixtures/speech/make_fixtures.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
