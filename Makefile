# The two commands of the README: `make demo` and `make test`. Both create or update .venv/.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stgcn-installed
DEMO_OUT ?= runs/demo

.PHONY: demo test lint clean

# pyproject.toml declares compatible ranges; constraints.txt is the exact tested set installed here.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	# torch first, the tested CPU build (local wheel): an unconstrained torch resolves to a multi-GB CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e ".[video,onnx,tensorboard,web,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m stgcn quickstart --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) runs
