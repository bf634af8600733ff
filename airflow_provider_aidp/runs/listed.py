"""Which items of a listing belong to what was asked for, whatever the server's filter did.

``GET /jobRuns?jobKey=..`` and ``GET /taskRuns?jobRunKey=..`` filter on the server, but only the
SDK's parameter names say how: a service may ignore ``jobKey`` (the emulator's
``run_list_filters`` reading) or ``jobRunKey`` and answer with other jobs' runs or other runs'
task runs. Every consumer of a listing therefore matches the key here, as ``hooks/jobs.py``
matches a job's name and folder. (The triggerer's status sweep matches runs by run key in
``runs/sweep.py``.)

An item whose key field is missing cannot be checked and is kept: the SDK marks ``jobKey`` /
``jobRunKey`` optional in the summaries, and dropping such items would make a server that omits
them look like one with no runs at all. (The emulator always sends both fields.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from airflow_provider_aidp.models.runs import JobRunSummary, TaskRun


def of_jobs(runs: Iterable[JobRunSummary], job_keys: Collection[str]) -> list[JobRunSummary]:
    """The runs listed for ``job_keys``: other jobs' runs dropped, runs without a job key kept."""
    return [run for run in runs if run.job_key is None or run.job_key in job_keys]


def of_run(task_runs: Iterable[TaskRun], run_key: str) -> list[TaskRun]:
    """The task runs of job run ``run_key``: other runs' dropped, those without a run key kept."""
    return [tr for tr in task_runs if tr.job_run_key is None or tr.job_run_key == run_key]
