#!/usr/bin/env bash
# The older half of the tested matrix: the unit + integration suites against the latest patch of
# each older Airflow minor, each in its own uv venv under .venv-compat/ (reused while the inputs
# are unchanged). The newest Airflow (the full suite) is `make test` in .venv.
#
#   scripts/compat_matrix.sh            # every row below
#   scripts/compat_matrix.sh 3.1        # one minor
#
# Rows: Airflow version, Python, constraints file. Keep README's "Tested versions" table and
# pyproject.toml's ranges in step with this list and with the Makefile's .venv (Airflow 3.3.2, Python 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

MATRIX=(
    "3.0.6 3.10 constraints/airflow-3.0.txt"
    "3.1.8 3.12 constraints/airflow-3.1.txt"
    "3.2.2 3.13 constraints/airflow-3.2.txt"
)
UV=${UV:-.venv/bin/uv}
[ -x "$UV" ] || UV=$(command -v uv) || { echo "uv not found: run 'make install' first" >&2; exit 2; }

python_for() {  # an interpreter of that minor: pyenv's, else one on PATH
    local found
    found=$(ls -d "$HOME"/.pyenv/versions/"$1".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$found" ] && { echo "$found"; return; }
    command -v "python$1" || { echo "no Python $1 found (pyenv or python$1 on PATH)" >&2; return 1; }
}

install() {  # $1 airflow, $2 python, $3 constraints, $4 venv: (re)create the venv when inputs change
    local stamp
    stamp=$4/.installed-$(cat pyproject.toml "$3" "$0" | sha256sum | cut -c1-16)
    [ -f "$stamp" ] && return
    rm -rf "$4"
    "$UV" venv -q --python "$(python_for "$2")" "$4"
    "$UV" pip install -q --python "$4/bin/python" -c "$3" \
        "apache-airflow==$1" -e '.[test]' uv  # uv: the pip-install-and-list-providers test
    touch "$stamp"
}

# The rows run side by side (their tests mostly wait on emulator clocks and Airflow's own loops, so
# two cores carry three rows, and .ci/run runs them alongside `make test`); each writes its own log,
# printed in row order when all are done.
started=$(date +%s)
rows=()
for row in "${MATRIX[@]}"; do
    read -r airflow python constraints <<<"$row"
    minor=${airflow%.*}
    if [ $# -gt 0 ] && [[ " $* " != *" $minor "* ]]; then continue; fi
    venv=.venv-compat/airflow-$minor
    install "$airflow" "$python" "$constraints" "$venv"
    echo "=== Airflow $airflow, Python $python: unit + integration ($constraints), log $venv/pytest.log"
    ( "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/integration \
        >"$venv/pytest.log" 2>&1; echo $? >"$venv/pytest.rc" ) &
    rows+=("$airflow $python $venv")
done
wait
failed=()
for row in "${rows[@]}"; do
    read -r airflow python venv <<<"$row"
    echo "=== Airflow $airflow, Python $python:"
    cat "$venv/pytest.log"
    if [ "$(cat "$venv/pytest.rc")" = 0 ]; then
        echo "=== Airflow $airflow, Python $python: passed"
    else
        echo "=== Airflow $airflow, Python $python: FAILED" >&2
        failed+=("$airflow")
    fi
done
echo "=== compat matrix: $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "compat matrix failed on Airflow ${failed[*]}" >&2
    exit 1
fi
