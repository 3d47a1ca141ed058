# `make demo` and `make test` each set everything up on a fresh machine first (a local .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Some machines set PYTHONDONTWRITEBYTECODE=1; then every `smsctl` the tests start compiles the package
# from source again (a tenth of a listener's start-up CPU). Our own commands may cache bytecode.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup demo test test-fast lint bench-quick bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/smsctl demo

lint: setup
	$(BIN)/ruff format --check smsctl tests bench
	$(BIN)/ruff check smsctl tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Four workers on two cores: most of the suite waits on real servers and processes, not the CPU.
# worksteal: an idle worker takes tests queued on a busy one (with `load`, one worker often ran 20 s
# after the others had finished).
test: lint
	$(BIN)/pytest -n 4 --dist worksteal

# The unit tier, for the edit-run loop: no processes, no servers, no PostgreSQL (a test that starts
# one fails here, saying so). `make test` runs everything.
test-fast: setup
	SMSCTL_TEST_TIER=unit $(BIN)/pytest -n 2 -m "not integration"

# Each benchmark prints its figures beside a baseline measured in the same run. The listener one
# needs Debian's wrk and installs it (apt-get) when missing.
BENCHES := listener sender startup wait_latency bulk_validate team export outbox reconcile stats

bench: setup
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done

bench-quick: setup
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py --quick || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
