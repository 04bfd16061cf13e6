# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What each target installs: `run` only the runtime; `test` adds the test tools (dev);
# `chaos` adds matplotlib for its timelines (the soak smoke in `make test` draws one too). One stamp per set, so `make run` stays small.
RUN_STAMP := $(VENV)/.installed-run
CHAOS_STAMP := $(VENV)/.installed-chaos

.PHONY: run test bench chaos soak soak-planted install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,chaos]'
	touch $(STAMP) $(RUN_STAMP) $(CHAOS_STAMP)

$(CHAOS_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[chaos]'
	touch $(CHAOS_STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/python run.py $(ARGS)

# The suite mostly waits on daemons, sockets and timeouts, so it runs on more workers than cores
# (pytest-xdist; each worker has its own Redis, ports and temp dirs). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

bench: $(RUN_STAMP)
	$(BIN)/python -m bench $(ARGS)

chaos: $(CHAOS_STAMP)
	$(BIN)/python -m chaos $(ARGS)

chaos-%: $(CHAOS_STAMP)
	$(BIN)/python -m chaos --only $* $(ARGS)

# `make soak` (random seed, 10 min, 50 strategies); `make soak SEEDS=regress`; `make soak ARGS="--seed 7 --minutes 5"`.
soak: $(STAMP)
	$(BIN)/python -m chaos.soak $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

# The checker's own test: each planted bug must fail its fixed-seed soak (`BUG=<name>`, default all);
# `make soak-planted ARGS=--control` runs the same seeds without the bugs, which must pass.
soak-planted: $(STAMP)
	$(BIN)/python -m chaos.soak --planted $(or $(BUG),all) $(ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
