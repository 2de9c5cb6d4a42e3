"""The gate checklist: every gate grouped by workflow step, with glyph, policy and evidence."""

from __future__ import annotations

from rich.text import Text
from textual.css.scalar import Unit
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from core.domain import GateGroup, GateStatus, Phase
from tui.widgets.glyphs import GATE_GLYPH, GATE_LABEL
from tui.widgets.model import GROUP_TITLES, DeckModel, GateView

#: the gate group each phase is about; its gates are never folded
PHASE_GROUP: dict[Phase, GateGroup] = {
    Phase.PENDING: GateGroup.PRE_DEPLOY,
    Phase.PREFLIGHT: GateGroup.PRE_DEPLOY,
    Phase.MIGRATIONS: GateGroup.MIGRATIONS,
    Phase.STAGING: GateGroup.STAGING,
    Phase.VERIFY: GateGroup.POST_DEPLOY,
}


#: what folds inside the current group when it does not fit: automated passes first, then every
#: satisfied gate (signed, overridden) too
_AUTOMATED_PASS = frozenset({GateStatus.PASS, GateStatus.SKIPPED})
_SATISFIED = frozenset(s for s in GateStatus if s.satisfied)


def _lines(options: list[Option]) -> int:
    """Rows the options take: a gate is two lines, a header one."""
    return sum(len(str(o.prompt).splitlines()) or 1 for o in options)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def gate_prompt(view: GateView, width: int = 60) -> Text:
    """Two lines cut to the panel width: glyph and title; then policy, status and evidence."""
    gate = view.result
    glyph, style = GATE_GLYPH[gate.status]
    label = GATE_LABEL[gate.status]
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{glyph} ", style=style)
    title_w = max(8, width - 2 - len(label) - 1)
    title = _fit(gate.title or gate.gate_id, title_w)
    text.append(title, style="bold" if gate.status == GateStatus.NEEDS_SIGN_OFF else "")
    text.append(" " * max(1, width - 2 - len(title) - len(label)))
    text.append(label, style=style)
    evidence = gate.evidence.splitlines()[0] if gate.evidence else ""
    if view.sign_offs:
        names = ", ".join(f"{s.actor} {s.at.strftime('%H:%M')}" for s in view.sign_offs)
        signed = f"signed by {names}"
        evidence = signed if gate.status == GateStatus.SIGNED or not evidence else f"{signed} · {evidence}"
    if view.overridden_by:
        evidence = f"overridden by {view.overridden_by} · {evidence}"
    text.append("\n  ")
    text.append(gate.policy, style="cyan")
    text.append(
        " " + _fit(evidence, max(4, width - 3 - len(gate.policy))),
        style="dim" if gate.status.satisfied else "",
    )
    return text


class GateChecklist(OptionList):
    """Highlight a gate to select it (for sign-off); Enter opens its full evidence."""

    def __init__(self, model: DeckModel, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._signature: tuple[object, ...] = ()

    def on_mount(self) -> None:
        self.update_from_model()

    def on_resize(self) -> None:
        self._signature = ()
        self.update_from_model()

    @property
    def selected_gate_id(self) -> str | None:
        if self.highlighted is None:
            return None
        option = self.get_option_at_index(self.highlighted)
        if option.id and not option.id.startswith("group:"):
            return option.id
        return None

    def line_budget(self) -> int | None:
        """Lines the list may show before it scrolls: its max-height (a share of the column) less
        the border; None before layout."""
        parent = self.parent
        max_height = self.styles.max_height
        height = getattr(parent, "size", None)
        if parent is None or max_height is None or height is None or not height.height:
            return None
        if max_height.unit in {Unit.PERCENT, Unit.HEIGHT}:  # `55%` of a height parses as 55h
            total = int(height.height * max_height.value / 100)
        elif max_height.unit == Unit.VIEW_HEIGHT:
            total = int(self.screen.size.height * max_height.value / 100)
        else:
            total = int(max_height.value)
        return max(1, total - self.styles.gutter.height)

    def update_from_model(self) -> None:
        groups = self.model.gates_by_group()
        width = max(20, self.scrollable_content_region.width - 1)
        budget = self.line_budget()
        signature: tuple[object, ...] = (
            width,
            budget,
            self.model.phase,
            *(
                (v.result.gate_id, v.result.status, v.result.evidence, len(v.sign_offs), v.overridden_by)
                for _, views in groups
                for v in views
            ),
        )
        if signature == self._signature:
            return
        self._signature = signature
        keep = self.selected_gate_id
        current = PHASE_GROUP.get(self.model.phase)
        options = self._gate_options(groups, current, width, fold=frozenset())
        # the current phase's open gates must stay in view (issue 15): its passed gates fold too,
        # the automated ones first; a person's sign-off or override stays on its row while it fits
        for fold in (_AUTOMATED_PASS, _SATISFIED):
            if budget is None or _lines(options) <= budget:
                break
            options = self._gate_options(groups, current, width, fold=fold)
        self.set_options(options)
        target = keep or self._first_needing_sign_off()
        if target is not None:
            try:
                self.highlighted = self.get_option_index(target)
            except OptionDoesNotExist:
                self.highlighted = None

    def _gate_options(
        self,
        groups: list[tuple[GateGroup, list[GateView]]],
        current: GateGroup | None,
        width: int,
        *,
        fold: frozenset[GateStatus],
    ) -> list[Option]:
        options: list[Option] = []
        for group, views in groups:
            done = sum(1 for v in views if v.result.status.satisfied)
            # a group whose gates all passed folds to one line, so the current phase's gates stay
            # in view on a small terminal; Enter on a gate (or `log show`) still has every detail
            folded = done == len(views) and group != current
            header = Text(no_wrap=True)
            header.append(("▸ " if folded else "▾ ") + GROUP_TITLES[group].upper(), style="bold")
            header.append(f"  {done}/{len(views)}", style="dim")
            if folded:
                header.append("  all passed", style="green")
            options.append(Option(header, id=f"group:{group.value}", disabled=True))
            if folded:
                continue
            shown = views
            folded_views = [v for v in views if v.result.status in fold] if group == current else []
            if folded_views:
                shown = [v for v in views if v.result.status not in fold]
                line = Text(no_wrap=True, overflow="ellipsis")
                line.append(f"{GATE_GLYPH[GateStatus.PASS][0]} ", style=GATE_GLYPH[GateStatus.PASS][1])
                names = ", ".join(v.result.gate_id for v in folded_views)
                line.append(_fit(f"{len(folded_views)} passed: {names}", max(8, width - 2)), style="dim")
                options.append(Option(line, id=f"group:{group.value}:passed", disabled=True))
            options.extend(Option(gate_prompt(v, width), id=v.result.gate_id) for v in shown)
        if not options:
            options.append(
                Option(
                    Text("gates appear as the engine evaluates them", style="dim italic"),
                    id="group:none",
                    disabled=True,
                )
            )
        return options

    def _first_needing_sign_off(self) -> str | None:
        for view in self.model.gates.values():
            if view.result.status == GateStatus.NEEDS_SIGN_OFF:
                return view.result.gate_id
        return None
