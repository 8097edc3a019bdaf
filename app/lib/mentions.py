"""The syntax of @username mentions (the markdown parser calls it, so code is skipped)."""
from __future__ import annotations

import re

# Names that mention many people at once, and what they stand for: every member of the room,
# or those present now. They are not usernames (registration refuses them).
WILDCARDS = {"room": "room", "all": "room", "everyone": "room", "here": "here"}

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


def check_not_wildcard(username: str) -> None:
    """Refuse a username that would read as @room, @all, @everyone or @here."""
    from app.lib.errors import ChatError

    if username.lower() in WILDCARDS:
        raise ChatError("invalid", f"@{username} mentions a whole room; pick another username.", field="username")
