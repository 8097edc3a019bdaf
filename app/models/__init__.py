"""The data model: one module per aggregate, re-exported here."""
from app.models.messages import Mention, Message
from app.models.notifications import Notification
from app.models.rooms import Membership, Room
from app.models.users import ApiToken, User

__all__ = ["ApiToken", "Membership", "Mention", "Message", "Notification", "Room", "User"]
