# Two commands: `make start` runs the broker, `make test` runs the whole test suite.
# Each one creates the virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: start test soak bench bench-compare bench-storage bench-client bench-broker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

start: $(STAMP)
	$(BIN)/kbroker start $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# Minutes of load with worker kills every 20 s; prints loss/duplication and worker memory over time.
# KBROKER_SOAK_SECONDS=600 make soak runs longer. Not part of `make test`.
soak: $(STAMP)
	KBROKER_SOAK=1 $(BIN)/python -m pytest tests/soak -s -p no:cacheprovider $(ARGS)

# `make bench ARGS="produce --records 1000000"` (default: `all`); `make bench-compare` runs the
# issue's workloads against Redis Streams (needs Debian's redis-server: apt-get install redis-server).
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/kbroker bench $(if $(ARGS),$(ARGS),all)

bench-compare: $(BENCH_STAMP)
	$(BIN)/kbroker bench compare $(ARGS)

bench-storage: $(STAMP)
	$(BIN)/python -m kbroker.storage.bench $(ARGS)

bench-client: $(STAMP)
	$(BIN)/python -m kbroker.transport.client.bench $(ARGS)

bench-broker: $(STAMP)
	$(BIN)/python examples/bench_broker.py $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
