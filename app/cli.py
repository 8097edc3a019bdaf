"""flask sub-commands: create-admin, seed-demo."""
from __future__ import annotations

import click
from flask import Flask, current_app

from app.actions import memberships, messages, rooms, users
from app.extensions import db
from app.lib.access import get_membership
from app.lib.errors import ChatError
from app.models import Room

DEMO_USERS = (("alice", "Alice Archer"), ("bob", "Bob Baker"), ("carol", "Carol Chen"))


def register(app: Flask) -> None:
    """Attach the commands to the app's CLI."""

    @app.cli.command("create-admin")
    @click.argument("username")
    @click.option("--password", envvar="CHORUS_ADMIN_PASSWORD", help="For a new user; prompted if missing.")
    def create_admin(username: str, password: str | None) -> None:
        """Make USERNAME an administrator, creating the account if needed."""
        user = users.get_user_by_username(username)
        if user is None:
            if not password:
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            try:
                user = users.do_register_user(username, password, is_admin=True, check_open=False)
            except ChatError as exc:
                raise click.ClickException(exc.message) from None
            click.echo(f"Created administrator {user.username}.")
        else:
            users.do_set_admin(user, True)
            click.echo(f"{user.username} is now an administrator.")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Create the demo users and the general room (safe to run again)."""
        password = current_app.config["DEMO_PASSWORD"]
        demo = []
        for username, display_name in DEMO_USERS:
            user = users.get_user_by_username(username)
            if user is None:
                user = users.do_register_user(username, password, display_name, check_open=False)
            demo.append(user)
        owner = demo[0]
        # The public one: private rooms may be called "general" too.
        room = db.session.execute(
            db.select(Room).filter_by(name_key="general", is_private=False)
        ).scalar_one_or_none()
        if room is None:
            room = rooms.do_create_room(owner, "general", "Company-wide announcements and chatter")
            messages.do_send_message(owner, room.id, "Welcome to **Chorus**! Say hi, and mention a teammate with @username.",
                                     client_id="seed-welcome")
        for user in demo[1:]:
            if get_membership(room.id, user.id) is None:
                memberships.do_invite_user(owner, room.id, user.username)
        click.echo("Demo ready: room 'general' with users " + ", ".join(u.username for u in demo))
        click.echo(f"Log in as any of them with the password: {password}")
