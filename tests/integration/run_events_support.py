"""Drive an AIDPJobRunEventTrigger's ``run()`` on the test's event loop, as a triggerer would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from airflow_provider_aidp.triggers.run_events import AIDPJobRunEventTrigger

FAST = {"poll_interval": 0.1, "commit_delay": 0.2}


class FakeAssetState:
    """Stands in for Airflow 3.3's ``asset_state_store`` (one watched asset): survives the trigger."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.writes += 1


class Watcher:
    """One running trigger instance; ``stop()`` cancels it like a triggerer shutdown does."""

    def __init__(self, trigger: AIDPJobRunEventTrigger, state: FakeAssetState | None) -> None:
        trigger.asset_state_store = state  # type: ignore[assignment]
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.trigger = trigger
        self.task = asyncio.create_task(self._pump(trigger.run()))

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        async for event in stream:
            await self.events.put(dict(event.payload))

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def quiet(self, seconds: float = 0.6) -> list[dict[str, Any]]:
        await asyncio.sleep(seconds)
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def settle(state: FakeAssetState, writes: int, timeout: float = 10.0) -> None:
    """Wait until the trigger has saved its watermark ``writes`` times in all."""
    for _ in range(int(timeout / 0.05)):
        if state.writes >= writes:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"watermark saved {state.writes} times, wanted {writes}")


async def committed(
    state: FakeAssetState, run_key: str, end_ms: int | None = None, timeout: float = 10.0
) -> None:
    """Wait until the saved watermark covers ``run_key``: no longer followed, and in ``seen`` (or,
    with a lookback of 0, which keeps no ``seen``, its end ``end_ms`` reached by the mark)."""
    for _ in range(int(timeout / 0.05)):
        for mark in state.values.values():
            seen = any(k.startswith(f"{run_key}@") for k in mark["seen"])
            passed = end_ms is not None and mark["end_ms"] >= end_ms
            if (seen or passed) and run_key not in mark.get("open", {}):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no saved watermark covers {run_key}: {state.values}")
