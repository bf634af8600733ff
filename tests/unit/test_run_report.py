"""Run summaries, failure messages and output decoding (pure functions on the run models)."""

from __future__ import annotations

import base64
import gzip
import logging
from typing import Any

import pytest

from airflow_provider_aidp.exceptions import (
    AIDPConfigError,
    AIDPJobRunError,
    AIDPNotFoundError,
    AIDPPollError,
    AIDPRunTimeoutError,
    AIDPServerError,
)
from airflow_provider_aidp.models.outputs import render
from airflow_provider_aidp.models.runs import JobRun, TaskRun, TaskRunOutput
from airflow_provider_aidp.runs.report import (
    build_summary,
    failure_message,
    finish,
    truncate,
    validate_fetch_output,
)
from airflow_provider_aidp.runs.wait import Wait


def task(key: str, status: str, message: str | None = None, trace: str | None = None, **kw: Any) -> TaskRun:
    return TaskRun(
        key=f"tr-{key}",
        task_key=key,
        state={"status": status, "stateMessage": message, "errorTrace": trace},
        **kw,
    )


def run(status: str, **kw: Any) -> JobRun:
    return JobRun(
        key="run-1", job_name="etl", state={"status": status, "stateMessage": f"run {status}"}, **kw
    )


def test_summary_has_per_task_status_and_duration() -> None:
    summary = build_summary(
        run("SUCCESS", start_time=1_000, end_time=7_500),
        [task("a", "SUCCESS", execution_duration=2_500), task("b", "SUCCESS", start_time=10, end_time=1_010)],
        "http://console/run-1",
    )
    assert summary["duration_seconds"] == 6.5 and summary["run_url"] == "http://console/run-1"
    assert [(t["task_key"], t["status"], t["duration_seconds"]) for t in summary["tasks"]] == [
        ("a", "SUCCESS", 2.5),
        ("b", "SUCCESS", 1.0),
    ]


def test_failure_message_names_failed_tasks_messages_and_trace_heads() -> None:
    long_trace = "Traceback\n" + "frame\n" * 500 + "ValueError: deep"
    message = failure_message(
        run("FAILED"),
        [task("a", "SUCCESS"), task("b", "FAILED", "bad input", long_trace), task("c", "UPSTREAM_FAILED")],
        "http://console/run-1",
    )
    assert message.startswith("AIDP job run run-1 of job etl ended FAILED: run FAILED")
    assert "- task b FAILED: bad input" in message and "Traceback" in message
    # the start of the trace, and its last line (a Python traceback ends with the error itself)
    assert "[truncated" in message and "frame\n" * 200 not in message
    assert message.count("ValueError: deep") == 1
    assert "c (UPSTREAM_FAILED)" in message and "task a" not in message
    assert message.endswith("Run: http://console/run-1")


def test_skipped_message_explains_max_concurrent_runs() -> None:
    message = failure_message(run("SKIPPED"), [], None)
    assert "SKIPPED" in message and "already active" in message and "maxConcurrentRuns" in message


def test_run_level_trace_is_used_when_no_task_failed() -> None:
    r = JobRun(key="r", state={"status": "INTERNAL_ERROR", "errorTrace": "cluster vanished"})
    assert "cluster vanished" in failure_message(r, [], None)


def test_truncate_marks_what_was_cut() -> None:
    assert truncate("abcdef", 4) == "abcd... [truncated 2 more characters]"
    assert truncate("abc", 4) == "abc" and truncate("abcdef", 0) == "abcdef"


def test_output_text_decodes_base64_and_gzip() -> None:
    plain = {"type": "TEXT", "value": "hello"}
    b64 = {"type": "TEXT", "value": base64.b64encode(b"caf\xc3\xa9").decode(), "isBase64": True}
    gz = {
        "type": "TEXT",
        "value": base64.b64encode(gzip.compress(b"zipped")).decode(),
        "isBase64": True,
        "compression": "GZIP",
    }
    broken = {"type": "TEXT", "value": "!!!", "isBase64": True, "compression": "GZIP"}
    text = render(TaskRunOutput(data=[plain, b64, gz, broken])).text
    assert text.splitlines()[:3] == ["hello", "café", "zipped"]
    assert "could not be decoded" in text


def test_fetch_output_is_validated() -> None:
    with pytest.raises(AIDPConfigError, match="fetch_output"):
        validate_fetch_output("sometimes")


class NoCallsHook:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"no API call expected, got {name}")


def _ended_waits() -> list[dict[str, Any]]:
    """A timeout (run RUNNING, cancelled), a spent error budget (4 x 503) and a 404, as waits end."""
    running = JobRun(key="r", state={"status": "RUNNING"})
    timed = Wait("r", poll_interval=1.0, deadline=5.0, now=0.0)
    timed.seen(running, 0.0)
    spent = Wait("r", poll_interval=1.0, deadline=None, now=0.0, max_poll_errors=3)
    spent.seen(running, 0.0)
    errors = [spent.failed(AIDPServerError("503", status=503), 0.0) for _ in range(4)]
    missing = Wait("r", poll_interval=1.0, deadline=None, now=0.0).failed(
        AIDPNotFoundError("404", status=404), 0.0
    )
    assert errors[-1] is not None and missing is not None
    return [timed.timed_out(5.0), errors[-1], missing]


@pytest.mark.parametrize(
    ("event", "error"),
    list(zip(_ended_waits(), [AIDPRunTimeoutError, AIDPPollError, AIDPPollError], strict=True)),
)
def test_non_terminal_events_raise_distinct_errors_without_api_calls(
    event: dict[str, Any], error: type
) -> None:
    with pytest.raises(error) as info:
        finish(NoCallsHook(), event, run_url="http://u", log=logging.getLogger("t"))  # type: ignore[arg-type]
    assert not isinstance(info.value, AIDPJobRunError) and "http://u" in str(info.value)
