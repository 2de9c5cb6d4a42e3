"""Plan loading: defaults, interpolation, and exact messages for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.plan import Plan, PlanError, load_plan, parse_plan

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = """\
service: checkout
version: {from: "1.4.2", to: "1.5.0", image: "reg/checkout:1.5.0"}
change: {id: CHG-1, class: standard}
targets:
  staging: {namespace: s, deployment: checkout}
  production: {namespace: p, deployment: checkout}
"""


def test_defaults_are_the_workflows() -> None:
    plan = parse_plan(MINIMAL, "m.yaml", env={})
    assert [(s.weight, s.observe) for s in plan.canary.steps] == [(5, 300), (25, 300), (50, 300), (100, 900)]
    assert plan.staging.soak.duration == 900 and plan.staging.soak.max_error_delta_pp == 0.1
    t = plan.analysis.triggers
    assert (t.error_delta_pp, t.p99_ratio, t.health_failures) == (0.5, 1.5, 2)
    assert plan.verification.duration == 900


def test_examples_load() -> None:
    for name in ("full.yaml", "minimal.yaml"):
        assert isinstance(load_plan(ROOT / "examples" / name, env={}), Plan)


def test_env_interpolation_and_default() -> None:
    text = MINIMAL + "notifications:\n  webhooks:\n    - {url: '${HOOK}', name: '#deploys'}\n"
    plan = parse_plan(text, "m.yaml", env={"HOOK": "https://hooks.example/T1/secret"})
    assert plan.notifications.webhooks[0].url == "https://hooks.example/T1/secret"
    text2 = MINIMAL + "prometheus: {url: 'http://prom:9090', token: '${PROM_TOKEN:-}'}\n"
    assert parse_plan(text2, "m.yaml", env={}).prometheus.token == ""  # type: ignore[union-attr]


BAD = [
    # (description, plan text, exact message)
    (
        "invalid yaml",
        MINIMAL + "canary: [\n",
        "bad.yaml:8: invalid YAML: expected the node content, but found '<stream end>'",
    ),
    ("empty", "", "bad.yaml:1: the plan is empty"),
    ("not a mapping", "- a\n- b\n", "bad.yaml:1: a plan must be a mapping of fields"),
    ("unknown field", MINIMAL + "canry: {}\n", "bad.yaml:7: canry: unknown field"),
    (
        "unknown nested field",
        MINIMAL.replace("class: standard}", "class: standard, risk: low}"),
        "bad.yaml:3: change.risk: unknown field",
    ),
    (
        "wrong type",
        MINIMAL + "analysis: {interval: soon}\n",
        "bad.yaml:7: analysis.interval: 'soon' is not a duration; write e.g. 30s, 5m, 1h30m",
    ),
    (
        "weights not increasing",
        MINIMAL + "canary:\n  steps:\n    - {weight: 10, observe: 1m}\n    - {weight: 10, observe: 1m}\n"
        "    - {weight: 100, observe: 1m}\n",
        "bad.yaml:10: canary.steps[1]: weights must increase: 10 % comes after 10 %",
    ),
    (
        "not ending at 100",
        MINIMAL + "canary:\n  steps:\n    - {weight: 10, observe: 1m}\n    - {weight: 60, observe: 1m}\n",
        "bad.yaml:10: canary.steps[1]: the last step must be 100 %, not 60 %",
    ),
    (
        "missing env var",
        MINIMAL + "prometheus: {url: 'http://p', token: '${PROM_TOKEN}'}\n",
        "bad.yaml:7: prometheus.token: environment variable PROM_TOKEN is not set",
    ),
    (
        "missing required field",
        MINIMAL.replace("  staging: {namespace: s, deployment: checkout}\n", ""),
        "bad.yaml:4: targets.staging: required field is missing",
    ),
    (
        "bad change class",
        MINIMAL.replace("class: standard", "class: urgent"),
        "bad.yaml:3: change.class: Input should be 'standard', 'normal', 'emergency' or 'major'",
    ),
    (
        "unquoted float version",
        MINIMAL.replace('from: "1.4.2"', "from: 1.10"),
        "bad.yaml:2: version.from: quote the version: YAML reads it as the number 1.1",
    ),
    (
        "nginx without ingress",
        MINIMAL.replace(
            "production: {namespace: p, deployment: checkout}",
            "production: {namespace: p, deployment: checkout, strategy: nginx}",
        ),
        "bad.yaml:6: targets.production: strategy 'nginx' needs 'ingress' (the canary Ingress name)",
    ),
    (
        "duplicate key",
        MINIMAL + "service: cart\n",
        "bad.yaml:7: service: duplicate key",
    ),
    (
        "weight out of range",
        MINIMAL + "canary:\n  steps:\n    - {weight: 0, observe: 1m}\n    - {weight: 100, observe: 1m}\n",
        "bad.yaml:9: canary.steps[0].weight: Input should be greater than or equal to 1",
    ),
    (
        "unknown timezone",
        MINIMAL + "gates: {timezone: Mars/Olympus}\n",
        "bad.yaml:7: gates.timezone: unknown timezone 'Mars/Olympus'",
    ),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in BAD], ids=[d for d, _, _ in BAD])
def test_bad_plans_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "bad.yaml", env={})
    assert str(info.value).splitlines()[0] == message


def test_missing_file() -> None:
    with pytest.raises(PlanError, match=r"nope\.yaml: no such file"):
        load_plan("nope.yaml")


_EXAMPLE = (ROOT / "examples" / "full.yaml").read_text()
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 500),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


_DATA = yaml.safe_load(_EXAMPLE)
_ALL_PATHS = _paths(_DATA)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(_ALL_PATHS), value=_SCALARS, delete=st.booleans())
def test_mutations_of_the_example_never_raise_anything_but_plan_error(
    path: tuple, value: object, delete: bool
) -> None:
    import copy

    data = copy.deepcopy(_DATA)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        parse_plan(text, "mutant.yaml", env={})
    except PlanError as exc:
        for line in str(exc).splitlines():
            assert line.startswith("mutant.yaml:"), line


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_raises_anything_but_plan_error(text: str) -> None:
    try:
        parse_plan(text, "junk.yaml", env={})
    except PlanError as exc:
        assert str(exc).startswith("junk.yaml:")
