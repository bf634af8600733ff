#!/usr/bin/env bash
# One command per benchmark, from a fresh checkout:
#   benchmarks/run.sh import_cost | triggerer_scale | hook_vs_sdk | event_history | workflow_reads | all
#   [script options...]
# Creates .venv-bench/ in the repository on first use (Python >= 3.10 and PyPI access needed):
# Airflow, the Databricks provider and Oracle's aidp-python-client go there and never into the
# project's test environment. Set BENCH_VENV to reuse another venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BENCH_VENV:-.venv-bench}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ benchmarks/requirements.txt -nt "$STAMP" ]; then
    echo "setting up $VENV (first run only)..." >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    if ! "$VENV/bin/python" -m uv --version >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip install -q --upgrade pip uv
    fi
    "$VENV/bin/python" -m uv pip install -q --compile-bytecode --python "$VENV/bin/python" \
        -r benchmarks/requirements.txt -e .
    touch "$STAMP"
fi

what="${1:-all}"
shift || true
case "$what" in
    all)
        for b in import_cost hook_vs_sdk triggerer_scale event_history; do
            echo "=== $b ==="
            "$VENV/bin/python" "benchmarks/$b.py"
        done ;;
    import_cost|triggerer_scale|hook_vs_sdk|event_history|workflow_reads)
        exec "$VENV/bin/python" "benchmarks/$what.py" "$@" ;;
    *)
        echo "usage: $0 {import_cost|triggerer_scale|hook_vs_sdk|event_history|workflow_reads|all} [options]" >&2
        exit 2 ;;
esac
