"""A rolled-back deploy is over in the cluster too, not only in the journal.

The rollback hands the lease back before it notifies (the next driver must not wait for a slow
channel). It used to hand it back before the outcome reached the cluster's persisted progress: the
final write was then refused by the lease fence, silently, and the cluster said "unfinished,
rolling back" for ever. The next run of that version (an agent replica, with another log) then
"resumed" the finished rollback and reported its outcome for itself, a verdict for the wrong
reason; a run of another version was refused as if an unfinished deploy were in the way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.domain import Outcome
from core.events import RunResumed
from core.rollout.progress import RolloutStatus
from core.session import open_session
from tests.engine_helpers import sim_session


async def test_a_rolled_back_deploy_is_recorded_finished_in_the_cluster_before_the_lease_goes(
    tmp_path: Path,
) -> None:
    session = await sim_session(tmp_path, "bad-canary", backend="kube")
    world = session.world

    async def next_driver(plan: Any) -> Any:
        """The next driver, with a log of its own (another replica's, or a lost one)."""
        return await open_session(
            plan,
            actor="next",
            clock=VirtualClock(),
            interactive=False,
            journal_path=tmp_path / "another.jsonl",
            world=world,
        )

    try:
        outcome = await session.rollout.run()
        assert outcome == Outcome.ROLLED_BACK
        assert session.rollout.rollback_reason is not None  # rolled back by a trigger, not by an error
        left = RolloutStatus.from_state(await world.production.read_state())
        assert left is not None and left.deploy_id == session.rollout.deploy_id
        assert left.outcome == Outcome.ROLLED_BACK.value and left.finished, left
        assert left.weight == 0
        # the next driver, with a log of its own (another replica's, or a lost one), starts anew
        await session.lease.release()  # type: ignore[union-attr]
        nxt = await next_driver(session.plan)
        try:
            assert nxt.rollout._resume is None
            assert nxt.rollout.deploy_id != session.rollout.deploy_id
            assert not [e for e in nxt.rollout.events if isinstance(e, RunResumed)]
        finally:
            if nxt.lease is not None:
                await nxt.lease.release()
        # and the fix, 1.5.1, is not refused as if 1.5.0 were still unfinished in the way
        version = session.plan.version.model_copy(
            update={"to": "1.5.1", "image": session.plan.version.image.replace("1.5.0", "1.5.1")}
        )
        fix = await next_driver(session.plan.model_copy(update={"version": version}))
        try:
            assert fix.rollout._resume is None
        finally:
            if fix.lease is not None:
                await fix.lease.release()
    finally:
        await session.close()
