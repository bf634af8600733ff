"""Listing truth: "find job by name" never answers "not found" (or "only these") unless it read
every page, and a page that is not a 2xx JSON list is an error, never an empty result.

250 jobs share one name (different paths), so the server-side ``displayName`` filter still leaves
three pages of 100 / 100 / 50 to walk.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_aidp.exceptions import AIDPResponseError, AIDPServerError
from tests.reliability.support import CONN_ID, SCOPE

CATEGORY = "listing truth"
NAME = "nightly_load"
TOTAL = 250
JOBS_ROUTE = "*/workspaces/*/jobs"


@pytest.fixture
def hook(aidp_emulator: Any, aidp_conn: Any) -> Any:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

    store = aidp_emulator.state.store
    for i in range(TOTAL):
        store.create_job(SCOPE, {"name": NAME, "path": f"/team/p{i:03d}", "maxConcurrentRuns": 1})
    store.create_job(SCOPE, {"name": "other_job", "path": "/team/other", "maxConcurrentRuns": 1})
    return AIDPHook(aidp_conn_id=CONN_ID)


def list_pages(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.path.endswith("/jobs")]


def test_all_pages_read(hook: Any, aidp_emulator: Any, scenario: Any) -> None:
    row = scenario(CATEGORY, "250 jobs over 3 pages", expected="250 found, 3 pages read")
    found = hook.find_jobs(NAME)
    pages = list_pages(aidp_emulator)
    row.observed = f"{len(found)} found, {len(pages)} pages read"
    assert len(found) == TOTAL
    assert len({j.key for j in found}) == TOTAL
    assert len(pages) == 3
    assert "page" not in pages[0].query and pages[1].query.get("page") and pages[2].query.get("page")


def test_last_page_found_absent_after_all_pages(hook: Any, aidp_emulator: Any, scenario: Any) -> None:
    row = scenario(
        CATEGORY,
        "job on page 3 found; absent name = None after every page",
        expected="found; None only after the last page",
    )
    oldest = hook.find_jobs(NAME)[-1]  # newest first: the oldest job is on the last page
    assert oldest.path == "/team/p000"
    aidp_emulator.state.recorder.clear()
    assert hook.find_job(NAME, path="/team/p000") is not None
    aidp_emulator.state.recorder.clear()
    assert hook.find_job("no_such_job") is None
    last = list_pages(aidp_emulator)[-1]
    assert last.status == 200
    row.observed = "found; None after a final page without opc-next-page"


@pytest.mark.parametrize("page", [1, 2, 3])
def test_page_that_errors(page: int, hook: Any, aidp_emulator: Any, scenario: Any) -> None:
    row = scenario(
        CATEGORY,
        f"page {page} answers 500 (beyond the retry budget)",
        expected="AIDPServerError, never None / partial",
    )
    aidp_emulator.inject_fault("status", JOBS_ROUTE, "GET", status=500, after=page - 1, times=None)
    with pytest.raises(AIDPServerError):
        hook.find_jobs(NAME)
    aidp_emulator.clear_faults()
    aidp_emulator.inject_fault("status", JOBS_ROUTE, "GET", status=500, after=page - 1, times=None)
    with pytest.raises(AIDPServerError):  # not None, and not "duplicate" from a partial read
        hook.find_job(NAME)
    row.observed = "AIDPServerError from find_jobs and find_job"


def test_transient_page_error_is_retried(hook: Any, aidp_emulator: Any, scenario: Any) -> None:
    row = scenario(CATEGORY, "page 2 answers 503 once", expected="retried; 250 found")
    aidp_emulator.inject_fault("status", JOBS_ROUTE, "GET", status=503, after=1, times=1)
    found = hook.find_jobs(NAME)
    row.observed = f"retried; {len(found)} found"
    assert len(found) == TOTAL


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("empty_body", "an empty 200 body"),
        ("non_json", "a 200 HTML (non-JSON) body"),
        ("truncated", "a truncated JSON page"),
    ],
)
@pytest.mark.parametrize("page", [1, 3])
def test_bad_page_body(
    kind: str, label: str, page: int, hook: Any, aidp_emulator: Any, scenario: Any
) -> None:
    row = scenario(
        CATEGORY, f"page {page} is {label} (every attempt)", expected="AIDPResponseError, never None"
    )
    aidp_emulator.inject_fault(kind, JOBS_ROUTE, "GET", after=page - 1, times=None)
    with pytest.raises(AIDPResponseError):
        hook.find_jobs(NAME)
    aidp_emulator.clear_faults()
    aidp_emulator.inject_fault(kind, JOBS_ROUTE, "GET", after=page - 1, times=None)
    with pytest.raises(AIDPResponseError):  # not None, and not "duplicate" from a partial read
        hook.find_job(NAME)
    row.observed = "AIDPResponseError"


def test_empty_page_with_next_token_is_followed(hook: Any, aidp_emulator: Any, scenario: Any) -> None:
    row = scenario(
        CATEGORY, "page 2 is an empty list that still carries opc-next-page", expected="page 3 still read"
    )
    aidp_emulator.inject_fault("empty_list", JOBS_ROUTE, "GET", after=1, times=1)
    found = hook.find_jobs(NAME)
    pages = list_pages(aidp_emulator)
    row.observed = f"{len(pages)} pages read, {len(found)} items"
    assert len(pages) == 3
    assert len(found) == TOTAL - 100
