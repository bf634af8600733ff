"""The one place that knows which Airflow 3.x release moved or added what.

Supported: Airflow 3.0 to 3.3 (the versions ``.ci/run`` tests). Everything else in the provider
imports Airflow names from here when they differ between those releases, and asks the ``HAS_*``
flags (feature checks, not version numbers) before relying on a newer capability:

- ``BaseHook`` is public in ``airflow.sdk`` from 3.1; 3.0 has only ``airflow.hooks.base``.
- ``AirflowSkipException`` is in ``airflow.sdk.exceptions`` from 3.1; 3.0 has only ``airflow.exceptions``.
- ``BaseHook.aget_connection`` (an async connection lookup) exists from 3.1.
- ``amask_secret`` (an event-loop safe secrets-masker registration) exists from 3.3; the provider's
  one masking helper (:func:`mask_secret` / :func:`amask_secret`) is here for that reason.
- ``task_state_store`` in the task context (crash recovery of the run key) exists from 3.3.
- ``BaseTrigger.on_kill`` (a user's kill reaches the trigger) exists from 3.3.
- ``asset_state_store`` (an asset watcher's trigger state in the metadata DB) exists from 3.3.
- Every release gives each *try* of a task instance a new id, a UUIDv7 made when the try was
  prepared (a clear, a retry, the run's creation): :func:`try_created_at` reads its time. The other
  task instances' states of a DAG run come from ``RuntimeTaskInstance.get_task_states``
  (:func:`task_states`), also on every release.

The degradation messages are here too, so every caller says the same thing, once per task try.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

import airflow
from airflow.triggers.base import BaseTrigger

try:  # Airflow >= 3.1
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

try:  # Airflow >= 3.1 (``airflow.exceptions`` only re-exports it, deprecated)
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef,attr-defined]

__all__ = [
    "AIRFLOW_VERSION",
    "HAS_AMASK_SECRET",
    "HAS_TASK_STATE_STORE",
    "HAS_TRIGGER_ON_KILL",
    "NO_STATE_STORE_NOTE",
    "NO_TRIGGER_ON_KILL_NOTE",
    "AirflowSkipException",
    "BaseHook",
    "aget_connection",
    "amask_secret",
    "asset_state_accessors",
    "mask_secret",
    "secret_parts",
    "secrets_masker_module",
    "task_state_store",
    "task_states",
    "try_created_at",
]

AIRFLOW_VERSION: str = airflow.__version__


def _context_has(key: str) -> bool:
    from airflow.sdk.definitions.context import Context

    return key in getattr(Context, "__annotations__", {})


#: Task contexts carry ``task_state_store`` (Airflow >= 3.3).
HAS_TASK_STATE_STORE: bool = _context_has("task_state_store")

#: The triggerer calls ``BaseTrigger.on_kill`` when a user kills a deferred task (Airflow >= 3.3).
HAS_TRIGGER_ON_KILL: bool = "on_kill" in vars(BaseTrigger)


def _has_amask_secret() -> bool:
    import airflow.sdk.log as sdk_log

    return hasattr(sdk_log, "amask_secret")


HAS_AMASK_SECRET: bool = _has_amask_secret()

NO_STATE_STORE_NOTE = (
    f"Airflow {AIRFLOW_VERSION} has no task_state_store (needs >= 3.3): the opc-retry-token alone "
    "protects against duplicate AIDP runs when a worker dies mid-task."
)
NO_TRIGGER_ON_KILL_NOTE = (
    f"Airflow {AIRFLOW_VERSION} does not tell a trigger when a user kills a deferred task (needs >= 3.3): "
    "marking this task failed or success while it waits leaves the AIDP run running; the wait "
    "deadline (timeout / execution_timeout) still cancels it."
)


def task_state_store(context: Any, log: logging.Logger | Any) -> Any:
    """The context's ``task_state_store`` or ``None``; on Airflow < 3.3 say once why that is safe."""
    store = context.get("task_state_store")
    if store is None:
        log.info(NO_STATE_STORE_NOTE)
    return store


async def aget_connection(hook: Any, conn_id: str) -> Any:
    """``hook.aget_connection(conn_id)``; on Airflow 3.0 the sync lookup through asgiref's
    ``sync_to_async``, whose worker thread lets the triggerer's ``async_to_sync`` supervisor call
    run on the triggerer's own loop (a plain thread would start a second loop on its streams)."""
    if hasattr(hook, "aget_connection"):
        return await hook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(hook.get_connection)(conn_id)


def secret_parts(value: str | None) -> list[str]:
    """The strings of one secret to register with the masker: the value itself and, for a
    multi-line value such as a PEM key, each body line (some tracebacks and log formatters print a
    key line by line). The ONE rule both :func:`mask_secret` and :func:`amask_secret` apply."""
    if not value:
        return []
    lines = (line.strip() for line in value.splitlines()) if "\n" in value else ()
    return [value, *(line for line in lines if len(line) >= 16 and not line.startswith("-----"))]


def mask_secret(value: str | None) -> None:
    """Register a secret with Airflow's secrets masker, in this process and (in a task) its supervisor.

    Synchronous: it may make a blocking supervisor round-trip, so never call it on an event loop
    (use :func:`amask_secret` there). Airflow masks extras by *name* only for names such as
    ``private_key`` or ``passphrase``; it does not know ``key_content`` or a session token, so
    every secret value the provider reads is registered here.
    """
    from airflow.sdk.log import mask_secret as _mask

    for part in secret_parts(value):
        _mask(part)


async def amask_secret(value: str | None) -> None:
    """:func:`mask_secret` for code running on an event loop, without blocking it.

    Airflow >= 3.3 has ``amask_secret`` (also tells the supervisor, asynchronously). Before 3.3 the
    sync ``mask_secret`` would make a blocking (3.0: raising) supervisor round-trip from inside the
    triggerer's loop, so the value is registered with this process's masker only; the supervisor
    still masks the connection's own secret fields, and the provider never logs secrets itself.
    """
    for part in secret_parts(value):
        if HAS_AMASK_SECRET:
            from airflow.sdk.log import amask_secret as _amask

            await _amask(part)
        else:
            secrets_masker_module()._secrets_masker().add_mask(part, None)


def secrets_masker_module() -> ModuleType:
    """Airflow's secrets-masker module (``redact``, ``reset_secrets_masker``; moved in 3.1)."""
    try:  # Airflow >= 3.1
        return importlib.import_module("airflow.sdk._shared.secrets_masker")
    except ImportError:  # Airflow 3.0
        return importlib.import_module("airflow.sdk.execution_time.secrets_masker")


def asset_state_accessors(store: Any) -> list[Any]:
    """One ``aget``/``aset`` accessor per asset an event trigger watches (Airflow >= 3.3 injects
    ``asset_state_store``, scoped to every asset sharing the trigger); none before 3.3."""
    if store is None:
        return []
    by_name = getattr(store, "_by_name", None)
    by_uri = getattr(store, "_by_uri", None)
    if isinstance(by_name, dict) and isinstance(by_uri, dict):
        return [*by_name.values(), *by_uri.values()]
    return [store]


def try_created_at(ti: Any) -> float | None:
    """When Airflow prepared this try of the task instance (epoch seconds), or ``None`` if unknown.

    Airflow 3.0-3.3 give a task instance a new id whenever they prepare a new try of it: when a user
    clears it, when it is set up for a retry, when a lost try is reset (``prepare_db_for_next_try``);
    the first try's id is made with the DAG run. The id is a UUIDv7, whose first 48 bits are that
    moment in Unix milliseconds (RFC 9562), on the metadata DB host's clock. ``None`` for an id that
    is not a UUIDv7 (a test double, a future release that stops stamping tries).
    """
    import uuid

    try:
        value = uuid.UUID(str(getattr(ti, "id", "")))
    except ValueError:
        return None
    if value.version != 7:
        return None
    return (value.int >> 80) / 1000.0


def task_states(ti: Any, task_ids: list[str]) -> dict[str, str | None]:
    """The current state of ``task_ids`` in this task instance's DAG run (unmapped tasks); a task
    with no instance yet is left out. ``RuntimeTaskInstance.get_task_states`` on every release."""
    if not task_ids:
        return {}
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(task_ids), run_ids=[ti.run_id])
    states = (found or {}).get(ti.run_id, {})
    return {task_id: (None if state is None else str(state)) for task_id, state in states.items()}
