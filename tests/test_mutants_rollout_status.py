"""What `deploydeck status` reports (issue 16, core.rollout.inspect).

Written against `make mutate MUTATE_MODULES=core.rollout` in inspect.py: with a plan, the persisted
progress as the cluster holds it and whether a live lease still holds the deploy (a zombie when none
does); without one, each deploy the journal shows unfinished, where its last line left it, by the same
rule a resume uses (a finished line after a lost lease does not end it). A fake cluster and
hand-written journals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from core.rollout.progress import SCHEMA, WindowProgress
from tests.rollout_progress_helpers import IMAGE, T0, T1
from tests.rollout_progress_helpers import status as _status

# --- `deploydeck status` from the cluster (core.rollout.inspect.cluster_report) ----------------------


class _Cluster:
    """The plan's cluster as cluster_report reads it: the persisted progress and the Lease (None: 404)."""

    def __init__(self, state: dict[str, object] | None, lease: Any = None, error: int | None = None) -> None:
        self.state, self.lease, self.error = state, lease, error
        self.requests: list[tuple[str, str]] = []
        self.closed = False
        self.api = self

    async def read_state(self) -> dict[str, object] | None:
        return self.state

    async def request(self, method: str, path: str) -> Any:
        from core.adapters.kubernetes.api import KubeApiError

        self.requests.append((method, path))
        if self.error is not None:
            raise KubeApiError(f"GET lease: {self.error}", self.error)
        if self.lease is None:
            raise KubeApiError("GET lease: 404 not found", 404)
        return self.lease

    async def close(self) -> None:
        self.closed = True


def _plan() -> Any:
    from core.session import demo_plan

    plan = demo_plan()
    return plan.model_copy(update={"cluster": plan.cluster.model_copy(update={"kubeconfig": "/etc/kc"})})


async def _report(monkeypatch: pytest.MonkeyPatch, cluster: _Cluster, now: datetime = T1) -> Any:
    from core.adapters.kubernetes.cluster import KubeCluster
    from core.clock import VirtualClock
    from core.rollout.inspect import cluster_report

    plan = _plan()
    clock = VirtualClock(now)
    connected: list[tuple[Any, ...]] = []

    async def connect(target: Any, *, kubeconfig: str | None, clock: Any) -> _Cluster:
        connected.append((target, kubeconfig, clock))
        return cluster

    monkeypatch.setattr(KubeCluster, "connect", connect)
    report = await cluster_report(plan, clock)
    # the plan's production target, through the plan's kubeconfig, on the caller's clock; always closed
    assert connected == [(plan.targets.production, "/etc/kc", clock)] and cluster.closed
    return report


def _lease(holder: str | None, renewed: str | None, duration: int | None = 15) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": duration}
    return {"spec": {k: v for k, v in spec.items() if v is not None}}


async def test_status_reports_every_field_of_the_persisted_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    window = WindowProgress(name="canary 25 %", started_at=T0, duration_s=300.0)
    status = _status(
        plan_path="plans/checkout.yaml",
        phase="canary",
        step_index=1,
        weight=25,
        window=window,
        driver="alice",
    )
    cluster = _Cluster(status.to_state(), _lease("bob@elsewhere:7", "2026-01-05T10:07:20.000000Z"))
    report = await _report(monkeypatch, cluster)
    assert cluster.requests == [
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/shop/leases/deploydeck-checkout")
    ]
    assert report.model_dump() == {
        "deploy_id": "d-1",
        "service": "checkout",
        "namespace": "prod",
        "version": "1.5.0",
        "plan_path": "plans/checkout.yaml",
        "phase": "canary",
        "step_index": 1,
        "weight": 25,
        "window": "canary 25 %",
        "driver": "alice",
        "updated_at": T1,
        "finished": False,
        "outcome": None,
        "holder": "bob@elsewhere:7",
        "lease": "live",  # renewed 10 s ago, for 15 s
        "lease_renewed_at": datetime(2026, 1, 5, 10, 7, 20, tzinfo=UTC),
        "zombie": False,
        "note": "",
    }


async def test_status_of_a_finished_deploy_without_a_window_is_no_zombie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = _Cluster(_status(outcome="completed").to_state())  # no lease at all (404)
    report = await _report(monkeypatch, cluster)
    assert (report.finished, report.outcome, report.window) == (True, "completed", None)
    assert (report.lease, report.holder, report.lease_renewed_at) == ("none", None, None)
    assert not report.zombie


async def test_status_without_progress_in_the_cluster_is_none_and_still_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await _report(monkeypatch, _Cluster(None, _lease("bob@elsewhere:7", None))) is None
    assert await _report(monkeypatch, _Cluster({"schema": SCHEMA + 1})) is None


async def test_a_lease_that_cannot_be_read_fails_the_status_but_closes_the_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.adapters.kubernetes.api import KubeApiError

    with pytest.raises(KubeApiError) as raised:
        await _report(monkeypatch, _Cluster(_status().to_state(), error=403))
    assert raised.value.status == 403


@pytest.mark.parametrize(
    ("lease", "state", "zombie"),
    [
        (None, "none", True),  # nobody ever held it, or the holder deleted it
        ({}, "released", True),  # a Lease without a spec: nobody holds it
        (_lease(None, "2026-01-05T10:07:20Z"), "released", True),
        (_lease("", "2026-01-05T10:07:20Z"), "released", True),
        (_lease("bob@elsewhere:7", "2026-01-05T10:07:15Z"), "expired", True),  # renewed + 15 s is now
        (_lease("bob@elsewhere:7", "2026-01-05T10:07:16Z"), "live", False),
        (
            _lease("bob@elsewhere:7", "2026-01-05T10:07:29.500000Z", duration=None),
            "expired",
            True,
        ),  # no duration: 0 s
        (_lease("bob@elsewhere:7", None), "expired", True),  # never renewed
    ],
    ids=[
        "no-lease",
        "no-spec",
        "no-holder",
        "empty-holder",
        "at-expiry",
        "live",
        "no-duration",
        "no-renewal",
    ],
)
async def test_the_lease_says_whether_someone_still_drives_it(
    monkeypatch: pytest.MonkeyPatch, lease: Any, state: str, zombie: bool
) -> None:
    report = await _report(monkeypatch, _Cluster(_status().to_state(), lease))
    assert (report.lease, report.zombie, report.note) == (state, zombie, "")
    if state in {"none", "released"}:
        assert report.holder is None


async def test_a_holder_whose_process_died_on_this_host_has_an_expired_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.adapters.kubernetes import lease as lease_module

    monkeypatch.setattr(lease_module, "holder_is_dead", lambda holder: holder == "bob@here:4242")
    fresh = _lease("bob@here:4242", "2026-01-05T10:07:29Z")  # renewed a second ago, but by nobody alive
    report = await _report(monkeypatch, _Cluster(_status().to_state(), fresh))
    assert (report.lease, report.holder, report.zombie) == ("expired", "bob@here:4242", True)
    assert report.note == "its holder's process no longer exists on this host"
    alive = await _report(
        monkeypatch, _Cluster(_status().to_state(), _lease("bob@there:1", "2026-01-05T10:07:29Z"))
    )
    assert (alive.lease, alive.note) == ("live", "")


# --- `deploydeck status` from the journal (core.rollout.inspect.journal_reports) ---------------------


def _at(minute: int) -> datetime:
    return datetime(2026, 1, 5, 10, minute, tzinfo=UTC)


def _started(deploy_id: str, minute: int, service: str = "checkout") -> Any:
    from core.events import DeployStarted

    return DeployStarted(
        ts=_at(minute),
        phase="pending",
        deploy_id=deploy_id,
        service=service,
        namespace="shop",
        from_version="1.4.2",
        to_version="1.5.0",
        image=IMAGE,
        change_id="CHG-1",
        change_class="standard",
        actor="alice",
        plan_path="plans/checkout.yaml",
    )


def _write(path: Any, events: list[Any]) -> Any:
    path.write_text("".join(json.dumps(e.model_dump(mode="json")) + "\n" for e in events))
    return path


def test_the_journal_lists_each_unfinished_deploy_where_its_last_line_left_it(tmp_path: Any) -> None:
    from core.events import Finished, PhaseChanged, RunInterrupted, TrafficChanged
    from core.rollout.inspect import journal_reports

    def canary(deploy_id: str, minute: int, **fields: Any) -> dict[str, Any]:
        return {"ts": _at(minute), "phase": "canary", "deploy_id": deploy_id, **fields}

    events = [
        PhaseChanged(**canary("ghost", 0), previous="staging"),  # its start is not in this journal
        _started("old", 1),
        PhaseChanged(**canary("old", 2, step=0), previous="staging"),
        TrafficChanged(**canary("old", 3, step=0), requested=5, effective=10),
        TrafficChanged(**canary("old", 4, step=1), requested=25, effective=25, applied=False),  # intent
        RunInterrupted(**canary("old", 5, step=1), signal="SIGTERM", reason="stop", exit_code=143),
        _started("done", 6, service="cart"),
        Finished(ts=_at(7), phase="complete", deploy_id="done", outcome="completed"),
        _started("new", 8, service="search"),
        PhaseChanged(ts=_at(9), phase="preflight", deploy_id="new", previous="pending"),
    ]
    reports = journal_reports(_write(tmp_path / "j.jsonl", events))
    # newest first; the finished one and the one without a start are not listed
    assert [r.deploy_id for r in reports] == ["new", "old"]
    new, old = reports
    assert (new.service, new.phase, new.step_index, new.weight, new.updated_at) == (
        "search",
        "preflight",
        None,
        0,
        _at(9),
    )
    assert old.model_dump() == {
        "deploy_id": "old",
        "service": "checkout",
        "namespace": "shop",
        "version": "1.5.0",
        "plan_path": "plans/checkout.yaml",
        "phase": "canary",
        "step_index": 1,
        "weight": 10,  # the applied change's effective weight; the 25 % intent never reached the cluster
        "window": None,
        "driver": "alice",
        "updated_at": _at(5),
        "finished": False,
        "outcome": None,
        "holder": None,
        "lease": "unknown",  # the journal cannot say whether anyone holds it
        "lease_renewed_at": None,
        "zombie": False,
        "note": "interrupted by SIGTERM",
    }


def test_a_line_without_a_step_keeps_the_step_the_deploy_was_at(tmp_path: Any) -> None:
    from core.events import PhaseChanged
    from core.rollout.inspect import journal_reports

    events = [
        _started("d", 1),
        PhaseChanged(ts=_at(2), phase="canary", deploy_id="d", step=2, previous="staging"),
        PhaseChanged(ts=_at(3), phase="paused", deploy_id="d", previous="canary"),
    ]
    [report] = journal_reports(_write(tmp_path / "j.jsonl", events))
    assert (report.phase, report.step_index, report.updated_at) == ("paused", 2, _at(3))


def test_a_journal_whose_deploys_all_finished_lists_none(tmp_path: Any) -> None:
    from core.events import Finished
    from core.rollout.inspect import journal_reports

    events = [
        _started("d", 1),
        Finished(ts=_at(2), phase="rolled_back", deploy_id="d", outcome="rolled_back"),
    ]
    assert journal_reports(_write(tmp_path / "j.jsonl", events)) == []
    assert journal_reports(tmp_path / "missing.jsonl") == []


def test_a_deploy_whose_driver_lost_its_lease_is_listed_unfinished_until_a_resume_finishes_it(
    tmp_path: Any,
) -> None:
    """The lost driver journals a finished (blocked) line, but it only stopped acting: the deploy is
    still to be continued (core.resume.journaled_end; `run PLAN` resumes it), so `status` lists it."""
    from core.events import Finished, LeaseLost, RunResumed
    from core.rollout.inspect import journal_reports

    lost = [
        _started("d", 1),
        LeaseLost(ts=_at(2), phase="canary", deploy_id="d", step=1, reason="taken over"),
        Finished(ts=_at(2), phase="canary", deploy_id="d", outcome="blocked", reason="lease lost"),
    ]
    [report] = journal_reports(_write(tmp_path / "lost.jsonl", lost))
    assert (report.deploy_id, report.finished, report.outcome, report.step_index) == ("d", False, None, 1)
    resumed = [
        *lost,
        RunResumed(ts=_at(3), phase="canary", deploy_id="d", step=1, from_phase="canary"),
        Finished(ts=_at(4), phase="complete", deploy_id="d", outcome="completed"),
    ]
    assert journal_reports(_write(tmp_path / "resumed.jsonl", resumed)) == []
