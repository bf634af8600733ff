"""AIDPHook against Oracle's SDK (aidp-python-client): per-call latency and CPU, and import cost.

2,000 sequential ``get_job_run`` calls through ``AIDPHook.get_job_run`` and through
``aidp_python_client.aidataplatform_dp.workflow_client.WorkflowClient.get_job_run``, same API key,
same run, same emulator (in its own process).  Each client runs in a fresh worker process per
round, after 20 warm-up calls (connection pool, key parsing, lazy imports); rounds alternate
which client goes first.  Import cost: fresh interpreters, interleaved, medians -- both the
import alone and "import + build the client + one call" (a lazy import only moves cost).

Run:  benchmarks/run.sh hook_vs_sdk          (or: python benchmarks/hook_vs_sdk.py --calls 2000)
Target: ours is no slower per call and at least 3x cheaper to import.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import airflow_env, median, percentile, prime_airflow_home, print_machine, table, time_imports
from _servers import EmulatorSession, start_emulator, stop_server

CONN_ID = "bench"
RESULT = "RESULT "
WARMUP_CALLS = 20
SDK_IMPORT = "from aidp_python_client.aidataplatform_dp.workflow_client import WorkflowClient"
HOOK_IMPORT = "from airflow_provider_aidp.hooks.aidp import AIDPHook"


# --- worker: one client, N sequential calls --------------------------------------------------------


def make_caller(spec: dict[str, Any]) -> Any:
    """A no-argument function doing one get_job_run through the chosen client."""
    if spec["client"] == "hook":
        from airflow_provider_aidp.hooks.aidp import AIDPHook

        hook = AIDPHook(CONN_ID)
        return lambda: hook.get_job_run(spec["run_key"])
    from aidp_python_client.aidataplatform_dp.workflow_client import WorkflowClient

    # The SDK's default retry strategy for this GET stays on (as a user gets it); no call retries here.
    client = WorkflowClient(spec["oci_config"], service_endpoint=spec["url"])
    platform, workspace = spec["platform"], spec["workspace"]
    return lambda: client.get_job_run(platform, workspace, spec["run_key"])


def worker() -> None:
    spec = json.loads(sys.stdin.read())
    call = make_caller(spec)
    for _ in range(WARMUP_CALLS):
        call()
    latencies = []
    cpu0 = time.process_time()
    for _ in range(spec["calls"]):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu0
    result = {
        "latency_p50_ms": percentile(latencies, 50) * 1000,
        "latency_p99_ms": percentile(latencies, 99) * 1000,
        "cpu_per_call_ms": cpu / spec["calls"] * 1000,
        "calls": spec["calls"],
    }
    print(RESULT + json.dumps(result), flush=True)


# --- orchestrator ----------------------------------------------------------------------------------


def run_worker(client: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker"],
        input=json.dumps({**spec, "client": client}),
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    marked = [line for line in out.stdout.splitlines() if line.startswith(RESULT)]
    if out.returncode != 0 or not marked:
        raise RuntimeError(f"{client} worker failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return dict(json.loads(marked[-1].removeprefix(RESULT)))


def per_call(spec: dict[str, Any], env: dict[str, str], rounds: int) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {"hook": [], "sdk": []}
    for rnd in range(rounds):
        for client in ("hook", "sdk") if rnd % 2 == 0 else ("sdk", "hook"):
            res = run_worker(client, spec, env)
            results[client].append(res)
            print(
                f"  round {rnd + 1} {client:4}: p50 {res['latency_p50_ms']:.3f} ms, "
                f"CPU {res['cpu_per_call_ms']:.3f} ms/call",
                flush=True,
            )
    return results


def import_variants(spec: dict[str, Any]) -> dict[str, str]:
    first_hook = f"{HOOK_IMPORT}\nAIDPHook({CONN_ID!r}).get_job_run({spec['run_key']!r})"
    first_sdk = (
        f"{SDK_IMPORT}\n"
        f"WorkflowClient({spec['oci_config']!r}, service_endpoint={spec['url']!r})"
        f".get_job_run({spec['platform']!r}, {spec['workspace']!r}, {spec['run_key']!r})"
    )
    return {
        "python (bare)": "pass",
        "import airflow.sdk": "import airflow.sdk",
        "AIDPHook": HOOK_IMPORT,
        "WorkflowClient": SDK_IMPORT,
        "airflow.sdk + AIDPHook": f"import airflow.sdk\n{HOOK_IMPORT}",
        "airflow.sdk + WorkflowClient": f"import airflow.sdk\n{SDK_IMPORT}",
        "AIDPHook + 1st call": first_hook,
        "WorkflowClient + 1st call": first_sdk,
        "airflow.sdk + AIDPHook + 1st call": f"import airflow.sdk\n{first_hook}",
        "airflow.sdk + WorkflowClient + 1st call": f"import airflow.sdk\n{first_sdk}",
    }


def main() -> int:
    if "--worker" in sys.argv:
        worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per client per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each client once per round)")
    parser.add_argument("--import-runs", type=int, default=15, help="fresh interpreters per import variant")
    args = parser.parse_args()

    env = airflow_env()
    prime_airflow_home(env, HOOK_IMPORT, SDK_IMPORT, "import oci, aiohttp")
    print_machine()
    proc, base = start_emulator(env, "--time-scale", "0")
    try:
        emu = EmulatorSession.open(base)
        run_key = emu.create_run(emu.create_job("bench_job", 1.0))
        spec = {
            "url": base,
            "run_key": run_key,
            "calls": args.calls,
            "platform": emu.extra["ai_data_platform_id"],
            "workspace": emu.extra["workspace_key"],
            "oci_config": emu.creds.oci_config(),
        }
        env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emu.connection_json()
        print(f"\n{args.calls} sequential get_job_run calls per client per round, {args.rounds} rounds:")
        calls = per_call(spec, env, args.rounds)
        print(f"\nimport cost: {args.import_runs} interleaved fresh interpreters per variant ...")
        imports = time_imports(import_variants(spec), args.import_runs, env)
    finally:
        stop_server(proc)

    def m(client: str, key: str) -> float:
        return median(r[key] for r in calls[client])

    rows = [
        (
            "AIDPHook.get_job_run",
            m("hook", "latency_p50_ms"),
            m("hook", "latency_p99_ms"),
            m("hook", "cpu_per_call_ms"),
        ),
        (
            "WorkflowClient.get_job_run",
            m("sdk", "latency_p50_ms"),
            m("sdk", "latency_p99_ms"),
            m("sdk", "cpu_per_call_ms"),
        ),
    ]
    pairs = list(zip(calls["hook"], calls["sdk"], strict=True))  # same round: same machine conditions
    lat_ratio = median(h["latency_p50_ms"] / s["latency_p50_ms"] for h, s in pairs)
    cpu_ratio = median(h["cpu_per_call_ms"] / s["cpu_per_call_ms"] for h, s in pairs)
    rows.append(("hook / SDK (median of rounds)", f"{lat_ratio:.2f}x", "", f"{cpu_ratio:.2f}x"))
    print()
    print(table(("per call", "latency p50 ms", "latency p99 ms", "CPU ms/call"), rows))

    wall = {k: median(v["wall"]) * 1000 for k, v in imports.items()}
    cpu = {k: median(v["cpu"]) * 1000 for k, v in imports.items()}
    base_wall, base_cpu = wall["import airflow.sdk"], cpu["import airflow.sdk"]
    irows = [(k, wall[k], cpu[k]) for k in imports]
    print()
    print(table(("import (fresh interpreter)", "wall ms (median)", "CPU ms (median)"), irows))
    hook_added = wall["airflow.sdk + AIDPHook"] - base_wall
    sdk_added = wall["airflow.sdk + WorkflowClient"] - base_wall
    hook_added_cpu = cpu["airflow.sdk + AIDPHook"] - base_cpu
    sdk_added_cpu = cpu["airflow.sdk + WorkflowClient"] - base_cpu
    # CPU is the cost a DAG processor or worker pays; on a shared machine it is also far less noisy
    # than wall time, which includes waiting for a core.
    import_ratio = sdk_added_cpu / max(hook_added_cpu, 1.0)
    wall_ratio = sdk_added / max(hook_added, 1.0)
    first_hook_cpu = cpu["airflow.sdk + AIDPHook + 1st call"] - base_cpu
    first_sdk_cpu = cpu["airflow.sdk + WorkflowClient + 1st call"] - base_cpu
    print(
        f"\nadded over `import airflow.sdk` (where a hook runs): AIDPHook {hook_added_cpu:.0f} ms CPU / "
        f"{hook_added:.0f} ms wall, WorkflowClient {sdk_added_cpu:.0f} ms CPU / {sdk_added:.0f} ms wall "
        f"-> SDK/hook {import_ratio:.1f}x CPU, {wall_ratio:.1f}x wall.\n"
        f"import + client + first call, over airflow.sdk: AIDPHook {first_hook_cpu:.0f} ms CPU, "
        f"WorkflowClient {first_sdk_cpu:.0f} ms CPU (the hook loads oci and requests on its first call).\n"
        f"standalone, without Airflow: WorkflowClient {cpu['WorkflowClient']:.0f} ms CPU; AIDPHook needs "
        f"Airflow ({cpu['AIDPHook']:.0f} ms CPU)."
    )
    ok_call = lat_ratio <= 1.0 and cpu_ratio <= 1.0
    ok_import = import_ratio >= 3
    verdict = "PASS" if ok_call and ok_import else "MISS"
    print(
        f"\nVERDICT: {verdict} — per call the hook takes {lat_ratio:.2f}x the SDK's latency and "
        f"{cpu_ratio:.2f}x its CPU (target <= 1x); importing it in Airflow costs 1/{import_ratio:.0f} of "
        f"the SDK's CPU (target >= 3x cheaper)."
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
