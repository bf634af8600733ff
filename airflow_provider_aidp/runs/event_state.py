"""Where an event trigger keeps its watermark: Airflow's asset state store, when it has one.

Airflow >= 3.3 injects ``asset_state_store`` into an asset watcher's trigger: a key/value store
in the metadata database, scoped to the watched asset(s), that outlives the triggerer process.
Earlier Airflow versions (and a trigger run outside a watcher, e.g. in a test) have none; the
watermark then lives in memory only and a restart starts from a new baseline.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_aidp.runs.watermark import Watermark

log = logging.getLogger(__name__)


def _accessors(store: Any) -> list[Any]:
    """One accessor per watched asset (an asset may share one trigger with others)."""
    by_name = getattr(store, "_by_name", None)
    by_uri = getattr(store, "_by_uri", None)
    if isinstance(by_name, dict) and isinstance(by_uri, dict):
        return [*by_name.values(), *by_uri.values()]
    return [store]


class WatermarkStore:
    """Load/save one trigger's :class:`Watermark` under ``key`` in every watched asset's state."""

    def __init__(self, store: Any, key: str) -> None:
        self._accessors = _accessors(store) if store is not None else []
        self.key = key

    @property
    def durable(self) -> bool:
        return bool(self._accessors)

    async def load(self) -> Watermark | None:
        """The most advanced stored watermark (assets sharing a trigger may lag one another)."""
        marks = [Watermark.from_json(await acc.aget(self.key)) for acc in self._accessors]
        found = [m for m in marks if m is not None]
        if not found:
            return None
        return max(found, key=lambda m: m.end_ms)

    async def save(self, mark: Watermark) -> None:
        value = mark.to_json()
        for acc in self._accessors:
            await acc.aset(self.key, value)
