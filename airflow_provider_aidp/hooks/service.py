"""What the AIDP Workflow API answers, and how to read it under every reading of the service.

Only the field notes were verified live; where they and Oracle's SDK leave a behaviour open, the
service may follow any plausible *reading* (docs/emulator.md#readings lists them, each with the one
module that handles it). This module handles most of them, each named where it is handled, so
that the code above the hook layer sees complete, typed, already-matched answers and never looks
at a status code: runs matched to their job keys here, task-run states resolved here, a job's runs
cancelled whichever way the surface allows, a resource this provider has just created given time
to become visible (the service is eventually consistent).

Each operation is a generator ("sans I/O"): it yields the :class:`~.transport.Call` it needs (or
a :class:`Pause`) and receives the parsed answer, or has the ``AIDPError`` thrown in. ``AIDPHook``
drives the same generator with ``requests`` for its sync methods and with ``aiohttp`` for their
``a_`` twins, so the two can never drift apart.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from airflow_provider_aidp.exceptions import (
    AIDPApiError,
    AIDPConfigError,
    AIDPConflictError,
    AIDPDuplicateJobError,
    AIDPError,
    AIDPNotFoundError,
    AIDPRetryTokenConflictError,
)
from airflow_provider_aidp.hooks.connection import AIDPConnectionConfig
from airflow_provider_aidp.hooks.transport import (
    ApiResponse,
    Call,
    Pager,
    header,
    new_retry_token,
    parse_model,
)
from airflow_provider_aidp.models.outputs import RenderedOutput, render
from airflow_provider_aidp.models.runs import (
    ACTIVE_STATUSES,
    TASK_FAILED_STATUSES,
    ActiveRun,
    ExportedTaskRunOutputContents,
    Job,
    JobRun,
    JobRunSummary,
    JobSummary,
    TaskRun,
    TaskRunOutput,
    is_active,
    is_terminal,
    normalize_status,
    string_parameters,
)

log = logging.getLogger("airflow_provider_aidp.hooks.aidp")

T = TypeVar("T")
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Pause:
    """Wait this long before the operation's next call (the driver sleeps, sync or async)."""

    seconds: float


#: An operation: yields calls and pauses, receives each call's ``ApiResponse``, returns ``T``.
Op = Generator[Call | Pause, Any, T]

#: Page size of a listing (what the field notes saw served); the active-run snapshot asks for more.
PAGE_SIZE = 100
SNAPSHOT_PAGE_SIZE = 1000
#: Job keys per snapshot request (repeated ``jobKey`` parameters keep the URL well under 8 KB).
JOB_KEYS_PER_LISTING = 50
#: The API's ``status`` filter accepts these active statuses (CANCELING and PAUSED_MAINTENANCE are
#: not in its enum: such runs are missing from a snapshot and are read by key).
LISTED_STATUSES: tuple[str, ...] = tuple(
    s for s in ("PENDING", "QUEUED", "RUNNING", "BLOCKED") if s in ACTIVE_STATUSES
)
#: What this process learned about a service is re-learned after this many seconds.
PROFILE_TTL_SECONDS = 900.0
#: A page proves that a service sorts run listings when it shows this many distinct creation times
#: newest first (a page served in no particular order is in that order by chance ~1 in 10!).
SORT_PROOF = 10
#: The query parameters of a run listing bounded by creation time, newest first (WORKFLOW_API.md).
WINDOW_PARAMS = ("timeCreatedGreaterThanOrEqualTo", "sortBy", "sortOrder")
#: First and longest pause while a just-created resource is not visible yet.
VISIBLE_FIRST_PAUSE, VISIBLE_MAX_PAUSE = 0.5, 5.0


# --- what this process has learned about a connection's service ----------------------------------


@dataclass
class Profile:
    """Readings a connection's service has shown, learned from its answers (never from a guess).

    Shared by every hook of the connection id in the process, sync and async; forgotten after
    :data:`PROFILE_TTL_SECONDS` (a service may be upgraded under a long-running triggerer).
    """

    snapshot_page_size: int = SNAPSHOT_PAGE_SIZE
    snapshot_statuses: tuple[str, ...] = LISTED_STATUSES
    #: Repeated filter values (``jobKey=a&jobKey=b``): applied (True), only the first read (False),
    #: not shown yet (None). Reading ``run_list_filters=first_values_only``.
    repeats: bool | None = None
    #: ``sortBy=timeCreated&sortOrder=DESC`` on run listings: applied (True: a page showed
    #: :data:`SORT_PROOF` distinct creation times newest first), ignored (False: a page showed two out
    #: of that order), not shown yet (None). Reading ``run_sort``.
    run_sort: bool | None = None
    #: ``timeCreatedGreaterThanOrEqualTo`` on run listings: ignored (False: an older run was served),
    #: else not known (None: an applied filter shows nothing to learn from). Reading ``time_filter``.
    time_filter: bool | None = None
    #: The service refused the window's parameters (a 400 naming them): run listings go without them.
    window_refused: bool = False
    learned_at: float = field(default_factory=time.monotonic)


_PROFILES: dict[str, Profile] = {}
_PROFILES_LOCK = threading.Lock()


def profile_for(conn_id: str) -> Profile:
    with _PROFILES_LOCK:
        profile = _PROFILES.get(conn_id)
        if profile is None or time.monotonic() - profile.learned_at > PROFILE_TTL_SECONDS:
            profile = _PROFILES[conn_id] = Profile()
        return profile


def forget_profiles() -> None:
    """Forget what was learned about every service (tests switch the emulator's readings)."""
    with _PROFILES_LOCK:
        _PROFILES.clear()


# --- local matching: what was asked for, whatever the server's filters did ----------------------


def normalize_folder(path: str | None) -> str | None:
    """``/Workspace/Shared/`` -> ``/Workspace/Shared`` (``/`` stays ``/``); None stays None."""
    if path is None:
        return None
    return path.strip().rstrip("/") or "/"


def same_folder(job_path: str | None, name: str, folder: str) -> bool:
    """True if a job stored at ``job_path`` is in ``folder``. Reading ``path_filter``: a job's
    ``path`` may be its folder or its folder + name, with or without a trailing slash."""
    have, want = normalize_folder(job_path), normalize_folder(folder)
    if have is None or want is None:
        return False
    return have == want or have == f"{want.rstrip('/')}/{name}"


def _job_matches(job: JobSummary, name: str, folder: str | None) -> bool:
    return job.name == name and (folder is None or same_folder(job.path, name, folder))


_R = TypeVar("_R", JobRunSummary, ActiveRun)


def _runs_matching(runs: Iterable[_R], job_keys: Sequence[str], statuses: Sequence[str]) -> list[_R]:
    """Reading ``run_list_filters``: a service may ignore ``jobKey`` or ``status``. A run listed
    without a job key cannot be checked and is kept (the SDK marks the field optional: dropping
    such runs would make a service that omits it look like one with no runs); one per key."""
    out: dict[str, _R] = {}
    for run in runs:
        if job_keys and run.job_key is not None and run.job_key not in job_keys:
            continue
        if statuses and run.status not in statuses:
            continue
        out.setdefault(run.key, run)
    return list(out.values())


def _active_run(item: Any) -> ActiveRun:
    """One listed run's key, job key and status; anything but plain strings where they belong is
    read by the model (its tolerance, e.g. a numeric key, or its error naming the listing)."""
    if isinstance(item, dict):
        key, job_key, state = item.get("key"), item.get("jobKey"), item.get("state")
        status = state.get("status") if isinstance(state, dict) else None
        if isinstance(key, str) and isinstance(job_key, str | None) and isinstance(status, str | None):
            return ActiveRun(key, job_key, None if status is None else normalize_status(status))
    run = parse_model(JobRunSummary, item, "GET", "/jobRuns", None)
    return ActiveRun(run.key, run.job_key, run.status)


class _Order:
    """What the pages of one listing asked newest first show about the service's sort (reading
    ``run_sort``) and time filter (reading ``time_filter``), learned into the connection's Profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.last: int | None = None  # creation time of the last run served so far
        self.in_order = True

    def saw(self, page: list[JobRunSummary], since_ms: int) -> bool:
        """Take one page; True when the listing may stop here: the service sorts (shown before),
        this listing has been newest first so far, and the page reached runs older than the bound."""
        times = [r.time_created for r in page if r.time_created is not None]
        seq = ([self.last] if self.last is not None else []) + times
        if any(later > earlier for earlier, later in itertools.pairwise(seq)):
            self.in_order = False
            if self.profile.run_sort is not False:
                log.info("AIDP does not sort run listings by creation time: bounded listings read every page")
            self.profile.run_sort = False
        elif self.in_order and len(set(times)) >= SORT_PROOF and self.profile.run_sort is None:
            self.profile.run_sort = True
        if times:
            self.last = times[-1]
        older = bool(times) and min(times) < since_ms
        if older and self.profile.time_filter is None:
            log.info("AIDP serves runs created before timeCreatedGreaterThanOrEqualTo: dropped here")
            self.profile.time_filter = False
        return older and self.in_order and bool(self.profile.run_sort) and times[-1] < since_ms


def _refuses_window(exc: AIDPApiError) -> bool:
    """A 400 naming one of the window's parameters (an older service): list without them."""
    text = exc.message.lower()
    return exc.status == 400 and any(p.lower() in text for p in WINDOW_PARAMS)


def _chunks(keys: Sequence[str], size: int = JOB_KEYS_PER_LISTING) -> list[list[str]]:
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


# --- the operations ---------------------------------------------------------------------------------


class Service:
    """The operations of one connection + workspace (cheap: built per hook call)."""

    def __init__(self, config: AIDPConnectionConfig, profile: Profile) -> None:
        self.config = config
        self.profile = profile
        self.grace = config.consistency_grace

    # --- building blocks ------------------------------------------------------------------

    def _model(self, cls: type[_M], call: Call, created_at: float | None = None) -> Op[_M]:
        resp = yield from self._visible(call, created_at)
        return parse_model(cls, resp.body, call.method, call.path, resp.request_id)

    def _visible(self, call: Call, created_at: float | None) -> Op[ApiResponse]:
        """``call``'s answer. Reading ``read_after_create_lag``: a resource this provider created at
        ``created_at`` (epoch s) may answer 404 for a while (OCI's ``NotAuthorizedOrNotFound`` right
        after a create); within the connection's ``consistency_grace`` that means "not visible
        yet", and the call is sent again; after it, the 404 stands."""
        pause = VISIBLE_FIRST_PAUSE
        while True:
            try:
                return (yield call)
            except AIDPNotFoundError:
                left = self._grace_left(created_at)
                if left <= 0:
                    raise
                log.info(
                    "AIDP %s %s: not visible yet %.1fs after this provider created it; "
                    "asking again (consistency_grace %.0fs)",
                    call.method,
                    call.path,
                    time.time() - (created_at or 0.0),
                    self.grace,
                )
                yield Pause(min(pause, left))
                pause = min(pause * 2, VISIBLE_MAX_PAUSE)

    def _grace_left(self, since: float | None) -> float:
        return 0.0 if since is None else since + self.grace - time.time()

    def _pages(
        self,
        segments: tuple[str, ...],
        query: Sequence[tuple[str, Any]],
        limit: int | None = None,
        page_size: int = PAGE_SIZE,
        ahead: bool = False,
    ) -> Op[list[dict[str, Any]]]:
        """Every item of every page (``opc-next-page``), up to ``limit``: never one page's word."""
        pager = Pager("/" + "/".join(segments), query, page_size, limit)
        items: list[dict[str, Any]] = []
        while not pager.done:
            items += pager.take((yield Call("GET", segments, query=pager.query(), ahead=ahead)))
        return items

    def _listed(
        self, cls: type[_M], segments: tuple[str, ...], query: Sequence[tuple[str, Any]], **pages: Any
    ) -> Op[list[_M]]:
        items = yield from self._pages(segments, query, **pages)
        return [parse_model(cls, item, "GET", "/" + "/".join(segments), None) for item in items]

    # --- jobs -----------------------------------------------------------------------------

    def list_jobs(self, name: str | None, path: str | None, limit: int | None) -> Op[list[JobSummary]]:
        return (
            yield from self._listed(
                JobSummary, ("jobs",), [("displayName", name), ("path", path)], limit=limit
            )
        )

    def find_jobs(self, name: str, path: str | None) -> Op[list[JobSummary]]:
        """Readings ``name_filter`` and ``path_filter``: only the name goes to the server and both are
        matched here. Reading ``job_list_fields``: a listed job of that name without a ``path``
        costs one ``GET /jobs/{key}`` for its folder."""
        jobs = []
        for job in (yield from self.list_jobs(name, None, None)):
            if path is not None and job.name == name and job.path is None:
                job = job.model_copy(update={"path": (yield from self.get_job(job.key, None)).path})
            if _job_matches(job, name, path):
                jobs.append(job)
        return jobs

    def find_job(self, name: str, path: str | None, expected: bool) -> Op[JobSummary | None]:
        """The one job named ``name`` (in ``path``), or None. ``expected``: reading ``listing_lag``,
        a job just created (here or upstream) may be missing from listings for a while, so a miss
        is listed again within ``consistency_grace``."""
        since, pause = time.time(), VISIBLE_FIRST_PAUSE
        while True:
            jobs = yield from self.find_jobs(name, path)
            if len(jobs) > 1:
                keys = ", ".join(job.key for job in jobs)
                raise AIDPDuplicateJobError(
                    f"{len(jobs)} jobs are named {name!r}{f' in {path!r}' if path else ''} ({keys}); "
                    "pass the job key or a path to choose one."
                )
            left = self._grace_left(since) if expected else 0.0
            if jobs or left <= 0:
                return jobs[0] if jobs else None
            log.info("AIDP job %r is not listed yet; listing again (consistency_grace)", name)
            yield Pause(min(pause, left))
            pause = min(pause * 2, VISIBLE_MAX_PAUSE)

    def get_job(self, job_key: str, created_at: float | None) -> Op[Job]:
        resp = yield from self._visible(Call("GET", ("jobs", job_key)), created_at)
        return _job(resp, "GET")

    def create_job(self, body: dict[str, Any], retry_token: str | None) -> Op[Job]:
        call = Call("POST", ("jobs",), payload=body, retry_token=retry_token or new_retry_token())
        return _job((yield call), "POST")

    def update_job(
        self, job_key: str, body: dict[str, Any], if_match: str | None, created_at: float | None
    ) -> Op[Job]:
        """Reading ``update_answer``: a PUT may answer 204 with no body; the job is then read."""
        call = Call("PUT", ("jobs", job_key), payload=body, if_match=if_match, allow_empty=True)
        resp = yield from self._visible(call, created_at)
        if resp.body is None:
            return (yield from self.get_job(job_key, created_at))
        return _job(resp, "PUT")

    def create_defined_job(
        self, head: dict[str, Any], body: dict[str, Any], retry_token: str
    ) -> Op[tuple[Job, bool]]:
        """Create a job in the two steps the service requires (a POST that inlines tasks is refused:
        POST the name-only ``head``, then PUT the whole ``body``): ``(job, True)``. Or ``(job, False)``
        when the name turns out to be a job already, for the caller to compare and update:

        * reading ``listing_lag``: a job the caller's listing did not show yet; the deterministic
          ``retry_token`` makes the service answer the create with it (its definition is there);
        * reading ``unique_names``: the create is refused (409) because another writer took the name
          first: that job, in this folder; a name taken elsewhere fails naming where.

        Reading ``read_after_create_lag``: the new job may answer 404 for a while (``_visible``). A
        job the token answers with that stays gone past the grace was deleted since: created again.
        """
        try:
            created_at = time.time()
            job = yield from self.create_job(head, retry_token)
        except AIDPConflictError as exc:  # the token follows the head: a 409 here is a taken name
            return (yield from self._taken_by(head, exc)), False
        try:
            current = yield from self.get_job(job.key, created_at)
        except AIDPNotFoundError:
            log.warning("Job %s from the retry token is gone; creating %r again", job.key, head.get("name"))
            created_at = time.time()
            job = yield from self.create_job(head, None)
            current = yield from self.get_job(job.key, created_at)
        if current.body().get("tasks"):
            return current, False
        return (yield from self.update_job(job.key, body, current.etag, created_at)), True

    def _taken_by(self, head: dict[str, Any], refusal: AIDPConflictError) -> Op[Job]:
        """The job whose name refused a create: this folder's (listed again while a lagging listing
        catches up, within ``consistency_grace``), or a conflict naming where the name is taken."""
        name, path = str(head.get("name")), head.get("path")
        since, pause = time.time(), VISIBLE_FIRST_PAUSE
        while True:
            named = yield from self.find_jobs(name, None)
            mine = yield from self.find_jobs(name, path)
            if len(mine) > 1:
                yield from self.find_job(name, path, False)  # names them as duplicates
            if mine:
                return (yield from self.get_job(mine[0].key, None))
            elsewhere = [f"{j.key} in {j.path!r}" for j in named]
            left = self._grace_left(since)
            if elsewhere or left <= 0:
                raise AIDPConflictError(
                    f"AIDP refused to create job {name!r} in {path!r}: the name is taken "
                    f"({', '.join(elsewhere) or 'by a job no listing shows'}): {refusal.message}. "
                    "Rename the job or delete the other one.",
                    status=refusal.status,
                    code=refusal.code,
                    opc_request_id=refusal.opc_request_id,
                    method=refusal.method,
                    path=refusal.path,
                ) from refusal
            yield Pause(min(pause, left))
            pause = min(pause * 2, VISIBLE_MAX_PAUSE)

    def delete_job(self, job_key: str) -> Op[None]:
        yield Call("DELETE", ("jobs", job_key), expect_json=False)

    # --- runs -----------------------------------------------------------------------------

    def create_job_run(
        self,
        job_key: str,
        parameters: dict[str, Any] | None,
        retry_token: str | None,
        created_at: float | None,
    ) -> Op[JobRun]:
        """A new run. ``created_at`` is the job's (a 404 naming a job created upstream moments ago);
        the same token is resent, so a POST that did start a run never starts a second."""
        payload = _with_parameters({"jobKey": job_key}, parameters)
        call = Call("POST", ("jobRuns",), payload=payload, retry_token=retry_token or new_retry_token())
        try:
            return (yield from self._model(JobRun, call, created_at))
        except AIDPConflictError as exc:
            if retry_token is None:
                raise
            raise AIDPRetryTokenConflictError.of(exc) from exc

    def get_job_run(self, run_key: str, include_task_runs: bool, created_at: float | None) -> Op[JobRun]:
        query = (("shouldIncludeTaskRunSummaries", True),) if include_task_runs else ()
        return (yield from self._model(JobRun, Call("GET", ("jobRuns", run_key), query=query), created_at))

    def list_job_runs(
        self, job_keys: Sequence[str], statuses: Sequence[str], limit: int | None
    ) -> Op[list[JobRunSummary]]:
        """Every run of ``job_keys`` (none: the workspace) in ``statuses`` (none: any), up to
        ``limit``; matched here. Reading ``run_list_filters=first_values_only``: a service may read
        one value of a repeated filter; until it has shown it applies them all, a value no run was
        listed for is listed alone once, and a service that reads one value gets one value a request."""
        keys, wanted = list(job_keys), list(statuses)
        if self.profile.repeats is False:
            runs: list[JobRunSummary] = []
            for one_key in [[k] for k in keys] or [[]]:
                for one_status in [[s] for s in wanted] or [[]]:
                    runs += yield from self._run_pages(one_key, one_status, None)
            return _runs_matching(runs, keys, wanted)[:limit]
        runs = _runs_matching((yield from self._run_pages(keys, wanted, limit)), keys, wanted)
        unsure = self.profile.repeats is None and (limit is None or len(runs) < limit)
        if unsure and (yield from self._repeats_ignored(keys, wanted, runs)):
            return (yield from self.list_job_runs(keys, wanted, limit))
        return runs

    def list_runs_created_since(self, job_keys: Sequence[str], since_ms: int) -> Op[list[JobRunSummary]]:
        """Every run of ``job_keys`` (none: the workspace) created at or after ``since_ms`` (epoch ms),
        any status: complete and matched here, whatever the service does with the window.

        The listing asks ``timeCreatedGreaterThanOrEqualTo`` (what is served stays bounded, however
        long the history) and ``sortBy=timeCreated&sortOrder=DESC`` (a listing may stop at the first
        page that reaches the bound). Reading ``time_filter=ignored``: older runs are served too and
        dropped here; where the sort is applied the listing stops at the first page that reaches them
        (about one page more), otherwise it reads every page: a cost that grows with history, never
        a missed run. Reading ``run_sort=ignored``: a listing stops early only once the service has
        shown that it sorts (``Profile.run_sort``) and only while this listing's pages are in order.
        A run listed without ``timeCreated`` is kept (it cannot be checked). A service that refuses
        the window's parameters (400 naming them) is listed without them, every page. Reading
        ``run_list_filters=first_values_only``: as :meth:`list_job_runs`, a later job key no run was
        listed for is listed alone once, and one job key a request once that is learned."""
        keys = list(job_keys)
        if self.profile.repeats is False:
            runs: list[JobRunSummary] = []
            for one in [[k] for k in keys] or [[]]:
                runs += yield from self._window(one, since_ms)
            return _runs_matching(runs, keys, ())
        runs = _runs_matching((yield from self._window(keys, since_ms)), keys, ())
        if self.profile.repeats is None and len(keys) > 1:
            listed = {r.job_key for r in runs}
            if any(k in listed for k in keys[1:]):
                self.profile.repeats = True  # a later job key was served: repeated filters are applied
            else:
                for key in keys[1:]:
                    if _runs_matching((yield from self._window([key], since_ms)), [key], ()):
                        log.info("AIDP reads only the first value of a repeated filter: one a request")
                        self.profile.repeats = False
                        return (yield from self.list_runs_created_since(keys, since_ms))
        return runs

    def _window(self, keys: list[str], since_ms: int) -> Op[list[JobRunSummary]]:
        """One bounded listing's runs created at or after ``since_ms`` (see the caller)."""
        since = dt.datetime.fromtimestamp(since_ms / 1000, dt.timezone.utc)
        window = (
            (
                "timeCreatedGreaterThanOrEqualTo",
                since.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            ),
            ("sortBy", "timeCreated"),
            ("sortOrder", "DESC"),
        )
        query = [("jobKey", k) for k in keys] + ([] if self.profile.window_refused else list(window))
        pager = Pager("/jobRuns", query, PAGE_SIZE, None)
        kept: dict[str, JobRunSummary] = {}
        order = _Order(self.profile)
        while not pager.done:
            try:
                items = pager.take((yield Call("GET", ("jobRuns",), query=pager.query())))
            except AIDPApiError as exc:
                if self.profile.window_refused or not _refuses_window(exc) or pager.page is not None:
                    raise
                log.info(
                    "AIDP refused a run listing bounded by creation time (%s); listing every run", exc.message
                )
                self.profile.window_refused = True
                return (yield from self._window(keys, since_ms))
            page = [parse_model(JobRunSummary, item, "GET", "/jobRuns", None) for item in items]
            for run in page:
                if run.time_created is None or run.time_created >= since_ms:
                    kept.setdefault(run.key, run)
            if order.saw(page, since_ms) and not pager.done:
                break  # newest first, in order so far, and past the bound: the rest is older
        return list(kept.values())

    def newest_run_created(self, job_keys: Sequence[str]) -> Op[int | None]:
        """When the newest run of ``job_keys`` was created (epoch ms), from one page listed newest
        first; None when they have no run. Reading ``run_sort=ignored``: that page is any page, and
        its newest run may be older than the newest: a window bounded by it is wider, never
        narrower. Reading ``run_list_filters=first_values_only``: one job key a request once learned
        (a page short of a full one is a census: a later job key missing from it is listed alone)."""
        keys = list(job_keys)
        sort = [] if self.profile.window_refused else [("sortBy", "timeCreated"), ("sortOrder", "DESC")]
        newest: int | None = None
        for part in ([[k] for k in keys] if self.profile.repeats is False else [keys]) or [[]]:
            query = [*(("jobKey", k) for k in part), *sort]
            page = yield from self._listed(JobRunSummary, ("jobRuns",), query, limit=PAGE_SIZE)
            page = _runs_matching(page, part, ())
            times = [r.time_created for r in page if r.time_created is not None]
            newest = max([*times, *([newest] if newest is not None else [])], default=None)
            unsure = self.profile.repeats is None and len(part) > 1 and len(page) < PAGE_SIZE
            if unsure and (yield from self._repeats_ignored(part, [], page)):
                return (yield from self.newest_run_created(keys))
        return newest

    def _repeats_ignored(
        self, keys: list[str], wanted: list[str], runs: Sequence[JobRunSummary | ActiveRun]
    ) -> Op[bool]:
        """Whether the service read only the first value of a repeated filter (learned once)."""
        later = [("jobKey", k) for k in keys[1:]] + [("status", s) for s in wanted[1:]]
        unseen = [
            (name, value)
            for name, value in later
            if not any((r.job_key if name == "jobKey" else r.status) == value for r in runs)
        ]
        if later and len(unseen) < len(later):
            self.profile.repeats = True  # a later value was served: repeated filters are applied
        for name, value in [] if self.profile.repeats else unseen:
            alone_keys, alone_statuses = ([value], wanted) if name == "jobKey" else (keys, [value])
            if _runs_matching(
                (yield from self._run_pages(alone_keys, alone_statuses, 1)), alone_keys, alone_statuses
            ):
                log.info("AIDP reads only the first value of a repeated filter: listing one value a request")
                self.profile.repeats = False
                return True
        return False

    def _run_pages(
        self,
        keys: Sequence[str],
        statuses: Sequence[str],
        limit: int | None,
        page_size: int = PAGE_SIZE,
        ahead: bool = False,
    ) -> Op[list[JobRunSummary]]:
        query = [*(("jobKey", k) for k in keys), *(("status", s) for s in statuses)]
        return (
            yield from self._listed(
                JobRunSummary, ("jobRuns",), query, limit=limit, page_size=page_size, ahead=ahead
            )
        )

    def list_active_run_states(self, job_keys: Sequence[str] | None) -> Op[list[ActiveRun]]:
        """:meth:`list_active_runs` as the status sweep needs it: key, job key and status of each
        run, no model per run (:class:`~airflow_provider_aidp.models.runs.ActiveRun` says why)."""
        return (yield from self._active(job_keys, lean=True))

    def list_active_runs(self, job_keys: Sequence[str] | None) -> Op[list[JobRunSummary]]:
        """A snapshot of the active runs of ``job_keys`` (None: the workspace), in as few requests
        as the service allows: repeated ``jobKey`` (50 a request) and ``status`` filters, the largest
        page it serves, each page booked ahead of queued requests (it answers for every run the
        status sweep follows). Not a census: runs in statuses the API cannot filter by and runs a
        lagging listing does not show yet (reading ``listing_lag``) are missing; read those by key,
        as the status sweep does.

        Reading ``run_list_filters=first_values_only``: until the service has shown that it applies
        repeated filters, a value no listed run carries is listed alone once (``Profile.repeats``);
        where it reads only the first value, the snapshot asks one job key and one status a request
        (4 requests a job instead of a GET per run). Readings ``page_size`` and ``queued_filter``: a
        refused listing asks for less (:meth:`_ask_less`)."""
        return (yield from self._active(job_keys, lean=False))

    def _active(self, job_keys: Sequence[str] | None, lean: bool) -> Op[list[Any]]:
        keys = list(job_keys or ())
        runs: list[Any] = []
        for part_keys, part_statuses in self._snapshot_parts(keys):
            runs += yield from self._snapshot(part_keys, part_statuses, lean)
        runs = _runs_matching(runs, keys, ())
        if self.profile.repeats is None:  # learned from the first request's filters
            first = keys[:JOB_KEYS_PER_LISTING]
            if (yield from self._repeats_ignored(first, list(self.profile.snapshot_statuses), runs)):
                return (yield from self._active(job_keys, lean))
        return runs

    def _snapshot_parts(self, keys: list[str]) -> list[tuple[list[str], list[str]]]:
        """(job keys, statuses) of each snapshot request."""
        statuses = list(self.profile.snapshot_statuses)
        if self.profile.repeats is False:  # one value of each filter a request
            return [(k, [s]) for k in ([[key] for key in keys] or [[]]) for s in statuses]
        return [(part, statuses) for part in (_chunks(keys) or [[]])]

    def _snapshot(self, keys: list[str], statuses: list[str], lean: bool) -> Op[list[Any]]:
        """One snapshot request's pages; a refusal asks for less and asks again."""
        while True:
            profile = self.profile
            wanted = [s for s in statuses if s in profile.snapshot_statuses]
            if statuses and not wanted:
                return []  # its only status was dropped: those runs are read by key
            try:
                size = profile.snapshot_page_size
                if lean:
                    return (yield from self._active_pages(keys, wanted, size))
                return (yield from self._run_pages(keys, wanted, None, size, ahead=True))
            except AIDPApiError as exc:
                if not self._ask_less(exc):
                    raise

    def _active_pages(self, keys: list[str], statuses: list[str], page_size: int) -> Op[list[ActiveRun]]:
        """Every page, each turned into :class:`ActiveRun` tuples as it arrives (its JSON freed)."""
        query = [*(("jobKey", k) for k in keys), *(("status", s) for s in statuses)]
        pager = Pager("/jobRuns", query, page_size, None)
        runs: list[ActiveRun] = []
        while not pager.done:
            runs += map(
                _active_run, pager.take((yield Call("GET", ("jobRuns",), query=pager.query(), ahead=True)))
            )
        return runs

    def _ask_less(self, refusal: AIDPApiError) -> bool:
        """After a refused snapshot, True to ask again for less. The refusal's structured parts
        first: only a 400 is about the request's parameters, and OCI's ``MissingParameter`` code
        says something required is missing, which asking for less cannot supply (reading
        ``run_list_filters=job_key_required``: the status sweep then learns job keys from GETs).
        Then its wording: ``limit`` costs the page size (down to the 100 served in the field notes),
        ``QUEUED`` that status filter (an older service refuses it, SDK 5.0.0), ``jobKey`` nothing
        (required); a refusal that names none of them steps down the page size, then ``QUEUED``."""
        if refusal.status != 400 or refusal.code == "MissingParameter":
            return False
        profile, text = self.profile, refusal.message.lower()
        if "jobkey" in text:
            return False
        if "limit" in text or ("queued" not in text and profile.snapshot_page_size > PAGE_SIZE):
            if profile.snapshot_page_size <= PAGE_SIZE:
                return False
            profile.snapshot_page_size = PAGE_SIZE
            return True
        if "QUEUED" not in profile.snapshot_statuses:
            return False
        profile.snapshot_statuses = tuple(s for s in profile.snapshot_statuses if s != "QUEUED")
        return True

    def cancel_job_run(self, run_key: str, created_at: float | None) -> Op[JobRun]:
        """The run as the cancel left it. Reading ``cancel_answer``: a 202 work request with no body
        is an answer too (the run is then read). A run that has already ended is refused (400/409):
        the run is read and returned as it is."""
        segments = ("jobRuns", run_key, "actions", "cancel")
        call = Call("POST", segments, retry_token=new_retry_token(), allow_empty=True)
        try:
            resp = yield from self._visible(call, created_at)
        except AIDPApiError as exc:
            if exc.status not in (400, 409):
                raise
            run = yield from self.get_job_run(run_key, False, None)
            if not is_terminal(run.status):
                raise
            log.info("AIDP job run %s already ended (%s); nothing to cancel", run_key, run.status)
            return run
        if resp.body is None:
            return (yield from self.get_job_run(run_key, False, None))
        return parse_model(JobRun, resp.body, "POST", call.path, resp.request_id)

    def cancel_job_runs(self, job_key: str) -> Op[list[str]]:
        """Cancel every active run of a job; return their keys. Reading ``no_cancel_job_runs``: where
        a surface lacks the ``cancelJobRuns`` action (404, as ``/jobs/{key}/actions/run`` is on
        ``20240831``) but the job exists, its active runs are cancelled one by one."""
        runs = yield from self.list_job_runs([job_key], [], None)
        active = [r.key for r in runs if is_active(r.status)]
        segments = ("jobs", job_key, "actions", "cancelJobRuns")
        try:
            yield Call("POST", segments, retry_token=new_retry_token(), expect_json=False)
        except AIDPNotFoundError:
            yield from self.get_job(job_key, None)  # a job that does not exist fails here, with its 404
            log.info("No cancelJobRuns action here; cancelling the runs of AIDP job %s one by one", job_key)
            for run_key in active:
                yield from self.cancel_job_run(run_key, None)
        return active

    def repair_job_run(
        self,
        run_key: str,
        repair_tasks: list[dict[str, Any]],
        parameters: dict[str, Any] | None,
        retry_token: str | None,
    ) -> Op[JobRun]:
        if not repair_tasks:
            raise AIDPConfigError("repair_tasks must name at least one task.", field="repair_tasks")
        payload = _with_parameters({"repairTasks": repair_tasks}, parameters)
        segments = ("jobRuns", run_key, "actions", "repair")
        call = Call("POST", segments, payload=payload, retry_token=retry_token or new_retry_token())
        try:
            return (yield from self._model(JobRun, call))
        except AIDPConflictError as exc:  # the caller's token already repaired with another body
            if retry_token is None:
                raise
            raise AIDPRetryTokenConflictError.of(exc) from exc

    # --- task runs and their outputs -------------------------------------------------------

    def list_task_runs(self, run_key: str) -> Op[list[TaskRun]]:
        """Every task run (every attempt) of a run. Reading ``run_list_filters``: another run's
        task runs are dropped should the service ignore ``jobRunKey`` (those listed without one
        are kept: they cannot be checked)."""
        listed = yield from self._listed(TaskRun, ("taskRuns",), [("jobRunKey", run_key)])
        return [t for t in listed if t.job_run_key is None or t.job_run_key == run_key]

    def get_task_run(self, task_run_key: str) -> Op[TaskRun]:
        return (yield from self._model(TaskRun, Call("GET", ("taskRuns", task_run_key))))

    def get_task_runs(self, run: JobRun, detail_failed: bool) -> Op[list[TaskRun]]:
        """One task run per task (its latest attempt) with its state, failed ones read in full, in
        execution order. From the run itself (its ``taskToTaskRunMap``; the states from
        ``taskRunSummaryMap``, read once more with ``shouldIncludeTaskRunSummaries`` if the run
        lacks them). Reading ``task_run_summaries``: the map may come without being asked for, never,
        keyed by task key, or flat. Readings ``no_task_run_listing`` and ``listed_attempts``: the
        ``taskRuns`` listing is only a fallback (it may be missing, or keep superseded attempts)."""
        if not run.task_run_summary_map:
            try:
                run = yield from self.get_job_run(run.key, True, None)
            except AIDPError as exc:
                log.warning("Could not read AIDP job run %s with its task runs: %s", run.key, exc)
        task_runs = task_runs_of(run)
        if task_runs is None or any(t.status is None for t in task_runs):
            task_runs = yield from self._task_run_fallback(run, task_runs or [])
        if detail_failed:
            task_runs = yield from self._detailed_all(task_runs, lambda t: t.status in TASK_FAILED_STATUSES)
        task_runs.sort(key=lambda t: (t.start_time is None, t.start_time or 0, t.task_key or ""))
        return task_runs

    def _task_run_fallback(self, run: JobRun, known: list[TaskRun]) -> Op[list[TaskRun]]:
        """States the run did not carry: from the listing, else one GET per task run of the map."""
        try:
            listed = yield from self.list_task_runs(run.key)
        except AIDPError as exc:
            log.info(
                "No task-run listing for AIDP job run %s (%s); reading task runs one by one", run.key, exc
            )
            return (yield from self._detailed_all(known, lambda t: t.status is None))
        if not known:
            return latest_per_task(listed)
        by_key = {t.key: t for t in listed}  # the map names the current attempts; the listing fills in
        known = [_merge(t, by_key[t.key]) if t.key in by_key else t for t in known]
        return (yield from self._detailed_all(known, lambda t: t.key not in by_key))

    def _detailed_all(self, task_runs: list[TaskRun], wanted: Callable[[TaskRun], bool]) -> Op[list[TaskRun]]:
        out = []
        for task_run in task_runs:
            out.append((yield from self._detailed(task_run)) if wanted(task_run) else task_run)
        return out

    def _detailed(self, task_run: TaskRun) -> Op[TaskRun]:
        try:
            return _merge(task_run, (yield from self.get_task_run(task_run.key)))
        except AIDPError as exc:
            log.warning("Could not read AIDP task run %s: %s", task_run.key, exc)
            return task_run

    def fetch_task_run_output(self, task_run_key: str, output_key: str | None) -> Op[TaskRunOutput]:
        payload = {"outputKey": output_key} if output_key else None  # no body rather than "{}"
        segments = ("taskRuns", task_run_key, "actions", "fetchOutput")
        call = Call("POST", segments, payload=payload, retry_token=new_retry_token())
        return (yield from self._model(TaskRunOutput, call))

    def read_task_run_output(self, task_run: TaskRun) -> Op[RenderedOutput | None]:
        """The output as log text (readings ``output_format`` and ``output_encoding``:
        ``models/outputs.py``), or None when the task run has none. A listing may leave out the
        ``outputKey``: the task run is then read for it."""
        output_key = task_run.output_key or (yield from self.get_task_run(task_run.key)).output_key
        if not output_key:
            return None
        return render((yield from self.fetch_task_run_output(task_run.key, output_key)))

    def export_task_run_output(
        self, task_run_key: str, output_key: str, fmt: str
    ) -> Op[ExportedTaskRunOutputContents]:
        if fmt not in ("HTML", "IPYNB"):
            raise AIDPConfigError(f"fmt must be 'HTML' or 'IPYNB', got {fmt!r}.", field="fmt")
        segments = ("taskRuns", task_run_key, "outputs", output_key, "actions", "export")
        call = Call("POST", segments, payload={"format": fmt})
        return (yield from self._model(ExportedTaskRunOutputContents, call))


# --- pure helpers -------------------------------------------------------------------------------------


def _job(resp: ApiResponse, method: str) -> Job:
    job = parse_model(Job, resp.body, method, "/jobs", resp.request_id)
    job.etag = header(resp.headers, "etag")
    return job


def _with_parameters(payload: dict[str, Any], parameters: Any) -> dict[str, Any]:
    params = string_parameters(parameters)  # THE converter: True -> "true", containers refused
    if params is not None:
        payload["parameters"] = [{"name": k, "value": v} for k, v in params.items()]
    return payload


_STATE_FIELDS = ("status", "stateMessage", "errorTrace", "isUserCanceledOrTimedOut")


def _summary(entry: Any, key: str) -> TaskRun | None:
    """One ``taskRunSummaryMap`` entry (untyped ``dict(str, object)`` in the SDK). Reading
    ``task_run_summaries=flat``: the state's fields may sit at the top instead of in ``state``."""
    if not isinstance(entry, dict):
        return None
    if "state" not in entry and "status" in entry:
        state = {k: v for k, v in entry.items() if k in _STATE_FIELDS}
        entry = {**{k: v for k, v in entry.items() if k not in _STATE_FIELDS}, "state": state}
    try:
        return TaskRun.model_validate({"key": key, **entry})
    except ValidationError:
        return None


def task_runs_of(run: JobRun) -> list[TaskRun] | None:
    """Task runs named by the run's ``taskToTaskRunMap`` (state from ``taskRunSummaryMap``, keyed
    by task-run key or by task key), or None when the run names none."""
    mapping, summaries = run.task_to_task_run_map, run.task_run_summary_map or {}
    if not mapping:
        return latest_per_task(_summary(s, k) for k, s in summaries.items()) if summaries else None
    out = []
    for task_key, tr_key in mapping.items():
        parsed = _summary(summaries.get(tr_key) or summaries.get(task_key), tr_key)
        if parsed is None or parsed.key != tr_key:
            parsed = TaskRun(key=tr_key, task_key=task_key)
        elif not parsed.task_key:
            parsed.task_key = task_key
        out.append(parsed)
    return out


def latest_per_task(task_runs: Iterable[TaskRun | None]) -> list[TaskRun]:
    """Keep each task's latest attempt: highest ``retryAttempt``, then latest start."""
    best: dict[str, TaskRun] = {}
    for tr in task_runs:
        if tr is None:
            continue
        name = tr.task_key or tr.name or tr.key
        current = best.get(name)
        if current is None or _order(tr) > _order(current):
            best[name] = tr
    return list(best.values())


def _order(tr: TaskRun) -> tuple[int, int]:
    return (tr.retry_attempt or 0, tr.start_time or 0)


def _merge(known: TaskRun, full: TaskRun) -> TaskRun:
    data = known.model_dump(exclude_none=True)
    data.update(full.model_dump(exclude_none=True))
    return TaskRun.model_validate(data)
