"""Which AI Data Platform instances and workspaces this emulator hosts.

A real tenancy answers 404 for an instance OCID or a workspace key it does not have; an emulator
that accepted any path would let a wrong connection pass its Test. By default only the instance
and workspace of the connection the emulator prints are hosted (plus any asked for through
``connection_extra``, :meth:`Tenancy.host`, ``--host-workspace`` or ``POST /_emulator/tenancy``).
``accept_any`` restores the old "every path is a workspace" behaviour.

Two readings of the service's 404 can be played: ``detailed`` (the message says whether the
instance or the workspace is unknown) and opaque (``NotAuthorizedOrNotFound`` with no detail, as
OCI often answers). Clients must cope with both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ApiError

DEFAULT_PLATFORM_ID = "ocid1.aidataplatform.oc1.iad.emulator"
DEFAULT_WORKSPACE = "emulator_ws"


@dataclass
class Tenancy:
    """Hosted instances -> their workspaces."""

    accept_any: bool = False
    detailed: bool = True
    hosted: dict[str, set[str]] = field(default_factory=lambda: {DEFAULT_PLATFORM_ID: {DEFAULT_WORKSPACE}})

    def host(self, instance: str, *workspaces: str) -> None:
        """Host ``instance`` and, in it, ``workspaces``."""
        self.hosted.setdefault(instance, set()).update(workspaces)

    def check(self, instance: str, workspace: str) -> None:
        """Raise the service's 404 when the instance or the workspace is not hosted."""
        if self.accept_any:
            return
        if instance not in self.hosted:
            self._not_found(f"AI Data Platform instance {instance!r} not found in this tenancy")
        if workspace not in self.hosted[instance]:
            self._not_found(f"Workspace {workspace!r} not found in AI Data Platform instance {instance!r}")

    def _not_found(self, detail: str) -> None:
        message = detail if self.detailed else "Authorization failed or requested resource not found."
        raise ApiError(404, "NotAuthorizedOrNotFound", message)

    def describe(self) -> dict[str, object]:
        return {
            "accept_any": self.accept_any,
            "detailed": self.detailed,
            "hosted": {k: sorted(v) for k, v in sorted(self.hosted.items())},
        }
