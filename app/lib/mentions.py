"""Finding @username mentions in message text."""
from __future__ import annotations

import re

# "@name" at a word boundary: not inside an e-mail address or another word,
# and the name ends where username characters end.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{1,32})(?![A-Za-z0-9_])")


def find_mentions(text: str) -> list[str]:
    """Lower-cased usernames mentioned in text, once each, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in MENTION_RE.finditer(text):
        seen.setdefault(match.group(1).lower(), None)
    return list(seen)
