# The two commands a newcomer needs: `make run` and `make test`. Everything else is for contributors.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run test lint bench bench-search bench-storm bench-drain bench-agent clean

# torch is installed first and pinned: pip then takes the CPU wheel; an unpinned torch (or uv/poetry)
# pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/incibot db upgrade
	$(VENV)/bin/incibot serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check bot knowledge tests bench
	$(VENV)/bin/ruff format --check bot knowledge tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/ingest.py --db both

bench-search: $(STAMP)  # about an hour the first time (embeds 100k texts into bench/.cache/), minutes after
	$(PY) bench/search.py --embeddings --real --storm

bench-storm: $(STAMP)  # the dev storm through the whole pipeline at 250-2000 alerts/s; needs wrk, prometheus-alertmanager
	$(PY) bench/storm.py

bench-drain: $(STAMP)  # the worker alone applying the accepted dev storm, 3 runs (a few minutes)
	$(PY) bench/drain.py

bench-agent: $(STAMP)  # 100 questions in a DM through the running bot and its stand-in, 3 runs (a few minutes)
	$(PY) bench/agent.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
