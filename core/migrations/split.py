"""Split a SQL file into statements with the line each starts on.

Quotes, comments and PostgreSQL dollar-quoted bodies are respected so a `;`
inside a function body does not end the statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR = re.compile(r"\$[A-Za-z_]*\$")


@dataclass(frozen=True)
class Statement:
    text: str  # comments blanked out, newlines kept so offsets map to lines
    line: int  # 1-based line of the statement's first non-blank character

    def line_at(self, offset: int) -> int:
        return self.line + self.text.count("\n", 0, offset)


def split_statements(sql: str) -> list[Statement]:
    out: list[Statement] = []
    buf: list[str] = []
    start_line = 1
    line = 1
    i = 0
    n = len(sql)

    def flush() -> None:
        text = "".join(buf)
        stripped = text.lstrip()
        if stripped.strip():
            lead = text[: len(text) - len(stripped)]
            out.append(Statement(text=stripped.rstrip(), line=start_line + lead.count("\n")))

    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            buf.append(" " * (end - i))
            i = end
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            chunk = sql[i:end]
            buf.append(re.sub(r"[^\n]", " ", chunk))
            line += chunk.count("\n")
            i = end
            continue
        if ch in ("'", '"', "`"):
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                j += 1
            chunk = sql[i : j + 1]
            buf.append(chunk)
            line += chunk.count("\n")
            i = j + 1
            continue
        if ch == "$":
            m = _DOLLAR.match(sql, i)
            if m:
                tag = m.group(0)
                end = sql.find(tag, m.end())
                end = n if end == -1 else end + len(tag)
                chunk = sql[i:end]
                buf.append(chunk)
                line += chunk.count("\n")
                i = end
                continue
        if ch == ";":
            flush()
            buf = []
            i += 1
            start_line = line
            continue
        if ch == "\n":
            line += 1
        buf.append(ch)
        i += 1
    flush()
    return out
