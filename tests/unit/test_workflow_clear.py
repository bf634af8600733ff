"""Clear = repair, decided per try (runs/clear.py) and every AIDP task status's Airflow outcome
(runs/task_outcome.py): pure functions, no service, no Airflow DB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from airflow_provider_aidp import compat
from airflow_provider_aidp.models.runs import KNOWN_STATUSES, TERMINAL_STATUSES, JobRun, TaskRun
from airflow_provider_aidp.runs import clear, task_outcome
from airflow_provider_aidp.runs.clear import RepairRecord, Step
from airflow_provider_aidp.runs.identity import TaskIdentity

LAUNCHED = 1_000.0
FIRST_TRY = TaskIdentity("d", "r", "etl.b", generation=0, attempt=1)
RETRY = TaskIdentity("d", "r", "etl.b", generation=0, attempt=2)
CLEARED = TaskIdentity("d", "r", "etl.b", generation=1, attempt=1)


def task_run(status: str | None, key: str = "tr1") -> TaskRun:
    return TaskRun.model_validate({"key": key, "taskKey": "b", "state": {"status": status}})


def run(status: str = "FAILED", repair_key: int | None = 0) -> JobRun:
    return JobRun.model_validate({"key": "run1", "state": {"status": status}, "repairKey": repair_key})


def plan(
    tr: TaskRun | None,
    *,
    made: float = LAUNCHED,
    tried: float | None,
    who: TaskIdentity,
    r: JobRun | None = None,
) -> Step:
    return clear.plan(tr, r or run(), task_run_made_at=made, try_made_at=tried, identity=who)


# --- the plan of a try ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [None, "PENDING", "RUNNING", "SOMETHING_NEW"])
def test_a_task_run_that_has_not_ended_is_followed(status: str | None) -> None:
    assert plan(task_run(status), tried=LAUNCHED + 60, who=CLEARED) is Step.FOLLOW
    assert plan(None, tried=LAUNCHED + 60, who=CLEARED) is Step.FOLLOW


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_an_end_the_try_has_not_seen_is_reported_not_repaired(status: str) -> None:
    # the first try (made with the DAG run), or a try made before the run (the launch was cleared too)
    assert plan(task_run(status), tried=LAUNCHED - 5, who=FIRST_TRY) is Step.FOLLOW
    assert plan(task_run(status), tried=LAUNCHED - 5, who=CLEARED) is Step.FOLLOW


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES - {"SUCCESS"}))
def test_a_cleared_or_retried_try_repairs_a_task_run_that_had_ended(status: str) -> None:
    assert plan(task_run(status), tried=LAUNCHED + 60, who=CLEARED) is Step.REPAIR
    assert plan(task_run(status), tried=LAUNCHED + 60, who=RETRY) is Step.REPAIR


def test_a_success_is_rerun_by_a_clear_but_kept_by_a_retry() -> None:
    assert plan(task_run("SUCCESS"), tried=LAUNCHED + 60, who=CLEARED) is Step.REPAIR
    assert plan(task_run("SUCCESS"), tried=LAUNCHED + 60, who=RETRY) is Step.FOLLOW


def test_a_task_run_a_repair_made_after_the_try_is_followed_whatever_it_ended_as() -> None:
    # the downstream task, cleared with the failed one at t=1060; the failed one repaired both at t=1070
    assert plan(task_run("FAILED", "tr2"), made=1070.0, tried=1060.0, who=CLEARED) is Step.FOLLOW


def test_the_repair_waits_for_an_active_run() -> None:
    assert plan(task_run("FAILED"), tried=LAUNCHED + 60, who=CLEARED, r=run("RUNNING")) is Step.WAIT_FOR_RUN


def test_without_a_try_time_the_clear_generation_and_attempt_decide() -> None:
    assert plan(task_run("FAILED"), tried=None, who=FIRST_TRY) is Step.FOLLOW
    assert plan(task_run("FAILED"), tried=None, who=CLEARED) is Step.REPAIR
    assert plan(task_run("FAILED"), tried=None, who=RETRY) is Step.REPAIR


def test_when_a_task_run_was_made_comes_from_the_repair_that_made_it_else_the_launch() -> None:
    records = [
        RepairRecord("run1", 1070.0, ["b", "c"], {"b": "tr2", "c": "tr3"}),
        RepairRecord("other_run", 1090.0, ["c"], {"c": "tr3"}),
    ]
    assert clear.made_at(task_run("FAILED", "tr2"), "run1", LAUNCHED, records) == 1070.0
    assert clear.made_at(task_run("FAILED", "tr1"), "run1", LAUNCHED, records) == LAUNCHED
    assert RepairRecord.from_xcom(records[0].to_xcom()) == records[0]
    assert RepairRecord.from_xcom({"run_key": None}) is None and RepairRecord.from_xcom("x") is None


# --- one repair for a task and its pending downstream -------------------------------------------


DEPENDS = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["a"]}


def test_the_downstream_closure_follows_depends_on() -> None:
    assert clear.downstream_closure("b", DEPENDS) == ["c", "d"]
    assert clear.downstream_closure("a", DEPENDS) == ["b", "c", "d", "e"]
    assert clear.downstream_closure("d", DEPENDS) == []


def test_all_downstream_pending_is_one_entry_with_include_downstream() -> None:
    body = clear.repair_tasks("b", ["c", "d"], pending=["c", "d"])
    assert body == [{"taskKey": "b", "shouldIncludeDownstream": True, "shouldIncludeUpstream": False}]
    assert clear.repaired_keys(body, ["c", "d"]) == ["b", "c", "d"]


def test_a_downstream_task_that_was_not_cleared_is_left_as_it_is() -> None:
    body = clear.repair_tasks("b", ["c", "d"], pending=["c"])
    assert [e["taskKey"] for e in body] == ["b", "c"]
    assert not any(e["shouldIncludeDownstream"] for e in body)
    assert clear.repair_tasks("d", [], pending=[]) == [
        {"taskKey": "d", "shouldIncludeDownstream": False, "shouldIncludeUpstream": False}
    ]


def test_the_repair_token_is_the_groups_per_run_and_repair_generation() -> None:
    first = clear.repair_token("d", "r", "etl", run(repair_key=0))
    assert first == clear.repair_token("d", "r", "etl", run(repair_key=0))  # any task of the group
    assert first != clear.repair_token("d", "r", "etl", run(repair_key=1))  # the next repair
    assert first != clear.repair_token("d", "r2", "etl", run(repair_key=0))  # another DAG run
    assert len(first) <= 64


# --- when Airflow made the try --------------------------------------------------------------------


class TI:
    def __init__(self, id: Any) -> None:
        self.id = id


def test_the_try_time_is_the_uuid7_stamp_of_the_task_instance_id() -> None:
    millis = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
    raw = (millis << 80) | (0x7 << 76) | (0x2 << 62) | 0x1234
    assert compat.try_created_at(TI(uuid.UUID(int=raw))) == millis / 1000
    assert compat.try_created_at(TI(str(uuid.UUID(int=raw)))) == millis / 1000
    assert compat.try_created_at(TI(uuid.uuid4())) is None
    assert compat.try_created_at(TI("not-a-uuid")) is None


# --- every AIDP task status has an Airflow outcome ---------------------------------------------------


EXPECTED = {
    "SUCCESS": "success",
    "FAILED": "failed",
    "INTERNAL_ERROR": "failed",
    "TIMED_OUT": "failed",
    "CANCELED": "failed",
    "UPSTREAM_FAILED": "upstream_failed",
    "UPSTREAM_CANCELED": "upstream_failed",
    "SKIPPED": "skipped",
    "EXCLUDED": "skipped",
}


@pytest.mark.parametrize("status", sorted(KNOWN_STATUSES))
def test_every_status_is_mapped(status: str) -> None:
    assert task_outcome.outcome_of(status) == EXPECTED.get(status)  # active ones: None (keep waiting)
    assert set(EXPECTED) == TERMINAL_STATUSES


def test_an_unknown_status_is_not_an_outcome() -> None:
    assert task_outcome.outcome_of("SOMETHING_NEW") is None and task_outcome.outcome_of(None) is None


def test_the_failure_message_names_task_run_state_errors_trace_and_what_to_do() -> None:
    tr = TaskRun.model_validate(
        {
            "key": "tr9",
            "taskKey": "b",
            "state": {
                "status": "FAILED",
                "stateMessage": "boom",
                "errorTrace": "Traceback\nValueError: bad rows",
            },
        }
    )
    text = task_outcome.failure_message(
        tr, run_key="run1", task_key="b", run_url="http://x", errors=["KeyError: k"]
    )
    assert "AIDP task b (task run tr9) of job run run1 ended FAILED: boom" in text
    assert "KeyError: k" in text and "ValueError: bad rows" in text
    assert "Clearing this task repairs it" in text and text.endswith("Run: http://x")
    up = TaskRun.model_validate({"key": "t", "state": {"status": "UPSTREAM_FAILED"}})
    assert "Clear the upstream task" in task_outcome.failure_message(
        up, run_key="r", task_key="c", run_url=None, errors=[]
    )
