"""Scripted worlds for the demo and tests.

A scenario says how the stable and canary versions behave given the canary's
traffic weight and how long the canary has been at it. Everything that uses the
simulated workload (the in-process ports and the HTTP workload that a real
Prometheus scrapes) asks the same :class:`Scenario`, so the two can't disagree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["stable", "canary"]


class Behaviour(BaseModel):
    """Expected behaviour of one version right now; the generators add seeded noise."""

    model_config = ConfigDict(frozen=True)

    error_rate: float  # fraction of requests answered 5xx
    p50_s: float
    p95_s: float
    p99_s: float
    healthy: bool = True  # /health/live and /health/ready answer 200


BASELINE = Behaviour(error_rate=0.004, p50_s=0.040, p95_s=0.120, p99_s=0.180)


class Fault(BaseModel):
    """A change in the canary's behaviour from a traffic weight on."""

    model_config = ConfigDict(frozen=True)

    from_weight: int
    after_s: float = 0.0  # seconds at that weight (or above) before it starts
    error_rate: float | None = None
    latency_factor: float | None = None
    health_fail_every: int | None = None  # fail 1 of every N checks (never two in a row if N > 2)
    health_fail_streak: int = 1  # length of a failing streak


class Verdict(BaseModel):
    """What the engine must conclude on a scenario, whatever the metrics backend (issue 14).

    Written once, next to the scenario; the table-driven test and `make bench` check every
    backend (in-memory world, real Prometheus) against it.
    """

    model_config = ConfigDict(frozen=True)

    rule: str | None = None  # RollbackTriggered.rule; None: nothing rolls back by itself
    weight: int | None = None  # canary weight at the trigger (100 in verification)
    phase: Literal["canary", "verify", "paused"] | None = None  # phase the trigger fired in
    never_fires_at: tuple[int, ...] = ()  # weights at which no rule may fire
    pauses_blind: bool = False  # pauses for lack of data, never promotes blind
    verification_passes: bool = False

    def describe(self) -> str:
        if self.rule is None:
            return "completed" + (", verification passing" if self.verification_passes else "")
        where = "verification" if self.phase == "verify" else f"{self.weight} %"
        return f"rolled back by {self.rule} at {where}" + (
            " after a blind pause" if self.pauses_blind else ""
        )


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    expected: Literal["completed", "rolled_back"]
    verdict: Verdict = Verdict()
    faults: tuple[Fault, ...] = ()
    metrics_outage: tuple[float, float] | None = None  # (start, end) seconds after the canary starts
    metrics_outages: tuple[tuple[float, float], ...] = ()  # more of them: blindness that comes and goes
    outage_from_weight: int = 0
    requests_per_second: float = 600.0

    def behaviour(self, role: Role, weight: int, seconds_at_weight: float) -> Behaviour:
        if role == "stable":
            return BASELINE
        current = BASELINE
        for fault in self.faults:
            if weight >= fault.from_weight and seconds_at_weight >= fault.after_s:
                current = current.model_copy(
                    update={
                        k: v
                        for k, v in {
                            "error_rate": fault.error_rate,
                            "p50_s": current.p50_s * (fault.latency_factor or 1.0),
                            "p95_s": current.p95_s * (fault.latency_factor or 1.0),
                            "p99_s": current.p99_s * (fault.latency_factor or 1.0),
                        }.items()
                        if v is not None
                    }
                )
        return current

    def health_ok(self, weight: int, check_number: int) -> bool:
        """Whether the canary's n-th health check (1-based, counted per step) passes."""
        for fault in self.faults:
            if weight >= fault.from_weight and fault.health_fail_every:
                # failures close each cycle, so a fresh step starts with passing checks
                position = (check_number - 1) % fault.health_fail_every
                if position >= fault.health_fail_every - fault.health_fail_streak:
                    return False
        return True

    def metrics_down(self, weight: int, seconds_since_canary_start: float) -> bool:
        if weight < self.outage_from_weight:
            return False
        outages = (*((self.metrics_outage,) if self.metrics_outage else ()), *self.metrics_outages)
        return any(start <= seconds_since_canary_start < end for start, end in outages)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="healthy",
            title="Healthy release: every step passes",
            expected="completed",
            verdict=Verdict(never_fires_at=(5, 25, 50, 100), verification_passes=True),
        ),
        Scenario(
            name="bad-canary",
            title="5xx rise at the 25 % step",
            expected="rolled_back",
            faults=(Fault(from_weight=25, after_s=60.0, error_rate=0.032),),
            verdict=Verdict(rule="error_rate", weight=25, phase="canary", never_fires_at=(5,)),
        ),
        Scenario(
            name="slow-canary",
            title="p99 latency regression from the 50 % step",
            expected="rolled_back",
            faults=(Fault(from_weight=50, after_s=30.0, latency_factor=2.2),),
            verdict=Verdict(rule="p99_latency", weight=50, phase="canary", never_fires_at=(5, 25)),
        ),
        Scenario(
            name="flaky-health",
            title="Health checks flap at 5 %, then fail twice in a row at 50 %",
            expected="rolled_back",
            faults=(
                Fault(from_weight=5, health_fail_every=3, health_fail_streak=1),
                Fault(from_weight=50, health_fail_every=4, health_fail_streak=2),
            ),
            verdict=Verdict(rule="health", weight=50, phase="canary", never_fires_at=(5, 25)),
        ),
        Scenario(
            name="subtle-latency",
            title="p99 +30 % from 5 %: under the fixed ×1.5 trigger; the statistical judge, if enabled, catches it",
            expected="completed",
            faults=(Fault(from_weight=5, latency_factor=1.3),),
            verdict=Verdict(never_fires_at=(5, 25, 50, 100)),
        ),
        Scenario(
            name="late-regression",
            title="Healthy canary, then a 5xx regression three minutes into verification",
            expected="rolled_back",
            faults=(Fault(from_weight=100, after_s=1080.0, error_rate=0.03),),
            verdict=Verdict(rule="error_rate", weight=100, phase="verify", never_fires_at=(5, 25, 50)),
        ),
        Scenario(
            name="metrics-outage",
            title="Prometheus unreachable mid-canary: the engine pauses, never promotes blind",
            expected="rolled_back",
            metrics_outage=(420.0, 1e9),
            # blind from 420 s (the 25 % step): pause, never promote, roll back only if still blind
            verdict=Verdict(
                rule="no_data", weight=25, phase="paused", pauses_blind=True, never_fires_at=(5,)
            ),
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ValueError(f"unknown scenario '{name}'; choose one of: {known}") from None


def verdict_problems(scenario: Scenario, events: list[Any]) -> list[str]:
    """How a finished run's events differ from the scenario's :class:`Verdict` (empty: it matches).

    Checks the outcome, the rule, the weight and the phase it fired in, where rules must never
    fire, that a blind pause came before any blind rollback and nothing was promoted blind, and
    that verification passed when it must.
    """
    from core.events import AnalysisSample, Finished, GateEvaluated, Paused, RollbackTriggered, TrafficChanged

    want = scenario.verdict
    problems: list[str] = []
    finished = [e for e in events if isinstance(e, Finished)]
    outcome = finished[-1].outcome.value if finished else "unfinished"
    if outcome != scenario.expected:
        why = f" ({finished[-1].reason})" if finished else ""
        problems.append(f"outcome {outcome}{why}, expected {scenario.expected}")
    triggers = [e for e in events if isinstance(e, RollbackTriggered)]
    if want.rule is None and triggers:
        problems.append(f"rolled back by {triggers[0].rule}: {triggers[0].reason}")
    if want.rule is not None:
        if not triggers:
            problems.append(f"no rollback; expected {want.rule}")
        else:
            got = triggers[0]
            seen = (got.rule, got.weight_at_trigger, got.phase.value)
            if seen != (want.rule, want.weight, want.phase):
                problems.append(
                    f"rolled back by {got.rule} at {got.weight_at_trigger} % in {got.phase.value} "
                    f"({got.reason}); expected {want.rule} at {want.weight} % in {want.phase}"
                )
    fired = {e.weight for e in events if isinstance(e, AnalysisSample) and e.verdict == "fired"}
    if bad := sorted(fired & set(want.never_fires_at)):
        problems.append(f"a rule fired at {bad} %")
    if want.pauses_blind:
        pause = next((i for i, e in enumerate(events) if isinstance(e, Paused) and e.actor == "engine"), None)
        blind = next(
            (i for i, e in enumerate(events) if isinstance(e, AnalysisSample) and e.verdict == "no_data"),
            None,
        )
        if pause is None or blind is None:
            problems.append("never paused for lack of data")
        else:
            before = [e.effective for e in events[:blind] if isinstance(e, TrafficChanged) and e.applied]
            after = [e.effective for e in events[blind:] if isinstance(e, TrafficChanged) and e.applied]
            if before and any(w > before[-1] for w in after):
                problems.append(f"promoted blind: {before[-1]} % → {max(after)} %")
    if want.verification_passes:
        post = [e.gate for e in events if isinstance(e, GateEvaluated) and e.phase.value == "verify"]
        latest = {g.gate_id: g for g in post}
        failing = [f"{g.gate_id}: {g.evidence}" for g in latest.values() if not g.status.satisfied]
        if not latest:
            problems.append("verification never ran")
        elif failing:
            problems.append("verification failed: " + "; ".join(failing))
    return problems
