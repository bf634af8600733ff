"""Helpers shared by the benchmark scripts: statistics, tables, machine facts, Airflow home.

Benchmarks report medians of several runs as ratios against a baseline measured in the same run,
because the machines they run on (CI runners, 2-core VMs) are noisy: absolute numbers move by
tens of percent between minutes, ratios of interleaved measurements much less.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def median(values: Iterable[float]) -> float:
    """Median of the values, NaN when there are none (so a table still prints)."""
    data = list(values)
    return statistics.median(data) if data else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text, Markdown-compatible table (pipes), so output can be pasted into docs."""
    text_rows = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text_rows]) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in text_rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "not installed"


def machine_info() -> dict[str, str]:
    """The facts a reader needs to judge the figures: cores, CPU, versions, date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "apache-airflow": _package_version("apache-airflow"),
        "task-sdk": _package_version("apache-airflow-task-sdk"),
        "databricks provider": _package_version("apache-airflow-providers-databricks"),
        "aidp-python-client": _package_version("aidp-python-client"),
        "oci": _package_version("oci"),
        "aiohttp": _package_version("aiohttp"),
    }


def print_machine() -> None:
    print(" · ".join(f"{k}: {v}" for k, v in machine_info().items()))


def airflow_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for child interpreters: a throw-away AIRFLOW_HOME, examples off, quiet logs.

    The home is created (and Airflow's first-run config written) once by :func:`prime_airflow_home`
    so no measured run pays for it.
    """
    env = dict(os.environ)
    # Deployments import from bytecode caches (pip writes them at install); a benchmark that
    # recompiles every module on every import would measure the compiler, not the imports.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="aidp-bench-home-"))
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def prime_airflow_home(env: dict[str, str], *imports: str) -> None:
    """Run throw-away imports so Airflow's config files and every .pyc cache exist before timing."""
    code = "\n".join(("import airflow.sdk", *imports))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def run_child_timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of a fresh interpreter running ``code``.

    CPU comes from ``RUSAGE_CHILDREN`` deltas, which is exact as long as the caller runs one child
    at a time (the benchmarks do).
    """
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}) running {code!r}:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def time_imports(
    variants: dict[str, str], runs: int, env: dict[str, str], *, seed: int = 7
) -> dict[str, dict[str, list[float]]]:
    """Time every variant ``runs`` times, interleaved in a shuffled order per round.

    Interleaving spreads machine noise (another process waking up, CPU frequency changes) over
    all variants instead of letting it land on whichever ran during the noisy minute.
    """
    import random

    rng = random.Random(seed)
    results: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
    names = list(variants)
    for _ in range(runs):
        rng.shuffle(names)
        for name in names:
            wall, cpu = run_child_timed(variants[name], env)
            results[name]["wall"].append(wall)
            results[name]["cpu"].append(cpu)
    return results


def new_modules(setup: str, target: str, env: dict[str, str]) -> list[str]:
    """Modules that ``target`` loads on top of what ``setup`` already loaded (fresh interpreter)."""
    import json

    code = (
        "import sys, json\n"
        f"{setup}\n"
        "_before = set(sys.modules)\n"
        f"{target}\n"
        "print(json.dumps(sorted(set(sys.modules) - _before)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed running {target!r}:\n{proc.stderr[-3000:]}")
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))
