"""Identity normalisation: one person is one name to the two-person rule and author exclusion."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.agent.identity import identity_key, is_blank, same_person
from core.policy import gate_def
from core.signoff import SignOffLedger
from tests.test_gates_predeploy import make_plan

T = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
CYRILLIC_A = "\u0430"
ALICES = [
    "alice",
    "Alice ",
    "alice\u200b",
    f"{CYRILLIC_A}lice",
    " ALICE",
    "al\u200dice",
    "\ufeffalice",
    "ａｌｉｃｅ",
]


@pytest.mark.parametrize("name", ALICES, ids=repr)
def test_every_spelling_of_alice_is_alice(name: str) -> None:
    assert identity_key(name) == "alice"
    assert same_person(name, "alice")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("\u0392\u039f\u0392", "bob"),  # Greek capitals Β Ο Β
        ("\u0412\u041e\u0412", "bob"),  # Cyrillic capitals В О В
        ("\u0441\u0430r\u043el", "carol"),  # Cyrillic с а о
        ("\u0397elen", "helen"),  # Greek capital Eta drawn as H
        ("Mary\u00a0Jane", "mary jane"),  # no-break space is a space
        ("mary \t  jane", "mary jane"),  # runs of whitespace are one space
        ("d\u0131ana", "diana"),  # Latin dotless i
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower()
        ("e\u0301mile", "émile"),  # combining accent composed by NFKC
    ],
)
def test_keys(name: str, key: str) -> None:
    assert identity_key(name) == key


@pytest.mark.parametrize(("a", "b"), [("alice", "alicia"), ("bob", "rob"), ("al", "a1"), ("dan", "dane")])
def test_different_people_stay_different(a: str, b: str) -> None:
    assert not same_person(a, b)


def test_nobody_is_not_the_same_as_nobody() -> None:
    assert is_blank("\u200b \u200c\t") and is_blank("")
    assert not same_person("", "") and not same_person("\u200b", " ")


@given(st.text(alphabet=st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12), st.data())
def test_invisible_characters_anywhere_change_nothing(name: str, data: st.DataObject) -> None:
    invisible = data.draw(
        st.lists(st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]))
    )
    text = name
    for ch in invisible:
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + ch + text[at:]
    assert identity_key(text) == identity_key(name)
    assert identity_key(identity_key(name)) == identity_key(name)  # a key is its own key


# --- the rules use it ------------------------------------------------------------------------


def test_a_look_alike_cannot_be_the_second_signer() -> None:
    plan = make_plan("major", ", change_record: CR-9")
    gate = gate_def(plan, "rollback-plan")
    assert gate is not None and gate.signers == 2
    for second in ["bob\u200b", "\u0412\u041e\u0412", "b\u043eb", " Bob\u2060"]:
        ledger = SignOffLedger(plan)
        assert ledger.sign(gate, "bob", "", T)[0]
        ok, reason, complete = ledger.sign(gate, second, "", T)
        assert not ok and not complete and "already signed rollback-plan" in reason, second
    ledger = SignOffLedger(plan)
    assert ledger.sign(gate, "bob", "", T)[0]
    assert ledger.sign(gate, "carol", "", T)[:3:2] == (True, True)


def test_the_author_under_a_look_alike_name_is_still_the_author() -> None:
    plan = make_plan(extra="migrations: {files: [m.sql]}")
    assert plan.change.author == "alice"
    lint = gate_def(plan, "migrations-lint")
    assert lint is not None
    for name in ALICES[1:]:
        ok, reason = SignOffLedger(plan).override(lint, name, "contract step", T)
        assert not ok and "is the change author" in reason, repr(name)


def test_the_deployer_under_a_look_alike_name_cannot_override() -> None:
    plan = make_plan()
    monitoring = gate_def(plan, "monitoring-normal")
    assert monitoring is not None and monitoring.overridable
    ok, reason = SignOffLedger(plan, deployer="dave").override(
        monitoring, "D\u0430ve\u200b", "known alert", T
    )
    assert not ok and "running this deploy" in reason


def test_an_invisible_name_is_no_name() -> None:
    plan = make_plan()
    gate = gate_def(plan, "rollback-plan")
    assert gate is not None
    ok, reason, _ = SignOffLedger(plan).sign(gate, "\u200b\u200b", "", T)
    assert not ok and "needs a person's name" in reason


# --- the log says whose word a name is ---------------------------------------------------------


def test_embedded_run_marks_its_names_self_declared(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DEPLOYDECK_STATE_DIR": str(tmp_path), "DEPLOYDECK_ACTOR": "bob"}
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "demo", "--headless", "--scenario", "healthy", "--json"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # a demo is journaled apart from real deploys (simulated/), its names marked all the same
    lines = [
        json.loads(x)
        for x in (tmp_path / "simulated" / "deployments.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    named = [x for x in lines if x["type"] in {"deploy_started", "gate_signed_off", "gate_overridden"}]
    assert {x["type"] for x in named} >= {"deploy_started", "gate_signed_off"}
    assert all(x["identity"] == "self-declared" and x["groups"] == [] for x in named)


def test_old_lines_without_the_field_read_as_self_declared_and_export_says_so() -> None:
    from core.events import GateSignedOff, parse_event
    from core.history import export_deploy
    from tests.test_history import make_deploy

    line = {
        "type": "gate_signed_off",
        "ts": T.isoformat(),
        "phase": "preflight",
        "gate_id": "g",
        "actor": "al",
    }
    assert parse_event(line).identity == "self-declared"  # type: ignore[union-attr]
    events = make_deploy("d1")
    md = export_deploy(events, "md", integrity="ok")
    assert "signed off by **alice** (self-declared)" in md
    checked = [
        e.model_copy(update={"identity": "authenticated", "groups": ["release-managers"]})
        if isinstance(e, GateSignedOff)
        else e
        for e in events
    ]
    md = export_deploy(checked, "md", integrity="ok")
    assert "signed off by **alice** (authenticated; groups: release-managers)" in md
