"""Finding people and reading their profile cards. Read-only."""
from __future__ import annotations

from sqlalchemy import func, or_

from app.extensions import db
from app.lib import serializers, validation
from app.lib.errors import ChatError
from app.models import User
from app.queries import presence as presence_queries

SEARCH_PAGE = 20
SEARCH_MAX_PAGE = 50


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _presence_of(viewer: User, user_ids) -> dict[int, str | None]:
    """Presence states of the people the viewer shares a room with; None for anyone else."""
    from app.realtime import presence

    shared = presence_queries.get_visible_user_ids(viewer.id, user_ids)
    states = presence.get_states(sorted(shared)) if shared else {}
    return {user_id: (states.get(user_id, "offline") if user_id in shared else None) for user_id in user_ids}


def search_users(viewer: User, query: str, *, limit: int | None = None, after: str | None = None) -> tuple[list[dict], str | None]:
    """People whose username or display name starts with query (ignoring case), by username,
    disabled accounts left out; a page and the cursor of the next one (None at the end)."""
    query = " ".join(validation.clean_text(query or "").split()).lstrip("@")
    if len(query) > 64:
        raise ChatError("invalid", "Search for at most 64 characters.", field="q")
    limit = min(limit or SEARCH_PAGE, SEARCH_MAX_PAGE)
    select = db.select(User).where(User.is_disabled.is_(False))
    if query:
        prefix = _like_prefix(query.lower())
        select = select.where(or_(User.username_key.like(prefix, escape="\\"),
                                  func.lower(User.display_name).like(prefix, escape="\\")))
    if after:
        select = select.where(User.username_key > after.lower())
    users = list(db.session.execute(select.order_by(User.username_key).limit(limit + 1)).scalars())
    more = len(users) > limit
    users = users[:limit]
    states = _presence_of(viewer, [u.id for u in users])
    page = [{**serializers.user_dict(u), "presence": states[u.id]} for u in users]
    return page, (users[-1].username_key if more else None)


def get_profile(viewer: User, username: str) -> dict:
    """The profile card of an active user, as the viewer may see it (presence only where they
    share a room); not_found for no such user or a disabled one."""
    user = None
    if validation.USERNAME_RE.match(username or ""):
        user = db.session.execute(db.select(User).where(User.username_key == username.lower())).scalar_one_or_none()
    if user is None or user.is_disabled:
        raise ChatError("not_found", "No such user.")
    return serializers.profile_dict(user, _presence_of(viewer, [user.id])[user.id])
