"""Hostile plans (issue 13, items 4-6): bounded parsing, exit 2 for every bad input, strict
types and Kubernetes names. Each case goes through the real CLI (`deploydeck check`) so the
exit code and the stderr message are what a person sees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.plan import PlanError, load_plan, parse_plan
from tui.cli import main

MINIMAL = """\
service: checkout
version: {from: "1.4.2", to: "1.5.0", image: "reg/checkout:1.5.0"}
change: {id: CHG-1, class: standard}
targets:
  staging: {namespace: s, deployment: checkout}
  production: {namespace: p, deployment: checkout}
"""


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    started = time.monotonic()
    code = main(["check", str(plan)])
    elapsed = time.monotonic() - started
    return code, capsys.readouterr().err, elapsed


def laughs(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_billion_laughs_is_refused_within_a_second_naming_the_alias_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], levels: int
) -> None:
    text = MINIMAL + "x_lol:\n" + "".join("  " + line + "\n" for line in laughs(levels).splitlines())
    code, err, elapsed = check(tmp_path, text, capsys)
    assert code == 2 and elapsed < 1.0
    last_line = len(text.splitlines())
    assert f"plan.yaml:{last_line}: anchors and aliases expand past" in err


def test_a_few_aliases_are_still_fine() -> None:
    text = MINIMAL.replace(
        "  staging: {namespace: s, deployment: checkout}",
        "  staging: &t {namespace: s, deployment: checkout}",
    )
    text = text.replace("  production: {namespace: p, deployment: checkout}", "  production: *t")
    assert parse_plan(text, "a.yaml", env={}).targets.production.namespace == "s"


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(PlanError, match=r"r\.yaml:7: .*recursive"):
        parse_plan(MINIMAL + "x: &a [*a]\n", "r.yaml", env={})


def test_plan_over_one_megabyte_is_refused_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MINIMAL + "# " + "x" * 1_100_000 + "\n"
    code, err, elapsed = check(tmp_path, text, capsys)
    assert code == 2 and elapsed < 1.0
    assert "plan.yaml:1: the plan is over 1 MB" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "analysis: {interval: 0}\n",
            "plan.yaml:7: analysis.interval: Input should be greater than or equal to 1",
        ),
        (
            "analysis: {interval: 0.2s}\n",
            "plan.yaml:7: analysis.interval: Input should be greater than or equal to 1",
        ),
        ("gates: {refresh: 0}\n", "plan.yaml:7: gates.refresh: Input should be greater than or equal to 1"),
        ("analysis: {interval: .nan}\n", "plan.yaml:7: analysis.interval: a duration cannot be negative"),
        (
            "staging: {soak: {duration: 9999d}}\n",
            "plan.yaml:7: staging.soak.duration: '9999d' is longer than a year",
        ),
        ("analysis: {interval: .inf}\n", "plan.yaml:7: analysis.interval: 'inf' is longer than a year"),
    ],
)
def test_durations_have_sane_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, message: str
) -> None:
    code, err, _ = check(tmp_path, MINIMAL + extra, capsys)
    assert code == 2
    assert message in err, err


def test_holiday_that_does_not_exist_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = check(tmp_path, MINIMAL + "gates: {freeze: {holidays: [2026-02-30]}}\n", capsys)
    assert code == 2
    assert "plan.yaml:7: invalid value: day is out of range for month" in err


def test_five_thousand_digit_integer_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, elapsed = check(tmp_path, MINIMAL + "seed: " + "9" * 5000 + "\n", capsys)
    assert code == 2 and elapsed < 1.0
    assert "plan.yaml:7: a number with 5000 digits" in err


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_nesting_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    code, err, elapsed = check(tmp_path, MINIMAL + "x: " + opener * 5000 + "1" + closer * 5000 + "\n", capsys)
    assert code == 2 and elapsed < 1.0
    assert "plan.yaml:7: nested deeper than 40 levels" in err


def test_unknown_scenario_in_a_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = check(tmp_path, MINIMAL + "cluster: {kind: sim}\nscenario: nope\n", capsys)
    assert code == 2
    assert "plan.yaml:8: scenario: unknown scenario 'nope'" in err


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (
            "canary: {steps: [{weight: true, observe: 1m}, {weight: 100, observe: 1m}]}\n",
            "canary.steps[0].weight",
        ),
        ("canary: {auto_promote: 'yes'}\n", "canary.auto_promote"),
        ("notifications: {retries: '3'}\n", "notifications.retries"),
        ("analysis: {triggers: {p99_ratio: .inf}}\n", "analysis.triggers.p99_ratio"),
    ],
)
def test_booleans_and_numbers_are_strict(extra: str, field: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(MINIMAL + extra, "s.yaml", env={})
    assert f": {field}: " in str(info.value)


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("deployment", "x/../checkout"),
        ("deployment", "checkout?dryRun=All"),
        ("deployment", "Checkout"),
        ("namespace", "shop.prod"),
        ("canary_deployment", "a b"),
    ],
)
def test_kubernetes_names_are_dns1123(field: str, name: str) -> None:
    text = MINIMAL.replace(
        "production: {namespace: p, deployment: checkout}",
        "production: {namespace: p, deployment: checkout, " + f"{field}: '{name}'" + "}"
        if field not in {"deployment", "namespace"}
        else "production: {namespace: p, deployment: checkout}".replace(
            f"{field}: {'p' if field == 'namespace' else 'checkout'}", f"{field}: '{name}'"
        ),
    )
    with pytest.raises(PlanError) as info:
        parse_plan(text, "k.yaml", env={})
    assert f"k.yaml:6: targets.production.{field}: '{name}' is not a valid Kubernetes name" in str(info.value)


def test_carriage_return_in_a_value_stays_on_one_line() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(MINIMAL + 'gates: {timezone: "Mars\\rEVIL: forged line"}\n', "cr.yaml", env={})
    text = str(info.value)
    assert "\r" not in text and len(text.splitlines()) == 1
    assert "unknown timezone 'Mars\\rEVIL: forged line'" in text


@pytest.mark.parametrize("name", ["../outside.sql", "/etc/passwd", "sub/../../x.sql"])
def test_migration_files_are_confined_to_the_plan_folder(name: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(MINIMAL + f"migrations: {{files: ['ok.sql', '{name}']}}\n", "m.yaml", env={})
    assert f"m.yaml:7: migrations.files[1]: '{name}' is outside the plan's folder" in str(info.value)
    allowed = MINIMAL + f"migrations: {{files: ['{name}'], allow_outside_plan_dir: true}}\n"
    assert parse_plan(allowed, "m.yaml", env={}).migrations.files == [name]  # type: ignore[union-attr]


def test_a_directory_as_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    with pytest.raises(PlanError):
        load_plan(tmp_path)


def test_migration_files_are_read_confined_regular_and_bounded(tmp_path: Path) -> None:
    from core.migrations.lint import MAX_SQL_BYTES, lint_files

    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (tmp_path / "secret.sql").write_text("SELECT 1;\n")
    (plan_dir / "link.sql").symlink_to(tmp_path / "secret.sql")
    (plan_dir / "zero.sql").symlink_to("/dev/zero")
    (plan_dir / "big.sql").write_bytes(b"-- x\n" * (MAX_SQL_BYTES // 4))
    (plan_dir / "ok.sql").write_text("CREATE TABLE t (id int);\n")
    started = time.monotonic()
    findings = {
        f.file: f for f in lint_files(["link.sql", "zero.sql", "big.sql", "ok.sql"], base_dir=plan_dir)
    }
    assert time.monotonic() - started < 1.0
    assert findings["link.sql"].rule == "outside-plan-dir"
    assert findings["zero.sql"].rule == "outside-plan-dir"
    assert findings["big.sql"].message == "cannot read: larger than 5 MB"
    assert "ok.sql" not in findings or findings["ok.sql"].severity != "error"
    opted_in = lint_files(["zero.sql"], base_dir=plan_dir, confine=False)
    assert opted_in[0].message == "cannot read: not a regular file"


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "0"])
def test_demo_speed_must_be_a_positive_number(capsys: pytest.CaptureFixture[str], speed: str) -> None:
    assert main(["demo", "--headless", f"--speed={speed}"]) == 2
    assert "--speed must be a positive number" in capsys.readouterr().err


def test_journal_naming_a_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--headless", "--journal", str(tmp_path)]) == 2
    assert "is a directory; name a file" in capsys.readouterr().err
