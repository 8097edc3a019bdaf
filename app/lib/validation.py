"""Checks on untrusted payloads: each returns a clean value or raises ChatError("invalid")."""
from __future__ import annotations

import json
import re
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


def parse_id(value: str | None, name: str) -> int | None:
    """An id given in a query string."""
    if value is None or value == "":
        return None
    # isdigit() alone accepts "²" and other digits int() refuses.
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_ID:
        raise ChatError("invalid", f"'{name}' must be a positive integer.", field=name)
    return int(value)


def clean_text(text: str) -> str:
    """Strip control characters that harm display, keeping tabs and newlines."""
    return _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


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
