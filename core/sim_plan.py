"""A real plan pointed at the simulated world (`run PLAN --sim`, `check PLAN --sim`).

The simulated world stands in for every outside system: the cluster, Prometheus,
Alertmanager, the code host and each health URL. What only a real environment can
supply (kube contexts, endpoint URLs the plan leaves out) is filled with the simulated
world's own, so a plan written for production gets a first dry run before any of it
exists. Everything the plan decides (gates, steps, triggers, SLOs) is kept as written:
a plan that would fail its gates against the simulated service fails them here too.
"""

from __future__ import annotations

from core.plan import E2ESpec, HealthSpec, Plan, TargetSpec

#: staging's count of new error log lines, answered by the simulated metrics
SIM_NEW_ERRORS_QUERY = 'sum(increase(log_messages_total{namespace="$namespace",level="error"}[15m]))'


def _health(target: TargetSpec, suffix: str) -> HealthSpec:
    if target.health is not None:
        return target.health
    host = f"{target.deployment}{suffix}"
    return HealthSpec(live=f"sim://{host}/health/live", ready=f"sim://{host}/health/ready")


def _target(target: TargetSpec, suffix: str) -> TargetSpec:
    # the simulated API server has one context of its own; the plan's names real clusters
    return target.model_copy(update={"context": None, "health": _health(target, suffix)})


def simulated(plan: Plan) -> Plan:
    """`plan` with `cluster.kind: sim` and the simulated world's endpoints where the plan has none."""
    targets = plan.targets.model_copy(
        update={
            "staging": _target(plan.targets.staging, "-staging"),
            "production": _target(plan.targets.production, ""),
        }
    )
    staging = plan.staging
    if staging.new_errors_query is None:
        query = SIM_NEW_ERRORS_QUERY.replace("$namespace", plan.targets.staging.namespace)
        staging = staging.model_copy(update={"new_errors_query": query})
    if staging.e2e is None:
        # the simulated world's stand-in suite; a real plan names its own (staging.e2e.command)
        staging = staging.model_copy(update={"e2e": E2ESpec(command="simulated e2e suite")})
    analysis = plan.analysis
    if not analysis.health_urls:
        canary = plan.targets.production.canary_name
        analysis = analysis.model_copy(update={"health_urls": [f"sim://{canary}/health/ready"]})
    return plan.model_copy(
        update={
            "cluster": plan.cluster.model_copy(update={"kind": "sim", "kubeconfig": None}),
            "targets": targets,
            "staging": staging,
            "analysis": analysis,
        }
    )
