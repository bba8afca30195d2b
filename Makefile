# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to the CPU build that the project machines carry; override for a GPU box,
# e.g. `make demo TORCH_SPEC="torch"`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-slow install install-dev clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed

demo: install
	$(PY) scripts/demo.py

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs outputs
