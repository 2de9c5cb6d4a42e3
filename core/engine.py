"""The rollout engine's public names; the engine itself lives in `core.rollout`."""

from core.rollout import CommandResult, Rollout

__all__ = ["CommandResult", "Rollout"]
