"""`GET /api/v1/presence`: the presence of people who share a room or DM with the caller."""
from __future__ import annotations

from flask import request
from flask_login import current_user, login_required

from app.api import bp
from app.lib.errors import ChatError
from app.lib.validation import MAX_ID
from app.queries import presence as presence_queries

# Ids one request may ask about.
MAX_PRESENCE_IDS = 200


def parse_user_ids(raw: str | None) -> list[int]:
    """`user_ids=1,2,3` as a list of distinct ids in the order given; ChatError("invalid") otherwise."""
    if raw is None:
        raise ChatError("invalid", "'user_ids' is required (user_ids=1,2,3).", field="user_ids")
    if raw.strip() == "":
        return []
    parts = raw.split(",")
    if len(parts) > MAX_PRESENCE_IDS:
        raise ChatError("invalid", f"Ask for at most {MAX_PRESENCE_IDS} users at once.", field="user_ids")
    ids = []
    for part in parts:
        part = part.strip()
        # isdigit() alone accepts "²" and other digits int() refuses.
        if not (part.isascii() and part.isdigit()) or len(part) > 19 or not 0 < int(part) <= MAX_ID:
            raise ChatError("invalid", "'user_ids' must be positive integers separated by commas.",
                            field="user_ids")
        ids.append(int(part))
    return list(dict.fromkeys(ids))


@bp.get("/presence")
@login_required
def get_presence():
    """{presence: [{user_id, state, status_text, status_emoji, dnd_until}]} for the ids asked
    that share a room or DM with the caller (and the caller); others are left out."""
    user_ids = parse_user_ids(request.args.get("user_ids"))
    return {"presence": presence_queries.get_presence(current_user.id, user_ids)}
