"""What --read-only refuses, and the guard every steering method of the dashboard wears.

The decision itself is ``DeployDeckApp.read_only_refuses``: one place, whichever path (key,
palette, mouse, a dialog's result) reached the action.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.app import DeployDeckApp

LIVE_ACTIONS = frozenset(
    {"rollback", "proceed", "promote_early", "sign_off", "pause_resume", "abort", "decide", "refresh_gates"}
)
#: everything that changes the rollout (or, in the demo, starts another one): what --read-only refuses
STEERING = LIVE_ACTIONS | {"switch_scenario"}


def steering(action: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a method as steering: it runs only if :meth:`DeployDeckApp.read_only_refuses` lets it.

    Keys, the palette, the mouse and dialog results all end in these methods, so the mode is
    decided in that one place whichever way the person reached them.
    """

    def wrap(method: Callable[..., None]) -> Callable[..., None]:
        @wraps(method)
        def guarded(self: DeployDeckApp, *args: Any, **kwargs: Any) -> None:
            if self.read_only_refuses(action):
                self.notify(f"read-only: {action.replace('_', ' ')} is not available", severity="warning")
                return
            method(self, *args, **kwargs)

        return guarded

    return wrap
