# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench chaos soak install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

chaos: $(STAMP)
	$(BIN)/python -m chaos $(ARGS)

chaos-%: $(STAMP)
	$(BIN)/python -m chaos --only $* $(ARGS)

# `make soak` (random seed, 10 min, 50 strategies); `make soak SEEDS=regress`; `make soak ARGS="--seed 7 --minutes 5"`.
soak: $(STAMP)
	$(BIN)/python -m chaos.soak $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
