"""The data model: one module per aggregate, re-exported here."""
from app.models.messages import Mention, Message, MessageEdit, Reaction, ThreadFollow
from app.models.notifications import Notification
from app.models.rooms import Membership, Room
from app.models.users import ApiToken, Login, User, UserSession

__all__ = [
    "ApiToken", "Login", "Membership", "Mention", "Message", "MessageEdit", "Notification", "Reaction", "Room",
    "ThreadFollow", "User", "UserSession",
]
