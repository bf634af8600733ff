"""Bad input, job specs: every invalid field fails before any request, with the field named.

Property-based where a field has a space of wrong values (names, counts, run_if, types, cron); one
case per structural rule otherwise.  Each case also goes through ``AIDPHook.upsert_job`` against
the emulator, which must record no request at all.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_aidp.exceptions import AIDPConfigError
from airflow_provider_aidp.models.jobs import load_spec
from tests.reliability.support import CONN_ID

CATEGORY = "bad input"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
CLUSTER = {"clusterKey": "ck1", "clusterName": "demo_cluster"}
BASE: dict[str, Any] = {
    "name": "nightly_etl",
    "path": "/Workspace/Shared",
    "maxConcurrentRuns": 1,
    "jobClusters": [CLUSTER],
    "schedule": {"quartzCronExpression": "0 0 2 * * ?", "timezoneId": "UTC", "pauseStatus": "UNPAUSED"},
    "tasks": [
        {
            "taskKey": "extract",
            "type": "NOTEBOOK_TASK",
            "notebookPath": "/Workspace/Shared/e.ipynb",
            "cluster": dict(CLUSTER),
            "runIf": "ALL_SUCCESS",
        },
        {
            "taskKey": "load",
            "type": "NOTEBOOK_TASK",
            "notebookPath": "/Workspace/Shared/l.ipynb",
            "cluster": dict(CLUSTER),
            "runIf": "ALL_SUCCESS",
            "dependsOn": [{"taskKey": "extract"}],
        },
    ],
}
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def spec_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    change(spec)
    return spec


def assert_rejected(spec: dict[str, Any], field: str) -> str:
    with pytest.raises(AIDPConfigError) as info:
        load_spec(spec)
    message = str(info.value)
    assert field in message, f"{field!r} not named in: {message}"
    return message


def test_base_spec_is_valid() -> None:
    load_spec(BASE)  # the control: every case below differs from a valid spec by one field


# --- property-based -------------------------------------------------------------------------------


@SETTINGS
@given(name=st.text(max_size=40).filter(lambda s: not NAME_RE.match(s)))
def any_invalid_name(name: str) -> None:
    assert_rejected(spec_with(lambda s: s.update(name=name)), "name")


@SETTINGS
@given(count=st.integers(max_value=0))
def any_non_positive_max_concurrent_runs(count: int) -> None:
    assert_rejected(spec_with(lambda s: s.update(maxConcurrentRuns=count)), "max_concurrent_runs")


@SETTINGS
@given(
    value=st.text(max_size=30).filter(
        lambda s: (
            s
            not in (
                "ALL_SUCCESS",
                "ALL_DONE",
                "NONE_FAILED",
                "AT_LEAST_ONE_SUCCESS",
                "ALL_FAILED",
                "AT_LEAST_ONE_FAILED",
            )
        )
    )
)
def any_invalid_run_if(value: str) -> None:
    assert_rejected(spec_with(lambda s: s["tasks"][1].update(runIf=value)), "run_if")


@SETTINGS
@given(
    kind=st.text(max_size=30).filter(
        lambda s: (
            s not in ("NOTEBOOK_TASK", "PYTHON_TASK", "JAR_TASK", "IF_ELSE_TASK", "JOB_TASK", "AGENT_TASK")
        )
    )
)
def any_invalid_task_type(kind: str) -> None:
    assert_rejected(spec_with(lambda s: s["tasks"][0].update(type=kind)), "tasks")


@SETTINGS
@given(path=st.text(max_size=40).filter(lambda s: s != "/Workspace" and not s.startswith("/Workspace/")))
def any_path_outside_workspace(path: str) -> None:
    assert_rejected(spec_with(lambda s: s.update(path=path)), "path")


@SETTINGS
@given(minute=st.integers(min_value=1, max_value=29))
def any_schedule_more_often_than_30_minutes(minute: int) -> None:
    cron = f"0 0/{minute} * * * ?"
    assert_rejected(spec_with(lambda s: s["schedule"].update(quartzCronExpression=cron)), "quartz_cron")


@SETTINGS
@given(
    value=st.integers(max_value=-1),
    field=st.sampled_from(["maxRetries", "minRetryIntervalMillis", "timeoutSeconds"]),
)
def any_negative_task_number(value: int, field: str) -> None:
    assert_rejected(spec_with(lambda s: s["tasks"][0].update({field: value})), "tasks[extract]")


@SETTINGS
@given(key=st.text(min_size=1, max_size=20).filter(lambda s: s not in ("extract", "load")))
def any_unknown_depends_on(key: str) -> None:
    assert_rejected(spec_with(lambda s: s["tasks"][1].update(dependsOn=[{"taskKey": key}])), "depends_on")


# --- one case per structural rule (also through upsert_job: nothing may be sent) -----------------


def _drop(field: str, task: int | None = None) -> Callable[[dict[str, Any]], None]:
    def change(s: dict[str, Any]) -> None:
        (s if task is None else s["tasks"][task]).pop(field)

    return change


RULES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "taskType instead of type": (
        lambda s: s["tasks"][0].update(taskType=s["tasks"][0].pop("type")),
        "taskType",
    ),
    "unknown top-level field": (lambda s: s.update(clusterz=[]), "clusterz"),
    "notebook task without cluster": (_drop("cluster", 0), "cluster"),
    "notebook task without notebook path": (_drop("notebookPath", 0), "notebook_path"),
    "cluster name is a UUID": (
        lambda s: s["tasks"][0]["cluster"].update(clusterName="0b7c6e1e-64a5-4f0a-9a57-1f0e8c3b2d11"),
        "cluster_name",
    ),
    "task cluster not declared": (lambda s: s["tasks"][0]["cluster"].update(clusterKey="ck9"), "cluster_key"),
    "duplicate task keys": (lambda s: s["tasks"][1].update(taskKey="extract", dependsOn=[]), "task_key"),
    "empty task key": (lambda s: s["tasks"][0].update(taskKey=""), "task_key"),
    "dependsOn cycle": (lambda s: s["tasks"][0].update(dependsOn=[{"taskKey": "load"}]), "cycle"),
    "task depends on itself": (lambda s: s["tasks"][0].update(dependsOn=["extract"]), "itself"),
    "invalid cron expression": (
        lambda s: s["schedule"].update(quartzCronExpression="every day"),
        "quartz_cron",
    ),
    "unknown time zone": (lambda s: s["schedule"].update(timezoneId="Mars/Olympus"), "timezone_id"),
    "schedule and continuous": (lambda s: s.update(continuous={"pauseStatus": "UNPAUSED"}), "continuous"),
    "duplicate parameter": (
        lambda s: s.update(parameters=[{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]),
        "parameter",
    ),
    "missing path": (_drop("path"), "path"),
    "missing name": (_drop("name"), "name"),
    "tasks not a list": (lambda s: s.update(tasks={"extract": {}}), "tasks"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_structural_rule(rule: str, aidp_emulator: Any, aidp_conn: Any, scenario: Any) -> None:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    change, field = RULES[rule]
    row = scenario(CATEGORY, f"job spec: {rule}", expected=f"AIDPConfigError naming '{field}'; nothing sent")
    spec = spec_with(change)
    assert_rejected(spec, field)
    with pytest.raises(AIDPConfigError):
        AIDPHook(aidp_conn_id=CONN_ID).upsert_job(spec)
    row.observed = f"AIDPConfigError naming {field!r}; {len(aidp_emulator.requests)} requests received"
    assert aidp_emulator.requests == []


PROPERTIES: dict[str, Callable[[], None]] = {
    "any invalid name": any_invalid_name,
    "any max_concurrent_runs <= 0": any_non_positive_max_concurrent_runs,
    "any invalid run_if": any_invalid_run_if,
    "any invalid task type": any_invalid_task_type,
    "any path outside /Workspace": any_path_outside_workspace,
    "any schedule more often than every 30 minutes": any_schedule_more_often_than_30_minutes,
    "any negative task retry / timeout number": any_negative_task_number,
    "any unknown dependsOn key": any_unknown_depends_on,
}


@pytest.mark.parametrize("label", list(PROPERTIES))
def test_property(label: str, scenario: Any) -> None:
    """Hypothesis draws up to 40 wrong values for one field; every one must be rejected."""
    row = scenario(
        CATEGORY,
        f"job spec, property-based (hypothesis): {label}",
        expected="every drawn value rejected with the field named",
    )
    PROPERTIES[label]()
    row.observed = "every drawn value rejected (up to 40 examples)"
