"""``python -m airflow_provider_aidp.emulator``: run the emulator until Ctrl-C.

Prints the URL and a ready-to-use Airflow connection (JSON and URI) for ``AIRFLOW_CONN_AIDP_DEFAULT``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .credentials import api_key_from_pem
from .readings import parse_assignments
from .server import AIDPEmulator
from .simulation import Timings
from .validation import GA, LA


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m airflow_provider_aidp.emulator", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    p.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address to listen on; a non-loopback one (e.g. 0.0.0.0 in a container) is an explicit opt-in",
    )
    p.add_argument(
        "--public-url",
        default=None,
        help="URL clients use, e.g. https://aidp-emulator:8443 (its host is the one signatures must "
        "carry; the port defaults to --port's)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve https with a self-signed certificate for the public host (written next to --key-file)",
    )
    p.add_argument(
        "--surfaces", default=f"{GA},{LA}", help=f"comma-separated API versions to serve ({GA},{LA})"
    )
    p.add_argument("--api-version", default=GA, choices=[GA, LA], help="surface the printed connection uses")
    p.add_argument("--accept-any-signature", action="store_true", help="skip OCI signature verification")
    p.add_argument("--time-scale", type=float, default=1.0, help="emulator seconds per real second")
    p.add_argument("--task-seconds", type=float, default=None, help="default task duration (emulator s)")
    p.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help="API key file the connection names: reused if it exists, else generated (mode 600)",
    )
    p.add_argument("--pass-phrase", default=None, help="encrypt the generated key with this pass phrase")
    p.add_argument("--workspace-key", default="emulator_ws", help="workspace of the printed connection")
    p.add_argument(
        "--host-workspace",
        action="append",
        default=[],
        metavar="INSTANCE_OCID/WORKSPACE_KEY",
        help="also host this workspace (repeatable); others answer 404 like a real tenancy",
    )
    p.add_argument(
        "--accept-any-workspace",
        action="store_true",
        help="answer for any instance OCID and workspace key (no 404 for unknown ones)",
    )
    p.add_argument(
        "--scenario",
        type=Path,
        default=None,
        help='JSON file: {"scripts": [...], "faults": [...], "timings": {...}}',
    )
    p.add_argument(
        "--reading",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="play an alternative reading of the service, e.g. path_filter=ignored (docs/emulator.md)",
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="N",
        help="answer 429 (with Retry-After) above N API requests a second per tenancy; 0 = off",
    )
    p.add_argument("--url-file", type=Path, default=None, help="write the base URL here once listening")
    return p.parse_args(argv)


def load_scenario(emu: AIDPEmulator, path: Path) -> None:
    data: dict[str, Any] = json.loads(path.read_text())
    for script in data.get("scripts", []):
        emu.script_task(**script)
    for fault in data.get("faults", []):
        emu.inject_fault(**fault)
    for name, value in (data.get("timings") or {}).items():
        setattr(emu.state.timings, name, float(value))
    if data.get("readings"):
        emu.set_readings(data["readings"])


def api_key(emu: AIDPEmulator, key_file: Path | None, pass_phrase: str | None) -> tuple[Any, str | None]:
    """(credentials, key file path): an existing ``--key-file`` is reused (same connection on every
    start), a missing one is created (mode 600); without one the key is only printed."""
    if key_file is None:
        return emu.generate_api_key(pass_phrase=pass_phrase), None
    if key_file.exists():
        creds = api_key_from_pem(key_file.read_text(), pass_phrase=pass_phrase)
        emu.register_api_key(creds)
    else:
        creds = emu.generate_api_key(pass_phrase=pass_phrase)
        key_file.write_text(creds.private_key_pem)
        os.chmod(key_file, 0o600)
    return creds, str(key_file.resolve())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timings = Timings()
    if args.task_seconds is not None:
        timings.task_s = args.task_seconds
    emu = AIDPEmulator(
        args.port,
        surfaces=[s.strip() for s in args.surfaces.split(",") if s.strip()],
        accept_any_signature=args.accept_any_signature,
        time_scale=args.time_scale,
        timings=timings,
        accept_any_workspace=args.accept_any_workspace,
        rate_limit=args.rate_limit,
        bind=args.bind,
        public_url=args.public_url,
        tls=args.tls,
        tls_dir=args.key_file.resolve().parent if args.key_file else None,
    )
    for spec in args.host_workspace:
        instance, sep, workspace = spec.rpartition("/")
        if not sep or not instance or not workspace:
            raise SystemExit(f"--host-workspace wants INSTANCE_OCID/WORKSPACE_KEY, got {spec!r}")
        emu.host_workspace(instance, workspace)
    if args.scenario:
        load_scenario(emu, args.scenario)
    if args.reading:
        emu.set_readings(parse_assignments(args.reading))
    emu.start()
    creds, key_file = api_key(emu, args.key_file, args.pass_phrase)
    extra_kwargs = {
        "api_version": args.api_version,
        "workspace_key": args.workspace_key,
        "private_key_file": key_file,
    }
    print(f"AIDP emulator listening on {args.bind}:{emu.port}, public URL {emu.url}")
    if emu.ca_bundle is not None:
        print(f"TLS certificate (the CA bundle clients trust): {emu.ca_bundle}")
        print(f"  export REQUESTS_CA_BUNDLE={emu.ca_bundle}   # requests, OCI SDK/CLI, the provider")
        print(f"  export SSL_CERT_FILE={emu.ca_bundle}        # Python ssl / aiohttp defaults")
    print(f"Control API: {emu.url}/_emulator/  (health, scripts, faults, requests, clock, runs, tenancy)")
    print("Connection JSON (AIRFLOW_CONN_AIDP_DEFAULT):")
    print(emu.connection_json(creds, **extra_kwargs))
    print("Connection URI:")
    print(emu.connection_uri(creds, **extra_kwargs))
    if args.url_file:
        args.url_file.write_text(emu.url)
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
