#!/usr/bin/env python
# ruff: noqa: E501  (the Markdown tables below are one row per line)
"""Run the reliability fault matrix and write ``docs/reliability.md`` from what it observed.

    python scripts/reliability_report.py            # run tests/reliability, then write the doc
    python scripts/reliability_report.py --rows F   # only render rows recorded earlier (JSON lines)

Every scenario test records one row (tests/reliability/matrix.py): what was tried, what was
observed (final task state, AIDP runs created, cancel requests, secret hits) and whether its
assertions held.  The figures at the top are sums over those rows, not hand-written numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.matrix import CATEGORIES, RESULTS_ENV, Row, read_rows  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"

METHOD = """\
## How the scenarios run

| category | how | what is counted |
|---|---|---|
| faults during a run | emulator fault injection on `POST /jobRuns` (submit) and `GET /jobRuns/{key}` (poll); `AIDPRunJobOperator` through `dag.test()`, sync polling and deferred (trigger run inline) | final task state, AIDP runs created, cancel requests, final AIDP status |
| crashes | the task runs in a forked worker process; an emulator `delay` holds it at the step; SIGKILL as soon as the emulator has the request; the retry runs like the scheduler's (same DAG run, so `task_state_store` survives, next try) | runs created, POSTs and their `opc-retry-token`s, retry state |
| listing truth | 250 jobs of one name over 3 pages of 100; faults on one page | items returned / error raised, pages read |
| bad input | invalid connection fields, hostile keys, invalid job specs (hypothesis) through the hook / `upsert_job` / a DAG task, HTTP sends refused by a guard | error and the field it names, requests the emulator received |
| secrets | encrypted PEM with a distinctive passphrase, a session token; runs through `dag.test()` with the whole fd 1/2 output kept (task log + inline trigger log); a connection holding the key and passphrase stored through Airflow's own REST API app (create, get, list, patch, test, form metadata); the UI is searched by the browser test (`tests/e2e/test_connection_form.py`: rendered page, every connection answer the browser received, the api-server log) | hits in task/trigger log, XCom, `AIRFLOW_HOME/logs`, a SQLite dump of the metadata DB, every REST API answer |

The real triggerer process (scheduler + triggerer + api-server + dag-processor) is exercised by
`tests/e2e/` (triggerer restart included); here the trigger is killed in its own process and
re-created from its serialized kwargs in another one.
"""

#: What the matrix found in the code under test, and what was done (kept by hand: it is history).
FINDINGS = """\
## Findings

| found | where | fix |
|---|---|---|
| a truncated or non-JSON `200` answer to `POST /jobRuns` failed the task although the run had been created (a false failure and an orphaned run) | operator submit path | the hook re-sends a token-protected POST whose 2xx answer is unreadable, with the same deterministic `opc-retry-token`, and gets the same run (`hooks/transport.py` `RetryPolicy.resend_after`, within the call's `max_retries`) |
| an empty run key addressed the collection (`GET .../jobRuns/`) and `None` was sent as the key `"None"` | `hooks/connection.py` URL builder | refused before sending with `AIDPConfigError(field="key")` |
| `taskType` instead of `type` gave "Unable to extract tag using discriminator 'type'" without naming the fix | `models/jobs.py` `load_spec` | the error names `type` and says to rename `taskType` |
"""


def run_suite(rows_path: Path, pytest_args: list[str]) -> tuple[int, float]:
    env = dict(os.environ, **{RESULTS_ENV: str(rows_path)})
    cmd = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider", *pytest_args]
    started = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    return code, time.monotonic() - started


def figures(rows: list[Row]) -> dict[str, int]:
    return {
        "scenarios tried": len(rows),
        "scenarios that held": sum(1 for r in rows if r.held),
        "scenarios that did not hold": sum(1 for r in rows if not r.held),
        "AIDP runs created in run/crash scenarios": sum(r.runs_created or 0 for r in rows),
        "runs duplicated": sum(r.runs_duplicated for r in rows),
        "false failures": sum(1 for r in rows if r.false_failure),
        "wrong cancellations": sum(r.wrong_cancellations for r in rows),
        "secrets found": sum(r.secrets_found for r in rows),
    }


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], *, seconds: float | None, exit_code: int | None) -> str:
    figs = figures(rows)
    out = [
        "# Reliability and security: the fault matrix",
        "",
        "Generated by `python scripts/reliability_report.py` from a run of `tests/reliability/` "
        "(also part of `make test`). Do not edit by hand: rerun the script.",
        "",
        "Every row is one test of real code against the local AIDP emulator (loopback only): the "
        "operator and trigger run through real Airflow (`dag.test()`, worker subprocesses killed with "
        "SIGKILL, a trigger re-created in a new process). *Held* means every assertion of that "
        "scenario passed. *Runs* is the number of AIDP job runs the emulator created for the scenario.",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
        + (f" in {seconds:.0f} s" if seconds is not None else "")
        + (f"; pytest exit code {exit_code}" if exit_code is not None else "")
        + ".",
        "",
        "## Figures",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    out += [f"| {name} | {value} |" for name, value in figs.items()]
    out += ["", METHOD.rstrip(), "", FINDINGS.rstrip()]
    order = {c: i for i, c in enumerate(CATEGORIES)}
    by_cat: dict[str, list[Row]] = {}
    for row in rows:
        by_cat.setdefault(row.category, []).append(row)
    for category in sorted(by_cat, key=lambda c: order.get(c, len(order))):
        items = by_cat[category]
        counts = Counter(bool(r.held) for r in items)
        out += ["", f"## {category[0].upper()}{category[1:]} ({counts[True]}/{len(items)} held)", ""]
        out += [
            "| scenario | mode | expected | observed | runs | dup | false fail | wrong cancel | secrets "
            "| held |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in items:  # in test order
            out.append(
                "| "
                + " | ".join(
                    _cell(v)
                    for v in (
                        r.scenario,
                        r.mode,
                        r.expected,
                        r.observed,
                        r.runs_created,
                        r.runs_duplicated,
                        "yes" if r.false_failure else "no",
                        r.wrong_cancellations,
                        r.secrets_found,
                        "yes" if r.held else "**NO**",
                    )
                )
                + " |"
            )
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=Path, help="render rows recorded earlier instead of running the suite")
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.rows:
        rows, seconds, code = read_rows(str(args.rows)), None, None
    else:
        with tempfile.TemporaryDirectory(prefix="aidp-reliability-") as tmp:
            path = Path(tmp) / "rows.jsonl"
            path.touch()
            code, seconds = run_suite(path, args.pytest_args)
            rows = read_rows(str(path))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows, seconds=seconds, exit_code=code), encoding="utf-8")
    figs = figures(rows)
    print(f"wrote {args.output}: " + ", ".join(f"{k}: {v}" for k, v in figs.items()))
    return code or 0


if __name__ == "__main__":
    raise SystemExit(main())
