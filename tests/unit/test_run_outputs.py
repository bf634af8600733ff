"""Output rendering (models/outputs.py), lenient response models, task runs of a run and local job
matching (hooks/service.py)."""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import zlib
from typing import Any

import pytest

from airflow_provider_aidp.hooks.service import latest_per_task, normalize_folder, same_folder
from airflow_provider_aidp.hooks.service import task_runs_of as from_run
from airflow_provider_aidp.hooks.transport import Call
from airflow_provider_aidp.models.outputs import render
from airflow_provider_aidp.models.runs import JobRun, TaskRun, TaskRunOutput, is_terminal
from tests.unit.hook_support import drive, service

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n"]}],
        },
        {"cell_type": "code", "outputs": []},
        {
            "cell_type": "code",
            "outputs": [
                {"output_type": "execute_result", "data": {"text/plain": ["42"], "text/html": ["<b>42</b>"]}},
                {
                    "output_type": "error",
                    "ename": "KeyError",
                    "evalue": "'id'",
                    "traceback": ["\x1b[0;31m---------\x1b[0m", "\x1b[0;31mKeyError\x1b[0m: 'id'"],
                },
            ],
        },
    ],
    "nbformat": 4,
}


def output(kind: str, value: str, **kw: Any) -> TaskRunOutput:
    return TaskRunOutput.model_validate(
        {"data": [{"type": kind, "value": value, "length": len(value)}], **kw}
    )


def test_notebook_renders_text_and_errors_never_raw_json() -> None:
    rendered = render(output("NOTEBOOK", json.dumps(NOTEBOOK), isTruncated=True))
    assert rendered.text == "a\nb\n42\n---------\nKeyError: 'id'"
    assert rendered.errors == ["KeyError: 'id'"] and rendered.truncated


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("TEXT_PLAIN", "\x1b[1mrows\x1b[0m: 3", "rows: 3"),
        (
            "TEXT_HTML",
            "<html><style>p{}</style><body><p>rows &amp; cols</p><pre>x\ny</pre></body></html>",
            "rows & cols\nx\ny",
        ),
        ("NOTEBOOK", "not json {", "not json {"),
    ],
)
def test_text_html_and_broken_notebook(kind: str, value: str, text: str) -> None:
    assert render(output(kind, value)).text == text


def test_models_accept_numbers_for_strings_iso_times_and_unknown_statuses() -> None:
    run = JobRun.model_validate(
        {
            "key": 7,
            "state": {"status": "Cancelled"},
            "startTime": "2026-01-01T00:00:00Z",
            "endTime": "1767225605000",
            "taskToTaskRunMap": {"a": 1},
            "surprise": {"x": 1},
        }
    )
    assert (run.key, run.status, run.task_to_task_run_map) == ("7", "CANCELED", {"a": "1"})
    assert run.end_time - run.start_time == 5000  # type: ignore[operator]
    odd = TaskRun.model_validate({"key": "t", "state": {"status": "DRAINING"}, "retryAttempt": "2"})
    assert odd.status == "DRAINING" and not is_terminal(odd.status) and odd.retry_attempt == 2


def test_task_runs_come_from_the_run_maps_latest_attempt_per_task() -> None:
    run = JobRun.model_validate(
        {
            "key": "r",
            "taskToTaskRunMap": {"a": "a2", "b": "b1"},
            "taskRunSummaryMap": {
                "a2": {"key": "a2", "taskKey": "a", "state": {"status": "SUCCESS"}},
                "b1": {"key": "b1", "taskKey": "b", "state": {"status": "FAILED"}},
            },
        }
    )
    assert {t.task_key: (t.key, t.status) for t in from_run(run) or []} == {
        "a": ("a2", "SUCCESS"),
        "b": ("b1", "FAILED"),
    }
    listed = [
        TaskRun(key="a1", task_key="a", retry_attempt=0, state={"status": "FAILED"}),
        TaskRun(key="a2", task_key="a", retry_attempt=1, state={"status": "SUCCESS"}),
    ]
    assert [t.key for t in latest_per_task(reversed(listed))] == ["a2"]


def test_summary_map_keyed_by_task_key_or_flat_still_gives_each_tasks_state() -> None:
    """``taskRunSummaryMap`` is untyped in the SDK: keyed by task key, or the state's fields at the top."""
    run = JobRun.model_validate(
        {
            "key": "r",
            "taskToTaskRunMap": {"a": "a2", "b": "b1"},
            "taskRunSummaryMap": {
                "a": {"key": "a2", "taskKey": "a", "state": {"status": "SUCCESS"}},
                "b1": {"key": "b1", "taskKey": "b", "status": "FAILED", "stateMessage": "bad rows"},
            },
        }
    )
    tasks = {t.task_key: t for t in from_run(run) or []}
    assert {k: (t.key, t.status) for k, t in tasks.items()} == {"a": ("a2", "SUCCESS"), "b": ("b1", "FAILED")}
    assert tasks["b"].state.state_message == "bad rows"
    assert "status" not in tasks["b"].model_dump(by_alias=True, exclude_none=True)  # lifted, not kept twice


class _ListingService:
    """A run whose reads carry no task-run map: its task runs come from ``GET /taskRuns``."""

    def __init__(self, listed: list[TaskRun]) -> None:
        self.listed = listed

    def __call__(self, call: Call) -> dict[str, Any]:
        if call.segments == ("taskRuns",):
            return {"items": [t.to_api() for t in self.listed]}
        assert call.segments[0] == "jobRuns", call
        return {"key": call.segments[1]}


def test_task_run_listing_fallback_drops_other_runs_task_runs() -> None:
    """A server that ignores ``jobRunKey`` lists other runs' task runs, which may be later attempts
    of the same task keys; only the run's own (and those listed without a run key) remain."""
    listed = [
        TaskRun(key="a1", task_key="a", job_run_key="r", retry_attempt=0, state={"status": "SUCCESS"}),
        TaskRun(key="x9", task_key="a", job_run_key="other", retry_attempt=3, state={"status": "FAILED"}),
        TaskRun(key="y1", task_key="y", job_run_key="other", state={"status": "FAILED"}),
        TaskRun(key="b1", task_key="b", state={"status": "SUCCESS"}),  # no run key: cannot be checked
    ]
    got = drive(service().get_task_runs(JobRun(key="r"), False), _ListingService(listed))
    assert sorted(t.key for t in got) == ["a1", "b1"]


@pytest.mark.parametrize(
    ("job_path", "folder", "same"),
    [
        ("/Workspace/Shared", "/Workspace/Shared/", True),
        ("/Workspace/Shared/", "/Workspace/Shared", True),
        ("/Workspace/Shared/etl.job", "/Workspace/Shared", True),
        ("/Workspace/Shared/sub", "/Workspace/Shared", False),
        ("/Workspace/Other", "/Workspace/Shared", False),
        (None, "/Workspace/Shared", False),
    ],
)
def test_folder_matching_tolerates_both_path_readings(job_path: str | None, folder: str, same: bool) -> None:
    assert same_folder(job_path, "etl.job", folder) is same
    assert normalize_folder("/") == "/"


class _Hook:
    """Reads outputs through the service's operation, answering GET taskRuns/{key} and fetchOutput
    from dicts, and records the calls."""

    def __init__(self, outputs: dict[str, TaskRunOutput], output_keys: dict[str, str | None]) -> None:
        self.outputs, self.output_keys, self.calls = outputs, output_keys, []  # type: list[tuple]

    def __call__(self, call: Call) -> dict[str, Any]:
        key = call.segments[1]
        if call.method == "GET":
            self.calls.append(("get", key))
            return {"key": key, "outputKey": self.output_keys[key]}
        self.calls.append(("fetch", key, (call.payload or {}).get("outputKey")))
        return self.outputs[key].to_api()

    def read_task_run_output(self, task_run: TaskRun) -> Any:
        return drive(service().read_task_run_output(task_run), self)


def test_log_outputs_says_truncated_cuts_to_max_and_skips_tasks_without_output_key() -> None:
    from airflow_provider_aidp.runs.report import log_outputs

    hook = _Hook({"t1": output("TEXT_PLAIN", "x" * 50, isTruncated=True)}, {"t1": "o1", "t2": None})
    tasks = [TaskRun(key="t1", task_key="a", state={"status": "FAILED"}), TaskRun(key="t2", task_key="b")]
    logged: list[str] = []

    class Log:
        def info(self, msg: str, *args: Any) -> None:
            logged.append(msg % args)

        warning = info

    errors = log_outputs(hook, tasks, max_output_chars=10, log=Log())  # type: ignore[arg-type]
    assert hook.calls == [("get", "t1"), ("fetch", "t1", "o1"), ("get", "t2")]  # no fetch without a key
    assert errors == {"t1": []}
    assert logged[0].startswith("Output of AIDP task a (FAILED) (AIDP says this output is truncated):")
    assert logged[0].endswith("x" * 10 + "... [truncated 40 more characters]")
    assert logged[1] == "AIDP task b (None) has no output key; no output to fetch."


@pytest.mark.parametrize(
    ("compression", "pack"),
    [
        ("GZIP", gzip.compress),
        ("DEFLATE", zlib.compress),
        ("DEFLATE", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as many servers send it
        ("BZIP2", bz2.compress),
        (None, lambda b: b),
    ],
)
def test_encoded_values_decode_to_the_same_text(compression: str | None, pack: Any) -> None:
    value = base64.b64encode(pack("rows: 7 ✓".encode())).decode()
    item = {"type": "TEXT_PLAIN", "value": value, "isBase64": True, "compression": compression}
    assert render(TaskRunOutput.model_validate({"data": [item]})).text == "rows: 7 ✓"


def test_an_unsupported_compression_is_named_not_shown_as_bytes() -> None:
    item = {"type": "TEXT_PLAIN", "value": base64.b64encode(b"\x1f\x9d\x90").decode(), "isBase64": True}
    text = render(TaskRunOutput.model_validate({"data": [{**item, "compression": "COMPRESS"}]})).text
    assert (
        text == "[output item of type TEXT_PLAIN could not be decoded: compression COMPRESS is not supported]"
    )


def test_repair_generation_differs_per_repair_whichever_repair_fields_a_service_sends() -> None:
    """A repair's retry token names the repair generation: a token reused for the next repair would
    replay the previous repair's answer (or be refused), so a chain of repairs would stall."""
    history = [{"type": "ORIGINAL", "key": 0}, {"type": "REPAIR", "key": 1}]
    assert JobRun(key="r", repair_key=2, repair_history=history).repair_generation == "2"
    assert JobRun.model_validate({"key": "r", "repairHistory": history}).repair_generation == "1"
    unkeyed = [{"type": "ORIGINAL"}, {"type": "REPAIR"}, {"type": "REPAIR"}]
    assert JobRun.model_validate({"key": "r", "repairHistory": unkeyed}).repair_generation == "2"
    first, second = (JobRun(key="r", end_time=t, state={"status": "FAILED"}) for t in (1000, 2000))
    assert first.repair_generation != second.repair_generation
    assert first.repair_generation == JobRun(key="r", end_time=1000).repair_generation  # a retry: same
    assert JobRun(key="r").repair_generation == "0"
