"""Reaction emoji: checked against Unicode's emoji data (the `emoji` package), shortcodes accepted.

A reaction is one emoji as Unicode defines it (a single code point, a sequence with skin
tones or zero-width joiners, a flag), stored fully qualified so that "❤" and "❤️" count as
one reaction. `:thumbsup:`, `:+1:` and the other names the package knows are taken too.
"""
from __future__ import annotations

from functools import cache

import emoji as emoji_data

from app.lib.errors import ChatError

# Long enough for the longest sequence Unicode defines (a family of four with skin tones).
MAX_LENGTH = 32
_FULLY_QUALIFIED = emoji_data.STATUS["fully_qualified"]
_VS16 = "\ufe0f"


def check_emoji(value: str) -> str:
    """The fully qualified emoji for value (an emoji or a :shortcode:); ChatError otherwise."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith(":") and text.endswith(":") and len(text) <= 64:
        text = emoji_data.emojize(text, language="alias")
    if 0 < len(text) <= MAX_LENGTH and emoji_data.is_emoji(text):
        return _qualified(text)
    raise ChatError("invalid", "Give one emoji, such as 👍 or :thumbsup:.", field="emoji")


def _qualified(text: str) -> str:
    data = emoji_data.EMOJI_DATA.get(text)
    if data is None or data["status"] == _FULLY_QUALIFIED:
        return text
    # The same emoji with the presentation selector where Unicode's fully qualified form has it.
    for candidate in (text + _VS16, text.replace(_VS16, "")):
        found = emoji_data.EMOJI_DATA.get(candidate)
        if found is not None and found["status"] == _FULLY_QUALIFIED and found["en"] == data["en"]:
            return candidate
    return text


@cache
def get_emoji_list() -> list[dict]:
    """Every fully qualified emoji with its name and shortcodes, by name: the picker's data."""
    entries = []
    for char, data in emoji_data.EMOJI_DATA.items():
        if data["status"] != _FULLY_QUALIFIED or len(char) > MAX_LENGTH:
            continue
        entries.append({
            "emoji": char,
            # ":thumbs_up:" is accepted too; the name says it.
            "name": data["en"].strip(":").replace("_", " "),
            "aliases": [alias for alias in dict.fromkeys(data.get("alias", [])) if alias != data["en"]],
        })
    return entries
