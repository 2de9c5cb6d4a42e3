"""Step 2, database migrations (POL-012): review gates, run on staging, staging healthy after."""

from __future__ import annotations

from core.domain import (
    GateGroup,
    Phase,
)
from core.events import (
    HealthChecked,
)
from core.rollout.context import (
    RolloutContext,
    _Blocked,
    _public,
)


class MigrationsStep(RolloutContext):
    """Step 2, database migrations (POL-012): review gates, run on staging, staging healthy after."""

    async def _migrations(self) -> None:
        migrations = self.plan.migrations
        assert migrations is not None
        await self._set_phase(Phase.MIGRATIONS, "reviewing migration safety")
        await self._gate_phase(GateGroup.MIGRATIONS, needs_proceed=False, skip={"migrations-staging-run"})
        if migrations.staging_command and not self._done("migrations.staging"):
            # persisted once it ran: a resume does not run the migration again
            await self._persist(pending="migrations.staging")
            await self._run_command("migrations (staging)", migrations.staging_command, migrations.timeout)
            await self._mark("migrations.staging", "ran on staging")
        if migrations.staging_command:
            health = self.plan.targets.staging.health
            if health is not None:
                probe = await self.world.probe.check(health.ready, timeout_s=health.timeout)
                await self._emit(
                    HealthChecked,
                    url=_public(probe.url),
                    ok=probe.ok,
                    status=probe.status,
                    detail=probe.detail,
                )
                if not probe.ok:
                    raise _Blocked(f"staging unhealthy after migration: {probe.detail or probe.status}")
            await self._record_pass("migrations-staging-run", "ran on staging; staging healthy after")
