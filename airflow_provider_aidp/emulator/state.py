"""The one object a running emulator is built around: config, clock, store, scripts, faults, keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from .clock import Clock
from .faults import FaultBook
from .ratelimit import RateLimit
from .readings import Readings
from .recorder import Recorder
from .scripting import ScriptBook
from .signing import MAX_CLOCK_SKEW_SECONDS, KeyRegistry
from .simulation import Timings
from .store import Store
from .tenancy import Tenancy
from .validation import GA, LA

SURFACES = {GA: "aiDataPlatforms", LA: "dataLakes"}


@dataclass
class EmulatorConfig:
    surfaces: set[str] = field(default_factory=lambda: {GA, LA})
    accept_any_signature: bool = False
    max_clock_skew: float = MAX_CLOCK_SKEW_SECONDS
    check_host: bool = True
    accept_any_workspace: bool = False


class EmulatorState:
    def __init__(self, config: EmulatorConfig, clock: Clock, timings: Timings) -> None:
        unknown = set(config.surfaces) - set(SURFACES)
        if unknown:
            raise ValueError(f"unknown surfaces {sorted(unknown)}; use {sorted(SURFACES)}")
        self.config = config
        self.clock = clock
        self.timings = timings
        self.keys = KeyRegistry()
        self.scripts = ScriptBook()
        self.faults = FaultBook()
        self.recorder = Recorder()
        self.store = Store(clock, self.scripts, timings, read_lag=lambda: self.readings.read_after_create_lag)
        self.tenancy = Tenancy(accept_any=config.accept_any_workspace)
        self.allowed_hosts: frozenset[str] | None = None  # set once the port is known
        #: how the emulator reads the service's open behaviours (kept across reset())
        self.readings = Readings()
        #: requests per second per tenancy above which the API answers 429 (0 = off)
        self.rate_limit = RateLimit()

    def reset(self, *, keys: bool = False) -> None:
        """Forget jobs, runs, scripts, faults and recorded requests (and keys if asked)."""
        self.store.reset()
        self.scripts.clear()
        self.faults.clear()
        self.recorder.clear()
        if keys:
            self.keys.clear()
