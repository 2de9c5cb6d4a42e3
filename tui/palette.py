"""The command palette's entries (ctrl+p): every key's action, and 'switch scenario' in the demo.

Each entry calls the same ``action_*`` method its key does, so the palette passes the same
read-only check (``DeployDeckApp.read_only_refuses``) as the keys, the mouse and dialog results.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.app import DeployDeckApp


class DeckCommands(Provider):
    """Command palette entries: every key's action, and 'switch scenario' in the demo."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: DeployDeckApp = self.app  # type: ignore[assignment]
        entries: list[tuple[str, str, Callable[[], Any], str]] = [
            ("rollback", "Roll back now", app.action_rollback, "canary to 0 %, stable restored (r)"),
            ("proceed", "Proceed to the next step", app.action_proceed, "opens a confirmation (p)"),
            (
                "promote_early",
                "Promote early: skip the rest of the 100 % bake",
                app.action_promote_early,
                "confirms, saying what is skipped (P)",
            ),
            ("sign_off", "Sign off the selected gate", app.action_sign_off, "manual gates (s)"),
            ("pause_resume", "Pause / resume", app.action_pause_resume, "(space)"),
            ("abort", "Abort the deploy", app.action_abort, "asks for a reason (a)"),
            (
                "refresh_gates",
                "Re-check the gates now",
                app.action_refresh_gates,
                "automated gates of this step (g)",
            ),
            ("show_log", "Show the full event log", app.action_show_log, "(l)"),
            ("history", "Show deploy history", app.action_history, "(h)"),
            ("verification", "Show post-deploy verification", app.action_verification, "(v)"),
            ("rollout_tree", "Show ReplicaSets and pods", app.action_rollout_tree, "(t)"),
            ("help", "Help", app.action_help, "keys and glyphs (?)"),
        ]
        if app.reopen is not None:
            from core.sim.scenarios import SCENARIOS

            for name, scenario in SCENARIOS.items():
                entries.append(
                    (
                        "switch_scenario",
                        f"Switch scenario: {name}",
                        partial(app.switch_scenario, name),
                        scenario.title,
                    )
                )
        # a read-only observer is not offered what it may not do (the actions refuse it anyway)
        return [
            (title, call, text) for action, title, call, text in entries if not app.read_only_refuses(action)
        ]

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
