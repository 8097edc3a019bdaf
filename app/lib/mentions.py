"""The syntax of @username mentions (the markdown parser calls it, so code is skipped)."""
from __future__ import annotations

import re

# A name ends where username characters end: "@bob's" mentions bob, "@bob_x" does not.
_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,32}(?![A-Za-z0-9_])")
# A letter of any script (or another "@") before "@" makes an e-mail address or a word.
_NOT_BEFORE = re.compile(r"[\w@]")


def mention_at(text: str, pos: int) -> str | None:
    """The name mentioned by the "@" at text[pos], as typed, or None if it is no mention."""
    if text[pos] != "@" or (pos > 0 and _NOT_BEFORE.match(text[pos - 1])):
        return None
    match = _NAME_RE.match(text, pos + 1)
    return match.group(0) if match else None
