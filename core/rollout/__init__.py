"""The rollout engine: one deploy through the workflow, driven by a plan.

`driver.Rollout` walks the steps in order (`steps/`), each in its own module; `commands` takes people's
commands, `gates` and `window` are the waits the steps share, `context` holds the state and plumbing.
"""

from core.rollout.context import CommandResult
from core.rollout.driver import Rollout

__all__ = ["CommandResult", "Rollout"]
