"""Wall time per packaging step, printed in pytest's terminal summary (figures, never asserts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

STEP_TIMES = pytest.StashKey[dict[str, float]]()


@contextmanager
def timed(times: dict[str, float], step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        times[step] = times.get(step, 0.0) + time.monotonic() - started


def summary(times: dict[str, float]) -> str:
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in times.items())
    return f"packaging check: {sum(times.values()):.1f} s ({steps})"
