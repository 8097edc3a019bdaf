"""REST routes: parse, call one action, shape the reply."""
from __future__ import annotations

from flask import current_app, request
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError

from app.actions import memberships, message_edit, messages, notifications, reactions, read_markers, rooms, users
from app.actions import dms, profile, threads
from app.api import bp
from app.extensions import csrf
from app.lib import serializers, validation
from app.lib.access import access_room
from app.lib.emoji import get_emoji_list
from app.lib.errors import ChatError
from app.queries import history
from app.queries import messages as message_queries
from app.queries import notifications as notification_queries
from app.queries import people
from app.queries import rooms as room_queries
from app.queries import threads as thread_queries
from app.security import bearer_token, limiter, login_limit, registration_limit

csrf.exempt(bp)
limiter.limit(lambda: current_app.config["API_RATE_LIMIT"])(bp)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@bp.before_request
def check_csrf_for_cookie_sessions():
    """Cookie-authenticated writes carry a CSRF token (X-CSRFToken); bearer calls need none.

    A request with a bearer token is authenticated by that token or not at all, never by
    the cookie sent with it (app.auth.routes.load_user), so skipping the check is safe.
    """
    if request.method not in _UNSAFE or bearer_token(request) is not None:
        return
    if current_user.is_authenticated and current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()


@bp.errorhandler(CSRFError)
def csrf_error(exc: CSRFError):
    """A missing or stale CSRF token, as JSON."""
    return {"error": {"code": "csrf_failed", "message": exc.description}}, 400


def _json() -> dict:
    if not request.is_json:
        raise ChatError("invalid", "Send a JSON object with Content-Type: application/json.")
    return validation.require_mapping(validation.load_json(request.get_data()))


@bp.post("/users")
@registration_limit
def register():
    """Register an account."""
    data = _json()
    user = users.do_register_user(
        validation.get_str(data, "username"),
        validation.get_str(data, "password"),
        validation.get_str(data, "display_name", required=False),
    )
    return serializers.user_dict(user), 201


@bp.post("/auth/token")
@login_limit
def issue_token():
    """Exchange username and password for a bearer token."""
    data = _json()
    user = users.authenticate(
        validation.get_str(data, "username"), validation.get_str(data, "password"), request.remote_addr
    )
    token = users.do_create_api_token(user, validation.get_str(data, "name", required=False) or "api")
    return {"token": token, "user": serializers.user_dict(user)}


@bp.get("/tokens")
@login_required
def list_tokens():
    """The caller's API tokens (metadata only)."""
    return {"tokens": [serializers.token_dict(t) for t in users.get_api_tokens(current_user)]}


@bp.delete("/tokens/<int:token_id>")
@login_required
def revoke_token(token_id: int):
    """Revoke one of the caller's tokens."""
    users.do_revoke_api_token(current_user, token_id)
    return "", 204


@bp.get("/me")
@login_required
def me():
    """The calling user, with their profile."""
    profile_fields = serializers.profile_dict(current_user)
    del profile_fields["presence"]
    return {**profile_fields, "is_admin": current_user.is_admin,
            "unread_notifications": notification_queries.get_unread_count(current_user)}


@bp.get("/rooms")
@login_required
def list_rooms():
    """The caller's rooms and every public room."""
    return {"rooms": room_queries.get_rooms_for_user(current_user)}


@bp.post("/rooms")
@login_required
def create_room():
    """Create a room; the caller owns it and is its first member."""
    data = _json()
    room = rooms.do_create_room(
        current_user,
        validation.get_str(data, "name"),
        validation.get_str(data, "topic", required=False),
        validation.get_bool(data, "is_private", False),
    )
    return room_queries.room_view(room, current_user), 201


@bp.get("/rooms/heads")
@login_required
def room_heads():
    """{heads: {room_id: last_rev}} for the caller's rooms: a cheap check for missed changes."""
    return {"heads": {str(k): v for k, v in room_queries.get_room_heads(current_user).items()}}


@bp.get("/rooms/<int:room_id>")
@login_required
def get_room(room_id: int):
    """One room the caller may see."""
    room, _ = access_room(room_id, current_user)
    return room_queries.room_view(room, current_user)


@bp.get("/rooms/<int:room_id>/members")
@login_required
def list_members(room_id: int):
    """The members of a room the caller belongs to."""
    room, membership = access_room(room_id, current_user)
    if membership is None:
        raise ChatError("not_member", "Join the room first.")
    return {"members": [serializers.user_dict(u) for u in room_queries.get_members(room)]}


@bp.post("/rooms/<int:room_id>/members")
@login_required
def add_member(room_id: int):
    """{} joins a public room; {username} invites someone."""
    data = _json()
    username = validation.get_str(data, "username", required=False)
    if username is None:
        room = memberships.do_join_room(current_user, room_id)
        return room_queries.room_view(room, current_user)
    invitee = memberships.do_invite_user(current_user, room_id, username)
    return {"room_id": room_id, "user": serializers.user_dict(invitee)}, 201


@bp.delete("/rooms/<int:room_id>/members/me")
@login_required
def leave_room(room_id: int):
    """Leave a room."""
    memberships.do_leave_room(current_user, room_id)
    return "", 204


@bp.get("/rooms/<int:room_id>/messages")
@login_required
def list_messages(room_id: int):
    """A page of the main timeline, oldest first: ?before=<id> pages back, ?after=<id> reads
    forward, ?around=<id> centres on one message; ?since=<rev> gives every message of the room
    changed since; ?thread=<root id> reads that thread instead (with before, after or since)."""
    args = request.args
    limit = validation.parse_id(args.get("limit"), "limit")
    around = validation.parse_id(args.get("around"), "around")
    since = validation.parse_cursor(args.get("since"), "since")
    thread = validation.parse_id(args.get("thread"), "thread")
    for alone, value in (("around", around), ("since", since)):
        others = [name for name in ("before", "after", "around", "since") if name != alone and args.get(name)]
        if alone == "around" and thread is not None:
            others.append("thread")
        if value is not None and others:
            raise ChatError("invalid", f"Give '{alone}' alone, without {' or '.join(map(repr, others))}.")
    mine = {}
    if thread is not None:
        root = history.get_thread_root(current_user, room_id, thread)
        thread = root["id"]
        mine = {"root": root, "follow": thread_queries.get_my_follow(current_user, thread)}
    if since is not None:
        page, has_more, head = history.get_changes(current_user, room_id, since, limit=limit, thread=thread)
        return {"messages": page, "has_more": has_more, "head": head, **mine}
    if around is not None:
        page, older, newer = history.get_messages_around(current_user, room_id, around, limit=limit)
        return {"messages": page, "has_more_before": older, "has_more_after": newer}
    page, has_more = history.get_messages(
        current_user, room_id,
        before=validation.parse_id(args.get("before"), "before"),
        after=validation.parse_cursor(args.get("after"), "after"),
        limit=limit, thread=thread,
    )
    return {"messages": page, "has_more": has_more, **mine}


@bp.post("/rooms/<int:room_id>/messages")
@login_required
def send_message(room_id: int):
    """Send a message, broadcast exactly as a socket send; a retried client_id answers 200."""
    data = _json()
    result = messages.do_send_message(
        current_user, room_id,
        validation.get_str(data, "body"),
        validation.get_str(data, "client_id", required=False),
        **validation.get_reply_fields(data),
    )
    return result.data, 201 if result.created else 200


@bp.get("/messages/<int:message_id>")
@login_required
def get_message(message_id: int):
    """One message as the caller sees it (a tombstone once deleted)."""
    return message_queries.get_message(current_user, message_id)


@bp.patch("/messages/<int:message_id>")
@login_required
def edit_message(message_id: int):
    """Edit my message: {body} -> the message, broadcast as `message_updated`."""
    data = _json()
    return message_edit.do_edit_message(current_user, message_id, validation.get_str(data, "body"))


@bp.delete("/messages/<int:message_id>")
@login_required
def delete_message(message_id: int):
    """Delete a message (mine, or as the room's owner or an admin) -> its tombstone."""
    return message_edit.do_delete_message(current_user, message_id)


@bp.get("/messages/<int:message_id>/history")
@login_required
def message_history(message_id: int):
    """Every version of a message's text, oldest first."""
    return message_queries.get_message_history(current_user, message_id)


@bp.put("/messages/<int:message_id>/reactions/<path:emoji>")
@login_required
def add_reaction(message_id: int, emoji: str):
    """React to a message with an emoji (or a :shortcode:) -> the message."""
    return reactions.do_react(current_user, message_id, emoji, True)


@bp.delete("/messages/<int:message_id>/reactions/<path:emoji>")
@login_required
def remove_reaction(message_id: int, emoji: str):
    """Take my reaction back -> the message."""
    return reactions.do_react(current_user, message_id, emoji, False)


@bp.get("/emoji")
@login_required
def list_emoji():
    """Every emoji a reaction may use, with names and shortcodes (the page's picker)."""
    # The same for every user until the server is upgraded: the browser may keep it a day.
    return {"emoji": get_emoji_list()}, 200, {"Cache-Control": "private, max-age=86400"}


@bp.post("/rooms/<int:room_id>/read")
@login_required
def mark_room_read(room_id: int):
    """Move the caller's read marker to {message_id} or the latest message."""
    data = _json() if request.get_data() else {}
    message_id = validation.get_int(data, "message_id", required=False)
    return {"last_read_message_id": read_markers.do_mark_room_read(current_user, room_id, message_id)}


@bp.get("/notifications")
@login_required
def list_notifications():
    """The caller's notifications, newest first; ?unread=1 for unread only."""
    unread_only = request.args.get("unread") in {"1", "true"}
    items = notification_queries.get_notifications(current_user, unread_only=unread_only)
    return {
        "notifications": [serializers.notification_dict(n) for n in items],
        "unread": notification_queries.get_unread_count(current_user),
    }


@bp.post("/notifications/read")
@login_required
def mark_notifications_read():
    """Mark {ids: [...]} or {all: true} read."""
    data = _json()
    all_ = validation.get_bool(data, "all", False)
    ids = data.get("ids")
    if ids is not None and (
        not isinstance(ids, list) or len(ids) > 500
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i <= validation.MAX_ID for i in ids)
    ):
        raise ChatError("invalid", "'ids' must be a list of at most 500 positive integers.", field="ids")
    changed = notifications.do_mark_notifications_read(current_user, ids, all_=all_)
    return {"marked": changed, "unread": notification_queries.get_unread_count(current_user)}


@bp.put("/threads/<int:message_id>/follow")
@login_required
def follow_thread(message_id: int):
    """Follow the thread of a message (the id of a reply means its root) -> {root_id, following}."""
    return threads.do_follow_thread(current_user, message_id, True)


@bp.delete("/threads/<int:message_id>/follow")
@login_required
def unfollow_thread(message_id: int):
    """Stop following the thread of a message -> {root_id, following}."""
    return threads.do_follow_thread(current_user, message_id, False)


_FLAGS = {"1": True, "true": True, "0": False, "false": False, "": False}


@bp.get("/threads")
@login_required
def list_threads():
    """The threads the caller follows in their rooms, unread first; ?unread=1 for unread only, ?limit=."""
    unread = request.args.get("unread", "")
    if unread not in _FLAGS:
        raise ChatError("invalid", "'unread' must be 1 or 0.", field="unread")
    limit = validation.parse_id(request.args.get("limit"), "limit")
    if limit is None:
        limit = thread_queries.THREADS_PAGE_SIZE
    elif limit > thread_queries.THREADS_MAX_PAGE_SIZE:
        raise ChatError("invalid", f"'limit' must be between 1 and {thread_queries.THREADS_MAX_PAGE_SIZE}.",
                        field="limit")
    page, has_more = thread_queries.get_followed_threads(current_user, unread_only=_FLAGS[unread], limit=limit)
    return {"threads": page, "has_more": has_more}


@bp.post("/threads/<int:message_id>/read")
@login_required
def mark_thread_read(message_id: int):
    """Move the caller's read marker in a thread to {message_id} or its newest reply ->
    {root_id, last_read_id, unread}."""
    data = _json() if request.get_data() else {}
    read_id = validation.get_int(data, "message_id", required=False)
    return threads.do_mark_thread_read(current_user, message_id, read_id)


_PROFILE_FIELDS = ("display_name", "time_zone", "status_text", "status_emoji", "dnd_until")


@bp.patch("/me")
@login_required
def update_me():
    """Change the caller's display name, time zone, status or do-not-disturb -> their profile."""
    data = _json()
    unknown = sorted(set(data) - set(_PROFILE_FIELDS))
    if unknown:
        raise ChatError("invalid", f"Unknown field {unknown[0]!r}; give any of {', '.join(_PROFILE_FIELDS)}.",
                        field=unknown[0])
    fields = {name: validation.get_str(data, name) for name in _PROFILE_FIELDS if name in data and name != "dnd_until"}
    if "dnd_until" in data:
        fields["dnd_until"] = validation.get_str(data, "dnd_until", required=False)
    user = profile.do_update_profile(current_user, **fields)
    return people.get_profile(current_user, user.username)


@bp.get("/users")
@login_required
def search_users():
    """People by the start of their username or display name -> {users, next}; ?q=, ?limit=, ?after=<next>."""
    args = request.args
    limit = validation.parse_id(args.get("limit"), "limit")
    if limit is not None and limit > people.SEARCH_MAX_PAGE:
        raise ChatError("invalid", f"'limit' must be between 1 and {people.SEARCH_MAX_PAGE}.", field="limit")
    after = args.get("after") or None
    if after is not None and not validation.USERNAME_RE.match(after):
        raise ChatError("invalid", "'after' is the 'next' of an earlier page.", field="after")
    page, after = people.search_users(current_user, args.get("q", ""), limit=limit, after=after)
    return {"users": page, "next": after}


@bp.get("/users/<username>")
@login_required
def user_profile(username: str):
    """A person's profile card: names, time zone, status, and presence where you share a room."""
    return people.get_profile(current_user, username)


@bp.post("/dms")
@login_required
def open_dm():
    """The one direct conversation of the caller and {usernames} (201 when created now)."""
    data = _json()
    room, created = dms.do_open_dm(current_user, data.get("usernames"))
    return room_queries.room_view(room, current_user), 201 if created else 200


@bp.get("/dms")
@login_required
def list_dms():
    """The caller's direct conversations, newest activity first -> {dms}."""
    return {"dms": room_queries.get_dms(current_user)}


@bp.patch("/rooms/<int:room_id>")
@login_required
def update_room(room_id: int):
    """Change a room's {topic, wildcard_policy}: its owner or an administrator."""
    data = _json()
    fields = {name: validation.get_str(data, name) for name in ("topic", "wildcard_policy") if name in data}
    room = rooms.do_update_room(current_user, room_id, **fields)
    return room_queries.room_view(room, current_user)
