"""``EmulatorClient``: a small ``requests`` client for the ``/_emulator/`` control API.

For tests whose Airflow (or other code) runs in other processes than the emulator.
"""

from __future__ import annotations

from typing import Any

import requests

from .credentials import ApiKeyCredentials


class EmulatorClient:
    def __init__(self, url: str, timeout: float = 10.0, ca_bundle: str | None = None) -> None:
        """``ca_bundle``: the certificate of an emulator started with TLS (else REQUESTS_CA_BUNDLE)."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        # Per request: a session-level verify loses to REQUESTS_CA_BUNDLE in requests' env merge.
        self._verify: str | bool = ca_bundle or True

    def _call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        resp = self._session.request(
            method,
            f"{self.url}/_emulator{path}",
            json=json,
            params=params,
            timeout=self.timeout,
            verify=self._verify,
        )
        if resp.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {path} -> {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def health(self) -> bool:
        return self._call("GET", "/health").get("status") == "ok"

    def reset(self, keys: bool = False) -> None:
        self._call("POST", "/reset", {"keys": keys})

    def config(self, **changes: Any) -> dict[str, Any]:
        """Read the config, or change it: surfaces=[...], accept_any_signature=..., timings={...}."""
        return self._call("PUT", "/config", changes) if changes else self._call("GET", "/config")

    def readings(self, **changes: Any) -> dict[str, Any]:
        """The active readings; with keywords, change them first (``reset=True`` restores defaults)."""
        if changes:
            return dict(self._call("PUT", "/readings", json=changes))
        return dict(self._call("GET", "/readings"))

    def advance(self, seconds: float) -> float:
        return float(self._call("POST", "/clock/advance", {"seconds": seconds})["now"])

    def set_time_scale(self, scale: float) -> None:
        self._call("PUT", "/clock", {"scale": scale})

    def script_task(self, **script: Any) -> dict[str, Any]:
        """Same fields as AIDPEmulator.script_task (task_key, path, outcome, duration, ...)."""
        return dict(self._call("POST", "/scripts", script))

    def clear_scripts(self) -> None:
        self._call("DELETE", "/scripts")

    def inject_fault(self, kind: str, path: str = "*", method: str = "*", **fields: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/faults", {"kind": kind, "path": path, "method": method, **fields}))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        since: int = 0,
        path: str | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded API requests; ``path`` is an fnmatch glob (``"*/jobRuns"`` = only run creation)."""
        params: dict[str, Any] = {"since": since}
        if method:
            params["method"] = method
        if path_contains:
            params["path_contains"] = path_contains
        if path:
            params["path"] = path
        return list(self._call("GET", "/requests", params=params))

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/jobs"))

    def runs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/runs"))

    def seed_history(self, job_key: str, count: int, **options: Any) -> list[str]:
        """Same as AIDPEmulator.seed_history (every=, duration=, status=): the new run keys."""
        return list(
            self._call("POST", "/runs/history", {"job_key": job_key, "count": count, **options})["run_keys"]
        )

    def host_workspace(self, ai_data_platform_id: str, *workspace_keys: str, **flags: bool) -> dict[str, Any]:
        """Host an instance and workspaces; ``accept_any=`` / ``detailed=`` set the 404 behaviour."""
        body = {"ai_data_platform_id": ai_data_platform_id, "workspace_keys": list(workspace_keys), **flags}
        return self._call("POST", "/tenancy", body)  # type: ignore[no-any-return]

    def generate_api_key(self, pass_phrase: str | None = None) -> ApiKeyCredentials:
        data = self._call("POST", "/keys", {"pass_phrase": pass_phrase})
        return ApiKeyCredentials(
            data["tenancy"],
            data["user"],
            data["fingerprint"],
            data["private_key_pem"],
            data["public_key_pem"],
            data.get("pass_phrase"),
        )

    def register_session_token(self, token: str, public_key_pem: str, expires_in: float | None = None) -> str:
        return str(
            self._call(
                "POST",
                "/session-tokens",
                {"token": token, "public_key_pem": public_key_pem, "expires_in": expires_in},
            )["key_id"]
        )

    def revoke_session_token(self, token: str) -> None:
        self._call("POST", f"/session-tokens/{token}/revoke")

    def expire_session_token(self, token: str) -> None:
        self._call("POST", f"/session-tokens/{token}/expire")
