"""Import cost of the AIDP operators in a DAG file, against airflow.sdk alone and against Databricks.

Airflow's DAG processor re-parses every DAG file every few minutes, in fresh processes, so what a
provider loads at import time is paid again and again.  Each variant runs in a fresh interpreter
(``python -c ...``); runs are interleaved and shuffled per round; we report medians of wall time
and CPU time (user + system) and the *added* cost over ``import airflow.sdk`` measured in the
same session.

Run:  benchmarks/run.sh import_cost        (or: python benchmarks/import_cost.py --runs 15)
Target: ours adds <= 5 % over ``import airflow.sdk``; the Databricks provider adds about 25 %.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    airflow_env,
    median,
    new_modules,
    prime_airflow_home,
    print_machine,
    table,
    time_imports,
)

SDK = "import airflow.sdk"
AIDP_OPERATOR = "from airflow_provider_aidp.operators.aidp import AIDPRunJobOperator"
AIDP_SENSOR = "from airflow_provider_aidp.sensors.aidp import AIDPJobRunSensor"
DATABRICKS_OPERATOR = "from airflow.providers.databricks.operators.databricks import DatabricksRunNowOperator"

VARIANTS: dict[str, str] = {
    "python (bare interpreter)": "pass",
    "import airflow.sdk (baseline)": SDK,
    "+ AIDPRunJobOperator": f"{SDK}\n{AIDP_OPERATOR}",
    "+ AIDPRunJobOperator + AIDPJobRunSensor": f"{SDK}\n{AIDP_OPERATOR}\n{AIDP_SENSOR}",
    "+ DatabricksRunNowOperator": f"{SDK}\n{DATABRICKS_OPERATOR}",
}
BASELINE = "import airflow.sdk (baseline)"
OURS = "+ AIDPRunJobOperator + AIDPJobRunSensor"
THEIRS = "+ DatabricksRunNowOperator"

#: Modules a DAG file must not pay for (prefix match on the module name).
WATCHED = (
    "oci",
    "aiohttp",
    "requests",
    "cryptography",
    "tenacity",
    "airflow_provider_aidp.emulator",
    "airflow_provider_aidp.models.jobs",
    "airflow_provider_aidp.models.runs",
    "airflow_provider_aidp.hooks.auth",
    "aidp_python_client",
    "databricks",
)


def heavy_module_report(env: dict[str, str]) -> str:
    """Which packages each import adds on top of airflow.sdk, and which watched ones are loaded."""
    already = set(new_modules("", SDK, env))
    rows = []
    for label, target in (
        ("AIDP operator + sensor", f"{AIDP_OPERATOR}\n{AIDP_SENSOR}"),
        ("Databricks run operator", DATABRICKS_OPERATOR),
    ):
        added = new_modules(SDK, target, env)
        tops = Counter(m.split(".")[0] for m in added)
        watched = sorted({w for w in WATCHED for m in added if m == w or m.startswith(w + ".")})
        top_text = ", ".join(f"{k} ({v})" for k, v in tops.most_common(8))
        rows.append((label, len(added), top_text, ", ".join(watched) or "none"))
    watched_in_sdk = sorted({w for w in WATCHED for m in already if m == w or m.startswith(w + ".")})
    headers = ("import (on top of airflow.sdk)", "new modules", "top packages (modules)", "watched loaded")
    in_sdk = ", ".join(watched_in_sdk) or "none of the watched"
    return table(headers, rows) + f"\n\nAlready loaded by `import airflow.sdk` itself: {in_sdk}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per variant (interleaved), default 15")
    args = parser.parse_args()

    env = airflow_env()
    prime_airflow_home(env, AIDP_OPERATOR, AIDP_SENSOR, DATABRICKS_OPERATOR)
    print_machine()
    print(f"\n{args.runs} interleaved fresh-interpreter runs per variant; medians.\n")
    results = time_imports(VARIANTS, args.runs, env)

    base_wall = median(results[BASELINE]["wall"])
    base_cpu = median(results[BASELINE]["cpu"])
    rows = []
    for name in VARIANTS:
        wall, cpu = median(results[name]["wall"]), median(results[name]["cpu"])
        added_wall = (wall - base_wall) / base_wall * 100
        added_cpu = (cpu - base_cpu) / base_cpu * 100
        rows.append((name, wall * 1000, cpu * 1000, f"{added_wall:+.1f}%", f"{added_cpu:+.1f}%"))
    headers = ("variant", "wall ms (median)", "CPU ms (median)", "wall vs baseline", "CPU vs baseline")
    print(table(headers, rows))
    print()
    print(heavy_module_report(env))

    ours_cpu = (median(results[OURS]["cpu"]) - base_cpu) / base_cpu * 100
    ours_wall = (median(results[OURS]["wall"]) - base_wall) / base_wall * 100
    theirs_cpu = (median(results[THEIRS]["cpu"]) - base_cpu) / base_cpu * 100
    ok = ours_cpu <= 5 and ours_wall <= 5
    print(
        f"\nVERDICT: {'PASS' if ok else 'MISS'} — AIDP operator+sensor add {ours_wall:+.1f}% wall / "
        f"{ours_cpu:+.1f}% CPU over airflow.sdk (target <= 5%); Databricks' run operator adds "
        f"{theirs_cpu:+.1f}% CPU."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
