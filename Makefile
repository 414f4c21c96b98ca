# Two commands: `make start` runs the broker, `make test` runs the whole test suite.
# Each one creates the virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: start test bench-storage bench-client bench-broker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

start: $(STAMP)
	$(BIN)/kbroker start $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench-storage: $(STAMP)
	$(BIN)/python -m kbroker.storage.bench $(ARGS)

bench-client: $(STAMP)
	$(BIN)/python -m kbroker.transport.client.bench $(ARGS)

bench-broker: $(STAMP)
	$(BIN)/python examples/bench_broker.py $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
