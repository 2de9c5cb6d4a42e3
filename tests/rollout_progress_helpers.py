"""Shared set-up of the persisted-progress and `status` mutation tests (tests/test_mutants_rollout_progress.py,
tests/test_mutants_rollout_status.py): a rollout status as a deploy of the demo's checkout 1.5.0 persists it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.rollout.progress import RolloutStatus

IMAGE = "registry.example.com/shop/checkout:1.5.0"
OLD = "registry.example.com/shop/checkout:1.4.2"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 5, 10, 7, 30, tzinfo=UTC)


def status(**changes: Any) -> RolloutStatus:
    """A status of deploy d-1 (stable ran OLD when it started), started at T0, last written at T1."""
    fields: dict[str, Any] = {
        "deploy_id": "d-1",
        "service": "checkout",
        "namespace": "prod",
        "version": "1.5.0",
        "image": IMAGE,
        "stable_before": OLD,
        "started_at": T0,
        "updated_at": T1,
        **changes,
    }
    return RolloutStatus(**fields)
