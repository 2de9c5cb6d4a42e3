"""core.redact, the one redaction point: which values are secret, every spelling of one, and the
stream wrapper that buffers to the end of a line (issue 16; written against `make mutate`'s survivors).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
from pydantic import BaseModel

from core import redact as R


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    R.reset_for_tests()
    yield
    R.reset_for_tests()


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "db_password",
        "LDAP_PASSWD",
        "api_key",
        "Slack_Webhook",
        "client_secret",
        "AWS_CREDENTIALS",
        "Authorization",
    ],
)
def test_names_that_look_secret(name: str) -> None:
    assert R.looks_secret(name)


def test_ordinary_names_do_not_look_secret() -> None:
    assert not any(R.looks_secret(n) for n in ("HOME", "PATH", "SERVICE", "REPLICAS", "VERSION"))


def test_secret_env_values_need_a_secret_name_and_four_characters() -> None:
    env = {"API_TOKEN": "abcd", "SHORT_KEY": "abc", "HOME": "/home/alice", "DB_PASSWORD": "hunter22"}
    assert R.secret_env_values(env) == {"abcd", "hunter22"}


def test_a_registered_value_is_masked_wherever_it_appears() -> None:
    R.register(["s3cr3t-value"])
    assert R.redact("url https://x/s3cr3t-value/p?t=s3cr3t-value") == "url https://x/***/p?t=***"
    assert R.redact("nothing here") == "nothing here"
    assert R.redact("") == ""


def test_short_and_non_string_values_are_not_registered() -> None:
    R.register(["abc", 12345, None, "main"])  # type: ignore[list-item]
    assert R.redact("abc main 12345") == "abc *** 12345"
    assert "abc" not in R.secrets() and "main" in R.secrets()


def test_every_spelling_of_a_secret_is_masked() -> None:
    value = 'p/w "x" é+y z'
    R.register([value])
    json_escaped = json.dumps(value)[1:-1]  # \"x\" and \u00e9
    json_utf8 = json.dumps(value, ensure_ascii=False)[1:-1]  # \"x\" and é
    assert R.redact(f"raw {value} .") == "raw *** ."
    assert R.redact(f"json {json_escaped} .") == "json *** ."
    assert R.redact(f"json {json_utf8} .") == "json *** ."
    assert R.redact("q p%2Fw%20%22x%22%20%C3%A9%2By%20z .") == "q *** ."  # quote(safe="")
    assert R.redact("q p/w%20%22x%22%20%C3%A9%2By%20z .") == "q *** ."  # quote (keeps /)
    assert R.redact("q p%2Fw+%22x%22+%C3%A9%2By+z .") == "q *** ."  # quote_plus


def test_a_secret_containing_another_is_masked_whole() -> None:
    # "efgh" sorts after "abcd-efgh" alphabetically: only ordering by length masks the long one whole
    R.register(["efgh", "abcd-efgh"])
    assert R.redact("token abcd-efgh and efgh") == "token *** and ***"
    forms = R.secrets()
    assert list(forms) == sorted(forms, key=len, reverse=True)


def test_registration_accumulates_and_reset_forgets() -> None:
    R.register(["first-secret"])
    R.register(["second-secret"])
    R.register(["first-secret"])  # again: nothing new, nothing lost
    assert R.redact("first-secret second-secret") == "*** ***"
    R.reset_for_tests()
    assert R.redact("first-secret second-secret") == "first-secret second-secret"


def test_environment_secrets_are_picked_up_when_the_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert R.redact("tok-0123456789") == "tok-0123456789"
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-0123456789")
    assert R.redact("tok-0123456789") == "***"
    monkeypatch.setenv("OTHER_SECRET", "other-9876")
    assert R.redact("tok-0123456789 other-9876") == "*** ***"
    monkeypatch.setenv("PLAIN", "not-a-secret")
    assert R.redact("not-a-secret") == "not-a-secret"
    R.reset_for_tests()  # forgets what it read; the next call reads the environment again
    assert R.redact("tok-0123456789") == "***"


def test_redact_obj_masks_keys_values_and_nested_items_and_keeps_other_types() -> None:
    R.register(["hunter22"])
    record = {"hunter22": ["a hunter22 b", ("hunter22", 3)], "n": 7, "none": None, "ok": True, "f": 1.5}
    assert R.redact_obj(record) == {
        "***": ["a *** b", ["***", 3]],
        "n": 7,
        "none": None,
        "ok": True,
        "f": 1.5,
    }
    assert R.redact_obj("x hunter22") == "x ***"
    assert R.redact_obj(42) == 42


def test_the_stream_masks_a_secret_split_across_writes() -> None:
    R.register(["hunter22"])
    inner = io.StringIO()
    stream = R.RedactingStream(inner)  # type: ignore[arg-type]
    assert stream.write("pass hun") == len("pass hun")
    assert inner.getvalue() == ""  # nothing forwarded before the end of the line
    stream.write("ter22 ok\nnext hunt")
    assert inner.getvalue() == "pass *** ok\n"
    stream.write("er22")
    stream.flush()
    assert inner.getvalue() == "pass *** ok\nnext ***"
    stream.flush()  # nothing pending: nothing written twice
    assert inner.getvalue() == "pass *** ok\nnext ***"
    stream.write("\nafter a flush\n")
    assert inner.getvalue() == "pass *** ok\nnext ***\nafter a flush\n"


def test_every_complete_line_of_one_write_is_forwarded_at_once() -> None:
    R.register(["hunter22"])
    inner = io.StringIO()
    stream = R.RedactingStream(inner)  # type: ignore[arg-type]
    stream.write("one hunter22\ntwo\nthree hunter22\npartial")
    assert inner.getvalue() == "one ***\ntwo\nthree ***\n"


def test_the_stream_forwards_whole_lines_and_flushes_the_inner_stream() -> None:
    R.register(["hunter22"])

    class Inner(io.StringIO):
        flushed = 0

        def flush(self) -> None:
            self.flushed += 1
            super().flush()

    inner = Inner()
    stream = R.RedactingStream(inner)  # type: ignore[arg-type]
    stream.writelines(["a hunter22\n", "b\nc", " hunter22\n"])
    assert inner.getvalue() == "a ***\nb\nc ***\n"
    stream.flush()
    assert inner.flushed == 1
    assert stream.getvalue() == inner.getvalue()  # other attributes are the inner stream's


def test_install_wraps_stdout_and_stderr_once(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    R.install_on_std_streams()
    wrapped_out, wrapped_err = sys.stdout, sys.stderr
    assert isinstance(wrapped_out, R.RedactingStream) and isinstance(wrapped_err, R.RedactingStream)
    R.install_on_std_streams()
    assert sys.stdout is wrapped_out and sys.stderr is wrapped_err
    R.register(["hunter22"])
    print("pw hunter22")
    print("pw hunter22", file=sys.stderr)
    assert (out.getvalue(), err.getvalue()) == ("pw ***\n", "pw ***\n")


# --- the forms given, credential queries, and JSON-like values (redact_obj) ---------------------------


class Reading(BaseModel):
    name: str
    value: float = 1.0


def test_the_forms_given_are_used_instead_of_the_registry() -> None:
    R.register(["registered-one"])
    forms = ("given-secret",)
    assert R.redact("given-secret registered-one", forms) == "*** registered-one"
    assert R.redact("registered-one", ()) == "registered-one"
    value = {"given-secret": ["a given-secret", ("given-secret",)], "m": Reading(name="x given-secret")}
    assert R.redact_obj(value, forms) == {"***": ["a ***", ["***"]], "m": {"name": "x ***", "value": 1.0}}
    assert R.redact_obj({"k": "registered-one"}, ()) == {"k": "registered-one"}
    assert R.redact_obj("given-secret", forms) == "***"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET https://x/api?access_token=abc123&q=1", "GET https://x/api?access_token=***&q=1"),
        ("u?q=1&X-Amz-Signature=f00d#frag", "u?q=1&X-Amz-Signature=***#frag"),
        ("u?apikey=k1&password=p2 next", "u?apikey=***&password=*** next"),
        ("u?q=token&page=2", "u?q=token&page=2"),  # the name decides, not the value
        ("token=abc without a query", "token=abc without a query"),
    ],
)
def test_a_credential_in_a_query_string_is_masked_without_being_registered(text: str, masked: str) -> None:
    assert R.redact(text) == masked
    assert R.redact_obj({"url": text}) == {"url": masked}


def test_a_non_ascii_secret_given_as_a_form_is_found_in_a_value() -> None:
    # the scan sees the value as written (ensure_ascii=False), where the given form is
    assert R.redact_obj({"k": "pé-secret-1"}, ("pé-secret-1",)) == {"k": "***"}


def test_a_value_with_nothing_to_mask_comes_back_as_is_without_a_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    R.register(["hunter22"])
    value = {"a": ["b", 1, None], "m": Reading(name="ok"), "t": datetime(2026, 1, 1), "s": {"x"}}

    def no_walk(*_: object) -> object:
        raise AssertionError("walked a value with nothing to mask")

    monkeypatch.setattr(R, "_walk", no_walk)
    assert R.redact_obj(value) is value
    model = Reading(name="fine")
    assert R.redact_obj(model) is model


def test_a_model_is_masked_into_a_dict_only_when_something_in_it_was_masked() -> None:
    R.register(["hunter22"])
    clean, dirty = Reading(name="clean"), Reading(name="pw hunter22", value=2.0)
    out = R.redact_obj([clean, dirty, "hunter22"])
    assert out == [clean, {"name": "pw ***", "value": 2.0}, "***"]
    assert out[0] is clean
    assert R.redact_obj({"r": dirty}) == {"r": {"name": "pw ***", "value": 2.0}}
    assert R.redact_obj(dirty) == {"name": "pw ***", "value": 2.0}


def test_a_secret_in_a_model_is_found_in_its_json_spelling() -> None:
    # a control character: the model's repr spells it \x01, its JSON \u0001 (a registered form)
    R.register(["ab\x01cdef"])
    assert R.redact_obj(Reading(name="ab\x01cdef")) == {"name": "***", "value": 1.0}


def test_a_value_json_cannot_hold_is_walked() -> None:
    R.register(["hunter22"])
    key = object()  # not a JSON key: the scan fails, the walk masks what it can
    assert R.redact_obj({key: "pw hunter22"}) == {key: "pw ***"}


def test_the_environment_is_read_again_only_when_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TOKEN", "tok-cache-1")
    assert R.redact("tok-cache-1") == "***"
    reads: list[int] = []
    real = R.secret_env_values
    monkeypatch.setattr(R, "secret_env_values", lambda env: (reads.append(1), real(env))[1])
    R.redact("x")
    R.redact_obj({"y": "z"})
    assert reads == []  # unchanged: not decoded again
    monkeypatch.setenv("CACHE_TOKEN", "tok-cache-2")
    assert R.redact("tok-cache-2") == "***"
    assert reads == [1]
