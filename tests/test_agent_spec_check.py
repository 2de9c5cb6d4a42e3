"""The agent checks a DeployRun's plan once per spec, not once per watch event.

Every status write the agent makes comes back to it as a MODIFIED event; parsing the plan (YAML, ~20 ms)
for each was a fifth of the agent's CPU at 50 concurrent runs (bench_agent_fleet.py under cProfile).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

import core.plan
from core.agent.runner import Agent
from core.agent.watch import RunChange


def _run(spec: dict[str, Any], rv: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "prod", "name": "checkout-1", "generation": 1, "resourceVersion": str(rv)},
        "spec": spec,
        "status": {"phase": "canary", "weight": rv},
    }


def test_a_status_change_does_not_parse_the_plan_again_and_a_spec_change_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    real = core.plan.parse_plan
    monkeypatch.setattr(
        core.plan, "parse_plan", lambda text, *a, **k: (parsed.append(text), real(text, *a, **k))[1]
    )
    agent = Agent(None, ["prod"])  # type: ignore[arg-type]  # no watch is started: on_change alone
    spec = {"service": "checkout", "version": {"from": "1.0", "to": "1.1"}}

    async def go() -> None:
        for rv in range(1, 6):  # the agent's own status writes, coming back
            await agent.on_change(RunChange("MODIFIED", _run(spec, rv)))
        assert len(parsed) == 1
        edited = copy.deepcopy(spec)
        edited["version"]["to"] = "1.2"
        await agent.on_change(RunChange("MODIFIED", _run(edited, 6)))
        assert len(parsed) == 2
        await agent.on_change(RunChange("DELETED", _run(edited, 7)))
        await agent.on_change(RunChange("ADDED", _run(edited, 8)))
        assert len(parsed) == 3  # a run created again under the same name is checked anew

    asyncio.run(go())
