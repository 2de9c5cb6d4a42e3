"""What the rollout persists about itself in the cluster (the state annotation)."""

from __future__ import annotations

from core.rollout.context import (
    RolloutContext,
)


class Store(RolloutContext):
    """What the rollout persists about itself in the cluster (the state annotation)."""

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
