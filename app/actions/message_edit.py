"""Editing and deleting messages; every edit keeps the text it replaced."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app

from app import events
from app.actions import threads, timeline
from app.actions.messages import check_message_body, check_wildcards, resolve_mentions
from app.extensions import db
from app.lib import serializers
from app.lib.access import access_message
from app.lib.errors import ChatError
from app.lib.render import parse_message, render_parsed
from app.models import Mention, Message, MessageEdit, Reaction, User
from app.models.base import utcnow

_edits, _mentions, _reactions = MessageEdit.__table__, Mention.__table__, Reaction.__table__


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
    take the room's lock: the later one, finding the message changed, reads it again, so its
    previous text is the earlier one's.
    """
    from app import tasks  # tasks import actions

    for _attempt in range(timeline.ATTEMPTS):
        message, body = check_edit_message(user, message_id, body)
        if body == message.body:
            return serializers.message_dict(message, viewer_id=user.id)
        parsed = parse_message(body)
        if set(parsed.wildcards) - set(parse_message(message.body).wildcards):
            # An @room or @here added by an edit notifies nobody (people are told once, at the
            # send), but a room that keeps them to its owner refuses it as it would the send.
            check_wildcards(user, message.room_id)
        mentioned = resolve_mentions(message.room_id, parsed.mentions, exclude_user_id=message.author_id)
        html = render_parsed(parsed, {u.username_key: u.username for u in mentioned})
        # The mentions as they will be: those kept, in their order, then the new ones.
        new_ids = {u.id for u in mentioned}
        had = {m.user_id: m.user.username for m in message.mentions}
        removed = [user_id for user_id in had if user_id not in new_ids]
        added = [u for u in mentioned if u.id not in had]
        mentions = [name for user_id, name in had.items() if user_id in new_ids] + [u.username for u in added]
        reactions = serializers.reaction_rows(message)
        previous_body, previous_html, now = message.body, message.html, utcnow()
        # Read now, not while the room is locked.
        author, quote = serializers.user_dict(message.author), serializers.quote_of(message)
        rev = timeline.change_message(message, body=body, html=html, edited_at=now)
        if rev is None:
            db.session.rollback()  # changed since it was read: read it again
            continue
        connection = db.session.connection()
        connection.execute(_edits.insert().values(
            message_id=message.id, editor_id=user.id, previous_body=previous_body, previous_html=previous_html,
            edited_at=now))
        if removed:
            connection.execute(_mentions.delete().where(
                _mentions.c.message_id == message.id, _mentions.c.user_id.in_(removed)))
        if added:
            connection.execute(_mentions.insert(), [{"message_id": message.id, "user_id": u.id} for u in added])
            if message.thread_root_id is not None:
                threads.follow_mentioned(message.thread_root_id, [u.id for u in added])
            events.enqueue_on_commit(tasks.notify_mentions, message.id)
        state = dict(rev=rev, reactions=reactions, mentions=mentions, author=author, quote=quote, body=body,
                     html=html, edited_at=now)
        timeline.send_change_on_commit(serializers.changed_message_dict(message, **state),
                                       {"kind": "edit", "by": serializers.user_dict(user)})
        mine = serializers.changed_message_dict(message, viewer_id=user.id, **state)
        db.session.commit()
        return mine
    raise timeline.raced()


def do_delete_message(user: User, message_id: int) -> dict:
    """Delete a message, leaving a tombstone: its text, edit history, mentions and reactions go.

    The author may (within the edit window), as may the room's owner and administrators at
    any time. Deleting a deleted message changes nothing and answers its tombstone.
    """
    for _attempt in range(timeline.ATTEMPTS):
        message, room, membership = access_message(message_id, user, as_member=not user.is_admin)
        if message.is_deleted:
            return serializers.message_dict(message)
        moderator = user.is_admin or (membership is not None and room.owner_id == user.id)
        if message.author_id != user.id and not moderator:
            raise ChatError("forbidden", "Only its author or a moderator can delete a message.")
        if not moderator:
            _check_window(message, "deleted")
        author, now = serializers.user_dict(message.author), utcnow()
        rev = timeline.change_message(message, body="", html="", edited_at=None, deleted_at=now,
                                      deleted_by_id=user.id)
        if rev is None:
            db.session.rollback()
            continue
        connection = db.session.connection()
        for table in (_mentions, _reactions, _edits):
            connection.execute(table.delete().where(table.c.message_id == message.id))
        tombstone = serializers.tombstone_fields(message.id, message.room_id, message.seq, rev, author,
                                                 message.created_at, now, **serializers.thread_fields(message))
        by = serializers.user_dict(user)
        timeline.send_change_on_commit(tombstone, {"kind": "delete", "by": by})
        if message.thread_root_id is not None:
            threads.update_summary(message.room_id, message.thread_root_id, by=by)  # one reply fewer
        db.session.commit()
        return tombstone
    raise timeline.raced()

