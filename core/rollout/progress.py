"""A rollout's persisted progress: "where am I and what is left" as data, not a call stack.

The engine writes a :class:`RolloutStatus` into the cluster (``Cluster.write_state``: the
Deployment's state annotation) *before* each action it is about to take, so a driver that dies
at any point can be continued by the next ``deploydeck run`` of the same plan: the same deploy
id, the same step, each window from its persisted start (a start, never a remaining time, as
Argo Rollouts persists a pause), and traffic neither lowered nor moved twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.domain import WorkloadSample, WorkloadStatus

#: bumped when a field changes meaning; an older or newer status is not resumed automatically
SCHEMA = 1


class WindowProgress(BaseModel):
    """An observation window: when it started and how much of it was counted (not what is left)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    step_index: int | None = None
    started_at: datetime
    duration_s: float
    observed_s: float = 0.0  # seconds that counted (blind or paused intervals do not)
    samples: int = 0  # analysis samples counted so far
    blind_s: float = 0.0  # how far blind intervals pushed the end out


class StopProgress(BaseModel):
    """A rollback or abort already decided: a resume finishes it, never goes forward."""

    kind: Literal["rollback", "abort"]
    actor: str
    reason: str
    automatic: bool = False
    rule: str = "manual"
    weight_at_trigger: int = 0


class DecisionProgress(BaseModel):
    question: str
    options: list[str]
    recommended: str | None = None


class RolloutStatus(BaseModel):
    """Everything needed to continue one deploy; persisted before it is acted on."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_: int = Field(SCHEMA, alias="schema")
    deploy_id: str
    service: str
    namespace: str
    version: str
    image: str
    plan_path: str = ""
    driver: str = ""  # who drove it last
    phase: str = "pending"  # the workflow phase (looking through PAUSED)
    paused: bool = False
    # when the engine paused for lack of data: the start of the "rollback if unsure" deadline
    engine_paused_at: datetime | None = None
    paused_by: str | None = None
    step_index: int | None = None
    weight: int = 0  # canary traffic in force, as last applied
    weight_target: int | None = None  # a weight about to be applied (the intent, written first)
    stable_before: str | None = None  # stable's image when this deploy started
    pending: str | None = None  # the cluster action about to be taken ("canary.deploy", "canary.promote")
    window: WindowProgress | None = None
    sign_offs: list[dict[str, object]] = Field(default_factory=list)
    decision_pending: DecisionProgress | None = None
    completed: list[str] = Field(default_factory=list)  # step results done, in order
    results: dict[str, str] = Field(default_factory=dict)  # step -> one-line result
    stop: StopProgress | None = None
    baseline: WorkloadSample | None = None  # the old version's reference while it took traffic
    started_at: datetime
    updated_at: datetime
    outcome: str | None = None  # set once finished; an unfinished status has none

    @property
    def finished(self) -> bool:
        # not the phase: a driver killed after ROLLED_BACK but before notifying and documenting
        # left work to do; only the recorded outcome says the deploy is over
        return self.outcome is not None

    def done(self, key: str) -> bool:
        return key in self.completed

    def to_state(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_state(cls, state: dict[str, object] | None) -> RolloutStatus | None:
        """The persisted status, or None when there is none or it is not one this version can continue."""
        if not state or state.get("schema") != SCHEMA:
            return None
        try:
            return cls.model_validate(state)
        except ValidationError:
            return None

    def same_plan(self, service: str, namespace: str, version: str, image: str) -> bool:
        return (self.service, self.namespace, self.version, self.image) == (
            service,
            namespace,
            version,
            image,
        )

    def drift(self, live: WorkloadStatus) -> list[str]:
        """How the cluster differs from what this deploy left there (hand edits); empty when it matches.

        Where the driver died between writing an intent and recording its result, either the
        state before or after that action is accepted; anything else was changed by hand.
        """
        if self.stop is not None:
            return []  # a rollback or abort is under way: finishing it is right whatever the cluster says
        problems: list[str] = []
        promoting = self.pending == "canary.promote" or self.done("canary.promote")
        if not self.done("canary.promote"):
            expected = {self.weight} | ({self.weight_target} if self.weight_target is not None else set())
            if promoting:
                expected.add(0)
            if live.weight not in expected:
                want = " or ".join(f"{w} %" for w in sorted(expected))
                problems.append(f"canary weight is {live.weight} %, this deploy left {want}")
        if self.done("canary.deploy") and not promoting and live.canary_image != self.image:
            problems.append(f"canary image is {live.canary_image}, this deploy set {self.image}")
        stable_ok = {self.stable_before} if self.stable_before is not None else set()
        if promoting:
            stable_ok = (stable_ok | {self.image}) if not self.done("canary.promote") else {self.image}
        if stable_ok and live.stable_image not in stable_ok:
            want = " or ".join(sorted(s for s in stable_ok if s))
            problems.append(f"stable image is {live.stable_image}, this deploy expects {want}")
        return problems


__all__ = [
    "SCHEMA",
    "DecisionProgress",
    "RolloutStatus",
    "StopProgress",
    "WindowProgress",
]
