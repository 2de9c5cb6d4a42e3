"""The command palette (ctrl+p): every key's action, and 'switch scenario' in the demo."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


class DeckCommands(Provider):
    """Command palette entries: every key's action, and 'switch scenario' in the demo."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app  # the DeployDeckApp (imported by it, so not named here)
        out: list[tuple[str, Callable[[], Any], str]] = [
            ("Roll back now", app.action_rollback, "canary to 0 %, stable restored (r)"),
            ("Proceed to the next step", app.action_proceed, "opens a confirmation (p)"),
            ("Sign off the selected gate", app.action_sign_off, "manual gates (s)"),
            ("Pause / resume", app.action_pause_resume, "(space)"),
            ("Abort the deploy", app.action_abort, "asks for a reason (a)"),
            ("Re-check the gates now", app.action_refresh_gates, "automated gates of this step (g)"),
            ("Show the full event log", app.action_show_log, "(l)"),
            ("Show deploy history", app.action_history, "(h)"),
            ("Show post-deploy verification", app.action_verification, "(v)"),
            ("Help", app.action_help, "keys and glyphs (?)"),
        ]
        if app.reopen is not None:
            from core.sim.scenarios import SCENARIOS

            for name, scenario in SCENARIOS.items():
                out.append((f"Switch scenario: {name}", partial(app.switch_scenario, name), scenario.title))
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
