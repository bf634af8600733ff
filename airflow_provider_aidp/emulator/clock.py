"""Emulator time: a scaled wall clock that tests can also push forward by hand.

Every duration the emulator simulates (queueing, task run time, cancel latency) is measured in
*emulator seconds* read from this clock, so a test can run a "ten minute" job in milliseconds by
advancing the clock instead of sleeping.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """``now() = epoch_at_start + scale * real_elapsed + manual_offset`` (seconds).

    ``scale=0`` freezes time (fully manual: only :meth:`advance` moves it); ``scale=1`` is real
    time; ``scale=60`` runs a minute per real second.
    """

    def __init__(self, scale: float = 1.0) -> None:
        if scale < 0:
            raise ValueError("time scale must be >= 0 (0 = manual clock)")
        self._lock = threading.Lock()
        self._scale = float(scale)
        self._anchor_real = time.monotonic()
        self._anchor_emu = time.time()

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        """Current emulator time in epoch seconds."""
        return self._anchor_emu + (time.monotonic() - self._anchor_real) * self._scale

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> float:
        """Move emulator time forward (never backward) and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._anchor_emu += seconds
        return self.now()

    def set_scale(self, scale: float) -> None:
        """Change the speed without a jump: re-anchor at the current emulator time."""
        if scale < 0:
            raise ValueError("time scale must be >= 0 (0 = manual clock)")
        with self._lock:
            self._anchor_emu = self.now()
            self._anchor_real = time.monotonic()
            self._scale = float(scale)
