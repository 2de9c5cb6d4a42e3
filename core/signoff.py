"""Sign-offs and overrides with the policy's people rules (POL-004, POL-007, POL-012).

- a manual gate needs `signers` distinct people; the same person cannot count twice;
- the change author cannot sign or override gates marked `author_may_sign=False`
  (their own review, classification, migration lint);
- an override needs a failed or errored automated gate the policy lets this class
  override, a reason, and a second person: never the change author, never the
  person running the deploy when the ledger knows who that is, and
  `override_signers` distinct people (two for an emergency freeze bypass).

The ledger is plain data so the engine can journal it and rebuild it on resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.agent.identity import is_blank, same_person
from core.domain import GateResult, GateStatus, SignOff
from core.events import IdentitySource
from core.plan import Plan
from core.policy import GateDef

Kind = Literal["sign", "override"]


class LedgerRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    gate_id: str
    actor: str
    text: str = ""  # the note of a sign-off, the reason of an override
    at: datetime
    needed: int = 1  # distinct people the gate needs, captured when recorded
    # how the name is known (core.events.IdentitySource) and, authenticated, the person's groups:
    # the status the agent mirrors into a DeployRun says who signed as the cluster knows them
    identity: IdentitySource = "self-declared"
    groups: tuple[str, ...] = ()


def _same(a: str, b: str) -> bool:
    # case, spaces, zero-width characters and look-alike letters do not make one person two
    return same_person(a, b)


class SignOffLedger:
    def __init__(self, plan: Plan | None = None, *, author: str | None = None, deployer: str = "") -> None:
        self.author = author if author is not None else (plan.change.author if plan is not None else "")
        self.deployer = deployer  # who runs the deploy; "" when unknown (then only the author is excluded)
        self._records: list[LedgerRecord] = []

    # --- queries -------------------------------------------------------------------

    def records_for(self, gate_id: str, kind: Kind) -> list[LedgerRecord]:
        return [r for r in self._records if r.gate_id == gate_id and r.kind == kind]

    def _needed(self, gate_id: str, kind: Kind) -> int:
        recs = self.records_for(gate_id, kind)
        return max((r.needed for r in recs), default=1)

    def signed(self, gate_id: str) -> bool:
        recs = self.records_for(gate_id, "sign")
        return bool(recs) and len(recs) >= self._needed(gate_id, "sign")

    def overridden(self, gate_id: str) -> bool:
        recs = self.records_for(gate_id, "override")
        return bool(recs) and len(recs) >= self._needed(gate_id, "override")

    # --- commands ------------------------------------------------------------------

    def _people_problem(self, gate: GateDef, actor: str, kind: Kind) -> str:
        if is_blank(actor):
            return "a sign-off needs a person's name (--as NAME)"
        if not gate.author_may_sign and self.author and _same(actor, self.author):
            return f"{actor} is the change author and cannot {'sign off' if kind == 'sign' else 'override'} {gate.id}"
        for rec in self.records_for(gate.id, kind):
            if _same(rec.actor, actor):
                verb = "signed" if kind == "sign" else "overrode"
                return f"{actor} already {verb} {gate.id}; the next one must be a different person"
        return ""

    def sign(
        self,
        gate: GateDef,
        actor: str,
        note: str,
        at: datetime,
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> tuple[bool, str, bool]:
        """Record a sign-off; returns (ok, reason, complete). `reason` says what is still needed."""
        if gate.automated:
            return False, f"{gate.id} is checked automatically; it can be overridden, not signed off", False
        if self.signed(gate.id):
            return False, f"{gate.id} is already signed off", True
        problem = self._people_problem(gate, actor, "sign")
        if problem:
            return False, problem, False
        self._records.append(
            LedgerRecord(
                kind="sign",
                gate_id=gate.id,
                actor=actor,
                text=note,
                at=at,
                needed=gate.signers,
                identity=identity,
                groups=tuple(groups),
            )
        )
        have = len(self.records_for(gate.id, "sign"))
        if have >= gate.signers:
            return True, f"{gate.id} signed off by {self._names(gate.id, 'sign')}", True
        return True, f"{have} of {gate.signers} sign-offs; a different person must sign too", False

    def override(
        self,
        gate: GateDef,
        actor: str,
        reason: str,
        at: datetime,
        current: GateResult | None = None,
        *,
        identity: IdentitySource = "self-declared",
        groups: Sequence[str] = (),
    ) -> tuple[bool, str]:
        """Record an override; (ok, message). Pass the gate's current result to refuse overriding a pass."""
        if not gate.automated:
            return False, f"{gate.id} is a sign-off gate; sign it instead of overriding it"
        if not gate.overridable:
            return False, f"{gate.policy} does not allow overriding {gate.id} for this change class"
        if not reason.strip():
            return False, "an override needs a reason"
        if current is not None and current.status.satisfied:
            return False, f"{gate.id} is {current.status.value}; there is nothing to override"
        if self.overridden(gate.id):
            return False, f"{gate.id} is already overridden"
        if self.author and _same(actor, self.author):
            return False, f"an override needs a second person: {actor} is the change author"
        if self.deployer and _same(actor, self.deployer):
            return False, f"an override needs a second person: {actor} is running this deploy"
        problem = self._people_problem(gate, actor, "override")
        if problem:
            return False, problem
        self._records.append(
            LedgerRecord(
                kind="override",
                gate_id=gate.id,
                actor=actor,
                text=reason,
                at=at,
                needed=gate.override_signers,
                identity=identity,
                groups=tuple(groups),
            )
        )
        have = len(self.records_for(gate.id, "override"))
        if have >= gate.override_signers:
            return True, f"{gate.id} overridden by {self._names(gate.id, 'override')}"
        return True, f"{have} of {gate.override_signers} overrides; a different person must confirm"

    # --- overlay ---------------------------------------------------------------------

    def _names(self, gate_id: str, kind: Kind) -> str:
        return " and ".join(r.actor for r in self.records_for(gate_id, kind))

    def _sign_offs(self, gate_id: str, kind: Kind) -> tuple[SignOff, ...]:
        return tuple(SignOff(actor=r.actor, at=r.at, note=r.text) for r in self.records_for(gate_id, kind))

    def apply(self, result: GateResult) -> GateResult:
        """The result as people should see it: signed, partly signed, or overridden (with who and why)."""
        gid = result.gate_id
        if result.status == GateStatus.NEEDS_SIGN_OFF and self.records_for(gid, "sign"):
            sign_offs = self._sign_offs(gid, "sign")
            if self.signed(gid):
                notes = "; ".join(f"{s.actor}" + (f": {s.note}" if s.note else "") for s in sign_offs)
                return result.model_copy(
                    update={
                        "status": GateStatus.SIGNED,
                        "sign_offs": sign_offs,
                        "evidence": f"signed by {notes}",
                    }
                )
            need = self._needed(gid, "sign")
            evidence = (
                f"{len(sign_offs)} of {need} sign-offs ({self._names(gid, 'sign')}); needs another person"
            )
            return result.model_copy(update={"sign_offs": sign_offs, "evidence": evidence})
        if result.status.satisfied or not self.records_for(gid, "override"):
            return result
        sign_offs = self._sign_offs(gid, "override")
        reasons = "; ".join(f"{s.actor}: {s.note}" for s in sign_offs)
        if self.overridden(gid):
            evidence = f"overridden ({reasons}); was {result.status.value}: {result.evidence}"
            return result.model_copy(
                update={"status": GateStatus.OVERRIDDEN, "sign_offs": sign_offs, "evidence": evidence}
            )
        need = self._needed(gid, "override")
        evidence = f"{result.evidence} [override {len(sign_offs)} of {need}: {reasons}]"
        return result.model_copy(update={"sign_offs": sign_offs, "evidence": evidence})

    # --- persistence -----------------------------------------------------------------

    def to_records(self) -> list[dict[str, object]]:
        # a self-declared record keeps the shape it had before identities were recorded: a status
        # persisted by an older version and one persisted now read the same
        out: list[dict[str, object]] = []
        for record in self._records:
            data = record.model_dump(mode="json")
            if record.identity == "self-declared" and not record.groups:
                del data["identity"], data["groups"]
            out.append(data)
        return out

    @classmethod
    def from_records(
        cls,
        records: list[dict[str, object]],
        plan: Plan | None = None,
        *,
        author: str | None = None,
        deployer: str = "",
    ) -> SignOffLedger:
        ledger = cls(plan, author=author, deployer=deployer)
        ledger._records = [LedgerRecord.model_validate(r) for r in records]
        return ledger
