"""The rollout state machine: one deploy through the workflow, driven by a plan.

The engine is the only writer of rollout state. It asks the world through ports,
publishes typed events (journal first, then subscribers), and takes commands from a
person. Every wait goes through the Clock, so tests run hours in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core.analysis import Judgement, TriggerState, judge, soak_judge
from core.domain import (
    CanaryMetrics,
    GateGroup,
    GateResult,
    GateStatus,
    Notification,
    Outcome,
    Phase,
    WorkloadSample,
)
from core.durations import format_duration
from core.events import (
    AnalysisSample,
    CommandRefused,
    DecisionRequired,
    DeployStarted,
    Event,
    EventBase,
    Finished,
    GateEvaluated,
    GateOverridden,
    GateSignedOff,
    HealthChecked,
    LeaseLost,
    LogLine,
    NotificationSent,
    Paused,
    PhaseChanged,
    Resumed,
    RollbackStep,
    RollbackTriggered,
    RuleReading,
    TrafficChanged,
    WindowStarted,
)
from core.gates.base import GateContext
from core.gates.runner import evaluate_gates
from core.plan import Plan
from core.policy import GateDef, gates_for
from core.ports import Journal, PortError
from core.signoff import SignOffLedger
from core.world import World


class CommandResult(BaseModel):
    ok: bool
    reason: str = ""


@dataclass
class _Stop:
    kind: Literal["rollback", "abort"]
    actor: str
    reason: str


class _Stopped(Exception):
    """The flow ends here because a rollback or abort was requested."""


class _Blocked(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Window:
    observed_s: float = 0.0
    samples: list[AnalysisSample] = field(default_factory=list)
    blind: int = 0


class Rollout:
    """One deploy. ``await run()`` walks it to an :class:`Outcome`; commands steer it meanwhile."""

    def __init__(
        self,
        plan: Plan,
        world: World,
        *,
        actor: str,
        journal: Journal | None = None,
        interactive: bool = False,
        approvals: Iterable[str] = (),
        decision_default: Literal["rollback", "fix_forward"] = "rollback",
        deploy_id: str | None = None,
        plan_path: str = "",
        scenario: str | None = None,
        incident_dir: Path | None = None,
        notes: Iterable[str] = (),
    ) -> None:
        self.plan = plan
        self.incident_dir = incident_dir or Path.cwd() / "incidents"
        self._notes = list(notes)  # how the world was set up, journaled with the deploy
        self.world = world
        self.clock = world.clock
        self.actor = actor
        self.journal = journal
        self.interactive = interactive
        self.decision_default = decision_default
        self.deploy_id = deploy_id or uuid.uuid4().hex[:12]
        self.plan_path = plan_path
        self.scenario = scenario

        self.phase = Phase.PENDING
        self.step_index: int | None = None
        self.weight = 0
        self.events: list[Event] = []
        self.window: WindowStarted | None = None
        self.last_analysis: AnalysisSample | None = None
        self.rollback_reason: RollbackTriggered | None = None
        self.outcome: Outcome | None = None

        self.catalogue: dict[str, GateDef] = {g.id: g for g in gates_for(plan)}
        self.gates: dict[str, GateResult] = {}
        self.ledger = SignOffLedger(plan, deployer=actor)
        self._approvals = list(approvals)

        self._subscribers: list[Callable[[Event], None]] = []
        self._flow: asyncio.Task[Outcome] | None = None
        self._stop: _Stop | None = None
        self._paused_from: Phase | None = None
        self._paused_by_engine_at: datetime | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._wake = asyncio.Event()
        self._proceed_requested: str | None = None
        self._refresh_requested: str | None = None
        self._awaiting_proceed = False
        self._decision: str | None = None
        self._decision_pending: DecisionRequired | None = None
        self._triggers = TriggerState()
        self._baseline_ref: WorkloadSample | None = None
        self._last_metrics: CanaryMetrics | None = None
        self._started_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._lease_lost: str | None = None  # set by the session's lease keeper (fencing)
        self._body: asyncio.Future[Outcome] | None = None

    # --- observing ------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    @property
    def paused(self) -> bool:
        return self.phase == Phase.PAUSED

    @property
    def effective_phase(self) -> Phase:
        """The workflow phase, looking through PAUSED."""
        return self._paused_from if self.phase == Phase.PAUSED and self._paused_from else self.phase

    def pending_reasons(self) -> list[str]:
        reasons: list[str] = []
        group = _GROUP_OF.get(self.effective_phase)
        if group is not None:
            for gate in self.catalogue.values():
                if gate.group != group:
                    continue
                result = self.gates.get(gate.id)
                if result is None:
                    reasons.append(f"{gate.id}: not evaluated yet")
                elif not result.status.satisfied:
                    reasons.append(f"{gate.id}: {result.status.value.replace('_', ' ')} — {result.evidence}")
        if self.effective_phase == Phase.CANARY and self.last_analysis is not None:
            if self.last_analysis.verdict != "healthy":
                reasons.append(
                    f"last analysis: {self.last_analysis.no_data_reason or self.last_analysis.verdict}"
                )
        if self.effective_phase == Phase.CANARY and self.last_analysis is None:
            reasons.append("no analysis sample yet in this step")
        if self.paused:
            reasons.append("the rollout is paused")
        return reasons

    # --- commands ---------------------------------------------------------------

    def allowed(self, command: str) -> CommandResult:
        phase, effective = self.phase, self.effective_phase
        if self.outcome is not None or phase in {Phase.PENDING, Phase.ROLLING_BACK}:
            where = "has not started" if phase == Phase.PENDING else f"is {phase.value.replace('_', ' ')}"
            return CommandResult(ok=False, reason=f"the rollout {where}")
        if command == "rollback":
            return CommandResult(ok=True)
        if command == "abort":
            return CommandResult(ok=True)
        if command == "pause":
            if phase == Phase.PAUSED:
                return CommandResult(ok=False, reason="already paused")
            return CommandResult(ok=True)
        if command == "resume":
            if phase != Phase.PAUSED:
                return CommandResult(ok=False, reason="not paused")
            return CommandResult(ok=True)
        if command == "decide":
            if self._decision_pending is None:
                return CommandResult(ok=False, reason="no decision is pending")
            return CommandResult(ok=True)
        if command == "refresh":
            if not self.interactive or effective not in {Phase.PREFLIGHT, Phase.MIGRATIONS, Phase.STAGING}:
                return CommandResult(
                    ok=False, reason="gates are re-checked only while the rollout waits at them"
                )
            return CommandResult(ok=True)
        if command in {"sign_off", "override"}:
            if effective not in _GROUP_OF:
                return CommandResult(ok=False, reason=f"no gates are open in {effective.value}")
            return CommandResult(ok=True)
        if command == "proceed":
            if phase == Phase.PAUSED:
                return CommandResult(ok=False, reason="paused: resume first")
            if self._awaiting_proceed:
                blockers = [r for r in self.pending_reasons() if not r.startswith("no analysis")]
                if blockers:
                    return CommandResult(ok=False, reason="; ".join(blockers))
                return CommandResult(ok=True)
            if effective == Phase.CANARY and self.window is not None:
                if self.last_analysis is None or self.last_analysis.verdict != "healthy":
                    reason = "no healthy analysis sample in this step yet"
                    if self.last_analysis is not None and self.last_analysis.no_data_reason:
                        reason = f"last analysis had no data: {self.last_analysis.no_data_reason}"
                    return CommandResult(ok=False, reason=reason)
                return CommandResult(ok=True)
            reasons = self.pending_reasons()
            return CommandResult(
                ok=False,
                reason="; ".join(reasons) if reasons else f"nothing to proceed to in {effective.value}",
            )
        return CommandResult(ok=False, reason=f"unknown command '{command}'")

    async def _refused(self, command: str, actor: str) -> CommandResult | None:
        """The refusal (journaled) when the command makes no sense now; None when it may go ahead."""
        check = self.allowed(command)
        return None if check.ok else await self._refuse(command, actor, check.reason)

    async def _refuse(self, command: str, actor: str, reason: str) -> CommandResult:
        await self._emit(CommandRefused, command=command, actor=actor, reason=reason)
        return CommandResult(ok=False, reason=reason)

    async def sign_off(self, gate_id: str, actor: str, note: str = "") -> CommandResult:
        check = self.allowed("sign_off")
        gate = self.catalogue.get(gate_id)
        if check.ok and gate is None:
            check = CommandResult(ok=False, reason=f"no gate '{gate_id}' in this plan")
        elif check.ok and gate is not None and gate.automated:
            check = CommandResult(ok=False, reason=f"{gate_id} is automated; override it instead")
        if not check.ok:
            return await self._refuse("sign_off", actor, check.reason)
        assert gate is not None
        ok, reason, complete = self.ledger.sign(gate, actor, note, self.clock.now())
        if not ok:
            return await self._refuse("sign_off", actor, reason)
        await self._emit(GateSignedOff, gate_id=gate_id, actor=actor, note=note, complete=complete)
        current = self.gates.get(gate_id) or _unevaluated(gate)
        await self._record_gate(current)
        self._wake.set()
        return CommandResult(ok=True, reason="" if complete else "recorded; another person must sign too")

    async def override(self, gate_id: str, actor: str, reason: str) -> CommandResult:
        check = self.allowed("override")
        gate = self.catalogue.get(gate_id)
        if check.ok and gate is None:
            check = CommandResult(ok=False, reason=f"no gate '{gate_id}' in this plan")
        if not check.ok:
            return await self._refuse("override", actor, check.reason)
        assert gate is not None
        ok, why = self.ledger.override(gate, actor, reason, self.clock.now())
        if not ok:
            return await self._refuse("override", actor, why)
        await self._emit(GateOverridden, gate_id=gate_id, actor=actor, reason=reason)
        current = self.gates.get(gate_id) or _unevaluated(gate)
        await self._record_gate(current)
        self._wake.set()
        return CommandResult(ok=True)

    async def proceed(self, actor: str) -> CommandResult:
        if refused := await self._refused("proceed", actor):
            return refused
        self._proceed_requested = actor
        await self._emit(LogLine, message=f"{actor} proceeds", source=actor)
        self._wake.set()
        return CommandResult(ok=True)

    async def refresh_gates(self, actor: str) -> CommandResult:
        """Re-check the current step's automated gates now instead of at the next refresh."""
        if refused := await self._refused("refresh", actor):
            return refused
        self._refresh_requested = actor
        self._wake.set()
        return CommandResult(ok=True)

    async def pause(self, actor: str, reason: str = "") -> CommandResult:
        if refused := await self._refused("pause", actor):
            return refused
        await self._enter_pause(actor, reason or f"paused by {actor}")
        return CommandResult(ok=True)

    async def resume(self, actor: str) -> CommandResult:
        if refused := await self._refused("resume", actor):
            return refused
        previous = self._paused_from or Phase.PREFLIGHT
        self._paused_from = None
        self._paused_by_engine_at = None
        await self._emit(Resumed, actor=actor)
        await self._set_phase(previous, f"resumed by {actor}")
        self._resumed.set()
        self._wake.set()
        return CommandResult(ok=True)

    async def rollback(self, actor: str, reason: str = "manual rollback") -> CommandResult:
        if refused := await self._refused("rollback", actor):
            return refused
        await self._request_stop("rollback", actor, reason, automatic=False)
        return CommandResult(ok=True)

    async def abort(self, actor: str, reason: str) -> CommandResult:
        if refused := await self._refused("abort", actor):
            return refused
        await self._request_stop("abort", actor, reason or f"aborted by {actor}", automatic=False)
        return CommandResult(ok=True)

    async def decide(self, option: str, actor: str) -> CommandResult:
        check = self.allowed("decide")
        if check.ok and self._decision_pending is not None and option not in self._decision_pending.options:
            check = CommandResult(
                ok=False, reason=f"choose one of: {', '.join(self._decision_pending.options)}"
            )
        if not check.ok:
            return await self._refuse("decide", actor, check.reason)
        self._decision = option
        await self._emit(LogLine, message=f"{actor} decided: {option.replace('_', '-')}", source=actor)
        if self.phase == Phase.PAUSED:
            await self.resume(actor)
        self._wake.set()
        return CommandResult(ok=True)

    # --- running ------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Walk the deploy to its outcome; ends at once, without touching the cluster, if the lease is lost."""
        if self._lease_lost is not None:  # lost before the first step: do nothing at all
            return await self._stopped_by_lease_loss()
        self._body = asyncio.ensure_future(self._drive())
        try:
            await asyncio.wait({self._body})
        except asyncio.CancelledError:
            self._body.cancel()
            raise
        if self._lease_lost is None or self.outcome is not None:
            return self._body.result()
        return await self._stopped_by_lease_loss()

    async def _drive(self) -> Outcome:
        self._started_at = self.clock.now()
        plan = self.plan
        await self._emit(
            DeployStarted,
            service=plan.service,
            namespace=plan.namespace,
            from_version=plan.version.from_,
            to_version=plan.version.to,
            image=plan.version.image,
            change_id=plan.change.id,
            change_class=plan.change.class_,
            security_sensitive=plan.change.security_sensitive,
            actor=self.actor,
            plan_path=self.plan_path,
            steps=[s.weight for s in plan.canary.steps],
            scenario=self.scenario,
        )
        for note in self._notes:
            await self._emit(LogLine, source="session", message=note)
        self._flow = asyncio.create_task(self._main())
        reason = ""
        try:
            outcome = await self._flow
        except asyncio.CancelledError:
            if self._stop is None or self._lease_lost is not None:
                raise
            outcome = Outcome.ERROR
        except _Stopped:
            outcome = Outcome.ERROR
        except _Blocked as exc:
            await self._set_phase(Phase.BLOCKED, exc.reason)
            outcome, reason = Outcome.BLOCKED, exc.reason
        except PortError as exc:
            # An outside system failed mid-deploy. Once traffic has moved, rolling back is the safe direction.
            await self._emit(LogLine, level="error", message=str(exc))
            if self.effective_phase in {Phase.STAGING, Phase.CANARY, Phase.VERIFY}:
                await self._request_stop(
                    "rollback", "engine", f"cannot continue: {exc}", automatic=True, rule="error"
                )
            else:
                outcome, reason = Outcome.ERROR, str(exc)
        if self._stop is not None:
            if self._stop.kind == "rollback":
                outcome = await self._rollback_procedure()
            else:
                outcome = await self._abort_procedure()
            reason = self._stop.reason
        elif outcome == Outcome.COMPLETED:
            reason = "all gates passed, canary promoted, verification green"
        return await self._finish(outcome, reason)

    async def _main(self) -> Outcome:
        await self._preflight()
        if self.plan.migrations is not None and (
            self.plan.migrations.files or self.plan.migrations.staging_command
        ):
            await self._migrations()
        await self._staging()
        await self._canary()
        decided = await self._verify()
        await self._complete(decided)
        return Outcome.COMPLETED

    # --- phases -------------------------------------------------------------------

    async def _preflight(self) -> None:
        await self._set_phase(Phase.PREFLIGHT, "checking pre-deploy gates")
        for gate_id in self._approvals:
            gate = self.catalogue.get(gate_id)
            if gate is None:
                raise _Blocked(f"--approve {gate_id}: no such gate in this plan")
            ok, why, complete = self.ledger.sign(
                gate, self.actor, "approved on the command line", self.clock.now()
            )
            if not ok:
                raise _Blocked(f"--approve {gate_id}: {why}")
            await self._emit(
                GateSignedOff,
                gate_id=gate_id,
                actor=self.actor,
                note="approved on the command line",
                complete=complete,
            )
        await self._gate_phase(GateGroup.PRE_DEPLOY, needs_proceed=self.interactive)

    async def _migrations(self) -> None:
        migrations = self.plan.migrations
        assert migrations is not None
        await self._set_phase(Phase.MIGRATIONS, "reviewing migration safety")
        await self._gate_phase(GateGroup.MIGRATIONS, needs_proceed=False, skip={"migrations-staging-run"})
        if migrations.staging_command:
            await self._run_command("migrations (staging)", migrations.staging_command, migrations.timeout)
            health = self.plan.targets.staging.health
            if health is not None:
                probe = await self.world.probe.check(health.ready, timeout_s=health.timeout)
                await self._emit(
                    HealthChecked,
                    url=_public(probe.url),
                    ok=probe.ok,
                    status=probe.status,
                    detail=probe.detail,
                )
                if not probe.ok:
                    raise _Blocked(f"staging unhealthy after migration: {probe.detail or probe.status}")
            await self._record_pass("migrations-staging-run", "ran on staging; staging healthy after")

    async def _staging(self) -> None:
        plan = self.plan
        await self._set_phase(Phase.STAGING, f"deploying {plan.version.to} to staging")
        await self._emit(LogLine, message=f"staging: set image {plan.version.image}")
        await self.world.staging.deploy(plan.version.image, "stable")
        await self.world.staging.wait_ready(
            "stable", plan.targets.staging.rollout_timeout, progress=self._progress("staging rollout")
        )
        await self._record_pass("staging-deploy", f"{plan.version.to} rolled out")
        await self._gate_phase(GateGroup.STAGING, needs_proceed=False, skip={"staging-deploy"})
        await self._soak()

    async def _soak(self) -> None:
        """Staging soak: the error rate over the whole window must stay below baseline + limit.

        Each interval reads the last `lookback` of traffic to show progress and to stop early on a
        clear regression (the canary trigger's limit); the 0.1 pp rule itself is judged once, on a
        read spanning the whole soak, because shorter windows hold too few requests to resolve it.
        """
        soak = self.plan.staging.soak
        spec = self.plan.analysis
        if soak.duration <= 0:
            return
        if self.world.staging_metrics is None or self.world.metrics is None:
            raise _Blocked("staging soak needs metrics for staging and production; none configured")
        win = await self._start_window("staging soak", soak.duration)
        while win.observed_s < soak.duration:
            await self._nap(spec.interval)
            await self._check_stop()
            reading, staging_side, base_side = await self._soak_reading(spec.lookback)
            clear_regression = reading.value is not None and reading.value > spec.triggers.error_delta_pp
            verdict: Literal["healthy", "no_data", "fired"] = (
                "no_data" if reading.value is None else ("fired" if clear_regression else "healthy")
            )
            sample = await self._emit(
                AnalysisSample,
                weight=0,
                canary_error_rate=_pct(staging_side.error_rate),
                baseline_error_rate=_pct(base_side.error_rate),
                canary_p99_ms=_ms(staging_side.p99),
                baseline_p99_ms=_ms(base_side.p99),
                canary_requests=staging_side.requests,
                baseline_requests=base_side.requests,
                verdict=verdict,
                no_data_reason=reading.text if verdict == "no_data" else None,
                readings=[reading],
                elapsed_s=win.observed_s + spec.interval,
                window_s=soak.duration,
            )
            assert isinstance(sample, AnalysisSample)
            self.last_analysis = sample
            if verdict == "fired":
                raise _Blocked(f"staging soak failed early: {reading.text}")
            if await self._counts(win, verdict, sample, soak.duration):
                win.observed_s += spec.interval
        self.window = None
        final, _, _ = await self._soak_reading(soak.duration)
        if final.value is None:
            raise _Blocked(f"staging soak: {final.text}")
        if final.fired:
            raise _Blocked(f"staging soak failed over {format_duration(soak.duration)}: {final.text}")
        await self._emit(
            LogLine, message=f"staging soak passed over {format_duration(soak.duration)}: {final.text}"
        )

    async def _soak_reading(self, window_s: float) -> tuple[RuleReading, WorkloadSample, WorkloadSample]:
        """Staging's new version against production's stable version over the same window."""
        assert self.world.staging_metrics is not None and self.world.metrics is not None
        soak = self.plan.staging.soak
        staging = await self._read(self.world.staging_metrics, window_s)
        production = await self._read(self.world.metrics, window_s)
        staging_side = staging.canary if staging.reason is None else WorkloadSample(reason=staging.reason)
        base_side = (
            production.baseline if production.reason is None else WorkloadSample(reason=production.reason)
        )
        reading = soak_judge(
            staging_side, base_side, soak.max_error_delta_pp, self.plan.analysis.min_requests
        )
        return reading, staging_side, base_side

    async def _canary(self) -> None:
        plan = self.plan
        prod = self.world.production
        await self._set_phase(Phase.CANARY, "starting the canary")
        if plan.migrations is not None and plan.migrations.production_command:
            await self._run_command(
                "migrations (production)", plan.migrations.production_command, plan.migrations.timeout
            )
        await self._emit(LogLine, message=f"canary: set image {plan.version.image}")
        await prod.deploy(plan.version.image, "canary")
        self._triggers = TriggerState()
        for index, step in enumerate(plan.canary.steps):
            self.step_index = index
            await self._set_weight(step.weight)
            if index == 0:
                await prod.wait_ready(
                    "canary", plan.targets.production.rollout_timeout, self._progress("canary rollout")
                )
            self.last_analysis = None
            await self._observe(f"canary {step.weight} %", step.observe, Phase.CANARY)
            if not plan.canary.auto_promote and self.interactive and index < len(plan.canary.steps) - 1:
                await self._wait_for_proceed(f"step {step.weight} % observed; proceed to the next step")
        await self._emit(LogLine, message=f"promoting {plan.version.to} to stable")
        await prod.deploy(plan.version.image, "stable")
        await prod.wait_ready(
            "stable", plan.targets.production.rollout_timeout, self._progress("stable rollout")
        )
        await self._set_weight(0, detail="promoted: stable runs the new version")
        self.step_index = None

    async def _verify(self) -> str | None:
        spec = self.plan.verification
        await self._set_phase(Phase.VERIFY, "post-deploy verification")
        # a first read right after promotion, so people see the checks during the window;
        # the decision is taken on the read at its end
        await self._verification_checks()
        await self._observe("verification", spec.duration, Phase.VERIFY)
        results = await self._verification_checks()
        failed = [r for r in results if not r.status.satisfied]
        if not failed:
            return None
        summary = "; ".join(f"{r.gate_id}: {r.evidence}" for r in failed)
        choice = spec.on_failure
        if choice == "ask":
            question = f"verification failed ({summary}). Roll back (recommended, POL-010) or fix forward?"
            event = await self._emit(
                DecisionRequired,
                question=question,
                options=["rollback", "fix_forward"],
                recommended="rollback",
            )
            assert isinstance(event, DecisionRequired)
            if self.interactive:
                self._decision_pending = event
                self._decision = None
                await self._enter_pause("engine", "verification failed: decide rollback or fix-forward")
                while self._decision is None:
                    await self._nap(self.plan.analysis.interval)
                    await self._check_stop()
                self._decision_pending = None
                choice = self._decision  # type: ignore[assignment]
            else:
                choice = self.decision_default
                await self._emit(LogLine, message=f"headless: decision taken from the command line: {choice}")
        if choice == "rollback":
            await self._request_stop(
                "rollback", "engine", f"verification failed: {summary}", automatic=True, rule="verification"
            )
            raise _Stopped
        await self._emit(
            LogLine, level="warning", message=f"fix-forward chosen; failing checks stay on record: {summary}"
        )
        return summary

    async def _complete(self, fix_forward: str | None) -> None:
        from core.completion import completion_message

        await self._set_phase(Phase.COMPLETE, "deploy complete")
        await self.world.production.write_state(self._state("complete"))
        message = completion_message(self.events)
        if fix_forward:
            message = message.model_copy(
                update={"text": f"{message.text}. Fix-forward chosen with failing checks: {fix_forward}"}
            )
        await self._notify(message)
        await self._completion_extras()

    # --- gates --------------------------------------------------------------------

    def _gate_context(self) -> GateContext:
        return GateContext(
            plan=self.plan,
            clock=self.clock,
            probe=self.world.probe,
            runner=self.world.runner,
            alerts=self.world.alerts,
            metrics=self.world.metrics,
            codehost=self.world.codehost,
            deploy_started_at=self._started_at or self.clock.now(),
            staging=self.world.staging,
            base_dir=Path(self.plan_path).parent
            if self.plan_path and not self.plan_path.startswith("(")
            else None,
            on_log=self._gate_log,
        )

    async def _gate_log(self, source: str, line: str) -> None:
        await self._emit(LogLine, source=source, message=line)

    async def _evaluate(self, group: GateGroup, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        only = {g.id for g in self.catalogue.values() if g.group == group and g.id not in skip}
        results = await evaluate_gates(self._gate_context(), group, only=only)
        for result in results:
            if result.gate_id in skip:
                continue
            await self._record_gate(result)

    async def _record_pass(self, gate_id: str, evidence: str) -> None:
        """A gate the engine itself satisfied by doing the work (deploy, migration run)."""
        gate = self.catalogue.get(gate_id)
        if gate is not None:
            await self._record_gate(gate.result(GateStatus.PASS, evidence, at=self.clock.now()))

    async def _record_gate(self, result: GateResult) -> None:
        overlaid = self.ledger.apply(result)
        self.gates[overlaid.gate_id] = overlaid
        await self._emit(GateEvaluated, gate=overlaid)

    def _unsatisfied(self, group: GateGroup, skip: set[str]) -> list[GateResult]:
        out = []
        for gate in self.catalogue.values():
            if gate.group != group or gate.id in skip:
                continue
            result = self.gates.get(gate.id)
            if result is None or not result.status.satisfied:
                out.append(result or _unevaluated(gate))
        return out

    async def _gate_phase(
        self, group: GateGroup, *, needs_proceed: bool, skip: set[str] = frozenset()
    ) -> None:  # type: ignore[assignment]
        await self._evaluate(group, skip)
        refresh = self.plan.gates.refresh
        last_refresh = self.clock.now()
        announced = False
        while True:
            await self._check_stop()
            waiting = self._unsatisfied(group, skip)
            if not self.interactive:
                if waiting:
                    names = ", ".join(f"{r.gate_id} ({r.status.value})" for r in waiting)
                    raise _Blocked(f"blocked at {group.value.replace('_', '-')} gates: {names}")
                return
            if not waiting:
                if not needs_proceed or self._proceed_requested:
                    self._proceed_requested = None
                    self._awaiting_proceed = False
                    return
                self._awaiting_proceed = True  # before the message: whoever reads it may press p at once
                if not announced:
                    await self._emit(LogLine, message="all gates satisfied: press p to proceed")
                    announced = True
            else:
                self._awaiting_proceed = needs_proceed
            await self._nap(min(refresh, 5.0))
            if self._refresh_requested is not None:
                # on demand: every automated gate of the step again, not only the waiting ones
                await self._emit(LogLine, message=f"{self._refresh_requested} re-checks the gates")
                self._refresh_requested = None
                automated = {g.id for g in self.catalogue.values() if g.group == group and g.automated}
                await self._evaluate(group, skip | (set(self.catalogue) - automated))
                last_refresh = self.clock.now()
            elif (self.clock.now() - last_refresh).total_seconds() >= refresh:
                automated = {r.gate_id for r in waiting if self.catalogue[r.gate_id].automated}
                if automated:
                    await self._evaluate(group, skip | (set(self.catalogue) - automated))
                last_refresh = self.clock.now()

    async def _wait_for_proceed(self, message: str) -> None:
        self._awaiting_proceed = True
        await self._emit(LogLine, message=f"{message}: press p")
        while not self._proceed_requested:
            await self._nap(5.0)
            await self._check_stop()
        self._proceed_requested = None
        self._awaiting_proceed = False

    # --- observation windows ---------------------------------------------------------

    async def _start_window(self, name: str, duration: float) -> _Window:
        now = self.clock.now()
        event = await self._emit(
            WindowStarted, name=name, duration_s=duration, ends_at=now + timedelta(seconds=duration)
        )
        assert isinstance(event, WindowStarted)
        self.window = event
        return _Window()

    async def _counts(self, win: _Window, verdict: str, sample: AnalysisSample, duration: float) -> bool:
        """Whether this interval counts toward the window; pauses the rollout after too many blind ones."""
        spec = self.plan.analysis
        win.samples.append(sample)
        if self.phase == Phase.PAUSED:
            if self._paused_by_engine_at is not None:
                waited = (self.clock.now() - self._paused_by_engine_at).total_seconds()
                if waited >= spec.blind_pause_timeout and self._decision_pending is None:
                    reason = (
                        f"no data for {format_duration(waited)} while paused ({sample.no_data_reason or 'no data'}); "
                        "rollback if unsure (POL-010)"
                    )
                    await self._request_stop("rollback", "engine", reason, automatic=True, rule="no_data")
                    raise _Stopped
            return False
        if verdict == "no_data":
            win.blind += 1
            if win.blind >= spec.max_blind_intervals:
                await self._enter_pause(
                    "engine",
                    f"no data for {win.blind} analysis intervals ({sample.no_data_reason}); "
                    "never promoting blind — resume when data is back, or roll back",
                    by_engine=True,
                )
            else:
                # blind time does not count: the window's end moves out
                await self._extend_window(duration - win.observed_s)
            return False
        win.blind = 0
        return True

    async def _extend_window(self, remaining: float) -> None:
        if self.window is None:
            return
        event = await self._emit(
            WindowStarted,
            name=self.window.name,
            duration_s=self.window.duration_s,
            ends_at=self.clock.now() + timedelta(seconds=remaining),
        )
        assert isinstance(event, WindowStarted)
        self.window = event

    async def _observe(self, name: str, duration: float, phase: Phase) -> None:
        spec = self.plan.analysis
        win = await self._start_window(name, duration)
        promoted_early = False
        while win.observed_s < duration:
            if self._proceed_requested and phase == Phase.CANARY:
                await self._emit(
                    LogLine,
                    level="warning",
                    message=f"{self._proceed_requested} promoted early after {format_duration(win.observed_s)} of {format_duration(duration)}",
                )
                self._proceed_requested = None
                promoted_early = True
                break
            await self._nap(spec.interval)
            await self._check_stop()
            was_paused = self.phase == Phase.PAUSED
            judgement, sample = await self._analyse(win.observed_s + spec.interval, duration, phase)
            if judgement.verdict == "fired":
                await self._auto_rollback(judgement, [*win.samples, sample])
            if await self._counts(win, judgement.verdict, sample, duration):
                if judgement.verdict == "healthy" and phase == Phase.CANARY and self.weight < 100:
                    self._baseline_ref = (
                        self._last_metrics.baseline if self._last_metrics else self._baseline_ref
                    )
                if not was_paused:
                    win.observed_s += spec.interval
        self.window = None
        if phase == Phase.CANARY and self.weight < 100 and spec.judge.enabled:
            await self._statistical_judge(win.samples, promoted_early=promoted_early)

    async def _statistical_judge(self, samples: list[AnalysisSample], *, promoted_early: bool) -> None:
        """Kayenta-style Mann-Whitney over the step's samples, beside the fixed triggers.

        fail rolls back; marginal or no data means a person decides (headless: rollback if unsure).
        At 100 % there is no concurrent baseline to compare with, so only partial steps are judged.
        """
        from core.judge import judge as mann_whitney_judge

        healthy = [s for s in samples if s.verdict == "healthy"]
        canary: dict[str, list[float]] = {"error_rate": [], "p50": [], "p95": [], "p99": []}
        baseline: dict[str, list[float]] = {"error_rate": [], "p99": []}
        for s in healthy:
            for name, value in (
                ("error_rate", s.canary_error_rate),
                ("p50", s.canary_p50_ms),
                ("p95", s.canary_p95_ms),
                ("p99", s.canary_p99_ms),
            ):
                if value is not None:
                    canary[name].append(value)
            for name, value in (("error_rate", s.baseline_error_rate), ("p99", s.baseline_p99_ms)):
                if value is not None:
                    baseline[name].append(value)
        result = mann_whitney_judge(canary, baseline, self.plan.analysis.judge)
        details = "; ".join(m.text for m in result.metrics if m.text)
        message = f"statistical judge at {self.weight} %: {result.summary}" + (
            f" — {details}" if details else ""
        )
        reading = RuleReading(
            rule="judge",
            value=result.score,
            limit=self.plan.analysis.judge.marginal_score,
            unit="score",
            fired=result.verdict == "fail",
            text=message,
        )
        if result.verdict == "pass" or (result.verdict == "nodata" and promoted_early):
            await self._emit(
                LogLine, level="info" if result.verdict == "pass" else "warning", message=message
            )
            return
        if result.verdict == "fail":
            await self._request_stop(
                "rollback",
                "engine",
                message,
                automatic=True,
                rule="judge",
                readings=[reading],
                samples=samples[-5:],
            )
            raise _Stopped
        if not self.interactive:
            await self._request_stop(
                "rollback",
                "engine",
                f"{message}; nobody to decide: rollback if unsure (POL-010)",
                automatic=True,
                rule="judge",
                readings=[reading],
                samples=samples[-5:],
            )
            raise _Stopped
        await self._enter_pause("engine", f"{message}: resume to promote, or roll back")
        while self.phase == Phase.PAUSED:
            await self._nap(self.plan.analysis.interval)
            await self._check_stop()

    async def _analyse(
        self, elapsed: float, duration: float, phase: Phase
    ) -> tuple[Judgement, AnalysisSample]:
        spec = self.plan.analysis
        metrics: CanaryMetrics | None = None
        if self.world.metrics is not None:
            metrics = await self._read(self.world.metrics, spec.lookback)
            no_old_version = phase == Phase.VERIFY or self.weight >= 100
            if no_old_version and metrics.reason is None and self._baseline_ref is not None:
                # at 100 % and after promotion the old version serves nothing: judge against the
                # baseline measured while it still took traffic
                metrics = metrics.model_copy(update={"baseline": self._baseline_ref})
        self._last_metrics = metrics
        health = await self._health()
        judgement = judge(metrics, health, spec, self._triggers)
        canary = metrics.canary if metrics else WorkloadSample()
        baseline = metrics.baseline if metrics else WorkloadSample()
        sample = await self._emit(
            AnalysisSample,
            weight=self.weight if phase == Phase.CANARY else 100,
            canary_error_rate=_pct(canary.error_rate),
            baseline_error_rate=_pct(baseline.error_rate),
            canary_p99_ms=_ms(canary.p99),
            baseline_p99_ms=_ms(baseline.p99),
            canary_p50_ms=_ms(canary.p50),
            canary_p95_ms=_ms(canary.p95),
            canary_requests=canary.requests,
            baseline_requests=baseline.requests,
            health_ok=health,
            verdict=judgement.verdict,
            no_data_reason=judgement.no_data_reason,
            readings=judgement.readings,
            elapsed_s=min(elapsed, duration),
            window_s=duration,
        )
        assert isinstance(sample, AnalysisSample)
        self.last_analysis = sample
        return judgement, sample

    async def _read(self, metrics: Any, window_s: float) -> CanaryMetrics:
        try:
            return await metrics.canary_metrics(window_s)
        except PortError as exc:
            none = WorkloadSample(reason=str(exc))
            return CanaryMetrics(canary=none, baseline=none, at=self.clock.now(), reason=str(exc))

    async def _health(self) -> bool | None:
        urls = self.plan.analysis.health_urls
        if not urls:
            return None
        ok = True
        for url in urls:
            try:
                result = await self.world.probe.check(url, timeout_s=5.0)
            except PortError as exc:
                await self._emit(HealthChecked, url=_public(url), ok=False, detail=str(exc))
                ok = False
                continue
            if not result.ok:
                await self._emit(
                    HealthChecked, url=_public(url), ok=False, status=result.status, detail=result.detail
                )
            ok = ok and result.ok
        return ok

    async def _auto_rollback(self, judgement: Judgement, samples: list[AnalysisSample]) -> None:
        fired = judgement.fired
        rule = fired[0].rule if fired else "unknown"
        reason = "; ".join(r.text for r in fired)
        await self._request_stop(
            "rollback",
            "engine",
            f"{_RULE_TITLES.get(rule, rule)}: {reason}",
            automatic=True,
            rule=rule,
            readings=judgement.readings,
            samples=samples[-5:],
        )
        raise _Stopped

    async def _verification_checks(self) -> list[GateResult]:
        from core.verification import VerifyContext, verification_checks

        ctx = VerifyContext(
            plan=self.plan,
            clock=self.clock,
            metrics=self.world.metrics,
            alerts=self.world.alerts,
            probe=self.world.probe,
            runner=self.world.runner,
            deploy_started_at=self._started_at or self.clock.now(),
            baseline=self._baseline_ref,
        )
        results = await verification_checks(ctx)
        for result in results:
            await self._record_gate(result)
        return [self.gates[r.gate_id] for r in results]

    # --- traffic ------------------------------------------------------------------------

    async def _set_weight(self, percent: int, detail: str = "") -> None:
        await self._emit(TrafficChanged, requested=percent, effective=percent, applied=False, detail="intent")
        change = await self.world.production.set_canary_weight(percent)
        self.weight = change.effective
        await self._emit(
            TrafficChanged,
            requested=percent,
            effective=change.effective,
            detail=detail or change.detail,
        )
        await self.world.production.write_state(self._state(self.effective_phase.value))

    def _state(self, phase: str) -> dict[str, object]:
        return {
            "deploy_id": self.deploy_id,
            "phase": phase,
            "step": self.step_index,
            "weight": self.weight,
            "version": self.plan.version.to,
            "driver": self.actor,
            "at": self.clock.now().isoformat(),
        }

    # --- stopping ----------------------------------------------------------------------

    async def _request_stop(
        self,
        kind: Literal["rollback", "abort"],
        actor: str,
        reason: str,
        *,
        automatic: bool,
        rule: str = "manual",
        readings: list[RuleReading] | None = None,
        samples: list[AnalysisSample] | None = None,
    ) -> None:
        if self._stop is not None:
            return
        self._stop = _Stop(kind, actor, reason)
        if kind == "rollback":
            event = await self._emit(
                RollbackTriggered,
                actor=actor,
                automatic=automatic,
                rule=rule,
                reason=reason,
                readings=readings or (self.last_analysis.readings if self.last_analysis else []),
                samples=samples or ([self.last_analysis] if self.last_analysis else []),
                weight_at_trigger=100 if self.effective_phase == Phase.VERIFY else self.weight,
            )
            assert isinstance(event, RollbackTriggered)
            self.rollback_reason = event
            self._paused_from = None
            await self._set_phase(Phase.ROLLING_BACK, reason)
        else:
            await self._emit(
                LogLine, level="warning", message=f"abort requested by {actor}: {reason}", source=actor
            )
        self._resumed.set()
        self._wake.set()
        current = asyncio.current_task()
        if self._flow is not None and not self._flow.done() and current is not self._flow:
            self._flow.cancel()

    async def _check_stop(self) -> None:
        if self._stop is not None:
            raise _Stopped

    async def _rollback_procedure(self) -> Outcome:
        """POL-010: execute, verify, communicate, document. A failing API is retried, never given up silently."""
        prod = self.world.production
        if self.phase != Phase.ROLLING_BACK:
            await self._set_phase(Phase.ROLLING_BACK, self._stop.reason if self._stop else "rollback")
        attempt, delay = 0, 1.0
        while True:
            attempt += 1
            try:
                report = await prod.rollback()
                break
            except PortError as exc:
                await self._emit(
                    RollbackStep, action="attempt_failed", ok=False, detail=f"attempt {attempt}: {exc}"
                )
                if attempt == _ROLLBACK_ALARM_AFTER:
                    # never give up on the safe direction: keep trying, and make sure people know
                    await self._emit(
                        LogLine,
                        level="error",
                        message=f"ROLLBACK NOT APPLIED after {attempt} attempts ({exc}); still retrying every "
                        f"{format_duration(_ROLLBACK_MAX_DELAY_S)} — act on the cluster by hand if you can",
                    )
                    await self._communicate(
                        ok=False, detail=f"rollback not applied after {attempt} attempts: {exc}"
                    )
                await self.clock.sleep(delay)
                delay = min(delay * 2, _ROLLBACK_MAX_DELAY_S)
        self.weight = 0
        await self._emit(
            TrafficChanged,
            requested=0,
            effective=0,
            actor=self._stop.actor if self._stop else "engine",
            detail="rollback",
        )
        await self._emit(
            RollbackStep, action="weight_reset", ok=report.weight_reset, detail="canary weight 0"
        )
        await self._emit(
            RollbackStep,
            action="undo_stable",
            ok=True,
            detail=report.detail
            or ("stable restored to the previous revision" if report.stable_restored else "stable untouched"),
        )
        verified, detail = await self._verify_restored()
        await self._emit(RollbackStep, action="verify", ok=verified, detail=detail)
        if not verified:
            await self._emit(LogLine, level="error", message=f"SERVICE NOT RESTORED: {detail}; keep watching")
        with contextlib.suppress(PortError):
            await prod.write_state(self._state("rolled_back"))
        await self._set_phase(Phase.ROLLED_BACK, self._stop.reason if self._stop else "rolled back")
        await self._communicate(ok=verified, detail=detail)
        await self._document()
        return Outcome.ROLLED_BACK

    async def _verify_restored(self) -> tuple[bool, str]:
        """Health green and error rate back to baseline within the plan's limit."""
        spec = self.plan.verification
        deadline = self.clock.now() + timedelta(seconds=spec.restore_timeout)
        last = "not checked"
        while True:
            health = await self._stable_health()
            metrics = (
                await self._read(self.world.metrics, self.plan.analysis.lookback)
                if self.world.metrics
                else None
            )
            err = None
            if metrics is not None and metrics.reason is None and metrics.baseline.error_rate is not None:
                err = metrics.baseline.error_rate * 100
            reference = (
                self._baseline_ref.error_rate * 100
                if self._baseline_ref and self._baseline_ref.error_rate is not None
                else None
            )
            err_ok = err is not None and (
                reference is None or err <= reference + self.plan.analysis.triggers.error_delta_pp
            )
            if health is not False and err_ok:
                return True, f"health green; error rate {err:.2f} %" + (
                    f" (baseline {reference:.2f} %)" if reference is not None else ""
                )
            last = f"health {'failing' if health is False else 'ok'}; error rate {'no data' if err is None else f'{err:.2f} %'}"
            if self.clock.now() >= deadline:
                return False, f"not restored after {format_duration(spec.restore_timeout)}: {last}"
            await self.clock.sleep(self.plan.analysis.interval)

    async def _stable_health(self) -> bool | None:
        """The production service's own health endpoint (the canary's may be gone after a rollback)."""
        health = self.plan.targets.production.health
        if health is None:
            return None
        try:
            result = await self.world.probe.check(health.ready, timeout_s=health.timeout)
        except PortError as exc:
            await self._emit(HealthChecked, url=_public(health.ready), ok=False, detail=str(exc))
            return False
        return result.ok

    async def _communicate(self, *, ok: bool, detail: str) -> None:
        from core.incident import rollback_message

        message = rollback_message(self.events)
        if not ok:
            message = message.model_copy(
                update={"level": "critical", "text": f"{message.text}\nNOT RESTORED: {detail}"}
            )
        await self._notify(message)
        await self._emit(RollbackStep, action="communicate", ok=True, detail="team channel notified")

    async def _document(self) -> None:
        from core.incident import write_incident_record

        try:
            path = write_incident_record(list(self.events), self.incident_dir)
        except OSError as exc:
            await self._emit(
                RollbackStep, action="document", ok=False, detail=f"incident record not written: {exc}"
            )
            return
        await self._emit(RollbackStep, action="document", ok=True, detail=f"incident record {path}")

    async def _abort_procedure(self) -> Outcome:
        if self.weight > 0:
            with contextlib.suppress(PortError):
                change = await self.world.production.set_canary_weight(0)
                self.weight = change.effective
                await self._emit(
                    TrafficChanged,
                    requested=0,
                    effective=change.effective,
                    actor=self._stop.actor if self._stop else "",
                    detail="abort: canary traffic off",
                )
        await self._set_phase(Phase.ABORTED, self._stop.reason if self._stop else "aborted")
        return Outcome.ABORTED

    async def _finish(self, outcome: Outcome, reason: str) -> Outcome:
        self.outcome = outcome
        self.window = None
        duration = (self.clock.now() - self._started_at).total_seconds() if self._started_at else 0.0
        await self._emit(Finished, outcome=outcome, reason=reason, duration_s=duration)
        return outcome

    # --- fencing: the lease is gone -----------------------------------------------------

    def lease_lost(self, reason: str) -> None:
        """Called by the lease keeper the moment the lease is lost or cannot be renewed in time.

        The driver stops acting: the flow is cancelled where it stands (no rollback: that
        would be a cluster write by a driver that no longer owns the rollout). The
        keeper's fence refuses any write still under way.
        """
        if self._lease_lost is not None or self.outcome is not None:
            return
        self._lease_lost = reason
        if self._body is not None and not self._body.done():
            self._body.cancel()

    async def _stopped_by_lease_loss(self) -> Outcome:
        body = self._body
        # a step that catches one cancellation (the rollback's retry loop) gets another
        for _ in range(50):
            if body is None or body.done():
                break
            body.cancel()
            await asyncio.wait({body}, timeout=0.1)
        reason = self._lease_lost or "lease lost"
        await self._emit(LeaseLost, reason=reason, weight=self.weight)
        return await self._finish(
            Outcome.BLOCKED,
            f"lease lost: {reason}; stopped acting with canary at {self.weight} % "
            "(no further cluster writes; the rollout is left for the lease holder or a resume)",
        )

    # --- plumbing --------------------------------------------------------------------

    async def _enter_pause(self, actor: str, reason: str, *, by_engine: bool = False) -> None:
        if self.phase == Phase.PAUSED:
            return
        self._paused_from = self.phase
        self._paused_by_engine_at = self.clock.now() if by_engine else None
        self._resumed.clear()
        await self._emit(Paused, actor=actor, reason=reason)
        await self._set_phase(Phase.PAUSED, reason)

    async def _nap(self, seconds: float) -> None:
        """Sleep on the clock, waking early for a command (proceed, sign-off, decision)."""
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _set_phase(self, phase: Phase, reason: str = "") -> None:
        previous = self.phase
        if previous == phase:
            return
        self.phase = phase
        try:
            await self._emit(PhaseChanged, previous=previous, reason=reason)
        except BaseException:
            self.phase = previous
            raise

    def _progress(self, what: str) -> Callable[[str], Any]:
        async def report(message: str) -> None:
            await self._emit(LogLine, message=f"{what}: {message}", source="cluster")

        return report

    async def _run_command(self, what: str, command: str, timeout_s: float) -> None:
        async def line(text: str) -> None:
            await self._emit(LogLine, message=text, source=what)

        outcome = await self.world.runner.run(command, timeout_s=timeout_s, on_line=line)
        if outcome.exit_code != 0:
            why = "timed out" if outcome.exit_code is None else f"exit {outcome.exit_code}"
            raise _Blocked(f"{what} failed ({why}): {outcome.detail or outcome.output[-200:]}")

    async def _notify(self, message: Notification) -> None:
        try:
            results = await self.world.notifier.notify(message)
        except Exception as exc:  # a notifier must never block a rollback or a completion
            await self._emit(
                NotificationSent, channel="team channel", delivered=False, detail=type(exc).__name__
            )
            return
        for result in results:
            await self._emit(
                NotificationSent,
                channel=result.channel,
                delivered=result.delivered,
                attempts=result.attempts,
                detail=result.detail,
            )

    async def _completion_extras(self) -> None:
        from core.completion import FlagStepResult, close_tickets, completion_summary, roll_out_flags

        summary = completion_summary(self.events)
        for ticket in await close_tickets(self.plan, deploy_id=self.deploy_id, summary=summary):
            await self._emit(
                LogLine,
                level="info" if ticket.closed else "warning",
                source="completion",
                message=f"ticket {ticket.ticket}: {'closed' if ticket.closed else 'NOT closed'} via {ticket.via} {ticket.detail}".rstrip(),
            )

        async def flag_step(step: FlagStepResult) -> None:
            state = "ok" if step.ok else ("failed, set back to 0 %" if step.reverted else "failed")
            await self._emit(
                LogLine,
                level="info" if step.ok else "warning",
                source="feature flags",
                message=f"flag {step.flag} at {step.percent} %: {state} {step.detail}".rstrip(),
            )

        async def observe_flag(flag: object, percent: int) -> str | None:
            judgement, _ = await self._analyse(0.0, 0.0, Phase.VERIFY)
            if judgement.verdict == "fired":
                return "; ".join(r.text for r in judgement.fired)
            if judgement.verdict == "no_data":
                return f"no data: {judgement.no_data_reason}"
            return None

        await roll_out_flags(self.plan, clock=self.clock, observe=observe_flag, on_step=flag_step)

    async def _emit(self, cls: type[EventBase], **data: Any) -> Event:
        async with self._lock:
            event = cls(
                ts=self.clock.now(),
                phase=self.phase,
                deploy_id=self.deploy_id,
                step=self.step_index,
                **data,
            )
            if self.journal is not None:
                # journal first: a crash after this line still knows what was about to happen
                await self.journal.append(event.model_dump(mode="json"), durable=cls not in _OBSERVATIONS)
            self.events.append(event)  # type: ignore[arg-type]
        for callback in list(self._subscribers):
            callback(event)  # type: ignore[arg-type]
        return event  # type: ignore[return-value]


_ROLLBACK_ALARM_AFTER = 5
_ROLLBACK_MAX_DELAY_S = 30.0

# Observations, not state changes: journaled without waiting for the disk.
_OBSERVATIONS: frozenset[type[EventBase]] = frozenset({AnalysisSample, LogLine, HealthChecked})

_GROUP_OF: dict[Phase, GateGroup] = {
    Phase.PREFLIGHT: GateGroup.PRE_DEPLOY,
    Phase.MIGRATIONS: GateGroup.MIGRATIONS,
    Phase.STAGING: GateGroup.STAGING,
    Phase.VERIFY: GateGroup.POST_DEPLOY,
}

_RULE_TITLES = {
    "error_rate": "error rate above baseline",
    "p99_latency": "p99 latency above baseline",
    "health": "consecutive failed health checks",
}


def _unevaluated(gate: GateDef) -> GateResult:
    if gate.automated:
        return gate.result(GateStatus.PENDING, "not evaluated yet")
    return gate.result(GateStatus.NEEDS_SIGN_OFF, "needs a person's sign-off")


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100.0


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def _public(url: str) -> str:
    """Scheme, host and path only: query strings may carry tokens."""
    return url.split("?", 1)[0]


__all__ = ["CommandResult", "Rollout"]
