"""``AIDPEmulator``: run the emulator in a background thread (or the current loop); 127.0.0.1 by default."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from . import connection as conn
from .app import build_app
from .clock import Clock
from .credentials import ApiKeyCredentials, generate_api_key
from .exposure import Exposure
from .faults import Fault
from .readings import Readings
from .recorder import RecordedRequest
from .scripting import TaskScript
from .simulation import Timings
from .state import EmulatorConfig, EmulatorState
from .validation import GA, LA

HOST = "127.0.0.1"


class AIDPEmulator:
    """A local AIDP Workflow API server.

    ``with AIDPEmulator() as emu:`` runs it in a daemon thread with its own event loop;
    ``async with AIDPEmulator() as emu:`` runs it on the current loop. ``time_scale=0`` gives a
    manual clock that only :meth:`advance` moves.

    Reaching it from containers or https-only clients (see ``exposure.py``): ``bind`` (a
    non-loopback address warns), ``public_url`` (the URL clients use; its host is the only one the
    signature check accepts) and ``tls`` (a self-signed certificate, :attr:`ca_bundle`, written
    into ``tls_dir`` or a temporary directory).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        surfaces: Iterable[str] = (GA, LA),
        accept_any_signature: bool = False,
        time_scale: float = 1.0,
        timings: Timings | None = None,
        max_clock_skew: float = 300.0,
        readings: Readings | dict[str, Any] | None = None,
        rate_limit: float = 0.0,
        accept_any_workspace: bool = False,
        bind: str = HOST,
        public_url: str | None = None,
        tls: bool = False,
        tls_dir: Path | None = None,
    ) -> None:
        self._requested_port = port
        self.exposure = Exposure(bind, public_url, tls, tls_dir)
        self.clock = Clock(time_scale)
        self.state = EmulatorState(
            EmulatorConfig(
                set(surfaces), accept_any_signature, max_clock_skew, accept_any_workspace=accept_any_workspace
            ),
            self.clock,
            timings or Timings(),
        )
        if readings is not None:
            self.set_readings(readings)
        self.state.rate_limit.set(rate_limit)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not running; use it as a context manager or call start()")
        return self.exposure.url(self.port)

    @property
    def ca_bundle(self) -> Path | None:
        """With ``tls=True``: the PEM file clients trust (connection extra ``ca_bundle``)."""
        return self.exposure.ca_bundle

    async def start_async(self) -> None:
        if warning := self.exposure.bind_warning():
            warnings.warn(warning, stacklevel=2)
        ssl_context = self.exposure.server_ssl()
        self._runner = web.AppRunner(build_app(self.state), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.exposure.bind,
            self._requested_port,
            backlog=4096,
            reuse_address=True,
            ssl_context=ssl_context,
        )
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.state.allowed_hosts = self.exposure.allowed_hosts(self.port)

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> AIDPEmulator:
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # surfaced to the caller of start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=serve, name="aidp-emulator", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> AIDPEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> AIDPEmulator:
        await self.start_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # --- credentials and connections ----------------------------------------------------------

    def generate_api_key(self, pass_phrase: str | None = None) -> ApiKeyCredentials:
        """A fresh RSA key pair, registered with this emulator."""
        creds = generate_api_key(pass_phrase=pass_phrase)
        self.register_api_key(creds)
        return creds

    def register_api_key(self, creds: ApiKeyCredentials) -> None:
        self.state.keys.add_api_key(creds.tenancy, creds.user, creds.fingerprint, creds.public_key_pem)

    def register_session_token(self, token: str, public_key_pem: str, expires_in: float | None = None) -> str:
        """Trust ``ST$<token>`` signatures made with the matching private key; returns the keyId."""
        self.state.keys.add_session_token(token, public_key_pem, expires_in=expires_in)
        return f"ST${token}"

    def revoke_session_token(self, token: str) -> None:
        self.state.keys.revoke_session_token(token)

    def expire_session_token(self, token: str) -> None:
        self.state.keys.expire_session_token(token)

    def connection_extra(self, creds: ApiKeyCredentials | None = None, **kwargs: Any) -> dict[str, Any]:
        """Extra for an ``aidp`` connection (kwargs: api_version, workspace_key, ai_data_platform_id,
        region, private_key_file). The connection's instance and workspace become hosted ones."""
        extra = conn.connection_extra(self.url, creds, **kwargs)
        self.host_workspace(extra["ai_data_platform_id"], extra["workspace_key"])
        if self.ca_bundle is not None:
            extra["ca_bundle"] = str(self.ca_bundle)
        return extra

    def host_workspace(self, ai_data_platform_id: str, *workspace_keys: str) -> None:
        """Host an instance and workspaces in it (others answer 404 unless ``accept_any_workspace``)."""
        self.state.tenancy.host(ai_data_platform_id, *workspace_keys)

    def connection_json(self, creds: ApiKeyCredentials | None = None, **kwargs: Any) -> str:
        return conn.connection_json(self.url, self.connection_extra(creds, **kwargs))

    def connection_uri(self, creds: ApiKeyCredentials | None = None, **kwargs: Any) -> str:
        return conn.connection_uri(self.url, self.connection_extra(creds, **kwargs))

    def base_path(
        self,
        api_version: str = GA,
        workspace_key: str = conn.DEFAULT_WORKSPACE,
        ai_data_platform_id: str = conn.DEFAULT_PLATFORM_ID,
    ) -> str:
        """Full URL of a workspace on one surface, e.g. for hand-made requests."""
        collection = "aiDataPlatforms" if api_version == GA else "dataLakes"
        return f"{self.url}/{api_version}/{collection}/{ai_data_platform_id}/workspaces/{workspace_key}"

    # --- scripting, faults, state -------------------------------------------------------------

    def script_task(
        self,
        *,
        task_key: str | None = None,
        path: str | None = None,
        job_name: str | None = None,
        outcome: str = "SUCCESS",
        duration: float | None = None,
        state_message: str | None = None,
        error_trace: str | None = None,
        output: str | None = None,
        condition_result: str = "true",
        times: int | None = None,
    ) -> TaskScript:
        """Decide what matching task runs do (latest matching script wins)."""
        return self.state.scripts.add(
            TaskScript(
                outcome=outcome,
                duration=duration,
                state_message=state_message,
                error_trace=error_trace,
                output=output,
                condition_result=condition_result,
                task_key=task_key,
                path=path,
                job_name=job_name,
                times=times,
            )
        )

    def inject_fault(
        self,
        kind: str,
        path: str = "*",
        method: str = "*",
        *,
        times: int | None = 1,
        after: int = 0,
        status: int | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        body: str | None = None,
    ) -> Fault:
        """Make matching API requests misbehave (see faults.py for the kinds)."""
        return self.state.faults.add(
            Fault(
                kind=kind,
                path=path,
                method=method,
                times=times,
                after=after,
                status=status,
                retry_after=retry_after,
                delay=delay,
                body=body,
            )
        )

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def advance(self, seconds: float) -> float:
        """Move emulator time forward (runs progress on their next read)."""
        return self.clock.advance(seconds)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request received so far (control-API calls are not recorded)."""
        return self.state.recorder.filter()

    def find_requests(
        self, method: str | None = None, path_contains: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests by method, path substring and/or fnmatch ``path`` glob (``"*/jobRuns"``)."""
        return self.state.recorder.filter(method, path_contains, path=path)

    def jobs(self) -> list[dict[str, Any]]:
        with self.state.store.lock:
            return [{"key": j.key, **j.body} for j in self.state.store.jobs.values()]

    def runs(self) -> list[dict[str, Any]]:
        return [r.render(GA) for r in self.state.store.all_runs()]

    def seed_history(
        self,
        job_key: str,
        count: int,
        *,
        every: float = 3600.0,
        duration: float = 60.0,
        status: str = "SUCCESS",
    ) -> list[str]:
        """``count`` finished runs of a job, created ``every`` emulator seconds apart up to ``every``
        before now (a job's history, e.g. a year of hourly runs, without simulating it)."""
        return self.state.store.seed_history(job_key, count, every, duration, status)

    def reset(self, *, keys: bool = False) -> None:
        self.state.reset(keys=keys)

    @property
    def readings(self) -> Readings:
        """How this emulator reads the service's open behaviours (see readings.py)."""
        return self.state.readings

    def set_rate_limit(self, per_second: float) -> None:
        """Answer 429 (``Retry-After``) above ``per_second`` API requests a second per tenancy; 0 = off."""
        self.state.rate_limit.set(per_second)

    def set_readings(self, readings: Readings | dict[str, Any] | None = None, **changes: Any) -> Readings:
        """Replace the readings (a ``Readings``), or change some (a dict / keywords); returns them."""
        if isinstance(readings, Readings):
            base = readings
        else:
            base = self.state.readings.updated(dict(readings or {}))
        self.state.readings = base.updated(changes)
        return self.state.readings

    def set_surfaces(self, *surfaces: str) -> None:
        self.state.config.surfaces = set(surfaces)
