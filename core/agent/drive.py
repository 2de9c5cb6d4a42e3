"""Driving DeployRuns: one engine per run, one replica at a time per run (its Lease), resumable.

Per unfinished DeployRun the agent keeps a loop (:meth:`RunDriver._loop`):

1. ensure the ``deploydeck.dev/rollback-first`` finalizer, so a deletion waits for the rollback;
2. ``open_session`` with the agent's own cluster credentials (the spec's ``cluster.kubeconfig`` and
   target contexts name the *author's* kubeconfig, meaningless in a Pod). The session takes the
   run's Lease (``deploydeck-<deployment>``, :func:`core.session._take_lease`): held by another
   replica → ``DriverConflict`` → stand by and try again; acquired → the resume machinery
   continues whatever the cluster's persisted progress says a dead replica left;
3. run the engine, mirroring its progress into the DeployRun's ``/status`` (phase, step, weight,
   window starts, outcome, sign-offs, and ``agent: {holder, url}`` so other replicas can forward);
4. a deletion while driving asks the engine to roll back; once it has, the finalizer goes. A
   deletion of a run nobody drives: take the lease and roll back what is unfinished
   (``rollback_unfinished``), then drop the finalizer.

Lease per run rather than one leader: see docs/agent-design.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

import yaml

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.agent.crd import GROUP, PLURAL, VERSION, DeployRunStatus
from core.agent.http import AgentMetrics
from core.agent.runs import Key, fleet_row
from core.agent.watch import RunChange, finished
from core.domain import Outcome, Phase

log = logging.getLogger("deploydeck.agent")

FINALIZER = f"{GROUP}/rollback-first"
#: how often a run refused for another run's unfinished deploy tries again
RETRY_OTHER_S = 15.0
MERGE = "application/merge-patch+json"


def run_path(namespace: str, name: str, sub: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    return f"{path}/{sub}" if sub else path


class DrivenRun:
    """One DeployRun as this replica sees it (a :class:`core.agent.runs.RunView`)."""

    def __init__(self, key: Key, obj: dict[str, Any], driver: RunDriver) -> None:
        self.key = key
        self.obj = obj
        self.session: Any = None  # core.session.Session while this replica holds the run's lease
        self.task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set by every watch change of this run
        self.gone = False
        self.phase_since: dt.datetime | None = None
        self._phase: str | None = None
        self._driver = driver  # its api_url: this replica's, set once the API serves
        self._dirty = asyncio.Event()  # the engine said something: mirror the status
        self.rollback_asked = False
        self.deletion: asyncio.Task[None] | None = None  # the rollback asked for by a deletion
        # the spec generation this replica's session drives: a plan is fixed once its session opens,
        # so an edit made meanwhile is shown as not applied (observedGeneration stays behind)
        self.generation: int | None = None
        self._edit_said: int | None = None  # the edited generation already logged

    # --- RunView -------------------------------------------------------------------------

    def row(self) -> dict[str, Any]:
        row = fleet_row(self.obj)
        rollout = self.rollout
        if rollout is not None:  # ours: fresher than the mirrored status
            row.phase = rollout.effective_phase.value
            row.weight = rollout.weight
            row.phase_since = self.phase_since
            row.deploy_id = rollout.deploy_id
            row.outcome = rollout.outcome.value if rollout.outcome else None
            row.lease_holder = self.holder
            row.message = self.unapplied_edit() or row.message
        return row.model_dump(mode="json")

    @property
    def rollout(self) -> Any:
        return self.session.rollout if self.session is not None else None

    @property
    def holder(self) -> str | None:
        lease = getattr(self.session, "lease", None)
        return getattr(lease, "holder", None)

    @property
    def driver_url(self) -> str | None:
        if self.session is not None:
            return self._driver.api_url
        agent = (self.obj.get("status") or {}).get("agent") or {}
        return agent.get("url") or None

    # --- helpers ---------------------------------------------------------------------------

    @property
    def deleting(self) -> bool:
        return bool((self.obj.get("metadata") or {}).get("deletionTimestamp"))

    @property
    def where(self) -> str:
        return f"deployrun {self.key[0]}/{self.key[1]}"

    @property
    def spec_generation(self) -> int | None:
        return (self.obj.get("metadata") or {}).get("generation")

    def unapplied_edit(self) -> str:
        """Why the spec's latest generation is not the one driven ("" when it is)."""
        latest = self.spec_generation
        if self.session is None or self.generation is None or latest in (None, self.generation):
            return ""
        return (
            f"spec generation {latest} is not applied: this run drives generation {self.generation} (a plan "
            "is fixed once driven; pause or roll back, then apply a new DeployRun)"
        )


class RunDriver:
    """Every DeployRun the agent watches (a :class:`core.agent.runs.RunRegistry`), and their loops."""

    def __init__(
        self,
        api: KubeApi,
        *,
        identity: str,
        api_url: str | None = None,
        metrics: AgentMetrics | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        journal: Any = None,
        journal_path: Path | None = None,
        retry_s: float = 1.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.api = api
        self.identity = identity
        self.api_url = api_url
        self.metrics = metrics or AgentMetrics()
        self.kubeconfig = kubeconfig
        self.context = context
        self.journal = journal  # a PgJournal shared by every run, or None: the file at journal_path
        self.journal_path = journal_path
        self.retry_s = retry_s
        self.env = env
        self._runs: dict[Key, DrivenRun] = {}
        self._stopping = False

    # --- RunRegistry -------------------------------------------------------------------------

    def runs(self) -> dict[Key, DrivenRun]:
        return dict(self._runs)

    def get(self, namespace: str, name: str) -> DrivenRun | None:
        return self._runs.get((namespace, name))

    # --- watch changes -----------------------------------------------------------------------

    async def on_change(self, change: RunChange) -> None:
        key = change.key
        run = self._runs.get(key)
        if change.type == "DELETED":
            if run is not None:
                run.gone = True
                run.obj = change.obj
                run.changed.set()
                self._runs.pop(key, None)
                if run.session is None and run.task is not None:
                    run.task.cancel()  # standing by for a run that no longer exists
            return
        if run is None:
            run = self._runs[key] = DrivenRun(key, change.obj, self)
        else:
            run.obj = change.obj
        run.changed.set()
        edit = run.unapplied_edit()
        if edit and run._edit_said != run.spec_generation:
            run._edit_said = run.spec_generation
            log.warning("%s: %s", run.where, edit)
            run._dirty.set()  # the status says so too
        if run.deleting and run.session is not None and not run.rollback_asked:
            # a task: the watch loop must not wait for the engine's command
            run.deletion = asyncio.create_task(
                self._roll_back_for_deletion(run), name=f"delete {key[0]}/{key[1]}"
            )
        if self._stopping:
            return
        if run.task is None or run.task.done():
            if finished(run.obj) and not (run.deleting and FINALIZER in _finalizers(run.obj)):
                return
            run.task = asyncio.create_task(self._loop(run), name=f"drive {key[0]}/{key[1]}")

    async def _roll_back_for_deletion(self, run: DrivenRun) -> None:
        rollout = run.rollout
        if rollout is None or rollout.outcome is not None:
            return
        run.rollback_asked = True
        log.info("%s: deleted while driving: rolling back before it goes", run.where)
        result = await rollout.rollback(self.identity, reason=f"DeployRun {run.key[0]}/{run.key[1]} deleted")
        if not result.ok:
            log.warning("%s: rollback on deletion refused: %s", run.where, result.reason)

    # --- one run --------------------------------------------------------------------------------

    async def _loop(self, run: DrivenRun) -> None:
        try:
            while not run.gone and not self._stopping:
                if finished(run.obj):
                    if run.deleting:
                        await self._drop_finalizer(run)
                    return
                if not run.deleting:
                    await self._ensure_finalizer(run)
                again = await self._attempt(run)
                if not again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # one run's failure must not end the agent; it is retried on its next change
            log.exception("%s: driving failed", run.where)

    async def _attempt(self, run: DrivenRun) -> bool:
        """One try at driving the run; True: loop again (stand by, or driven and lost the lease)."""
        from core.plan import PlanError
        from core.ports import PortError
        from core.resume import ANOTHER_RUNS_DEPLOY, RUN_PATH_PREFIX
        from core.session import DriverConflict, ResumeRefused, open_session

        run.changed.clear()
        try:
            plan = self._plan(run)
        except PlanError as exc:
            await self._write_status(run, message="not a valid plan: " + "; ".join(exc.problems))
            if run.deleting:
                await self._drop_finalizer(run)
                return False
            await run.changed.wait()  # a fixed spec comes as a change
            return True
        deleting = run.deleting
        generation = run.spec_generation  # the spec just parsed
        try:
            session = await open_session(
                plan,
                actor=self.identity,
                interactive=True,
                journal=self.journal,
                journal_path=self.journal_path,
                plan_path=f"{RUN_PATH_PREFIX}{run.key[0]}/{run.key[1]}",
                rollback_unfinished=deleting,
            )
        except ResumeRefused as exc:
            if deleting and exc.differences in (["nothing unfinished"], [ANOTHER_RUNS_DEPLOY]):
                # nothing of this run's is in the cluster (never started, or another run's deploy is)
                await self._drop_finalizer(run)
                return False
            log.warning("%s: %s", run.where, exc)
            if exc.differences == [ANOTHER_RUNS_DEPLOY]:
                # that deploy ending is no event of this run's: look again now and then
                await self._write_status(run, message=f"{exc}; tried again every {RETRY_OTHER_S:g} s")
                await self._pause(run, RETRY_OTHER_S)
                return True
            await self._write_status(run, message=str(exc))
            await run.changed.wait()
            return True
        except DriverConflict:
            await self._pause(run, self.retry_s)  # another replica drives it: stand by
            return True
        except PlanError as exc:  # the cluster refuses the plan (wrong version running, an HPA...)
            await self._write_status(run, message="; ".join(exc.problems))
            await run.changed.wait()
            return True
        except (PortError, OSError) as exc:
            log.warning("%s: cannot open the run: %s", run.where, exc)
            await self._pause(run, max(self.retry_s, 2.0))
            return True
        if await self._ended_meanwhile(run):
            # the lease came free because the replica driving it finished: nothing left to drive
            with contextlib.suppress(Exception):
                await session.close()
            return True  # the loop sees the outcome (and lets a deleted run go)
        run.generation = generation
        started = (run.obj.get("status") or {}).get("observedGeneration")
        if session.rollout._resume is not None and started not in (None, generation):
            # the plan the dead replica drove is gone with it: the spec as it is now goes on, said aloud
            log.warning(
                "%s: resumed with spec generation %s; the run was driven with generation %s until now",
                run.where,
                generation,
                started,
            )
        return await self._drive(run, session, deleting)

    async def _ended_meanwhile(self, run: DrivenRun) -> bool:
        """Whether the run got its outcome while this replica waited for its lease (read afresh: the
        watch may not have delivered the last replica's final status yet)."""
        from core.ports import PortError

        try:
            fresh = await self.api.request("GET", run_path(*run.key))
        except KubeApiError as exc:
            if exc.status == 404:
                run.gone = True
                return True
            return False  # not known to have ended: drive it as the watch last showed it
        except (PortError, OSError, TimeoutError):
            return False
        run.obj = fresh
        return finished(fresh)

    async def _drive(self, run: DrivenRun, session: Any, opened_to_roll_back: bool) -> bool:
        from core.events import RollbackTriggered

        rollout = session.rollout
        run.session = session
        run.rollback_asked = opened_to_roll_back  # the engine resumes it as a rollback, nothing else
        self.metrics.lease_transitions.labels(transition="acquired").inc()
        log.info("%s: driving (%s)", run.where, session.lease.holder if session.lease else self.identity)
        self._time_analysis(session)

        def on_event(event: Any) -> None:
            if isinstance(event, RollbackTriggered):
                self.metrics.rollbacks.labels(rule=event.rule).inc()
            phase = rollout.effective_phase.value
            left = (run.obj.get("status") or {}).get("phase")
            if phase == Phase.PENDING.value and left not in (None, Phase.PENDING.value):
                return  # a resume's first lines: the status keeps what the last replica left
            if phase != run._phase:
                run._phase, run.phase_since = phase, event.ts
            run._dirty.set()

        unsubscribe = rollout.subscribe(on_event)
        mirror = asyncio.create_task(self._mirror(run), name=f"status {run.key[0]}/{run.key[1]}")
        outcome: Outcome | None = None
        try:
            # the status follows the engine's first event (run_resumed, deploy_started): written
            # now it would show the fresh engine's "pending" over the phase a dead replica left
            body = asyncio.ensure_future(rollout.run())
            if run.deleting and not run.rollback_asked:  # deleted while the session was opening
                await asyncio.sleep(0)
                await self._roll_back_for_deletion(run)
            outcome = await body
        finally:
            unsubscribe()
            mirror.cancel()
            # asyncio.wait: `suppress(CancelledError): await mirror` also swallowed our own cancellation
            await asyncio.wait({mirror})
            lost = rollout._lease_lost is not None
            stopped = rollout.interrupted is not None
            if not lost:
                # before the lease goes: a standby that takes it next must find the outcome written
                with contextlib.suppress(Exception):
                    await self._write_status(run, ended=rollout)
            with contextlib.suppress(Exception):
                await session.close()
            run.session = None
            self.metrics.lease_transitions.labels(transition="lost" if lost else "released").inc()
            run.generation = None
        log.info(
            "%s: %s",
            run.where,
            f"stopped ({'lease lost' if lost else 'interrupted'})" if lost or stopped else outcome,
        )
        if lost:
            return True  # another replica holds it now: stand by
        if stopped:
            return False
        if run.deleting:
            await self._drop_finalizer(run)
        return False

    def _time_analysis(self, session: Any) -> None:
        """The analysis read latency: time each canary metrics read the engine makes."""
        metrics = session.world.metrics
        inner = getattr(metrics, "canary_metrics", None)
        if inner is None:
            return
        histogram = self.metrics.analysis_read_seconds

        async def timed(window_s: float) -> Any:
            started = time.perf_counter()
            try:
                return await inner(window_s)
            finally:
                histogram.observe(time.perf_counter() - started)

        metrics.canary_metrics = timed

    async def _pause(self, run: DrivenRun, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can drop the agent's stop (3.11)
                await run.changed.wait()
        run.changed.clear()

    def _plan(self, run: DrivenRun) -> Any:
        """The spec as a plan, on the agent's own credentials (the spec's name the author's)."""
        from core.plan import parse_plan

        spec = run.obj.get("spec") or {}
        where = f"{run.where} spec"
        plan = parse_plan(
            yaml.safe_dump(spec, sort_keys=False),
            where,
            env=dict(os.environ) if self.env is None else self.env,
        )
        cluster = plan.cluster.model_copy(update={"kubeconfig": self.kubeconfig})
        targets = plan.targets.model_copy(
            update={
                role: getattr(plan.targets, role).model_copy(update={"context": self.context})
                for role in ("staging", "production")
            }
        )
        return plan.model_copy(update={"cluster": cluster, "targets": targets})

    # --- status and finalizer -----------------------------------------------------------------

    async def _mirror(self, run: DrivenRun) -> None:
        """Write the status when the engine changed something; at most a few writes a second."""
        while True:
            await run._dirty.wait()
            run._dirty.clear()
            try:
                await self._write_status(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the status is a mirror: the engine goes on without it
                log.warning("%s: status not written: %s", run.where, exc)
            await asyncio.sleep(0.2)

    def status_of(self, run: DrivenRun, *, ended: Any = None, message: str = "") -> dict[str, Any]:
        rollout = ended if ended is not None else run.rollout
        meta = run.obj.get("metadata") or {}
        if rollout is None:
            current = dict(run.obj.get("status") or {})
            current["message"] = message
            current["agent"] = None
            current["observedGeneration"] = meta.get("generation")
            return DeployRunStatus.model_validate(current).model_dump(by_alias=True, mode="json")
        progress = rollout.progress
        windows = []
        if progress is not None and progress.window is not None:
            windows.append({"name": progress.window.name, "started": progress.window.started_at})
        sign_offs = [
            {
                "gate": r["gate_id"],
                "kind": r["kind"],
                "user": r["actor"],
                "groups": list(r.get("groups") or []),
                "selfDeclared": r.get("identity", "self-declared") == "self-declared",
                "note": r.get("text") or "",
                "at": r["at"],
            }
            for r in rollout.ledger.to_records()
        ]
        driving = ended is None and run.session is not None
        holder = run.holder if driving else None
        observed = run.generation if run.generation is not None else meta.get("generation")
        status = DeployRunStatus.model_validate(
            {
                "deployId": rollout.deploy_id,
                "phase": rollout.effective_phase.value,
                "phaseSince": run.phase_since,
                "step": rollout.step_index,
                "weight": rollout.weight,
                "windows": windows,
                "outcome": rollout.outcome.value if rollout.outcome else None,
                "signOffs": sign_offs,
                "leaseHolder": holder,
                "agent": {"holder": holder, "url": self.api_url} if holder else None,
                "observedGeneration": observed,
                "message": message or (run.unapplied_edit() if driving else ""),
            }
        )
        return status.model_dump(by_alias=True, mode="json")

    async def _write_status(self, run: DrivenRun, *, ended: Any = None, message: str = "") -> None:
        if run.gone:
            return
        lease = getattr(run.session, "lease", None)
        if ended is None and lease is not None and lease.lost is not None:
            return  # not ours any more: the new holder writes it
        status = self.status_of(run, ended=ended, message=message)
        try:
            obj = await self.api.request(
                "PATCH", run_path(*run.key, sub="status"), body={"status": status}, content_type=MERGE
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return
            raise
        run.obj = obj

    async def _ensure_finalizer(self, run: DrivenRun) -> None:
        present = _finalizers(run.obj)
        if FINALIZER in present:
            return
        await self._set_finalizers(run, [*present, FINALIZER])

    async def _drop_finalizer(self, run: DrivenRun) -> None:
        present = _finalizers(run.obj)
        if FINALIZER not in present:
            return
        await self._set_finalizers(run, [f for f in present if f != FINALIZER])
        log.info("%s: finalizer removed", run.where)

    async def _set_finalizers(self, run: DrivenRun, finalizers: list[str]) -> None:
        version = (run.obj.get("metadata") or {}).get("resourceVersion")
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": version}}
        try:
            run.obj = await self.api.request("PATCH", run_path(*run.key), body=patch, content_type=MERGE)
        except KubeApiError as exc:
            if exc.status == 404:
                return
            if exc.status != 409:
                raise
            # changed meanwhile (another replica, a status write): read it and try once more
            adding = FINALIZER in finalizers
            run.obj = await self.api.request("GET", run_path(*run.key))
            present = _finalizers(run.obj)
            others = [f for f in present if f != FINALIZER]
            wanted = [*others, FINALIZER] if adding else others
            if wanted != present:
                version = run.obj["metadata"].get("resourceVersion")
                run.obj = await self.api.request(
                    "PATCH",
                    run_path(*run.key),
                    body={"metadata": {"finalizers": wanted, "resourceVersion": version}},
                    content_type=MERGE,
                )

    # --- stopping ----------------------------------------------------------------------------

    async def stop(self) -> None:
        """SIGTERM: every driven run stops where it stands (left resumable, lease released, so a
        standby replica takes it at once); then every loop ends."""
        self._stopping = True
        for run in list(self._runs.values()):
            rollout = run.rollout
            if rollout is not None:
                rollout.interrupt("SIGTERM", 143)
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        if tasks:  # asyncio.wait, not wait_for: it never swallows our own cancellation
            await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            # cancel until done (Python 3.11's wait_for can swallow one cancellation; see Agent.stop)
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)


def _finalizers(obj: dict[str, Any]) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])
