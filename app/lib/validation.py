"""Checks on untrusted payloads: each returns a clean value or raises ChatError("invalid")."""
from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Any

from app.lib.errors import ChatError

# \A and \Z, not ^ and $: "$" also matches before a trailing newline ("alice\n").
USERNAME_RE = re.compile(r"\A[A-Za-z0-9_]{1,32}\Z")
ROOM_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
CLIENT_ID_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
# Control characters other than tab and newline corrupt display and logs.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_ID = 2**63 - 1
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def load_json(raw: bytes | str) -> Any:
    """Parse a JSON document; raise ChatError("invalid") when it is malformed or nested too deeply.

    The parser recurses once per level of nesting: a few kilobytes of "[[[[..." exhaust
    the interpreter's recursion limit, which is bad input, not a server fault.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ChatError("invalid", "The JSON is nested too deeply.") from None
    except ValueError:  # JSONDecodeError, and bytes in no Unicode encoding
        raise ChatError("invalid", "The body is not valid JSON.") from None


def require_mapping(data: Any) -> dict:
    """The payload itself must be a JSON object."""
    if not isinstance(data, dict):
        raise ChatError("invalid", "The payload must be a JSON object.")
    return data


def get_str(data: dict, key: str, *, required: bool = True, default: str | None = None) -> str | None:
    """A string field; missing or of another type is an error when required."""
    value = data.get(key)
    if value is None:
        if required:
            raise ChatError("invalid", f"'{key}' is required.", field=key)
        return default
    if not isinstance(value, str):
        raise ChatError("invalid", f"'{key}' must be a string.", field=key)
    if _SURROGATE_RE.search(value):
        # JSON may spell a lone surrogate ("\ud800"), which is no character: it cannot be
        # stored as UTF-8, nor sent back to anyone.
        raise ChatError("invalid", f"'{key}' is not valid Unicode text.", field=key)
    return value


def get_int(data: dict, key: str, *, required: bool = True) -> int | None:
    """A positive integer id field; booleans and floats are refused."""
    value = data.get(key)
    if value is None:
        if required:
            raise ChatError("invalid", f"'{key}' is required.", field=key)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ChatError("invalid", f"'{key}' must be a positive integer.", field=key)
    return value


def get_bool(data: dict, key: str, default: bool = False) -> bool:
    """A boolean field."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ChatError("invalid", f"'{key}' must be true or false.", field=key)
    return value


def get_reply_fields(data: dict) -> dict:
    """The fields of a send that answer another message (a thread reply, a quote-reply), as
    keyword arguments of `do_send_message`."""
    return {
        "thread_root_id": get_int(data, "thread_root_id", required=False),
        "also_in_room": get_bool(data, "also_in_room"),
        "quote_of": get_int(data, "quote_of", required=False),
    }


def parse_id(value: str | None, name: str) -> int | None:
    """An id given in a query string."""
    if value is None or value == "":
        return None
    # isdigit() alone accepts "²" and other digits int() refuses.
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_ID:
        raise ChatError("invalid", f"'{name}' must be a positive integer.", field=name)
    return int(value)


def parse_cursor(value: str | None, name: str) -> int | None:
    """A position given in a query string: an id or rev, or 0 for "from the beginning"."""
    if value == "0":
        return 0
    return parse_id(value, name)


def clean_text(text: str) -> str:
    """Text as stored and shown (bodies, topics): NFC, without characters that hide or reorder text.

    Removed: C0 and C1 controls other than tab and newline, the bidi embeddings, overrides
    and isolates (U+202A-202E, U+2066-2069: they make what is shown differ from what is
    stored), zero-width space, word joiner and BOM, and every other format character (Cf)
    except those that scripts and emoji need: ZWNJ and ZWJ (Persian, Indic scripts, emoji
    sequences such as a family), the bidi marks (LRM, RLM, ALM: right-to-left prose with
    left-to-right words needs them, and a mark cannot reorder letters), the visible
    prepended number signs of Arabic, Syriac and Kaithi, Egyptian hieroglyph format
    controls, and tag characters inside an emoji flag sequence. Letters of every script stay.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    text = _CONTROL_RE.sub("", text)
    if text.isascii():
        return text
    text = unicodedata.normalize("NFC", text)
    return _drop(text, _format_kept_in_text, flags=True)


def clean_display_name(text: str) -> str:
    """A display name: clean_text, on one line, with nothing invisible left in it.

    Names identify people, so every format character goes (joiners and bidi marks too),
    as do the other characters Unicode calls default-ignorable (variation selectors, the
    Hangul fillers, the combining grapheme joiner) and every run of whitespace becomes
    one space: otherwise "Alice Archer" could be stored many ways that all look the same.
    """
    text = " ".join(clean_text(text).split())
    if text.isascii():
        return text
    return _drop(text, _shown_in_names, flags=False)


def name_skeleton(text: str) -> str:
    """How a name looks, for comparing names (after Unicode TR39's skeleton).

    NFKC (fullwidth and mathematical letters become plain), then each look-alike of an
    ASCII letter, digit or "_" becomes one stand-in for all of them (Cyrillic "а" and "a",
    "1", "I" and "l", "0" and "O"), case folded; a leading "@" and spaces at the ends go.
    """
    table = _lookalikes()
    text = unicodedata.normalize("NFKC", clean_display_name(text)).strip().lstrip("@")
    mapped = "".join(table.get(ch, ch) for ch in text)
    return "".join(table.get(ch, ch) for ch in mapped.casefold()).casefold()


def name_skeletons(text: str) -> set[str]:
    """The skeletons of a name as written and of it case folded first ("ALICE" and "alice" alike)."""
    return {name_skeleton(text), name_skeleton(text.casefold())}


def _drop(text: str, keep, *, flags: bool) -> str:
    """text without the non-ASCII characters keep() refuses; tag characters survive only
    inside an emoji flag sequence (England's, Scotland's, ...), and only with flags."""
    out = []
    flag = False  # inside U+1F3F4 WAVING BLACK FLAG followed by tag characters
    for ch in text:
        if "\U000e0020" <= ch <= "\U000e007f":
            if flag and flags:
                out.append(ch)
                flag = ch != "\U000e007f"  # CANCEL TAG ends the sequence
            continue
        flag = ch == "\U0001f3f4"
        if ch.isascii() or keep(ch):
            out.append(ch)
    return "".join(out)


# Format characters (Cf) text may keep: see clean_text.
_KEPT_FORMAT = frozenset(
    "\u200c\u200d"  # ZWNJ, ZWJ
    "\u200e\u200f\u061c"  # LRM, RLM, ALM
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
) | frozenset(chr(c) for c in range(0x13430, 0x13440))
# Default-ignorable code points that are not format characters (Unicode's DerivedCoreProperties).
_IGNORABLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
) | frozenset(chr(c) for c in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), *range(0xFFF0, 0xFFF9)))


def _format_kept_in_text(ch: str) -> bool:
    if "\x80" <= ch <= "\x9f":  # C1 controls
        return False
    return unicodedata.category(ch) != "Cf" or ch in _KEPT_FORMAT


def _shown_in_names(ch: str) -> bool:
    return unicodedata.category(ch) not in ("Cf", "Cn") and ch not in _IGNORABLE


@functools.cache
def _lookalikes() -> dict[str, str]:
    """Every character that looks like an ASCII letter, digit or "_", mapped to one ASCII stand-in.

    confusable_homoglyphs carries Unicode's confusables.txt as pairs; characters linked by
    a chain of pairs form one group, and a group with ASCII members maps to one of them
    (a lower-case letter before an upper-case one before a digit: "l" for "1", "I", "l").
    """
    from confusable_homoglyphs.confusables import confusables_data

    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        parent.setdefault(ch, ch)
        while parent[ch] != ch:
            parent[ch] = parent[parent[ch]]
            ch = parent[ch]
        return ch

    for ch, homoglyphs in confusables_data.items():
        for homoglyph in homoglyphs:
            glyph = homoglyph["c"].strip("\u200e\u200f")
            if len(ch) == 1 and len(glyph) == 1:
                parent[find(ch)] = find(glyph)
    groups: dict[str, list[str]] = {}
    for ch in list(parent):
        groups.setdefault(find(ch), []).append(ch)
    table = {}
    for members in groups.values():
        ascii_members = [ch for ch in members if ch.isascii() and (ch.isalnum() or ch == "_")]
        if ascii_members:
            stand_in = min(ascii_members, key=lambda ch: (not ch.isalpha(), not ch.islower(), ch))
            table.update((ch, stand_in) for ch in members if ch != stand_in)
    return table


def check_username(username: str) -> str:
    """A username: 1-32 of letters, digits and underscore."""
    if not USERNAME_RE.match(username):
        raise ChatError(
            "invalid", "Usernames are 1-32 letters, digits or underscores.", field="username"
        )
    return username


def check_password(password: str) -> str:
    """A password of a sensible length."""
    if len(password) < 8 or len(password) > 256:
        raise ChatError("invalid", "Passwords are 8 to 256 characters.", field="password")
    return password


def check_client_id(client_id: str | None) -> str | None:
    """A client-generated id for idempotent sends."""
    if client_id is None:
        return None
    if not CLIENT_ID_RE.match(client_id):
        raise ChatError(
            "invalid", "'client_id' is 1-64 letters, digits or _.:- characters.", field="client_id"
        )
    return client_id
