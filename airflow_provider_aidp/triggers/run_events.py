"""AIDPJobRunEventTrigger: one asset event per AIDP job run that finishes, whoever started it.

Use it in an ``AssetWatcher``::

    Asset("aidp://ws/daily_load", watchers=[AssetWatcher(
        name="daily_load_runs", trigger=AIDPJobRunEventTrigger(job_names=["daily_load"]))])

Each poll lists the watched jobs' runs *created since a bound* that trails the newest run listed
by ``lookback_seconds`` (``AIDPHook.a_list_runs_created_since``: complete and matched to those jobs
whatever the service does with the time filter and the sort), so a poll costs one request however
long the jobs' history is. A run that was not finished when seen is followed until it is, however
long before the bound it was created: while such a run exists the poll also lists the jobs' active
runs (``a_list_active_runs``, one request), and reads by key a followed run that neither listing
shows any more. It then yields one event per run not reported before (``runs/watermark.py``). The
event's payload becomes the asset event's ``extra["payload"]``.

Restarts: the watermark is saved in the asset state store (Airflow >= 3.3), ``commit_delay``
seconds after the events it covers were yielded, i.e. after the triggerer has normally handed
them to the metadata database. A restart resumes from it: runs that ended while no triggerer
ran the watcher are reported, runs reported before are not -- except for a restart within
``commit_delay`` seconds of an event, which reports that event again (at-least-once). Without
a state store (Airflow < 3.3) the watermark is in memory and a restart starts a new baseline:
runs that ended while the watcher was down are not reported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_aidp import compat
from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPDuplicateJobError, AIDPNotFoundError
from airflow_provider_aidp.models.runs import TERMINAL_STATUSES, JobRunSummary
from airflow_provider_aidp.runs import watermark as wm
from airflow_provider_aidp.runs.wait import describe

if TYPE_CHECKING:
    from airflow_provider_aidp.hooks.aidp import AIDPHook

STATE_KEY_PREFIX = "aidp_run_events"
#: Logged once the first watermark is saved: runs that finished before it are history (not
#: reported); a run that finishes after it is reported. (The e2e tests wait for this line.)
BASELINE_LOG = (
    "Baseline of AIDP job runs taken: %d finished runs count as history, %d unfinished are "
    "followed; every run that finishes from now on is reported"
)
DEFAULT_COMMIT_DELAY = 5.0
MAX_ERROR_DELAY = 300.0


def _names(value: Sequence[str] | str | None, field: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise AIDPConfigError(f"{field} must be a list of non-empty strings; got {value!r}.", field=field)
    return items


class AIDPJobRunEventTrigger(BaseEventTrigger):
    """Yield one event per finished run of the watched jobs (for ``AssetWatcher``).

    :param job_keys: keys of the jobs to watch.
    :param job_names: names of jobs to watch (resolved to keys on start; exactly one job each).
    :param folder: folder (``path``) the named jobs live in, when names are not unique.
    :param statuses: terminal statuses to report (default ``["SUCCESS"]``).
    :param aidp_conn_id: Airflow connection id; ``workspace_key`` overrides its workspace.
    :param poll_interval: seconds between polls.
    :param lookback_seconds: how late (after a later run ended) a run may be reported terminal
        by the service and still be caught.
    :param commit_delay: seconds between yielding events and saving the watermark that covers them.
    :param include_parameters: read each reported run once (``GET /jobRuns/{key}``) for its parameters.
    """

    def __init__(
        self,
        *,
        job_keys: Sequence[str] | None = None,
        job_names: Sequence[str] | None = None,
        folder: str | None = None,
        statuses: Sequence[str] = ("SUCCESS",),
        aidp_conn_id: str = "aidp_default",
        workspace_key: str | None = None,
        poll_interval: float = 60.0,
        lookback_seconds: float = wm.DEFAULT_LOOKBACK_SECONDS,
        commit_delay: float = DEFAULT_COMMIT_DELAY,
        include_parameters: bool = True,
    ) -> None:
        super().__init__()
        self.job_keys = _names(job_keys, "job_keys")
        self.job_names = _names(job_names, "job_names")
        if not self.job_keys and not self.job_names:
            raise AIDPConfigError(
                "Pass job_keys or job_names: the jobs whose runs to watch.", field="job_keys"
            )
        self.statuses = sorted(set(_names(statuses, "statuses")))
        unknown = set(self.statuses) - TERMINAL_STATUSES
        if not self.statuses or unknown:
            raise AIDPConfigError(
                f"statuses must be terminal run statuses ({sorted(TERMINAL_STATUSES)}); got {statuses!r}.",
                field="statuses",
            )
        for name, value in (("poll_interval", poll_interval), ("commit_delay", commit_delay)):
            if float(value) < 0:
                raise AIDPConfigError(f"{name} must be >= 0 seconds; got {value!r}.", field=name)
        if float(lookback_seconds) < 0:
            raise AIDPConfigError("lookback_seconds must be >= 0.", field="lookback_seconds")
        self.folder = folder
        self.aidp_conn_id = aidp_conn_id
        self.workspace_key = workspace_key
        self.poll_interval = float(poll_interval)
        self.lookback_seconds = float(lookback_seconds)
        self.commit_delay = float(commit_delay)
        self.include_parameters = bool(include_parameters)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Every ``__init__`` parameter (normalized), read from its attribute: a restarted triggerer
        resumes the same watcher, and a new parameter cannot be left out."""
        names = list(inspect.signature(AIDPJobRunEventTrigger.__init__).parameters)[1:]
        return f"{type(self).__module__}.{type(self).__qualname__}", {n: getattr(self, n) for n in names}

    @property
    def state_key(self) -> str:
        """Asset-state key of this watcher: stable across restarts, distinct per watched set."""
        what = [
            self.aidp_conn_id,
            self.workspace_key,
            self.job_keys,
            self.job_names,
            self.folder,
            self.statuses,
        ]
        return f"{STATE_KEY_PREFIX}:{hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]}"

    @property
    def _lookback_ms(self) -> int:
        return int(self.lookback_seconds * 1000)

    def _hook(self) -> AIDPHook:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        return AIDPHook(aidp_conn_id=self.aidp_conn_id, workspace_key=self.workspace_key)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        store = WatermarkStore(getattr(self, "asset_state_store", None), self.state_key)
        async with hook.session_lease():
            mark = await store.load()
            self.log.info(
                "Watching AIDP job runs (%s); watermark %s (%s)",
                ", ".join(self.job_keys + self.job_names),
                "resumed" if mark else "to be baselined",
                "asset state store" if store.durable else "in memory only: a restart re-baselines",
            )
            keys: list[str] = []
            errors = 0
            last_yield: float | None = None
            saved = mark
            while True:
                try:
                    keys = keys or await self._resolve(hook)
                    if mark is None:
                        mark = saved = await self._baseline(hook, keys)
                        await store.save(mark)
                        self.log.info(BASELINE_LOG, len(mark.seen), len(mark.open))
                    else:
                        runs = await self._look(hook, keys, mark)
                        emit, target = wm.select(mark, runs, self.statuses, self._lookback_ms, job_keys=keys)
                        target = wm.follow(target, runs, self._lookback_ms, job_keys=keys)
                        for run in emit:
                            yield TriggerEvent(await self._payload(hook, run))
                            last_yield = time.monotonic()
                            mark = wm.record(mark, run, self._lookback_ms)
                        mark = saved = await self._commit(store, saved, target, last_yield)
                    errors = 0
                except (asyncio.CancelledError, AIDPDuplicateJobError):
                    raise
                except Exception as exc:  # the watcher outlives outages; it reports them in its log
                    errors += 1
                    self.log.warning("Polling AIDP job runs failed (%s); will retry.", describe(exc))
                    await asyncio.sleep(min(MAX_ERROR_DELAY, max(1.0, self.poll_interval) * errors))
                    continue
                await asyncio.sleep(self.poll_interval)

    async def _commit(
        self,
        store: WatermarkStore,
        saved: wm.Watermark | None,
        target: wm.Watermark,
        last_yield: float | None,
    ) -> wm.Watermark:
        """Save ``target`` (if it moved) once the events it covers have had ``commit_delay`` s to
        reach the database. Only reached after every event of the poll was yielded, so ``target``
        covers no run that was not reported.
        """
        if target == saved:
            return target
        if last_yield is not None:
            await asyncio.sleep(max(0.0, self.commit_delay - (time.monotonic() - last_yield)))
        await store.save(target)
        return target

    async def _baseline(self, hook: AIDPHook, keys: list[str]) -> wm.Watermark:
        """The first watermark: the window from ``lookback`` before the newest run, and every active
        run (however old); what has finished counts as reported."""
        since = wm.bound(await hook.a_newest_run_created(keys), self._lookback_ms)
        runs = await hook.a_list_runs_created_since(keys, since) + await hook.a_list_active_runs(keys)
        return wm.baseline(runs, self._lookback_ms, job_keys=keys, since_ms=since)

    async def _look(self, hook: AIDPHook, keys: list[str], mark: wm.Watermark) -> list[JobRunSummary]:
        """One poll's runs, in the order looked at: the window, the active runs when a followed run
        predates the window, and a read of each followed run neither listing shows."""
        runs = await hook.a_list_runs_created_since(keys, mark.since_ms)
        if wm.needs_active(mark):
            runs += await hook.a_list_active_runs(keys)
        for key in wm.owed(mark, runs):
            try:
                run = await hook.a_get_job_run(key)
            except AIDPNotFoundError:  # deleted: nothing left to report
                continue
            runs.append(JobRunSummary.model_validate(run.to_api()))
        return runs

    async def _resolve(self, hook: AIDPHook) -> list[str]:
        """Job keys to list: the given keys plus one key per job name (a missing job is retried)."""
        keys = list(self.job_keys)
        for name in self.job_names:
            jobs = await hook.a_find_jobs(name, self.folder)
            if len(jobs) > 1:
                raise AIDPDuplicateJobError(
                    f"{len(jobs)} jobs are named {name!r}; pass folder= or job_keys= to choose one."
                )
            if not jobs:
                raise LookupError(f"no job named {name!r}{f' in {self.folder!r}' if self.folder else ''}")
            keys.append(jobs[0].key)
        return sorted(set(keys))

    async def _payload(self, hook: AIDPHook, run: wm.FinishedRun) -> dict[str, Any]:
        """What a downstream DAG reads from ``triggering_asset_events[...][0].extra["payload"]``."""
        summary = run.summary
        params = (summary.model_extra or {}).get("parameters")
        if params is None and self.include_parameters:
            params = [p.to_api() for p in (await hook.a_get_job_run(run.key)).parameters or []]
        return {
            "run_key": run.key,
            "run_name": summary.name,
            "job_key": summary.job_key,
            "job_name": (summary.model_extra or {}).get("jobName"),
            "status": run.status,
            "state_message": summary.state.state_message,
            "launched": (summary.model_extra or {}).get("launched"),
            "start_time": _iso(summary.start_time),
            "end_time": _iso(run.end_ms),
            "parameters": {str(p.get("name")): p.get("value") for p in params or [] if isinstance(p, dict)},
            "console_url": await hook.a_get_run_url(run.key, summary.job_key),
        }


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


class WatermarkStore:
    """Load/save one trigger's :class:`~airflow_provider_aidp.runs.watermark.Watermark` under ``key``
    in every watched asset's state (Airflow >= 3.3); without a store, the watermark lives in memory
    only and a restart starts from a new baseline."""

    def __init__(self, store: Any, key: str) -> None:
        self._accessors = compat.asset_state_accessors(store)
        self.key = key

    @property
    def durable(self) -> bool:
        return bool(self._accessors)

    async def load(self) -> wm.Watermark | None:
        """The most advanced stored watermark (assets sharing a trigger may lag one another)."""
        marks = [wm.Watermark.from_json(await acc.aget(self.key)) for acc in self._accessors]
        found = [m for m in marks if m is not None]
        return max(found, key=lambda m: m.end_ms) if found else None

    async def save(self, mark: wm.Watermark) -> None:
        value = mark.to_json()
        for acc in self._accessors:
            await acc.aset(self.key, value)
