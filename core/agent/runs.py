"""What the agent knows about each DeployRun, as the API (core.agent.api) and clients see it.

The driver (core.agent.drive) keeps one :class:`RunView` per DeployRun it watches, whether this
replica drives it or stands by; the API server reads them through a :class:`RunRegistry` and
never touches the driver's internals. ``RunView.rollout`` is set only while *this* replica holds
the run's Lease (commands and the event stream go to it); otherwise ``driver_url`` names the
replica that does (from the DeployRun's ``status.agent.url``), so a request can be forwarded.

A :class:`FleetRow` is one line of the fleet screen, built from the DeployRun object alone (its
spec and the status the driving replica mirrors), so every replica shows the same row.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from core.engine import Rollout

Key = tuple[str, str]  # (namespace, name)


#: the commands the agent API takes and the RBAC subresource (``deployruns/<sub>``) each needs;
#: one permission covers the commands that move a rollout forward (a Role lists five subresources,
#: not nine), and resume belongs with pause
SUBRESOURCE_OF = {
    "signoff": "signoff",
    "proceed": "proceed",
    "promote_early": "proceed",
    "decide": "proceed",
    "refresh": "proceed",
    "pause": "pause",
    "resume": "pause",
    "rollback": "rollback",
    "abort": "abort",
}


class FleetRow(BaseModel):
    """One DeployRun in the fleet: the API adds ``attached`` (who watches it) to this row."""

    namespace: str
    name: str
    service: str = ""
    version_from: str = ""
    version_to: str = ""
    phase: str = "pending"  # core.domain.Phase value; "pending" before any status was written
    weight: int = Field(default=0, ge=0, le=100)
    phase_since: dt.datetime | None = None  # when the run entered ``phase`` (status.phaseSince)
    lease_holder: str | None = None  # the replica driving it (its holder identity), None: nobody
    outcome: str | None = None  # core.domain.Outcome value once finished
    deploy_id: str | None = None
    message: str = ""  # what the driving replica says of the run (a refusal, an edit not applied)


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def fleet_row(obj: dict[str, Any]) -> FleetRow:
    """The fleet row of a DeployRun object as the API server returns it (spec as written, status
    as the driver mirrored it; a malformed spec still gives a row, with what could be read)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    version = spec.get("version") if isinstance(spec.get("version"), dict) else {}
    agent = status.get("agent") if isinstance(status.get("agent"), dict) else {}
    weight = status.get("weight")
    return FleetRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        service=str(spec.get("service") or ""),
        version_from=str(version.get("from") or ""),
        version_to=str(version.get("to") or ""),
        phase=str(status.get("phase") or "pending"),
        weight=weight if isinstance(weight, int) and 0 <= weight <= 100 else 0,
        phase_since=_parse_time(status.get("phaseSince")),
        lease_holder=agent.get("holder") or status.get("leaseHolder") or None,
        outcome=status.get("outcome") or None,
        deploy_id=status.get("deployId") or None,
        message=str(status.get("message") or ""),
    )


@runtime_checkable
class RunView(Protocol):
    """One DeployRun as this replica sees it."""

    key: Key

    def row(self) -> dict[str, Any]:
        """``FleetRow.model_dump(mode="json")`` for this run, current."""
        ...

    @property
    def rollout(self) -> Rollout | None:
        """The engine driving the run while THIS replica holds its lease; None otherwise."""
        ...

    @property
    def driver_url(self) -> str | None:
        """The API URL of the replica driving the run (``status.agent.url``); None: nobody drives it.
        When this replica drives it, its own URL."""
        ...


@runtime_checkable
class RunRegistry(Protocol):
    """Every DeployRun the agent watches."""

    def runs(self) -> dict[Key, RunView]: ...

    def get(self, namespace: str, name: str) -> RunView | None: ...
