"""What proves the deployment log's end: an anchor kept outside the file, and an optional key.

The hash chain (core.adapters.journal) proves the middle: an edited or removed line breaks
it. It cannot prove the end: cutting the last lines, or rewriting the whole file with a fresh
chain, leaves a chain that is intact. Three things outside the file can:

* the **anchor file** (``<journal>.anchor``, rewritten atomically after every line): the last
  line's number, hash and deploy id. Truncation, a removed final deploy, lines appended by
  hand and a file re-chained from scratch all disagree with it;
* the **HMAC key** (``DEPLOYDECK_LOG_KEY``): when it is set, every line and the anchor carry an
  HMAC-SHA256 that only a holder of the key can make, so forged, edited or re-chained lines
  fail even when the forger also rewrote the anchor;
* a **head seen elsewhere** (``N:HASH`` in every notification the rollout sends, passed to
  ``log verify --head``): whoever rewrote both the file and its anchor cannot reach back into
  the team channel.

What none of them catches: someone holding the key, or a forger who rewrites the file and the
anchor together while no key is set and nobody compares a notified head.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_ENV = "DEPLOYDECK_LOG_KEY"
ANCHOR_SUFFIX = ".anchor"
#: how a head is quoted in notifications and given to `log verify --head`: line number, hash prefix
HEAD_PREFIX_LEN = 16
_MAC_AT_END = re.compile(rb',"mac":"([0-9a-f]{64})"$')
_HEAD = re.compile(r"^(\d{1,18}):([0-9a-f]{12,64})$")


def log_key() -> bytes | None:
    """The HMAC key from the environment; None when the log is not signed."""
    value = os.environ.get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def sign_head(head: bytes, key: bytes | None) -> bytes:
    """A line's bytes before its own hash, with the HMAC appended when a key is set."""
    if key is None:
        return head
    return head + b',"mac":"' + mac(key, head).encode() + b'"'


def check_mac(signed_head: bytes, key: bytes) -> str | None:
    """None if the line's HMAC is right; else what is wrong ('unsigned' or 'mismatch')."""
    match = _MAC_AT_END.search(signed_head)
    if match is None:
        return "unsigned"
    if not hmac.compare_digest(mac(key, signed_head[: match.start()]), match.group(1).decode()):
        return "mismatch"
    return None


def is_signed(signed_head: bytes) -> bool:
    return _MAC_AT_END.search(signed_head) is not None


# --- the anchor file -------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str  # SHA-256 hex of the last line's exact bytes
    deploy_id: str = ""
    mac: str | None = None

    def payload(self) -> bytes:
        return f"{self.seq}:{self.hash}:{self.deploy_id}".encode()

    @property
    def head(self) -> str:
        return format_head(self.seq, self.hash)


def format_head(seq: int, line_hash: str) -> str:
    return f"{seq}:{line_hash[:HEAD_PREFIX_LEN]}"


def parse_head(text: str) -> tuple[int, str]:
    """'N:HEXPREFIX' → (N, prefix); ValueError with a person's message otherwise."""
    match = _HEAD.match(text.strip().lower())
    if match is None:
        raise ValueError(f"'{text}' is not a journal head (LINE:HASH, e.g. 1234:9f3c2ab41d07e5aa)")
    return int(match.group(1)), match.group(2)


def anchor_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ANCHOR_SUFFIX)


#: the anchor is rewritten in place at a fixed size: one small pwrite per line, no rename
_ANCHOR_BYTES = 256


def write_anchor(journal: Path, anchor: Anchor, key: bytes | None, *, durable: bool) -> None:
    """Overwrite the anchor in place (one write of one block: a crash leaves old or new)."""
    signed_mac = mac(key, anchor.payload()) if key else None
    body = json.dumps(
        {"seq": anchor.seq, "hash": anchor.hash, "deploy_id": anchor.deploy_id}
        | ({"mac": signed_mac} if signed_mac else {}),
        separators=(",", ":"),
    ).encode()
    record = body.ljust(_ANCHOR_BYTES - 1) + b"\n" if len(body) < _ANCHOR_BYTES else body + b"\n"
    fd = os.open(anchor_path(journal), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, record, 0)
        if len(record) != os.fstat(fd).st_size:
            os.ftruncate(fd, len(record))
        if durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def sync_anchor(journal: Path) -> None:
    """Make the anchor durable (after the journal line it records is)."""
    fd = os.open(anchor_path(journal), os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def read_anchor(journal: Path) -> Anchor | str | None:
    """The anchor; None if there is none; a string saying why it cannot be read."""
    path = anchor_path(journal)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__})"
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("seq"), int)
        or not isinstance(data.get("hash"), str)
        or not isinstance(data.get("deploy_id", ""), str)
    ):
        return "not an anchor (seq, hash, deploy_id)"
    found_mac = data.get("mac")
    return Anchor(
        data["seq"],
        data["hash"],
        data.get("deploy_id", ""),
        found_mac if isinstance(found_mac, str) else None,
    )


# --- checking the end --------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """What the end checks need of one complete line."""

    number: int  # position in the file, 1-based
    seq: int | None
    hash: str
    deploy_id: str


def check_end(
    journal: Path, lines: list[Line], key: bytes | None, expect_head: str | None = None
) -> tuple[list[tuple[int, str]], list[str]]:
    """(findings, notes) about the log's end, each finding naming the anchor that caught it."""
    findings: list[tuple[int, str]] = []
    notes: list[str] = []
    last = lines[-1] if lines else None
    anchor = read_anchor(journal)
    where = anchor_path(journal).name
    if isinstance(anchor, str):
        findings.append(
            (last.number if last else 0, f"anchor file: {where} is {anchor}; the end is not proven")
        )
    elif anchor is None:
        if lines:
            findings.append(
                (
                    last.number if last else 0,
                    f"anchor file: {where} is missing, so the end of the log is not proven "
                    "(deleted, or the log predates anchors)",
                )
            )
    else:
        if key is not None and (
            anchor.mac is None or not hmac.compare_digest(mac(key, anchor.payload()), anchor.mac)
        ):
            findings.append(
                (
                    anchor.seq,
                    f"HMAC key: {where} is not signed with {KEY_ENV}: rewritten by someone without the key",
                )
            )
        findings.extend(_against(anchor.seq, anchor.hash, anchor.deploy_id, lines, "anchor file", exact=True))
        if not findings:
            notes.append(f"end proven by the anchor file: line {anchor.seq} ({anchor.head})")
    head_findings, head_notes = check_head(lines, expect_head)
    return findings + head_findings, notes + head_notes


def check_head(lines: list[Line], expect_head: str | None) -> tuple[list[tuple[int, str]], list[str]]:
    """(findings, notes) for a head recorded outside the store (``--head N:HASH``): any store."""
    if expect_head is None:
        return [], []
    seq, prefix = parse_head(expect_head)
    caught = _against(seq, prefix, "", lines, "--head", exact=False)
    if caught:
        return caught, []
    return [], [f"line {seq} matches the head given with --head ({expect_head})"]


def _against(
    seq: int, line_hash: str, deploy_id: str, lines: list[Line], name: str, *, exact: bool
) -> list[tuple[int, str]]:
    """Compare the file with a head recorded elsewhere (exact: it must be the file's last line)."""
    by_seq = {line.seq: line for line in lines if line.seq is not None}
    last = lines[-1] if lines else None
    last_seq = last.seq if last and last.seq is not None else 0
    found = by_seq.get(seq)
    if found is None:
        if seq > last_seq:
            gone = seq - last_seq
            what = f"{name}: truncated: {gone} line(s) removed from the end (it records line {seq}, the file ends at {last_seq})"
            if deploy_id and deploy_id not in {line.deploy_id for line in lines}:
                what += f"; the whole deploy {deploy_id} is gone"
            return [(last_seq + 1, what)]
        return [(seq, f"{name}: line {seq} is not in the file")]
    if not found.hash.startswith(line_hash):
        return [
            (
                found.number,
                f"{name}: re-chained: line {seq}'s hash does not match the one recorded ({line_hash[:16]})",
            )
        ]
    if exact and last is not None and last is not found:
        extra = [line for line in lines if line.number > found.number]
        return [
            (
                extra[0].number,
                f"{name}: {len(extra)} line(s) appended after the anchored end (line {seq}) outside deploydeck (or a process killed between writing a line and its anchor)",
            )
        ]
    return []


# --- the head in every notification ---------------------------------------------------------


def quote_journal_head(notifier: Any, journal: Any) -> None:
    """Make every notification `notifier` sends carry the journal's head (``N:HASH``).

    The team channel keeps it where nobody with write access to this machine can change it:
    ``log verify --head N:HASH`` then proves the log still reaches that line, unchanged. The
    notifier keeps its type (tests and callers look at a SimNotifier's ``sent``): its ``notify``
    is wrapped in place.
    """
    inner = notifier.notify

    async def notify(message: Any) -> Any:
        head = getattr(journal, "head", None)  # a FileJournal: the last line it wrote
        fields = {**message.fields, **({"journal head": head.head} if head is not None else {})}
        # rebuilt, not model_copy'd: building a Notification masks secrets, and a caller's
        # model_copy(update=...) on the way here skipped that
        message = type(message).model_validate({**message.model_dump(), "fields": fields})
        return await inner(message)

    notifier.notify = notify
