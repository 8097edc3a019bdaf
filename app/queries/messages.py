"""One message as a member sees it, and its edit history."""
from __future__ import annotations

from app.extensions import db
from app.lib import serializers
from app.lib.access import access_message
from app.lib.errors import ChatError
from app.models import MessageEdit, User


def get_message(user: User, message_id: int) -> dict:
    """The message's current state (a tombstone once deleted), as the user sees it."""
    message, _room, _membership = access_message(message_id, user)
    return serializers.message_dict(message, viewer_id=user.id)


def get_message_history(user: User, message_id: int) -> dict:
    """Every version of a message's text, oldest first, with when and by whom each was
    written; the last is the current one. A deleted message has none left (`gone`)."""
    message, _room, _membership = access_message(message_id, user)
    if message.is_deleted:
        raise ChatError("gone", "This message was deleted.")
    edits = db.session.execute(
        db.select(MessageEdit).filter_by(message_id=message.id).order_by(MessageEdit.id)
    ).scalars().all()
    # Version 0 was written when the message was sent; version i by the i-th edit.
    written = [(message.created_at, message.author)] + [(e.edited_at, e.editor) for e in edits]
    texts = [(e.previous_body, e.previous_html) for e in edits] + [(message.body, message.html)]
    versions = [
        {"body": body, "html": html, "at": serializers.iso(at),
         "by": serializers.user_dict(by) if by is not None else None}
        for (at, by), (body, html) in zip(written, texts)
    ]
    return {"message_id": message.id, "versions": versions}
