"""Job definitions as code: make an AIDP job match a spec kept in the DAG repository, or delete one.

Import stays cheap (DAG files are parsed constantly): the job models, yaml and the hook load
inside ``__init__`` only when the spec is static, and inside ``execute`` otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_aidp.exceptions import AIDPConfigError, AIDPNotFoundError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_aidp.models.jobs import JobSpec

SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def _has_jinja(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(_has_jinja(k) or _has_jinja(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_jinja(v) for v in value)
    return False


def read_spec_file(path: Path) -> Any:
    """A JSON or YAML spec file as plain data; AIDPConfigError for a missing file, bad syntax or no yaml."""
    if not path.is_file():
        raise AIDPConfigError(f"spec: file {str(path)!r} does not exist", field="spec")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise AIDPConfigError(f"spec: {path.name} is not valid JSON: {err}", field="spec") from None
    try:
        import yaml
    except ImportError:
        raise AIDPConfigError(
            f"spec: {path.name} is YAML but PyYAML is not installed; "
            "pip install 'airflow-provider-aidp[yaml]' (or use a .json file)",
            field="spec",
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise AIDPConfigError(f"spec: {path.name} is not valid YAML: {err}", field="spec") from None


class AIDPCreateJobOperator(BaseOperator):
    """Create or update an AIDP job so it matches ``spec``; return its key.

    :param spec: the job as a dict (snake_case or camelCase), a ``JobSpec``, or the path of a
        ``.json``/``.yaml`` file, relative to the DAG file's folder. Templated.
    :param workspace_key: workspace; defaults to the connection's ``workspace_key``. Templated.
    :param aidp_conn_id: the ``aidp`` connection.
    :param dry_run: validate and log the diff, write nothing.

    Pushes ``job_key`` and ``action`` (``created``/``updated``/``unchanged``) to XCom; the
    return value is the job key. A spec without Jinja is validated when the DAG is parsed, so a
    typo is an import error in the UI rather than a failed task.
    """

    template_fields: Sequence[str] = ("spec", "workspace_key")
    ui_color = "#c74634"

    def __init__(
        self,
        *,
        spec: JobSpec | Mapping[str, Any] | str,
        workspace_key: str | None = None,
        aidp_conn_id: str = "aidp_default",
        dry_run: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.workspace_key = workspace_key
        self.aidp_conn_id = aidp_conn_id
        # Not ``self.dry_run``: BaseOperator.dry_run() is a method.
        self.diff_only = dry_run
        if not _has_jinja(spec):
            self._resolve(spec)  # parse-time validation of static specs

    def _spec_path(self, value: str) -> Path:
        path = Path(value)
        if not path.is_absolute():
            fileloc = getattr(getattr(self, "dag", None), "fileloc", None) if self.has_dag() else None
            base = Path(fileloc).parent if fileloc else Path.cwd()
            path = base / path
        return path

    def _resolve(self, spec: Any) -> JobSpec:
        from airflow_provider_aidp.models.jobs import load_spec

        if isinstance(spec, str):
            if not spec.endswith(SPEC_SUFFIXES):
                raise AIDPConfigError(
                    f"spec: {spec!r} is a string but not a .json/.yaml/.yml file path; "
                    "pass a dict, a JobSpec or a spec file",
                    field="spec",
                )
            spec = read_spec_file(self._spec_path(spec))
        return load_spec(spec)

    def execute(self, context: Context) -> str | None:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        spec = self._resolve(self.spec)
        hook = AIDPHook(self.aidp_conn_id, workspace_key=self.workspace_key)
        fmt: Any = hook.get_config().depends_on_format
        self.log.info(
            "Job spec %r (validated; the body a PUT would carry):\n%s", spec.name, spec.to_json(fmt)
        )
        result = hook.upsert_job(spec, dry_run=self.diff_only)
        self.log.info(
            "Job %r: %s%s (key %s)",
            spec.name,
            result.action,
            " (dry run)" if self.diff_only else "",
            result.job_key,
        )
        ti = context["ti"]
        if result.job_key is not None:  # a dry run of a new job has none (Airflow 3.0 cannot push None)
            ti.xcom_push(key="job_key", value=result.job_key)
        ti.xcom_push(key="action", value=result.action)
        return result.job_key


class AIDPDeleteJobOperator(BaseOperator):
    """Delete an AIDP job by key, or by name (and path).

    :param missing_ok: succeed when the job is already gone (by name: no such job; by key: 404).
    """

    template_fields: Sequence[str] = ("job_key", "job_name", "job_path", "workspace_key")
    ui_color = "#c74634"

    def __init__(
        self,
        *,
        job_key: str | None = None,
        job_name: str | None = None,
        job_path: str | None = None,
        missing_ok: bool = False,
        workspace_key: str | None = None,
        aidp_conn_id: str = "aidp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (job_key is None) == (job_name is None):
            raise AIDPConfigError(
                "Pass exactly one of job_key or job_name (with job_path to narrow it).", field="job_key"
            )
        if job_path is not None and job_name is None:
            raise AIDPConfigError("job_path only narrows job_name; pass job_name too.", field="job_path")
        self.job_key = job_key
        self.job_name = job_name
        self.job_path = job_path
        self.missing_ok = missing_ok
        self.workspace_key = workspace_key
        self.aidp_conn_id = aidp_conn_id

    def execute(self, context: Context) -> str | None:
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        hook = AIDPHook(self.aidp_conn_id, workspace_key=self.workspace_key)
        key = self.job_key
        if key is None:
            job = hook.find_job(str(self.job_name), self.job_path)  # duplicates raise
            if job is None:
                self._missing(
                    f"no job named {self.job_name!r}{f' in {self.job_path!r}' if self.job_path else ''}"
                )
                return None
            key = job.key
        try:
            hook.delete_job(key)
        except AIDPNotFoundError:
            self._missing(f"job {key} does not exist")
            return None
        self.log.info("Deleted AIDP job %s", key)
        return key

    def _missing(self, what: str) -> None:
        if not self.missing_ok:
            raise AIDPNotFoundError(
                f"{what}; set missing_ok=True to accept a job that is already gone", status=404
            )
        self.log.info("Nothing to delete: %s (missing_ok=True)", what)
        return None
