"""Reactions: one emoji per user per message, added and taken back."""
from __future__ import annotations

from flask import current_app

from app.actions import timeline
from app.actions.message_edit import check_not_deleted
from app.extensions import db
from app.lib import serializers
from app.lib.access import access_message
from app.lib.emoji import check_emoji
from app.lib.errors import ChatError
from app.models import Message, Reaction, User
from app.models.base import utcnow

_reactions = Reaction.__table__


def check_react(user: User, message_id: int, emoji: str) -> tuple[Message, str]:
    """The message a member may react to and the emoji, normalised; ChatError otherwise."""
    emoji = check_emoji(emoji)
    message, _room, _membership = access_message(message_id, user)
    check_not_deleted(message)
    return message, emoji


def do_react(user: User, message_id: int, emoji: str, on: bool) -> dict:
    """Add (on) or take back the user's reaction and broadcast the message's new reactions;
    returns the message as the user sees it.

    Adding a reaction the user already made, or taking back one they did not, changes
    nothing. A message carries at most MAX_REACTIONS_PER_MESSAGE distinct emoji.
    """
    for _attempt in range(timeline.ATTEMPTS):
        message, emoji = check_react(user, message_id, emoji)
        rows = serializers.reaction_rows(message)
        made = any(e == emoji and user_id == user.id for e, user_id, _ in rows)
        if made == on:
            return serializers.message_dict(message, viewer_id=user.id)
        limit, used = current_app.config["MAX_REACTIONS_PER_MESSAGE"], {e for e, _, _ in rows}
        if on and emoji not in used and len(used) >= limit:
            raise ChatError("too_many", f"A message can carry at most {limit} different reactions.")
        # Everything the new state needs is read now, not while the room is locked.
        mentions, author = serializers.mention_names(message), serializers.user_dict(message.author)
        quote = serializers.quote_of(message)
        rev = timeline.change_message(message)
        if rev is None:
            db.session.rollback()  # changed since it was read: read it again
            continue
        if on:
            db.session.execute(_reactions.insert().values(
                message_id=message.id, user_id=user.id, emoji=emoji, created_at=utcnow()))
            rows.append((emoji, user.id, user.username))
        else:
            db.session.execute(_reactions.delete().where(
                _reactions.c.message_id == message.id, _reactions.c.user_id == user.id, _reactions.c.emoji == emoji))
            rows = [row for row in rows if not (row[0] == emoji and row[1] == user.id)]
        fields = dict(rev=rev, reactions=rows, mentions=mentions, author=author, quote=quote)
        change = {"kind": "reaction", "emoji": emoji, "by": serializers.user_dict(user), "on": on}
        timeline.send_change_on_commit(serializers.changed_message_dict(message, **fields), change)
        mine = serializers.changed_message_dict(message, viewer_id=user.id, **fields)
        db.session.commit()
        return mine
    raise timeline.raced()
