"""Reactions: one emoji per user per message, added and taken back."""
from __future__ import annotations

from flask import current_app

from app import events
from app.actions.message_edit import check_not_deleted
from app.actions.timeline import take_rev
from app.extensions import db
from app.lib import serializers
from app.lib.access import access_message
from app.lib.emoji import check_emoji
from app.lib.errors import ChatError
from app.models import Message, Reaction, User


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
    message, emoji = check_react(user, message_id, emoji)
    if _unchanged(message, user, emoji, on):
        return serializers.message_dict(message, viewer_id=user.id)
    rev = take_rev(message.room_id)
    db.session.refresh(message)  # as it is now, under the room's lock
    db.session.expire(message, ["reactions"])
    if message.is_deleted or _unchanged(message, user, emoji, on):
        db.session.rollback()  # the number goes back; a concurrent change got there first
        check_not_deleted(message)
        return serializers.message_dict(message, viewer_id=user.id)
    if on:
        message.reactions.append(Reaction(user_id=user.id, user=user, emoji=emoji))
    else:
        for reaction in message.reactions:
            if reaction.user_id == user.id and reaction.emoji == emoji:
                message.reactions.remove(reaction)
                break
    message.rev = rev
    db.session.flush()
    state = serializers.message_dict(message)
    change = {"kind": "reaction", "emoji": emoji, "by": serializers.user_dict(user), "on": on}
    events.send_event_on_commit("message_updated", {**state, "change": change},
                                to=events.room_channel(message.room_id))
    mine = serializers.message_dict(message, viewer_id=user.id)
    db.session.commit()
    return mine


def _unchanged(message: Message, user: User, emoji: str, on: bool) -> bool:
    """Whether the reaction is already as asked; ChatError if adding it would pass the cap."""
    emojis = {r.emoji for r in message.reactions}
    made = any(r.user_id == user.id and r.emoji == emoji for r in message.reactions)
    if made == on:
        return True
    limit = current_app.config["MAX_REACTIONS_PER_MESSAGE"]
    if on and emoji not in emojis and len(emojis) >= limit:
        raise ChatError("too_many", f"A message can carry at most {limit} different reactions.")
    return False
