"""The deploy plan: pydantic models and YAML loading.

Loading never raises a traceback at a person: every problem becomes a
:class:`PlanError` whose message names the file, the line and the field path.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.durations import Duration

ChangeClass = Literal["standard", "normal", "emergency", "major"]
Strategy = Literal["replicas", "nginx", "gateway"]


class Model(BaseModel):
    # strict: YAML already types its scalars, so `weight: true` or `retries: "3"` is a mistake
    # to report, not a value to coerce; NaN and infinity are never a sane setting; defer_build:
    # validators are built when a plan is first loaded, not at import (the dashboard's start-up)
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, strict=True, allow_inf_nan=False, defer_build=True
    )


# What the Kubernetes API accepts as an object name (DNS-1123), checked at load so a
# name can never smuggle a path segment ("x/../checkout") or a query ("?dryRun=All").
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def dns1123_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"'{value}' is not a valid Kubernetes name (DNS-1123 label: lowercase letters, "
            "digits and '-', at most 63, starting and ending with a letter or digit)"
        )
    return value


def dns1123_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"'{value}' is not a valid Kubernetes name (DNS-1123 subdomain: lowercase letters, "
            "digits, '-' and '.', at most 253)"
        )
    return value


# --- what is being shipped ---------------------------------------------------


class VersionSpec(Model):
    from_: str = Field(alias="from")
    to: str
    image: str

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        # YAML reads 1.10 as the float 1.1; refuse instead of silently changing the version.
        if isinstance(value, float):
            raise ValueError(f"quote the version: YAML reads it as the number {value}")
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _differs(self) -> VersionSpec:
        if self.from_ == self.to:
            raise ValueError(f"'from' and 'to' are both {self.to}; nothing to deploy")
        return self


class ChangeSpec(Model):
    id: str
    class_: ChangeClass = Field(alias="class")
    security_sensitive: bool = False
    description: str = ""
    author: str = ""
    repo: str | None = None  # owner/name on the code host
    commit: str | None = None
    pull_request: int | None = None
    incident: str | None = None  # Emergency: the incident this change fixes
    reason: str | None = None  # Emergency: why it cannot wait
    change_record: str | None = None  # Major: approved change record id
    tickets: list[str] = Field(default_factory=list)

    @field_validator("class_", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


# --- where it goes -----------------------------------------------------------


class TargetSpec(Model):
    context: str | None = None  # kube context; None: current context
    namespace: str
    deployment: str  # the stable Deployment
    canary_deployment: str | None = None  # default: "<deployment>-canary"
    service: str | None = None
    strategy: Strategy = "replicas"
    replicas: int | None = Field(default=None, ge=1)  # total pods for the replicas strategy
    container: str | None = None  # the container that gets the image; default: the only one
    ingress: str | None = None  # nginx: the canary Ingress
    httproute: str | None = None  # gateway: the HTTPRoute
    rollout_timeout: Duration = Field(default=600.0, gt=0)
    health: HealthSpec | None = None
    # a HorizontalPodAutoscaler on the stable Deployment fights every replica write of the `replicas`
    # strategy: "refuse" (exit 2) unless the plan says "suspend" (its scaling is disabled through
    # spec.behavior for the rollout and restored when the weight is back at 0)
    hpa: Literal["refuse", "suspend"] = "refuse"

    @property
    def canary_name(self) -> str:
        return self.canary_deployment or f"{self.deployment}-canary"

    @field_validator("namespace")
    @classmethod
    def _namespace_name(cls, value: str) -> str:
        return dns1123_label(value)

    @field_validator("deployment", "canary_deployment", "service", "ingress", "httproute")
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        if value is not None:
            dns1123_subdomain(value)
            if len(value) > 253 - len("deploydeck-") - len("-canary"):
                raise ValueError(f"'{value}' is too long to name its canary and lease")
        return value

    @model_validator(mode="after")
    def _strategy_needs(self) -> TargetSpec:
        if self.strategy == "nginx" and not self.ingress:
            raise ValueError("strategy 'nginx' needs 'ingress' (the canary Ingress name)")
        if self.strategy == "gateway" and not self.httproute:
            raise ValueError("strategy 'gateway' needs 'httproute'")
        return self


class HealthSpec(Model):
    live: str  # URL that must answer 200
    ready: str  # URL that must answer 200 with every dependency healthy
    timeout: Duration = 5.0


class TargetsSpec(Model):
    staging: TargetSpec
    production: TargetSpec


class ClusterSpec(Model):
    kind: Literal["sim", "kube"] = "kube"
    kubeconfig: str | None = None  # default: $KUBECONFIG, then ~/.kube/config


class PrometheusSpec(Model):
    url: str
    token: str | None = None  # bearer token, usually ${PROMETHEUS_TOKEN}
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    timeout: Duration = 10.0
    retries: int = Field(default=2, ge=0, le=10)


class AlertmanagerSpec(Model):
    url: str
    token: str | None = None
    timeout: Duration = 10.0


# --- gates (Step 1) ----------------------------------------------------------


class FreezePeriod(Model):
    start: dt.datetime | dt.date
    end: dt.datetime | dt.date
    reason: str = ""


class FreezeSpec(Model):
    no_fridays: bool = True
    no_weekends: bool = False
    holidays: list[dt.date] = Field(default_factory=list)
    periods: list[FreezePeriod] = Field(default_factory=list)


class CiSpec(Model):
    provider: Literal["github", "command"] = "github"
    required_checks: list[str] = Field(
        default_factory=lambda: ["lint", "tests", "sast", "dependency-scan", "coverage"]
    )
    base_url: str = "https://api.github.com"
    token: str | None = None  # ${GITHUB_TOKEN}
    command: str | None = None  # provider: command
    timeout: Duration = 60.0


class ErrorBudgetSpec(Model):
    objective: float = Field(default=99.9, gt=0, lt=100)  # availability, percent
    window: Duration = 30 * 86400.0
    query: str | None = None  # PromQL giving the error ratio over the window; default from the service


class DependencySpec(Model):
    name: str
    url: str
    expect_status: int = 200


class ManualGateSpec(Model):
    id: str
    title: str
    policy: str = "POL-007"
    group: Literal["pre_deploy", "migrations", "staging", "post_deploy"] = "pre_deploy"
    signers: int = Field(default=1, ge=1, le=3)
    # false: the change's author may not sign it (their own rollback plan is no review); only ever
    # stricter: a catalogue gate the author may not sign stays so whatever the plan says
    author_may_sign: bool = True


class IncidentsSpec(Model):
    matchers: list[str] = Field(default_factory=lambda: ['severity=~"SEV1|SEV2|sev1|sev2|critical"'])
    pagerduty_url: str | None = None
    pagerduty_token: str | None = None


class GatesSpec(Model):
    timezone: str = "UTC"
    freeze: FreezeSpec = Field(default_factory=FreezeSpec)
    ci: CiSpec = Field(default_factory=CiSpec)
    incidents: IncidentsSpec = Field(default_factory=IncidentsSpec)
    monitoring_matchers: list[str] = Field(default_factory=list)  # default: alerts labelled with the service
    error_budget: ErrorBudgetSpec = Field(default_factory=ErrorBudgetSpec)
    dependencies: list[DependencySpec] = Field(default_factory=list)
    manual: list[ManualGateSpec] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)  # gate ids the policy allows to skip for this class
    timeout: Duration = 10.0
    refresh: Duration = Field(default=30.0, ge=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone '{value}'") from exc
        return value


# --- migrations (Step 2) -----------------------------------------------------


class MigrationsSpec(Model):
    # files outside the plan's folder (absolute, or through "..") only when the plan says so;
    # declared before `files` so the check on `files` can see it
    allow_outside_plan_dir: bool = False
    files: list[str] = Field(default_factory=list)
    dialect: Literal["postgres", "mysql"] = "postgres"
    staging_command: str | None = None
    production_command: str | None = None
    timeout: Duration = Field(default=900.0, gt=0)

    @field_validator("files")
    @classmethod
    def _confined(cls, files: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("allow_outside_plan_dir"):
            return files
        for index, name in enumerate(files):
            if Path(name).is_absolute() or ".." in Path(name).parts or name.startswith("~"):
                raise ValueError(
                    f"@{index}: '{name}' is outside the plan's folder; set "
                    "migrations.allow_outside_plan_dir: true to allow it"
                )
        return files


# --- staging (Step 3) --------------------------------------------------------


class E2ESpec(Model):
    command: str
    timeout: Duration = Field(default=1200.0, gt=0)


class SoakSpec(Model):
    duration: Duration = 900.0
    max_error_delta_pp: float = Field(default=0.1, ge=0)


class StagingSpec(Model):
    e2e: E2ESpec | None = None
    new_errors_query: str | None = None  # PromQL; > 0 fails
    soak: SoakSpec = Field(default_factory=SoakSpec)


# --- canary (Step 4) ---------------------------------------------------------


class CanaryStep(Model):
    weight: int = Field(ge=1, le=100)
    observe: Duration


def _default_steps() -> list[CanaryStep]:
    return [
        CanaryStep(weight=5, observe=300),
        CanaryStep(weight=25, observe=300),
        CanaryStep(weight=50, observe=300),
        CanaryStep(weight=100, observe=900),
    ]


class CanarySpec(Model):
    steps: list[CanaryStep] = Field(default_factory=_default_steps)
    auto_promote: bool = True  # False: each step waits for a person's proceed

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        if not steps:
            raise ValueError("needs at least one step")
        for index, (before, after) in enumerate(itertools.pairwise(steps), start=1):
            if after.weight <= before.weight:
                raise ValueError(
                    f"@{index}: weights must increase: {after.weight} % comes after {before.weight} %"
                )
        if steps[-1].weight != 100:
            raise ValueError(f"@{len(steps) - 1}: the last step must be 100 %, not {steps[-1].weight} %")
        return steps


class TriggersSpec(Model):
    error_delta_pp: float = Field(default=0.5, gt=0)
    p99_ratio: float = Field(default=1.5, gt=1)
    health_failures: int = Field(default=2, ge=1)
    error_consecutive: int = Field(default=1, ge=1)
    p99_consecutive: int = Field(default=1, ge=1)


class QueriesSpec(Model):
    """PromQL templates; $service, $namespace, $version and $window are filled in."""

    requests: str | None = None
    error_rate: str | None = None
    latency_quantile: str | None = None  # $quantile is filled in too


class JudgeMetric(Model):
    name: Literal["error_rate", "p50", "p95", "p99"]
    direction: Literal["increase", "decrease", "either"] = "increase"
    critical: bool = False
    allowed_effect: float = Field(default=1.1, gt=0)  # canary/baseline median ratio tolerated


class JudgeSpec(Model):
    enabled: bool = False
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    # An error rate is a small proportion: ×1.1 of 0.4 % is 0.04 pp, inside the noise of one
    # interval's few canary requests; ×1.25 is still far stricter than the fixed +0.5 pp trigger.
    metrics: list[JudgeMetric] = Field(
        default_factory=lambda: [
            JudgeMetric(name="error_rate", allowed_effect=1.25),
            JudgeMetric(name="p99", allowed_effect=1.1),
        ]
    )
    pass_score: float = 95.0
    marginal_score: float = 75.0


class AnalysisSpec(Model):
    # >= 1 s: each interval writes journal lines and queries Prometheus
    interval: Duration = Field(default=30.0, ge=1, le=3600)
    # rate window of each read (PromQL [5m]); one 30 s interval of a 5 % canary is too few
    # requests to resolve 0.5 pp, so each interval judges the last `lookback` of traffic
    lookback: Duration = Field(default=300.0, ge=1)
    min_requests: int = Field(default=50, ge=0)
    max_blind_intervals: int = Field(default=3, ge=1)
    # paused for lack of data this long with nobody deciding: roll back (POL-010, rollback if unsure)
    blind_pause_timeout: Duration = 600.0
    health_urls: list[str] = Field(default_factory=list)  # canary health checks each interval
    queries: QueriesSpec = Field(default_factory=QueriesSpec)
    triggers: TriggersSpec = Field(default_factory=TriggersSpec)
    judge: JudgeSpec = Field(default_factory=JudgeSpec)


# --- after the canary (Steps 5-7) ----------------------------------------------


class SloSpec(Model):
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_error_rate_pct: float | None = None


class HttpCheckSpec(Model):
    name: str
    url: str
    expect_status: int = 200
    expect_body: str | None = None


class BusinessMetricSpec(Model):
    name: str
    query: str
    min: float | None = None
    max: float | None = None


class VerificationSpec(Model):
    duration: Duration = 900.0
    slo: SloSpec = Field(default_factory=SloSpec)
    smoke_command: str | None = None
    smoke: list[HttpCheckSpec] = Field(default_factory=list)
    synthetics: list[HttpCheckSpec] = Field(default_factory=list)
    business: list[BusinessMetricSpec] = Field(default_factory=list)
    on_failure: Literal["rollback", "fix_forward", "ask"] = "ask"
    restore_timeout: Duration = 300.0
    # "within normal range": how far above the pre-deploy baseline the error rate may sit.
    max_error_delta_pp: float = Field(default=0.25, ge=0)


class WebhookSpec(Model):
    url: str
    kind: Literal["slack", "json"] = "slack"
    name: str = ""


class NotificationsSpec(Model):
    webhooks: list[WebhookSpec] = Field(default_factory=list)
    timeout: Duration = 5.0
    retries: int = Field(default=3, ge=0, le=10)


class FeatureFlagSpec(Model):
    name: str
    url: str  # endpoint that takes {"flag": name, "percent": n}
    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    observe: Duration = 300.0


class CompletionSpec(Model):
    tickets_webhook: str | None = None
    close_github_issues: bool = False
    feature_flags: list[FeatureFlagSpec] = Field(default_factory=list)
    watch: Duration = 86400.0


class JournalSpec(Model):
    path: str | None = None  # default: $XDG_STATE_HOME/deploydeck/deployments.jsonl


# --- the plan ------------------------------------------------------------------


class Plan(Model):
    service: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str = "default"
    version: VersionSpec
    change: ChangeSpec
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    targets: TargetsSpec
    prometheus: PrometheusSpec | None = None
    alertmanager: AlertmanagerSpec | None = None
    gates: GatesSpec = Field(default_factory=GatesSpec)
    migrations: MigrationsSpec | None = None
    staging: StagingSpec = Field(default_factory=StagingSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    verification: VerificationSpec = Field(default_factory=VerificationSpec)
    notifications: NotificationsSpec = Field(default_factory=NotificationsSpec)
    completion: CompletionSpec = Field(default_factory=CompletionSpec)
    journal: JournalSpec = Field(default_factory=JournalSpec)
    scenario: str | None = None  # cluster.kind sim: which scripted world to run
    seed: int = Field(default=7, ge=0, le=2**63 - 1)
    # variables whose ${VAR} values may be shown as they are (like ${VAR:public}); every other
    # interpolated value is a secret (core.plan_load reads this list before it interpolates)
    public_env: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list, max_length=256
    )

    # filled by the loader: the interpolated values not marked public (core.redact masks them)
    # and the variables command fields read from their environment (never spliced into the text)
    _secrets: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _command_env: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def is_sim(self) -> bool:
        return self.cluster.kind == "sim"

    @property
    def secret_values(self) -> frozenset[str]:
        return self._secrets

    @property
    def command_env(self) -> dict[str, str]:
        """Environment for the plan's commands: the values their ``${VAR}`` stand for."""
        return dict(self._command_env)

    @field_validator("namespace")
    @classmethod
    def _namespace_name(cls, value: str) -> str:
        return dns1123_label(value)

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str | None) -> str | None:
        from core.sim.scenarios import SCENARIOS

        if value is not None and value not in SCENARIOS:
            raise ValueError(f"unknown scenario '{value}'; choose one of: {', '.join(SCENARIOS)}")
        return value


TargetSpec.model_rebuild()


# --- loading (core.plan_load: bounded YAML, interpolation, file:line messages) --------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class PlanError(Exception):
    """A plan that cannot be used. str() is the whole message: file:line: field: problem.

    Each problem is one line: a carriage return or other control character from the
    plan (or from a value substituted into it) is shown escaped, never acted on by the
    terminal, and every secret value is redacted.
    """

    def __init__(self, problems: list[str]) -> None:
        from core.redact import redact

        self.problems = [redact(_one_line(p)) for p in problems]
        super().__init__("\n".join(self.problems))


def _one_line(text: str) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


from core.plan_load import load_plan, parse_plan  # noqa: E402  (the loader needs the models above)

__all__ = ["Plan", "PlanError", "load_plan", "parse_plan"]
