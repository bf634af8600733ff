"""The event trigger's watermark: each finished run reported once, late runs caught, no replay."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_aidp.models.runs import JobRunSummary
from airflow_provider_aidp.runs import watermark as wm

LOOKBACK = 60_000
JOBS = ["job"]


def run(key: str, status: str = "SUCCESS", end: int | None = 1_000, **extra: Any) -> JobRunSummary:
    body = {"key": key, "jobKey": "job", "state": {"status": status}, "endTime": end, **extra}
    return JobRunSummary.model_validate(body)


def test_baseline_counts_history_as_handled() -> None:
    mark = wm.baseline([run("a", end=1_000), run("b", "RUNNING", end=None)], LOOKBACK, job_keys=JOBS)
    emit, _ = wm.select(
        mark, [run("a", end=1_000), run("b", end=2_000)], ["SUCCESS"], LOOKBACK, job_keys=JOBS
    )
    assert [r.key for r in emit] == ["b"]


def test_status_checked_locally_and_unwanted_runs_still_advance_the_mark() -> None:
    mark = wm.Watermark(0)
    listing = [run("ok", end=10), run("bad", "FAILED", end=20), run("live", "RUNNING", end=None)]
    emit, mark = wm.select(mark, listing, ["SUCCESS"], LOOKBACK, job_keys=JOBS)
    assert [r.key for r in emit] == ["ok"]
    assert mark.end_ms == 20 and set(mark.seen) == {"ok@10", "bad@20"}
    again, same = wm.select(mark, listing, ["SUCCESS"], LOOKBACK, job_keys=JOBS)
    assert again == [] and same == mark


def test_job_key_checked_locally_other_jobs_runs_neither_reported_nor_moving_the_mark() -> None:
    """A listing that ignored ``jobKey`` holds other jobs' runs: a later one must not raise the mark
    past a watched run the service reports late, and none of them is reported."""
    other = run("other", end=500_000, jobKey="other_job")
    mark = wm.baseline([run("a", end=1_000), other], LOOKBACK, job_keys=JOBS)
    assert mark.end_ms == 1_000 and set(mark.seen) == {"a@1000"}
    late = run("late", end=2_000)
    unkeyed = run("unkeyed", end=3_000, jobKey=None)  # cannot be checked: kept
    emit, mark = wm.select(
        mark, [other, late, unkeyed, run("b", end=600_000, jobKey="x")], ["SUCCESS"], LOOKBACK, job_keys=JOBS
    )
    assert [r.key for r in emit] == ["late", "unkeyed"] and mark.end_ms == 3_000
    both, _ = wm.select(wm.Watermark(0), [other, late], ["SUCCESS"], LOOKBACK, job_keys=["job", "other_job"])
    assert [r.key for r in both] == ["late", "other"]


def test_late_reported_run_within_lookback_is_caught_older_is_not() -> None:
    mark = wm.Watermark(100_000, {"x@100000": 100_000})
    late = run("late", end=100_000 - LOOKBACK + 1)
    ancient = run("ancient", end=100_000 - LOOKBACK)
    emit, _ = wm.select(mark, [late, ancient], ["SUCCESS"], LOOKBACK, job_keys=JOBS)
    assert [r.key for r in emit] == ["late"]


def test_repaired_run_ending_again_is_reported_again() -> None:
    emit, mark = wm.select(
        wm.Watermark(0), [run("r", "FAILED", end=10)], ["SUCCESS", "FAILED"], LOOKBACK, job_keys=JOBS
    )
    assert [r.identity for r in emit] == ["r@10"]
    emit, _ = wm.select(mark, [run("r", end=50)], ["SUCCESS", "FAILED"], LOOKBACK, job_keys=JOBS)
    assert [r.identity for r in emit] == ["r@50"]


def test_missing_end_time_uses_a_stable_server_time_not_the_local_clock() -> None:
    summary = run("t", end=None, timeUpdated="2026-01-01T00:00:01.500Z")
    assert wm.end_ms_of(summary) == 1767225601500
    assert wm.end_ms_of(run("n", end=None)) is None


def test_json_round_trip_and_garbage_rebaselines() -> None:
    mark = wm.Watermark(5, {"a@5": 5})
    assert wm.Watermark.from_json(mark.to_json()) == mark
    assert wm.Watermark.from_json(None) is None
    assert wm.Watermark.from_json({"end_ms": "5"}) is None


@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["SUCCESS", "FAILED"]), st.integers(0, 200_000)),
        max_size=40,
    ),
    st.lists(st.integers(1, 40), max_size=6),
)
def test_any_split_into_polls_reports_each_finished_run_once(
    endings: list[tuple[int, str, int]], cuts: list[int]
) -> None:
    """Runs become visible poll by poll in end order (a listing always shows everything so far)."""
    finished: dict[str, tuple[str, int]] = {}
    for key, status, end in sorted(endings, key=lambda e: e[2]):
        finished.setdefault(f"k{key}", (status, end))
    ordered = sorted(finished.items(), key=lambda kv: kv[1][1])
    mark = wm.baseline([], LOOKBACK, job_keys=JOBS)
    reported: list[str] = []
    for cut in [*sorted(cuts), len(ordered)]:
        listing = [run(k, s, e) for k, (s, e) in ordered[:cut]]
        emit, mark = wm.select(mark, listing, ["SUCCESS"], LOOKBACK, job_keys=JOBS)
        reported += [r.key for r in emit]
    assert sorted(reported) == sorted(k for k, (s, _) in finished.items() if s == "SUCCESS")
