"""The status sweep's bookkeeping (triggers/sweep.py's Board): what a listing means for each watched
run; and which active statuses the hook's snapshot asks for, in chunks of job keys (hooks/service.py)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aidp.exceptions import AIDPApiError
from airflow_provider_aidp.hooks.service import LISTED_STATUSES, PAGE_SIZE, SNAPSHOT_PAGE_SIZE
from airflow_provider_aidp.hooks.service import _chunks as chunks
from airflow_provider_aidp.models.runs import JobRun, JobRunSummary
from airflow_provider_aidp.triggers.sweep import STALL_POLLS, VERIFY_POLLS, Ask, Board
from tests.unit.hook_support import service

P = 10.0


def run(key: str, status: str, job: str | None = "job-a", **extra: Any) -> JobRun:
    return JobRun.model_validate({"key": key, "jobKey": job, "state": {"status": status}, **extra})


def summary(key: str, status: Any, job: str = "job-a") -> JobRunSummary:
    return JobRunSummary.model_validate({"key": key, "jobKey": job, "state": {"status": status}})


def board_with(*keys: str, now: float = 100.0, job: str = "job-a") -> Board:
    """Watches whose own GET (at ``now``) said RUNNING."""
    board = Board()
    for i, key in enumerate(keys):
        board.add(i, key, P, now - 1)
        board.got(i, run(key, "RUNNING", job), now)
    return board


def test_only_active_statuses_the_api_filter_accepts_are_asked_for() -> None:
    assert LISTED_STATUSES == ("PENDING", "QUEUED", "RUNNING", "BLOCKED")


def test_new_triggers_are_found_by_a_workspace_listing_that_tells_their_job() -> None:
    board = Board()
    board.add(0, "r0", P, 0.0)
    board.add(1, "r1", P, 0.0)
    assert board.scope() is None  # jobs unknown: list the workspace's active runs
    assert board.ask(0, 0.5) is Ask.WAIT
    listing = [summary("r0", "RUNNING", job="job-a"), summary("other", "RUNNING", job="job-z")]
    assert board.listed(listing, None, 1.0, 1.2) == [0, 1]  # r0: status news; r1: missing
    answer = board.ask(0, 1.5)
    assert isinstance(answer, JobRun) and answer.status == "RUNNING" and answer.job_key == "job-a"
    assert board.ask(1, 1.5) is Ask.GET  # not listed: its own GET, which tells the job key
    assert board.got(1, run("r1", "QUEUED", job="job-b"), 1.6) is True
    assert board.scope() == ["job-a", "job-b"]


def test_a_listing_started_before_a_trigger_joined_says_nothing_about_it() -> None:
    board = Board()
    board.add(0, "r0", P, 5.0)
    board.add(1, "r1", P, 5.0)
    assert board.listed([], None, 4.0, 5.5) == []
    assert board.ask(0, 6.0) is Ask.WAIT
    assert board.ask(0, 6.0, waited=True) is Ask.WAIT  # no cycle answered for it yet: keep waiting


def test_a_watch_alone_polls_itself() -> None:
    board = board_with("r0")
    assert not board.sweeping and board.ask(0, 101.0) is Ask.GET


def test_a_run_whose_job_the_service_never_tells_stays_on_workspace_listings() -> None:
    board = board_with("r0")
    board.add(1, "r1", P, 99.0)
    board.got(1, run("r1", "RUNNING", job=None), 100.0)
    assert board.scope() is None
    assert (
        board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING", job="")], None, 101.0, 101.5) == []
    )
    assert isinstance(board.ask(1, 102.0), JobRun)


def test_a_listed_active_run_is_answered_from_the_listing_without_a_request() -> None:
    board = board_with("r0", "r1")
    assert board.ask(0, 101.0) is Ask.WAIT  # no listing since the job key was known
    wake = board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING")], {"job-a"}, 102.0, 102.5)
    assert wake == []  # nothing changed
    answer = board.ask(0, 103.0)
    assert isinstance(answer, JobRun) and answer.key == "r0" and answer.status == "RUNNING"


def test_a_changed_active_status_wakes_and_is_answered_from_the_listing() -> None:
    board = board_with("r0", "r1")
    wake = board.listed([summary("r0", "BLOCKED"), summary("r1", "RUNNING")], {"job-a"}, 102.0, 102.5)
    assert wake == [0]
    answer = board.ask(0, 103.0)
    assert isinstance(answer, JobRun) and answer.status == "BLOCKED"


def test_missing_or_terminal_looking_runs_owe_their_own_get() -> None:
    board = board_with("r0", "r1", "r2")
    listing = [summary("r1", "SUCCESS")]  # r0 missing, r1 terminal-looking, r2 missing
    wake = board.listed(listing, {"job-a"}, 111.0, 111.5)
    assert sorted(wake) == [0, 1, 2]
    assert board.ask(0, 112.0) is Ask.GET and board.ask(1, 112.0) is Ask.GET


def test_an_owed_get_wakes_at_most_once_per_poll_interval() -> None:
    board = board_with("r0", "r1")
    assert board.listed([summary("r1", "RUNNING")], {"job-a"}, 111.0, 111.5) == [0]
    board.got(0, run("r0", "CANCELING"), 112.0)  # not in the status filter's enum: never listed
    assert board.listed([summary("r1", "RUNNING")], {"job-a"}, 113.0, 113.5) == []  # < P since GET
    assert board.ask(0, 114.0) is Ask.GET  # but the trigger's own schedule still reads it
    board.got(0, run("r0", "CANCELING"), 114.0)
    assert board.listed([summary("r1", "RUNNING")], {"job-a"}, 125.0, 125.5) == [0]


def test_a_listing_that_flips_back_does_not_cancel_an_owed_get() -> None:
    board = board_with("r0", "r1")
    board.listed([summary("r1", "RUNNING")], {"job-a"}, 111.0, 111.5)
    board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING")], {"job-a"}, 112.0, 112.5)
    assert board.ask(0, 113.0) is Ask.GET


def test_runs_are_matched_locally_whatever_the_server_filtered() -> None:
    board = board_with("r0", "r1")
    noise = [summary("other", "RUNNING", job="job-z"), summary("old", "SUCCESS")]
    listing = [*noise, summary("r0", "RUNNING"), summary("r1", "RUNNING")]
    assert board.listed(listing, {"job-a"}, 102.0, 102.5) == []
    assert isinstance(board.ask(0, 103.0), JobRun)


def test_unknown_statuses_in_a_listing_count_as_active() -> None:
    board = board_with("r0", "r1")
    wake = board.listed(
        [summary("r0", "WAITING_FOR_RESOURCES"), summary("r1", "RUNNING")], {"job-a"}, 102.0, 102.5
    )
    assert wake == [0]
    answer = board.ask(0, 103.0)
    assert isinstance(answer, JobRun) and answer.status == "WAITING_FOR_RESOURCES"


def test_a_listing_older_than_what_the_trigger_knows_speaks_for_nobody() -> None:
    board = board_with("r0", "r1", now=100.0)
    assert board.listed([], {"job-a"}, 99.5, 100.5) == []  # started before the GETs
    assert board.ask(0, 101.0) is Ask.WAIT


def test_a_listing_of_other_jobs_says_nothing_about_a_run() -> None:
    board = board_with("r0", "r1")
    assert board.listed([], {"job-b"}, 102.0, 102.5) == []
    assert board.ask(0, 103.0) is Ask.WAIT


def test_stale_answers_age_out_after_one_poll_interval() -> None:
    board = board_with("r0", "r1")
    board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING")], {"job-a"}, 102.0, 102.5)
    board.listed([], {"job-b"}, 103.0, 103.5)  # a later cycle (of other jobs) is the current one
    assert isinstance(board.ask(0, 102.0 + P), JobRun)
    assert board.ask(0, 102.1 + P) is Ask.WAIT
    assert board.ask(0, 102.1 + P, waited=True) is Ask.GET  # the cycle did not come: read it


def test_the_latest_cycles_answers_stand_while_its_successor_may_run() -> None:
    """A slow cycle must not send every trigger to its own GET at once (the fallback that fed
    itself at 5,000 runs): the latest answers last until a cycle counts as stalled."""
    board = board_with("r0", "r1")
    board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING")], {"job-a"}, 102.0, 102.5)
    assert isinstance(board.ask(0, 102.0 + STALL_POLLS * P), JobRun)
    assert board.ask(0, 102.1 + STALL_POLLS * P) is Ask.WAIT
    assert board.stall_seconds() == STALL_POLLS * P
    board.rate = 2 / (5 * STALL_POLLS * P)  # per-run polling would take 5x that to look at both runs
    assert board.stall_seconds() == pytest.approx(5 * STALL_POLLS * P)


def test_a_failed_cycle_sends_everyone_to_their_own_get() -> None:
    board = board_with("r0", "r1")
    board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING")], {"job-a"}, 102.0, 102.5)
    board.failed()
    assert board.ask(0, 103.0) is Ask.WAIT
    assert board.ask(0, 103.0, waited=True) is Ask.GET


def test_every_run_gets_its_own_get_at_least_every_verify_polls_intervals() -> None:
    board = board_with("r0", "r1", now=100.0)
    late = 100.0 + VERIFY_POLLS * P
    board.listed([summary("r0", "RUNNING"), summary("r1", "RUNNING")], {"job-a"}, late - 1, late - 0.5)
    assert board.ask(0, late) is Ask.GET


def test_two_watches_of_one_run_are_kept_apart() -> None:
    board = board_with("r0", "r0")
    board.remove(0)
    assert board.watches[1].run_key == "r0"
    assert board.listed([], {"job-a"}, 102.0, 111.0) == [1]


def test_cycle_is_half_the_smallest_poll_interval_but_not_below_the_floor() -> None:
    board = board_with("r0")
    board.add(5, "r5", 3.0, 0.0)
    assert board.cycle_seconds() == 1.5
    board.add(6, "r6", 0.1, 0.0)
    assert board.cycle_seconds() == 0.5


def test_job_keys_are_listed_in_chunks() -> None:
    keys = [f"j{i}" for i in range(120)]
    assert [len(c) for c in chunks(keys)] == [50, 50, 20]


def test_the_first_own_get_is_spread_over_the_second_half_of_the_verify_period() -> None:
    """Triggers that join together (a triggerer restart) must not all verify in the same second."""
    board = Board()
    dues = [board.add(i, f"run-{i}", P, 0.0).verify_at for i in range(200)]
    assert all(VERIFY_POLLS * P / 2 <= d <= VERIFY_POLLS * P for d in dues)
    assert max(dues) - min(dues) > VERIFY_POLLS * P / 4


def refusal(status: int, code: str | None, message: str) -> AIDPApiError:
    return AIDPApiError(message, status=status, code=code)


def test_a_refusal_is_read_from_its_status_and_code_before_its_wording() -> None:
    svc = service()
    assert not svc._ask_less(refusal(404, "NotAuthorizedOrNotFound", "limit"))  # not a parameter
    assert not svc._ask_less(refusal(400, "MissingParameter", "limit must be set"))  # cannot supply it
    assert svc.profile.snapshot_page_size == SNAPSHOT_PAGE_SIZE
    assert not svc._ask_less(refusal(400, "InvalidParameter", "jobKey is required"))  # wording: required
    assert svc._ask_less(refusal(400, "InvalidParameter", "limit must be between 1 and 100"))
    assert svc.profile.snapshot_page_size == PAGE_SIZE
    assert svc._ask_less(refusal(400, None, "status filter does not accept ['QUEUED']"))
    assert "QUEUED" not in svc.profile.snapshot_statuses


def test_a_service_that_reads_one_value_a_filter_gets_one_job_and_one_status_a_request() -> None:
    svc = service()
    assert svc._snapshot_parts(["a", "b"]) == [(["a", "b"], list(LISTED_STATUSES))]
    svc.profile.repeats = False
    parts = svc._snapshot_parts(["a", "b"])
    assert parts == [([k], [s]) for k in ("a", "b") for s in LISTED_STATUSES]
    assert svc._snapshot_parts([]) == [([], [s]) for s in LISTED_STATUSES]  # the workspace
