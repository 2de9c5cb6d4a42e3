"""Issue 13 item 8: plan loading under generated hostile YAML never raises anything but PlanError.

Hypothesis (the derandomized `ci` profile from tests/conftest.py) swaps one field of a valid
plan for a generated value (anchors and aliases, alias bombs, merge keys, huge and odd numbers,
deep nesting, tags, dates that do not exist, control characters), or appends a generated
top-level key, or makes the whole document up. Each plan must either load or be refused with
PlanError naming file:line; a refused plan makes `deploydeck check` exit 2 with no traceback,
within a second or two.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.plan import Plan, PlanError, load_plan
from tui.cli import main

DEMO = (resources.files("core.sim") / "demo.yaml").read_text(encoding="utf-8")
#: lines of the demo holding a value that can be swapped: (indent + key, value)
_FIELD = re.compile(r"^(\s*(?:- )?[a-z_]+:) (\S.*)$")
FIELDS = [
    i for i, line in enumerate(DEMO.splitlines()) if _FIELD.match(line) and not line.lstrip().startswith("#")
]

ODD_SCALARS = [
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "~",
    "null",
    "''",
    '""',
    ".nan",
    ".inf",
    "-.inf",
    "1e309",
    "-0",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "12:30:00",
    "2026-02-30",
    "2026-13-01",
    "0000-00-00",
    "2026-11-24T25:61:00Z",
    "!!binary aGVsbG8=",
    "!!python/object:os.system ls",
    "!!str 5",
    "!!int x",
    "!!float nope",
    "!!timestamp yesterday",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "&x",
    "*undefined",
    "'\\x00'",
    '"\\u0000\\r\\n"',
    '"\\e[31mred"',
    "|",
    ">-",
    "@reserved",
    "`tick`",
    "%YAML",
    "-",
    "? x",
    "${UNSET_VAR}",
    "${HOME}",
    "${X:-fallback}",
    "${X:public}",
    "5m",
    "0s",
    "-5s",
    "1000000d",
    "nan s",
    "[]",
    "{}",
    "[[[[[]]]]]",
    "{a: {b: {c: {}}}}",
    "<<: {}",
]

scalars = st.one_of(
    st.sampled_from(ODD_SCALARS),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.integers(min_value=20, max_value=6000).map(lambda n: "9" * n),  # thousands of digits
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    ),
)


def _flow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.sampled_from(["a", "b", "weight", "url", "<<", "? k", "1", "null", "true", "steps"])
    return st.one_of(
        st.lists(children, max_size=5).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(keys, children), max_size=5).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
        st.tuples(st.sampled_from(["a", "b"]), children).map(lambda t: f"&{t[0]} {t[1]}"),
        st.sampled_from(["*a", "*b"]),
    )


values = st.recursive(scalars, _flow, max_leaves=25)


@st.composite
def alias_bomb(draw: st.DrawFn) -> str:
    levels = draw(st.integers(2, 12))
    fan = draw(st.integers(2, 12))
    lines = ['x0: &x0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


@st.composite
def deep(draw: st.DrawFn) -> str:
    depth = draw(st.integers(50, 5000))
    opener = draw(st.sampled_from(["[", "{a: "]))
    closer = "]" if opener == "[" else "}"
    return opener * depth + "1" + closer * depth


@st.composite
def plans(draw: st.DrawFn) -> str:
    original = DEMO.splitlines()
    lines = list(original)
    how = draw(st.sampled_from(["swap", "swap", "swap", "append", "bomb", "deep", "whole"]))
    if how == "swap":
        for _ in range(draw(st.integers(1, 3))):
            index = draw(st.sampled_from(FIELDS))
            match = _FIELD.match(original[index])
            assert match is not None
            lines[index] = f"{match.group(1)} {draw(values)}"
        return "\n".join(lines) + "\n"
    if how == "append":
        key = draw(st.sampled_from(["seed", "scenario", "canary", "analysis", "public_env", "extra", "<<"]))
        return DEMO + f"{key}: {draw(values)}\n"
    if how == "bomb":
        return DEMO + draw(alias_bomb())
    if how == "deep":
        return DEMO + f"seed: {draw(deep())}\n"
    return draw(values) + "\n"


@pytest.mark.timeout(120)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=plans())
def test_plan_loading_never_raises_anything_but_plan_error(text: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    try:
        plan = load_plan(path)
    except PlanError as exc:
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"refusing took {elapsed:.1f}s"
        for problem in exc.problems:
            assert problem.startswith(str(path)), problem  # file[:line]: field: problem
            assert re.match(re.escape(str(path)) + r"(:\d+)?: ", problem), problem
        capsys.readouterr()
        assert main(["check", str(path)]) == 2
        err = capsys.readouterr().err
        assert "invalid plan" in err and "Traceback" not in err and "internal error" not in err
        return
    assert isinstance(plan, Plan)
