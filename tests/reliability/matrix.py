"""The fault matrix's bookkeeping: every scenario test records one row of ``docs/reliability.md``.

A row says what was tried and what was observed (final task state, AIDP runs created, cancel
requests, secret hits).  Rows are appended as JSON lines to the file named by
``AIDP_RELIABILITY_RESULTS`` (set by ``scripts/reliability_report.py``); without it they are only
kept in memory, so the suite runs the same under plain ``pytest``.  Whether the row *held* is the
pytest outcome of the test itself: the assertions, not this module, decide.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

RESULTS_ENV = "AIDP_RELIABILITY_RESULTS"

CATEGORIES = ("faults during a run", "crashes", "listing truth", "bad input", "secrets")


@dataclass
class Row:
    """One scenario of the matrix; tests fill ``observed`` and the counters, the fixture writes it."""

    category: str
    scenario: str
    mode: str = "-"
    expected: str = ""
    observed: str = ""
    #: POST /jobRuns that created a run (None when the scenario does not run a job)
    runs_created: int | None = None
    #: runs beyond the one expected (a duplicate is a retried task that started a second run)
    runs_duplicated: int = 0
    #: the AIDP run succeeded (or would have) but the Airflow task failed
    false_failure: bool = False
    #: a cancel request the scenario did not ask for
    wrong_cancellations: int = 0
    #: occurrences of a secret in logs / XCom / metadata DB
    secrets_found: int = 0
    held: bool | None = None
    test_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """Append a fragment to the observed outcome (``; `` separated)."""
        self.observed = f"{self.observed}; {text}" if self.observed else text


def write_row(row: Row) -> None:
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(row), sort_keys=True) + "\n")


def read_rows(path: str) -> list[Row]:
    rows: list[Row] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(Row(**json.loads(line)))
    return rows
