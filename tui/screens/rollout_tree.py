"""What `kubectl argo rollouts get rollout --watch` shows: set vs actual weight, stable and canary
images and revisions, the ReplicaSet/pod tree with ready and restarts, and per-step analysis counts.
Enter on a pod opens its recent events and log tail (as k9s does).

The tree is read through core.cluster_view.ClusterInspector (read-only, each read bounded on the
Clock), every 2 s while this screen is open and never otherwise: watching costs nothing when closed.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.cluster_view import ClusterInspector, ClusterTree, PodDetail, PodView, ReplicaSetView
from core.ports import PortError
from core.redact import redact
from tui.widgets.header import HeaderBar
from tui.widgets.model import DeckModel

POLL_S = 2.0
LOG_TAIL = 40


def age(seconds: float | None) -> str:
    """kubectl's AGE: 45s, 3m, 2h, 4d."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def analysis_text(model: DeckModel) -> Text:
    """Per step ✔ healthy / ✖ fired / ? no-data intervals, like argo's AnalysisRun counts."""
    text = Text()
    if not model.step_checks:
        return Text("no analysis yet", style="dim")
    for i, (label, (ok, fired, blind)) in enumerate(model.step_checks.items()):
        if i:
            text.append("  ·  ", style="dim")
        text.append(f"{label} ")
        text.append(f"✔ {ok}", style="green")
        text.append(" ")
        text.append(f"✖ {fired}", style="bold red" if fired else "dim")
        if blind:
            text.append(f" ? {blind}", style="yellow")
    return text


def summary_text(model: DeckModel, tree: ClusterTree | None, error: str | None) -> Text:
    text = Text()
    step = model.step
    steps = len(model.steps)
    text.append("Step       ", style="bold")
    text.append(f"{step + 1}/{steps}" if step is not None and steps else "–")
    text.append("   SetWeight ", style="bold")
    text.append(f"{model.weight_requested} %")
    text.append("   ActualWeight ", style="bold")
    if tree is None:
        text.append("?", style="yellow")
    else:
        off = tree.weight_actual != model.weight_requested
        text.append(f"{tree.weight_actual} %", style="bold yellow" if off else "")
        text.append(f"  ({tree.strategy}", style="dim")
        if tree.weight_configured != tree.weight_actual:
            text.append(f", configured {tree.weight_configured} %", style="dim")
        text.append(")", style="dim")
    text.append("\n")
    if tree is not None:
        text.append("Stable     ", style="bold")
        text.append(f"{tree.stable_image or '?'}", style="#3fa7ff")
        text.append(f"  rev {tree.stable_revision if tree.stable_revision is not None else '?'}\n")
        text.append("Canary     ", style="bold")
        text.append(f"{tree.canary_image or '–'}", style="bold #ff8c1a")
        text.append(f"  rev {tree.canary_revision if tree.canary_revision is not None else '–'}\n")
    if error:
        text.append("Cluster    ", style="bold")
        text.append(f"{error}\n", style="bold red")
    text.append("Analysis   ", style="bold")
    text.append_text(analysis_text(model))
    return text


def _status(status: str, good: bool) -> Text:
    return Text(status, style="green" if good else "bold yellow")


def tree_rows(tree: ClusterTree) -> list[tuple[str, tuple[Text | str, ...]]]:
    """(row key, cells) per ReplicaSet and pod, drawn as a tree; a pod's key is `pod:NAME`."""
    rows: list[tuple[str, tuple[Text | str, ...]]] = []
    sets = tree.replica_sets
    for i, rs in enumerate(sets):
        last_rs = i == len(sets) - 1
        rows.append((f"rs:{rs.name}", _rs_cells(rs, "└─" if last_rs else "├─")))
        for j, pod in enumerate(rs.pods):
            branch = ("   " if last_rs else "│  ") + ("└─" if j == len(rs.pods) - 1 else "├─")
            rows.append((f"pod:{pod.name}", _pod_cells(pod, branch)))
    return rows


def _rs_cells(rs: ReplicaSetView, branch: str) -> tuple[Text | str, ...]:
    # image and revision per role are in the summary above; the row names the ReplicaSet's role
    name = Text(f"{branch}⧉ ")
    name.append(rs.name, style="bold")
    name.append(f" {rs.role}", style="#3fa7ff" if rs.role == "stable" else "bold #ff8c1a")
    return (
        name,
        _status(rs.status, rs.status in {"Healthy", "ScaledDown"}),
        f"{rs.ready}/{rs.desired}",
        "",
        "",
    )


def _pod_cells(pod: PodView, branch: str) -> tuple[Text | str, ...]:
    good = pod.status == "Running" and pod.ready == pod.containers
    return (
        Text(f"{branch}□ {pod.name}"),
        _status(pod.status, good),
        f"{pod.ready}/{pod.containers}",
        Text(str(pod.restarts), style="bold red" if pod.restarts else ""),
        age(pod.age_s),
    )


class RolloutScreen(Screen[None]):
    live_commands = True
    BINDINGS = [
        Binding("escape,t", "app.pop_screen", "Back", id="tree.back"),
        Binding("enter", "open_pod", "Pod events/log", id="tree.pod"),
    ]

    def __init__(
        self, model: DeckModel, header: Callable[[], HeaderBar], inspector: ClusterInspector
    ) -> None:
        super().__init__()
        self.model = model
        self._new_header = header
        self._header = header()
        self.inspector = inspector
        self.cluster_tree: ClusterTree | None = None
        self.error: str | None = None
        self.reads = 0

    def compose(self) -> ComposeResult:
        yield self._header
        summary = Static(id="tree-summary")
        summary.border_title = "Rollout"
        yield summary
        table: DataTable[Text | str] = DataTable(id="tree-table", cursor_type="row", zebra_stripes=False)
        table.border_title = "ReplicaSets and pods  (Enter: events and log)"
        table.add_columns("NAME", "STATUS", "READY", "RESTARTS", "AGE")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._paint_summary()
        self.poll()
        self.set_interval(POLL_S, self.poll, name="tree-poll")

    def poll(self) -> None:
        self.run_worker(self._read(), group="tree", exclusive=True, exit_on_error=False)

    async def _read(self) -> None:
        try:
            tree = await self.inspector.tree()
        except PortError as exc:
            self.error = redact(str(exc))
        else:
            self.cluster_tree, self.error = tree, None
            self._paint_table(tree)
        self.reads += 1
        self._paint_summary()

    def _paint_summary(self) -> None:
        if self.is_mounted:
            self.query_one("#tree-summary", Static).update(
                summary_text(self.model, self.cluster_tree, self.error)
            )

    def _paint_table(self, tree: ClusterTree) -> None:
        table = self.query_one(DataTable)
        keep = None
        if table.row_count and table.cursor_row < table.row_count:
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        for key, cells in tree_rows(tree):
            table.add_row(*cells, key=key)
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
            except Exception:  # the row is gone (a pod terminated): stay where the cursor was
                pass

    def selected_pod(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        return key.removeprefix("pod:") if key.startswith("pod:") else None

    def action_open_pod(self) -> None:
        pod = self.selected_pod()
        if pod is None:
            self.notify("Enter opens a pod: move to a pod row (□)", severity="warning")
            return
        self.app.push_screen(PodScreen(pod, self.inspector, self.model, self._new_header()))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_pod()

    def refresh_panels(self, changed: set[str] | frozenset[str]) -> None:
        if not self.is_mounted or not self.is_attached:
            return
        if "header" in changed:
            self._header.update_from_model()
        if changed & {"ladder", "meters", "charts"}:
            self._paint_summary()

    def tick(self) -> None:
        self._header.update_from_model()


def pod_text(detail: PodDetail) -> Text:
    text = Text()
    text.append("Events\n", style="bold underline")
    if not detail.events:
        text.append("  none in the last hour (Events expire after an hour)\n", style="dim")
    for e in detail.events:
        style = "bold yellow" if e.type == "Warning" else ""
        count = f" (x{e.count})" if e.count > 1 else ""
        text.append(f"  {age(e.age_s):>4}  ", style="dim")
        text.append(f"{e.type:<7} {e.reason:<18} ", style=style)
        text.append(f"{e.message}{count}\n")
    text.append(f"\nLog (last {LOG_TAIL} lines)\n", style="bold underline")
    if detail.log_error:
        text.append(f"  {detail.log_error}\n", style="yellow")
    elif not detail.log:
        text.append("  (empty)\n", style="dim")
    for line in detail.log:
        text.append(f"  {line}\n", style="bold red" if _is_5xx(line) else "")
    return text


def _is_5xx(line: str) -> bool:
    return any(f" {code} " in line for code in ("500", "502", "503", "504"))


class PodScreen(Screen[None]):
    """One pod: `kubectl describe pod`'s events and `kubectl logs --tail`, refreshed while open."""

    live_commands = True
    BINDINGS = [Binding("escape,enter", "app.pop_screen", "Back", id="pod.back")]

    def __init__(self, pod: str, inspector: ClusterInspector, model: DeckModel, header: HeaderBar) -> None:
        super().__init__()
        self.pod = pod
        self.inspector = inspector
        self.model = model
        self._header = header
        self.detail: PodDetail | None = None

    def compose(self) -> ComposeResult:
        yield self._header
        body = VerticalScroll(Static(f"reading pod {self.pod} …", id="pod-body"), id="pod-scroll")
        body.border_title = f"Pod {self.pod}"
        yield body
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pod-scroll").focus()
        self.poll()
        self.set_interval(POLL_S, self.poll, name="pod-poll")

    def poll(self) -> None:
        self.run_worker(self._read(), group="pod", exclusive=True, exit_on_error=False)

    async def _read(self) -> None:
        body = self.query_one("#pod-body", Static)
        try:
            detail = await self.inspector.pod_detail(self.pod, LOG_TAIL)
        except PortError as exc:
            body.update(Text(redact(str(exc)), style="bold red"))
            return
        self.detail = detail
        scroll = self.query_one("#pod-scroll", VerticalScroll)
        at_end = scroll.scroll_y >= scroll.max_scroll_y
        # pod logs and event messages can quote anything: masked like every other output (core.redact)
        shown = detail.model_copy(
            update={
                "log": [redact(x) for x in detail.log],
                "events": [e.model_copy(update={"message": redact(e.message)}) for e in detail.events],
                "log_error": redact(detail.log_error) if detail.log_error else None,
            }
        )
        body.update(pod_text(shown))
        if at_end:
            scroll.call_after_refresh(scroll.scroll_end, animate=False)

    def refresh_panels(self, changed: set[str] | frozenset[str]) -> None:
        if self.is_mounted and self.is_attached and "header" in changed:
            self._header.update_from_model()

    def tick(self) -> None:
        self._header.update_from_model()
