"""Forms for the account pages."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired(), Length(max=32)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("Keep me logged in")


class TokenForm(FlaskForm):
    """A new API token."""

    name = StringField("Token name", validators=[DataRequired(), Length(max=64)])


class RegisterForm(FlaskForm):
    """A new account."""

    username = StringField(
        "Username",
        validators=[DataRequired(), Regexp(r"^[A-Za-z0-9_]{1,32}$", message="1-32 letters, digits or underscores.")],
    )
    display_name = StringField("Display name", validators=[Optional(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=256)])
    confirm = PasswordField("Repeat password", validators=[EqualTo("password", message="Passwords differ.")])


class PasswordForm(FlaskForm):
    """A new password, given the current one."""

    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=256)])
    confirm = PasswordField("Repeat the new password",
                            validators=[EqualTo("new_password", message="Passwords differ.")])
