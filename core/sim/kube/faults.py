"""Fault injection knobs for the simulated API server; mutable while it runs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FaultConfig(BaseModel):
    error_rate_500: float = Field(default=0.0, ge=0.0, le=1.0)
    error_rate_429: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_s: float = Field(default=0.0, ge=0.0)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # close the connection without an answer
    force_conflicts: int = Field(default=0, ge=0)  # the next N updates/patches answer 409 Conflict
    conflict_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # this share of updates/patches answer 409
    retry_after_s: int = Field(default=1, ge=0)  # the Retry-After header sent with an injected 429
    seed: int | None = None
