# The two commands of the README: `make demo` and `make test` (`make compat`: the older Airflow minors).
# Both create .venv on first use (Python >= 3.10 and network access to PyPI needed) and reuse it after.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit install clean compat dist

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_provider_aidp tests example_dags benchmarks
	$(VENV)/bin/ruff format --check airflow_provider_aidp tests example_dags benchmarks
	$(VENV)/bin/mypy airflow_provider_aidp

test: lint
	$(PY) -m pytest

# Unit + integration suites on Airflow 3.0 / 3.1 / 3.2, one uv venv each under .venv-compat/.
compat: $(STAMP)
	scripts/compat_matrix.sh

demo: $(STAMP)
	$(PY) scripts/demo.py

# The release files (docs/releasing.md): sdist + wheel (built from the sdist) in dist/, checked as PyPI reads them.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --installer uv --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) .demo .venv-compat dist build *.egg-info
