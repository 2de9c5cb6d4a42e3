"""Whether a session continues the unfinished deploy the cluster holds, and who may not drive.

Read while holding the lease (``core.session.open_session``): the cluster's persisted progress
(``RolloutStatus``) says what a driver that is gone left; this decides to continue it, to start
anew, or to refuse with the differences a person must look at (exit 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.plan import Plan
from core.ports import PortError

if TYPE_CHECKING:
    from core.rollout.progress import RolloutStatus
    from core.world import World


class DriverConflict(PortError):
    """This rollout cannot be driven from here now: another deploydeck holds its lease (exit 4)."""


class ResumeRefused(DriverConflict):
    """An unfinished deploy is in the cluster but cannot be continued automatically (exit 4).

    Its message says how to roll it back: `deploydeck run PLAN --rollback-unfinished`."""

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences


def to_roll_back(status: RolloutStatus | None, plan: Plan, actor: str) -> RolloutStatus:
    """`run PLAN --rollback-unfinished`: the unfinished deploy, now to be rolled back (never forward)."""
    from core.rollout.progress import StopProgress

    if status is None:
        raise ResumeRefused(
            f"--rollback-unfinished: {plan.service} has no unfinished deploy of {plan.version.to} to roll back",
            ["nothing unfinished"],
        )
    if status.stop is not None:
        return status  # already rolling back: finish it
    reason = f"rollback of unfinished deploy {status.deploy_id} asked for by {actor}"
    stop = StopProgress(kind="rollback", actor=actor, reason=reason, weight_at_trigger=status.weight)
    return status.model_copy(update={"stop": stop})


def journaled_end(events: list[Any]) -> Any:
    """The deploy's finished line if the journal shows it over; None while it is unfinished.

    A driver that lost its lease journals a finished (blocked) line too, but it only stopped
    acting: that deploy is still to be continued, so such a line does not end it.
    """
    from core.events import Finished, LeaseLost, RunResumed

    ended, lost = None, False
    for event in events:
        if isinstance(event, LeaseLost):
            lost = True
        elif isinstance(event, RunResumed):
            ended, lost = None, False
        elif isinstance(event, Finished):
            ended = None if lost else event
    return ended


#: the plan path of a DeployRun's session (``deployrun:<namespace>/<name>``, core.agent.drive)
RUN_PATH_PREFIX = "deployrun:"

#: the difference named when a DeployRun finds another run's unfinished deploy in the cluster
ANOTHER_RUNS_DEPLOY = "another run's deploy"


async def resumable(
    world: World,
    plan: Plan,
    *,
    interactive: bool = False,
    rollback: bool = False,
    plan_path: str = "",
) -> RolloutStatus | None:
    """The unfinished deploy of this plan the cluster holds, if it may be continued; None to start anew.

    Called while holding the lease, so its driver is gone (dead, stopped, or its lease expired).
    Refused (exit 4, the differences stated) when the cluster no longer matches what that deploy
    left there, or when the unfinished deploy is of another version: both need a person.
    """
    from core.rollout.progress import RolloutStatus

    production = world.production
    status = RolloutStatus.from_state(await production.read_state())
    if status is None or status.finished:
        return None
    target = plan.targets.production
    if not status.same_plan(plan.service, target.namespace, plan.version.to, plan.version.image):
        raise ResumeRefused(
            f"{plan.service} in {target.namespace} has an unfinished deploy {status.deploy_id} of "
            f"{status.version} ({status.image}), left by {status.driver} in {status.phase} with the canary at "
            f"{status.weight} %; finish it (run its plan again) or roll it back (run its plan with "
            f"--rollback-unfinished) before deploying {plan.version.to}",
            [f"unfinished deploy of {status.version}"],
        )
    if plan_path.startswith(RUN_PATH_PREFIX) and status.plan_path != plan_path:
        # a DeployRun continues only its own deploy: another's sign-offs, progress and outcome are
        # not this run's to report (its own DeployRun, or the person who ran it, must finish it)
        owner = status.plan_path.removeprefix(RUN_PATH_PREFIX) or "a run"
        kind = "DeployRun" if status.plan_path.startswith(RUN_PATH_PREFIX) else "plan"
        raise ResumeRefused(
            f"{plan.service} in {target.namespace} has an unfinished deploy {status.deploy_id} of "
            f"{status.version} started by {kind} {owner}, left by {status.driver} in {status.phase} with "
            f"the canary at {status.weight} %; this DeployRun does not take it over: finish it through "
            f"{owner}, or roll it back (`deploydeck run PLAN --rollback-unfinished`)",
            [ANOTHER_RUNS_DEPLOY],
        )
    if rollback:
        return status  # a person asked to roll it back: whatever the cluster says, that is safe
    if status.paused and status.engine_paused_at is None and not interactive:
        raise ResumeRefused(
            f"unfinished deploy {status.deploy_id} of {plan.service} {plan.version.to} was paused by "
            f"{status.paused_by or 'a person'} (canary at {status.weight} %); a headless run does not "
            "overrule a person's pause: resume it from the dashboard (run PLAN without --headless)",
            [f"paused by {status.paused_by or 'a person'}"],
        )
    differences = status.drift(await production.describe())
    if differences:
        raise ResumeRefused(
            f"unfinished deploy {status.deploy_id} of {plan.service} {plan.version.to} cannot be continued "
            "automatically: the cluster no longer matches what it left there ("
            + "; ".join(differences)
            + "). Someone changed it by hand; check with them, then roll it back with "
            "`deploydeck run PLAN --rollback-unfinished`, or restore the state it left and run again",
            differences,
        )
    return status
