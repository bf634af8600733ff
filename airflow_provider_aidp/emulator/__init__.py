"""A local AIDP Workflow API server for tests, demos and users' CI (see docs/emulator.md).

Importing this package loads aiohttp; the provider's operators never import it.
"""

from .client import EmulatorClient
from .clock import Clock
from .credentials import ApiKeyCredentials, generate_api_key
from .faults import Fault
from .readings import Readings
from .recorder import RecordedRequest
from .scripting import TaskScript
from .server import AIDPEmulator
from .simulation import Timings

__all__ = [
    "AIDPEmulator",
    "ApiKeyCredentials",
    "Clock",
    "EmulatorClient",
    "Fault",
    "Readings",
    "RecordedRequest",
    "TaskScript",
    "Timings",
    "generate_api_key",
]
