"""One person, one name: the key the two-person rule and author exclusion compare.

"alice", "Alice ", "alice\u200b" (a zero-width space) and "аlice" (a Cyrillic а) look like one
person to whoever reads the log, so they must be one person to the rules: otherwise a single
person signs twice, or the author approves their own change under a look-alike name.

:func:`identity_key` is for comparing only; logs and screens keep the name as it was given (or as
the TokenReview returned it), so nothing about who acted is rewritten.

The look-alike table is small on purpose (Cyrillic and Greek letters that are drawn like Latin
ones, and a few Latin variants). It maps toward Latin and only ever *merges* names: a false merge
makes the rules stricter (a second signer must be someone else again), never laxer. Digits and
letters (l/1/I, O/0) are not merged: those are distinct account names in every identity provider.
"""

from __future__ import annotations

import re
import unicodedata

# Applied before casefolding, so an upper-case look-alike maps to the upper-case Latin letter it
# is drawn like (Greek Η → H) and a lower-case one to the lower-case letter (Greek η → n).
_CONFUSABLES = {
    # Cyrillic, upper case
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "Ү": "Y", "Һ": "H", "Ӏ": "I",
    # Cyrillic, lower case
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i", "ј": "j",
    "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y",
    # Greek, upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Greek, lower case
    "α": "a", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "υ": "u", "χ": "x", "ε": "e",
    "η": "n", "τ": "t",
    # Latin variants drawn like plain letters
    "ı": "i", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʏ": "y",
}  # fmt: skip
_TABLE = str.maketrans(_CONFUSABLES)
_SPACE = re.compile(r"\s+")
# Invisible characters NFKC keeps: zero-width space/joiners, bidi marks, word joiner, BOM, soft
# hyphen, Mongolian vowel separator... all of Unicode category Cf, plus the combining grapheme
# joiner (Mn) that is invisible on its own.
_INVISIBLE_MN = {"\u034f"}


def _visible(text: str) -> str:
    return "".join(
        ch for ch in text if unicodedata.category(ch) not in {"Cf", "Cc"} and ch not in _INVISIBLE_MN
    )


def identity_key(name: str) -> str:
    """The comparison key of a person's name: NFKC, invisible characters removed, look-alike letters
    mapped to Latin, casefolded, whitespace trimmed and runs of it made one space."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", name))  # a tab is a space, not invisible
    text = _visible(text).translate(_TABLE)
    # casefolding can bring a look-alike back (ᾀ → ἀι, a Greek iota): map once more after it
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text.casefold()).translate(_TABLE))
    return _SPACE.sub(" ", text).strip()


def same_person(a: str, b: str) -> bool:
    """True when two names are one person by :func:`identity_key` (an empty name is nobody)."""
    key = identity_key(a)
    return bool(key) and key == identity_key(b)


def is_blank(name: str) -> bool:
    """A name that is only spaces and invisible characters names nobody."""
    return not identity_key(name)
