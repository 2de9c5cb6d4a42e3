"""What the person sees while the world starts: the first frame, before any cluster is up."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Footer, LoadingIndicator, Static


class StartingScreen(Screen[None]):
    DEFAULT_CSS = """
    StartingScreen { align: center middle; }
    StartingScreen #starting-what { width: auto; padding: 1 2; }
    StartingScreen LoadingIndicator { height: 1; width: 40; }
    """

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(f"◆ deploydeck — {self.what}", id="starting-what")
            yield LoadingIndicator()
        yield Footer()

    def failed(self, message: str) -> None:
        self.query_one("#starting-what", Static).update(
            f"◆ deploydeck could not start\n\n{message}\n\nq quits."
        )
        self.query_one(LoadingIndicator).display = False
