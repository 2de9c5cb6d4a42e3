"""`deploydeck status`: what deploys are unfinished, who holds them, and whether anyone still does.

Read-only: it takes no lease and writes nothing. With a plan it asks the plan's cluster (the
persisted progress and the Lease); without one it reads the journal, which knows every deploy
this machine drove but not whether a lease is live.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from core.clock import Clock
from core.events import DeployStarted, RunInterrupted, TrafficChanged
from core.plan import Plan
from core.rollout.progress import RolloutStatus

LeaseState = Literal["live", "expired", "released", "none", "unknown"]


class DeployReport(BaseModel):
    deploy_id: str
    service: str
    namespace: str = ""
    version: str = ""
    plan_path: str = ""
    phase: str = ""
    step_index: int | None = None
    weight: int = 0
    window: str | None = None
    driver: str = ""
    updated_at: datetime | None = None
    finished: bool = False
    outcome: str | None = None
    holder: str | None = None
    lease: LeaseState = "unknown"
    lease_renewed_at: datetime | None = None
    zombie: bool = False  # unfinished and nobody holds a live lease: resume it with `run PLAN`
    note: str = ""


async def cluster_report(plan: Plan, clock: Clock) -> DeployReport | None:
    """The plan's deploy as its cluster records it (None when the cluster holds no progress)."""
    from core.adapters.kubernetes import KubeCluster
    from core.adapters.kubernetes.api import KubeApiError
    from core.adapters.kubernetes.lease import holder_is_dead, parse_time

    target = plan.targets.production
    cluster = await KubeCluster.connect(target, kubeconfig=plan.cluster.kubeconfig, clock=clock)
    try:
        status = RolloutStatus.from_state(await cluster.read_state())
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{target.namespace}/leases/deploydeck-{target.deployment}"
        try:
            lease = await cluster.api.request("GET", lease_path)
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            lease = None
    finally:
        await cluster.close()
    if status is None:
        return None
    report = _from_status(status)
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity") or None
    renewed = parse_time(spec.get("renewTime"))
    report.holder, report.lease_renewed_at = holder, renewed
    if lease is None:
        report.lease = "none"
    elif holder is None:
        report.lease = "released"
    elif holder_is_dead(holder):
        report.lease, report.note = "expired", "its holder's process no longer exists on this host"
    else:
        # a one-shot look cannot observe a renewal, so this compares the holder's renewTime with
        # our clock: skewed clocks can misjudge it; `run` itself judges expiry by observation
        duration = float(spec.get("leaseDurationSeconds") or 0)
        live = renewed is not None and clock.now() < renewed + timedelta(seconds=duration)
        report.lease = "live" if live else "expired"
    report.zombie = not report.finished and report.lease != "live"
    return report


def _from_status(status: RolloutStatus) -> DeployReport:
    return DeployReport(
        deploy_id=status.deploy_id,
        service=status.service,
        namespace=status.namespace,
        version=status.version,
        plan_path=status.plan_path,
        phase=status.phase,
        step_index=status.step_index,
        weight=status.weight,
        window=status.window.name if status.window else None,
        driver=status.driver,
        updated_at=status.updated_at,
        finished=status.finished,
        outcome=status.outcome,
    )


def journal_reports(path: Path) -> list[DeployReport]:
    """Deploys the journal shows unfinished, newest first; lease unknown.

    Unfinished by resume's rule (`journaled_end`): a finished line after a lost lease does not end
    the deploy (its driver only stopped acting; `run PLAN` resumes it)."""
    from core.adapters.journal import read_journal
    from core.resume import journaled_end

    reports: dict[str, DeployReport] = {}
    lines: dict[str, list[object]] = {}
    for event in read_journal(path).events:
        report = reports.get(event.deploy_id)
        if isinstance(event, DeployStarted):
            lines[event.deploy_id] = []
            report = reports[event.deploy_id] = DeployReport(
                deploy_id=event.deploy_id,
                service=event.service,
                namespace=event.namespace,
                version=event.to_version,
                plan_path=event.plan_path,
                driver=event.actor,
            )
        if report is None:
            continue
        lines[event.deploy_id].append(event)
        report.phase = event.phase.value
        report.step_index = event.step if event.step is not None else report.step_index
        report.updated_at = event.ts
        if isinstance(event, TrafficChanged) and event.applied:
            report.weight = event.effective
        if isinstance(event, RunInterrupted):
            report.note = f"interrupted by {event.signal}"
    unfinished = [r for r in reports.values() if journaled_end(lines[r.deploy_id]) is None]
    return sorted(unfinished, key=lambda r: r.updated_at or datetime.min, reverse=True)
