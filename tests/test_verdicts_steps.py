"""Issue 14, item 6: no "no requests in the window" warning at healthy steps.

On the simulated Kubernetes API server the canary's pods become ready a moment after the weight
is asked for; the workload model only noticed the new share at the next read, counted the step
from then, and read 0 canary requests: a warning at every step of a healthy rollout.
"""

from __future__ import annotations

from pathlib import Path

from core.domain import Outcome, Phase
from core.events import AnalysisSample
from tests.engine_helpers import sim_session


async def test_a_healthy_rollout_on_the_kube_backend_has_no_empty_windows(tmp_path: Path) -> None:
    session = await sim_session(tmp_path, "healthy", backend="kube")
    try:
        assert await session.rollout.run() == Outcome.COMPLETED
        samples = [
            e
            for e in session.rollout.events
            if isinstance(e, AnalysisSample) and e.phase in {Phase.CANARY, Phase.VERIFY}
        ]
        empty = [(s.weight, s.elapsed_s, s.no_data_reason) for s in samples if s.verdict != "healthy"]
        assert empty == [], empty
    finally:
        await session.close()
