"""Editing and deleting messages; every edit keeps the text it replaced."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app

from app import events
from app.actions.messages import check_message_body, resolve_mentions
from app.actions.timeline import take_rev
from app.extensions import db
from app.lib import serializers
from app.lib.access import access_message
from app.lib.errors import ChatError
from app.lib.render import parse_message, render_parsed
from app.models import Mention, Message, MessageEdit, User
from app.models.base import utcnow


def check_not_deleted(message: Message) -> None:
    """Refuse a change to a deleted message."""
    if message.is_deleted:
        raise ChatError("gone", "This message was deleted.")


def _check_window(message: Message, verb: str) -> None:
    """Refuse an author's edit or delete once the edit window has passed."""
    window = current_app.config["MESSAGE_EDIT_WINDOW_SECONDS"]
    if window is not None and utcnow() - message.created_at > timedelta(seconds=window):
        raise ChatError("forbidden", f"Messages can only be {verb} within {int(window)} seconds of sending.")


def check_edit_message(user: User, message_id: int, body: str) -> tuple[Message, str]:
    """The message the user may edit and the cleaned new body; ChatError otherwise."""
    body = check_message_body(body)
    message, _room, _membership = access_message(message_id, user)
    check_not_deleted(message)
    if message.author_id != user.id:
        raise ChatError("forbidden", "Only its author can edit a message.")
    _check_window(message, "edited")
    return message, body


def do_edit_message(user: User, message_id: int, body: str) -> dict:
    """Replace a message's text, keep the old one in its history, re-render its markdown and
    mentions, and broadcast the new state to the room; returns the state as the editor sees it.

    A newly mentioned member is notified (once per member and message, ever: the
    notification's key); a mention taken out notifies nobody and un-notifies nobody.
    Editing to the same text changes nothing. Concurrent edits both land, in the order they
    took the room's lock: the later one's previous text is the earlier one's.
    """
    from app import tasks  # tasks import actions

    message, body = check_edit_message(user, message_id, body)
    if body == message.body:
        return serializers.message_dict(message, viewer_id=user.id)
    parsed = parse_message(body)
    mentioned = resolve_mentions(message.room_id, parsed.mentions, exclude_user_id=message.author_id)
    html = render_parsed(parsed, {u.username_key: u.username for u in mentioned})
    rev = take_rev(message.room_id)
    db.session.refresh(message)  # as it is now, under the room's lock
    if message.is_deleted or message.body == body:
        db.session.rollback()  # the number goes back: a delete or the same edit came first
        check_not_deleted(message)
        return serializers.message_dict(message, viewer_id=user.id)
    now = utcnow()
    db.session.add(MessageEdit(message_id=message.id, editor_id=user.id, previous_body=message.body,
                               previous_html=message.html, edited_at=now))
    message.body, message.html, message.edited_at, message.rev = body, html, now, rev
    kept = {u.id for u in mentioned}
    had = set()
    for mention in list(message.mentions):
        if mention.user_id in kept:
            had.add(mention.user_id)
        else:
            message.mentions.remove(mention)
    added = [u for u in mentioned if u.id not in had]
    message.mentions.extend(Mention(user_id=u.id, user=u) for u in added)
    db.session.flush()
    _broadcast(message, {"kind": "edit", "by": serializers.user_dict(user)})
    if added:
        events.enqueue_on_commit(tasks.notify_mentions, message.id)
    mine = serializers.message_dict(message, viewer_id=user.id)
    db.session.commit()
    return mine


def do_delete_message(user: User, message_id: int) -> dict:
    """Delete a message, leaving a tombstone: its text, edit history, mentions and reactions go.

    The author may (within the edit window), as may the room's owner and administrators at
    any time. Deleting a deleted message changes nothing and answers its tombstone.
    """
    message, room, membership = access_message(message_id, user, as_member=not user.is_admin)
    if message.is_deleted:
        return serializers.message_dict(message)
    moderator = user.is_admin or (membership is not None and room.owner_id == user.id)
    if message.author_id != user.id and not moderator:
        raise ChatError("forbidden", "Only its author or a moderator can delete a message.")
    if not moderator:
        _check_window(message, "deleted")
    rev = take_rev(message.room_id)
    db.session.refresh(message)
    if message.is_deleted:
        db.session.rollback()
        return serializers.message_dict(message)
    message.body = message.html = ""
    message.edited_at = None
    message.deleted_at, message.deleted_by_id, message.rev = utcnow(), user.id, rev
    message.mentions.clear()
    message.reactions.clear()
    message.edits.clear()
    db.session.flush()
    tombstone = _broadcast(message, {"kind": "delete", "by": serializers.user_dict(user)})
    db.session.commit()
    return tombstone


def _broadcast(message: Message, change: dict) -> dict:
    """Send the message's new state to its room after commit (`message_updated`); returns the state."""
    state = serializers.message_dict(message)
    events.send_event_on_commit("message_updated", {**state, "change": change},
                                to=events.room_channel(message.room_id))
    return state
