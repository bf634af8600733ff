"""Response models for job runs, task runs and their outputs, plus run-status classification.

These are read-side models, lenient in what they accept because only the field notes were
verified live: unknown fields are kept (the service adds fields over time), unknown status values
are kept and logged once (a newer service than this provider), numbers are accepted where the SDK
says string (``length``, keys), and times may be epoch milliseconds or RFC 3339 strings. Python
names are snake_case; JSON names are the API's camelCase via aliases; either may build one.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic.alias_generators import to_camel

from airflow_provider_aidp.exceptions import AIDPConfigError

log = logging.getLogger(__name__)


def _text(value: Any) -> Any:
    """A number (or bool) where the SDK says string: keep it, as text."""
    return param_text(value) if isinstance(value, bool | int | float) else value


def param_text(value: Any) -> str:
    """THE converter of a parameter / query value to the API's string: ``True`` -> ``"true"``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def string_parameters(parameters: Any, field: str = "parameters") -> dict[str, str] | None:
    """Job-run parameters are strings in the API; scalars are converted, containers refused."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise AIDPConfigError(
            f"{field} must be a dict of name -> value; got {type(parameters).__name__}.", field=field
        )
    for name, value in parameters.items():
        if isinstance(value, dict | list | tuple | set) or value is None:
            raise AIDPConfigError(
                f"{field}[{name!r}] must be a string or number (AIDP parameters are strings); "
                f"got {type(value).__name__}. Serialize it yourself, e.g. with json.dumps.",
                field=field,
            )
    return {str(name): param_text(value) for name, value in parameters.items()}


def _millis(value: Any) -> Any:
    """Epoch milliseconds from an int, a numeric string or an RFC 3339 / ISO 8601 string."""
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None  # a time we cannot read is not worth failing a run over
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return int(parsed.timestamp() * 1000)
    return value


#: A string field that tolerates numbers.
Text = Annotated[str, BeforeValidator(_text)]
OptText = Annotated[str | None, BeforeValidator(_text)]
#: A time as epoch milliseconds, whichever form the service sends.
Millis = Annotated[int | None, BeforeValidator(_millis)]


class ResponseModel(BaseModel):
    """Base of every model read from the API: camelCase aliases, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="allow",
        frozen=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The JSON shape the API uses (camelCase, no unset fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --- status classification -------------------------------------------------------------------

SUCCESS = "SUCCESS"
#: Still moving: keep polling.
ACTIVE_STATUSES = frozenset({"PENDING", "QUEUED", "RUNNING", "BLOCKED", "CANCELING", "PAUSED_MAINTENANCE"})
#: Ended and unsuccessful.
FAILED_STATUSES = frozenset({"FAILED", "INTERNAL_ERROR", "TIMED_OUT", "UPSTREAM_FAILED"})
CANCELED_STATUSES = frozenset({"CANCELED", "UPSTREAM_CANCELED"})
NOT_RUN_STATUSES = frozenset({"SKIPPED", "EXCLUDED"})
TERMINAL_STATUSES = frozenset({SUCCESS}) | FAILED_STATUSES | CANCELED_STATUSES | NOT_RUN_STATUSES
#: Task statuses that count as "this task failed" (UPSTREAM_* are consequences, listed apart).
TASK_FAILED_STATUSES = (FAILED_STATUSES - {"UPSTREAM_FAILED"}) | {"CANCELED"}
KNOWN_STATUSES = ACTIVE_STATUSES | TERMINAL_STATUSES


#: Other spellings of known statuses that are clearly the same thing.
STATUS_SPELLINGS = {
    "SUCCEEDED": SUCCESS,
    "SUCCESSFUL": SUCCESS,
    "CANCELLED": "CANCELED",
    "CANCELLING": "CANCELING",
    "TIMEDOUT": "TIMED_OUT",
    "UPSTREAM_CANCELLED": "UPSTREAM_CANCELED",
}
_REPORTED_UNKNOWN: set[str] = set()


def normalize_status(value: Any) -> Any:
    """A known status in its canonical spelling; an unknown one is kept as sent (and logged once)."""
    if not isinstance(value, str):
        return _text(value)
    upper = value.strip().upper().replace(" ", "_")
    status = STATUS_SPELLINGS.get(upper, upper)
    if status in KNOWN_STATUSES:
        return status
    if value not in _REPORTED_UNKNOWN:
        _REPORTED_UNKNOWN.add(value)
        log.warning("AIDP reported status %r, unknown to this provider; treating it as not finished", value)
    return value


def is_terminal(status: str | None) -> bool:
    """True when a run or task run will not change state again.

    An unknown status (newer than this provider) is treated as *not* terminal: the caller keeps
    polling and its wait timeout bounds the damage, which is safer than failing a healthy run.
    """
    return status in TERMINAL_STATUSES


def is_active(status: str | None) -> bool:
    """True for every status that is not terminal, including unknown and missing ones."""
    return not is_terminal(status)


# --- models ----------------------------------------------------------------------------------


class State(ResponseModel):
    status: OptText = None
    state_message: OptText = None
    error_trace: OptText = None
    is_user_canceled_or_timed_out: bool | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return normalize_status(value)


class Parameter(ResponseModel):
    name: Text
    value: OptText = None


class JobSummary(ResponseModel):
    key: Text
    name: OptText = None
    path: OptText = None


class Job(ResponseModel):
    """A job definition as ``GET /jobs/{key}`` (or a create / update) answers it.

    Only what the provider reads is typed; every other field (tasks, clusters, parameters, and
    whatever the service fills in) is kept as sent, so :meth:`body` is the definition to compare
    or resend. ``etag`` is the answer's header, for an update's ``if-match``.
    """

    key: Text
    name: OptText = None
    path: OptText = None
    max_concurrent_runs: int | None = None
    etag: str | None = Field(default=None, exclude=True)

    def body(self) -> dict[str, Any]:
        """The definition's JSON (camelCase), without the etag."""
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)


class RepairHistory(ResponseModel):
    type: str | None = None
    key: int | None = None
    state: State | None = None
    task_to_task_run_map: dict[str, Text] | None = None
    repaired_tasks: list[str] | None = None


class JobRun(ResponseModel):
    key: Text
    name: OptText = None
    job_key: OptText = None
    job_name: OptText = None
    root_job_run_key: OptText = None
    state: State = Field(default_factory=State)
    task_to_task_run_map: dict[str, Text] | None = None
    task_run_summary_map: dict[str, Any] | None = None
    parameters: list[Parameter] | None = None
    repair_history: list[RepairHistory] | None = None
    repair_key: int | None = None
    repaired_tasks: list[str] | None = None
    start_time: Millis = None
    end_time: Millis = None
    execution_duration: int | None = None
    run_duration: int | None = None

    @property
    def status(self) -> str | None:
        return self.state.status

    @property
    def repair_generation(self) -> str:
        """Which repair of the run this state is (a repair's retry token must differ per repair):
        ``repairKey`` (SDK >= 5.1.1), else the newest ``repairHistory`` entry, else the end time."""
        if self.repair_key is not None:
            return str(self.repair_key)
        history = self.repair_history or []
        keys = [h.key for h in history if h.key is not None]
        if keys or history:
            return str(max(keys) if keys else len(history) - 1)
        return "0" if self.end_time is None else f"ended@{self.end_time}"


class JobRunSummary(ResponseModel):
    key: Text
    name: OptText = None
    job_key: OptText = None
    state: State = Field(default_factory=State)
    start_time: Millis = None
    end_time: Millis = None
    #: When the service created the run (its listings filter and sort by it): epoch ms.
    time_created: Millis = None

    @property
    def status(self) -> str | None:
        return self.state.status


class ActiveRun(NamedTuple):
    """A run as the status sweep's snapshot needs it: key, job key, status (normalized).

    A plain tuple of strings, not a model: the sweep reads thousands of runs a few times a poll
    interval, and a model per run (several objects the garbage collector tracks, each outliving
    the listing's page requests) made CPython's full collections (~150 ms at 5,000 runs) come every
    couple of seconds; a tuple of strings is not tracked at all.
    """

    key: str
    job_key: str | None
    status: str | None


class TaskRun(ResponseModel):
    """A task run (GET /taskRuns/{key}) or a task-run summary (GET /taskRuns?jobRunKey=...)."""

    key: Text
    name: OptText = None
    task_key: OptText = None
    job_run_key: OptText = None
    state: State = Field(default_factory=State)
    start_time: Millis = None
    end_time: Millis = None
    execution_duration: int | None = None
    retry_attempt: int | None = None
    output_key: OptText = None
    task: dict[str, Any] | None = None

    @property
    def status(self) -> str | None:
        return self.state.status


class RunOutputData(ResponseModel):
    type: OptText = None
    value: OptText = None
    is_base64: bool | None = None
    compression: OptText = None
    charset: OptText = None
    length: OptText = None


class OutputParameter(ResponseModel):
    name: Text
    value: OptText = None


class TaskRunOutput(ResponseModel):
    key: OptText = None
    task_type: OptText = None
    is_truncated: bool | None = None
    error_trace: OptText = None
    data: list[RunOutputData] = Field(default_factory=list)
    output_parameters: list[OutputParameter] | None = None


class ExportedTaskRunOutputContents(ResponseModel):
    name: str | None = None
    path: str | None = None
    content: Any = None
    format: str | None = None
