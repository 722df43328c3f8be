# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
PY312 ?= $(shell command -v python3.12 2>/dev/null || echo python3.12)
VENV := .venv
VENV312 := .venv-logxpy
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench bench-instructions bench-fsync soak clean

$(BIN)/.installed: pyproject.toml setup.py logxpy_otel/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The logxpy tools (reader side of the interop test) need Python >= 3.12.
$(VENV312)/.installed:
	PYENV_VERSION=3.12.1 $(PY312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet 'logxpy>=0.5'
	touch $@

demo: $(BIN)/.installed $(VENV312)/.installed
	$(BIN)/python examples/quickstart.py logs/quickstart.jsonl
	@echo "--- the same file through logxpy's own pretty-printer (logxpy-prettyprint) ---"
	$(VENV312)/bin/logxpy-prettyprint < logs/quickstart.jsonl

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

pytest: $(BIN)/.installed $(VENV312)/.installed
	LOGXPY_OTEL_REQUIRE_SPEEDUPS=1 LOGXPY_PYTHON=$(abspath $(VENV312))/bin/python $(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_throughput.py --repeat 5 --json benchmarks/results.json

# Instructions per record under valgrind (steady where timings are not); needs valgrind.
bench-instructions: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_instructions.py

bench-fsync: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_fsync.py

# A bounded soak (about 2 minutes), apart from the test suite.
soak: $(BIN)/.installed
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) $(VENV312) .mypy_cache .ruff_cache .pytest_cache .hypothesis
