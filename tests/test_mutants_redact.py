"""core.redact, the one redaction point: which values are secret, every spelling of one, and the
stream wrapper that buffers to the end of a line (issue 16; written against `make mutate`'s survivors).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest

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
