# The two commands of the README: `make demo` and `make test`.
# Both create .venv on first use (Python >= 3.10 and network access to PyPI needed) and reuse it after.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_provider_aidp tests example_dags benchmarks
	$(VENV)/bin/mypy airflow_provider_aidp

test: lint
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) .demo
