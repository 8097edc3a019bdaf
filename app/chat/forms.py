"""Forms on the chat pages (CSRF-protected; the actions validate the values)."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length, Optional


class CreateRoomForm(FlaskForm):
    """A new room."""

    name = StringField(
        "Name", validators=[DataRequired(message="Give the room a name."), Length(max=64)]
    )
    topic = StringField("Topic", validators=[Optional(), Length(max=250)])
    is_private = BooleanField("Private (invite only)")


class InviteForm(FlaskForm):
    """Add someone to a room by username."""

    username = StringField("Username", validators=[DataRequired(), Length(max=32)])
