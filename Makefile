# Every target works on a fresh machine with only Python 3.11+ and make: the virtualenv is created and the
# pinned set installed on first use, and again whenever pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# RunPod's worker SDK lives in its own virtualenv (see worker-requirements.txt); only the tests use it.
WORKER_VENV ?= .venv-worker
WORKER_STAMP := $(WORKER_VENV)/.installed
PACKAGES := bot.py runpod_bot cogs jobs runpod_client runpod_emulator storage tests benchmarks

.PHONY: run test lint fmt typecheck pytest install clean demo bench chaos catalog

run: $(STAMP)
	$(BIN)/runpod-bot run

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy --strict $(PACKAGES)

# The tests mostly wait on sockets and child processes, not on the CPU, so the suite runs on more processes than a
# 2-core machine has cores (pytest-xdist); `loadgroup` keeps the tests that share a session's costly servers (the
# worker-SDK servers, the standalone fake Discord) on one process. The tests marked `serial` (a burst, or a deadline
# of a second or two) then run alone in one process. Both parts always run; either failing fails the target.
# PYTEST_WORKERS=0 runs the first part in one process too.
PYTEST_WORKERS ?= 4
PYTEST_ENV := RUNPOD_WORKER_PYTHON=$(abspath $(WORKER_VENV))/bin/python

pytest: $(STAMP) $(WORKER_STAMP)
	$(PYTEST_ENV) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not serial"; parallel=$$?; \
	$(PYTEST_ENV) $(BIN)/pytest -m serial && exit $$parallel

install: $(STAMP) $(WORKER_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -c constraints.txt pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

$(WORKER_STAMP): worker-requirements.txt
	test -x $(WORKER_VENV)/bin/python || $(PYTHON) -m venv $(WORKER_VENV)
	$(WORKER_VENV)/bin/python -m pip install --quiet -r worker-requirements.txt
	touch $(WORKER_STAMP)

clean:
	rm -rf $(VENV) $(WORKER_VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

# An offline demo: the RunPod emulator in-process and the embedded Redis; writes a PNG under out/.
demo: $(STAMP)
	$(BIN)/runpod-bot imagine "a cute magical flying dog" --local --out out/

# The benchmarks (about 10 minutes; not part of `make test`): the tracking benchmark's busy scenario, our poller and
# then webhooks, each against the naive one-loop-per-job baseline; the command line's start time; then Discord's side
# (the real bot, the fake Discord with Discord's rate limits, the emulator): a burst of /imagine and a busy channel.
# Results and more scenarios: docs/performance.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.tracking --scenario busy --mode poll --compare
	$(BIN)/python -m benchmarks.tracking --scenario busy --mode webhook --compare
	$(BIN)/python -m benchmarks.cli_startup
	$(BIN)/python -m benchmarks.discord --scenario burst
	$(BIN)/python -m benchmarks.discord --scenario busy-channel

# The crash-and-fault suite (about 3 minutes; not part of `make test`, which runs a 20-job version): the real bot as
# child processes, SIGKILLed, restarted and faulted while 300 jobs are submitted; fails unless every job is
# delivered once or explained and RunPod ran none twice. Options: `$(BIN)/python -m tests.chaos --help`.
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

# After changing a text the bot sends: extract the catalog's template again and merge it into every language's .po
# (new texts come untranslated; tests/unit/cogs/test_i18n.py then names them). Nothing is compiled: the bot reads the .po
# files at start (cogs/i18n.py), so a fresh clone needs no build step.
LOCALES := cogs/locales
catalog: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-default-keywords -k tr -k trn:1,2 -k T -k Tn:1,2 -k N_ -k stored \
		-k stored_n:1,2 -k stored_ending -k locale_str --no-location --sort-output --project runpod-bot \
		--copyright-holder runpod-bot -w 120 -o $(LOCALES)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) -w 120 --no-fuzzy-matching
