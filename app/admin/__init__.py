"""The administrators' console (Flask-Admin) at /admin."""
from __future__ import annotations

from flask import Flask, abort, flash
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from jinja2 import BaseLoader, ChoiceLoader, PackageLoader, TemplateNotFound

from app.actions import message_edit as message_actions
from app.actions import users as user_actions
from app.extensions import db
from app.lib import validation
from app.lib.errors import ChatError
from app.models import Membership, Message, Notification, Room, User
from app.security import csp_nonce


class _AdminOnly:
    """Everyone but a logged-in administrator gets 403 (the page offers anonymous users a login link)."""

    def is_accessible(self) -> bool:
        return current_user.is_authenticated and current_user.is_admin

    def inaccessible_callback(self, name, **kwargs):
        abort(403, description="Administrators only." if current_user.is_authenticated
              else "Administrators only: log in with an administrator account.")


class ChorusIndexView(_AdminOnly, AdminIndexView):
    """The console's front page with a few counts."""

    @expose("/")
    def index(self):
        counts = {
            name: db.session.execute(db.select(db.func.count()).select_from(model)).scalar_one()
            for name, model in (("Users", User), ("Rooms", Room), ("Messages", Message),
                                ("Notifications", Notification))
        }
        return self.render("admin/chorus_index.html", counts=counts)


class ReadOnlyView(_AdminOnly, ModelView):
    """Browse and search; every change goes through app.actions, never a raw form edit."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50

    def _get_list_extra_args(self):
        args = super()._get_list_extra_args()
        # The page number becomes an SQL OFFSET, a 64-bit integer: past it the database
        # refuses the query, which is a bad link, not a server fault.
        if args.page and not 0 <= args.page <= validation.MAX_ID // self.page_size:
            abort(400, description="No such page.")
        return args


class UserView(ReadOnlyView):
    """Users, with actions to disable, enable and promote."""

    column_list = ("id", "username", "display_name", "is_admin", "is_disabled", "created_at")
    column_exclude_list = ("password_hash", "username_key")
    column_details_exclude_list = ("password_hash", "username_key", "tokens")
    column_searchable_list = ("username", "display_name")
    column_filters = ("is_admin", "is_disabled")

    def _apply(self, ids, change, done: str):
        for user in db.session.execute(db.select(User).filter(User.id.in_([int(i) for i in ids]))).scalars():
            change(user)
        flash(done, "success")

    @action("disable", "Disable", "Disable the selected users and close their live connections?")
    def action_disable(self, ids):
        """Disable accounts."""
        self._apply(ids, lambda u: user_actions.do_disable_user(u, True), "Users disabled.")

    @action("enable", "Enable")
    def action_enable(self, ids):
        """Re-enable accounts."""
        self._apply(ids, lambda u: user_actions.do_disable_user(u, False), "Users enabled.")

    @action("make_admin", "Make administrator", "Give the selected users administrator rights?")
    def action_make_admin(self, ids):
        """Grant admin rights."""
        self._apply(ids, lambda u: user_actions.do_set_admin(u, True), "Administrators added.")


class RoomView(ReadOnlyView):
    """Rooms."""

    column_list = ("id", "kind", "name", "topic", "is_private", "wildcard_policy", "owner", "created_at")
    column_exclude_list = ("name_key",)
    # Room ids are random, so they say nothing of age: newest first, id breaking ties.
    column_default_sort = [("created_at", True), ("id", False)]
    column_searchable_list = ("name", "topic")
    column_filters = ("is_private", "kind")


class MembershipView(ReadOnlyView):
    """Who is in which room."""

    column_list = ("id", "room", "user", "joined_at", "last_read_message_id")


class MessageView(ReadOnlyView):
    """Messages, newest first, with an action to delete them (leaving tombstones)."""

    column_list = ("id", "room", "author", "body", "client_id", "created_at", "edited_at", "deleted_at")
    column_searchable_list = ("body",)
    column_default_sort = ("id", True)
    column_exclude_list = ("html",)

    @action("delete_messages", "Delete", "Delete the selected messages? Their text goes for good; members see "
            "\"This message was deleted\".")
    def action_delete_messages(self, ids):
        """Delete messages as a moderator, through the same action as the room page."""
        admin = current_user._get_current_object()
        for message_id in sorted(int(i) for i in ids):
            try:
                message_actions.do_delete_message(admin, message_id)
            except ChatError as exc:
                db.session.rollback()
                flash(f"Message {message_id}: {exc.message}", "error")
                return
        flash("Messages deleted.", "success")


class NotificationView(ReadOnlyView):
    """Notifications, newest first."""

    column_list = ("id", "user", "kind", "room", "message_id", "created_at", "read_at")
    column_default_sort = ("id", True)


# Inline handlers in Flask-Admin's own templates that templates/admin/ does not replace
# whole: the Content-Security-Policy refuses them, and static/js/admin.js does their work.
_INLINE_HANDLERS = {"admin/model/layout.html": ' onclick="return false;"'}


class _WithoutInlineHandlers(BaseLoader):
    """Flask-Admin's installed templates named in _INLINE_HANDLERS, with those handlers taken out."""

    def __init__(self) -> None:
        self._installed = PackageLoader("flask_admin", "templates/bootstrap4")

    def get_source(self, environment, template):
        """The installed template's source without its inline handler; others are not ours."""
        handler = _INLINE_HANDLERS.get(template)
        if handler is None:
            raise TemplateNotFound(template)
        source, filename, uptodate = self._installed.get_source(environment, template)
        return source.replace(handler, ""), filename, uptodate


def init_admin(app: Flask) -> None:
    """Mount the console on the app (a new Admin per app keeps tests independent)."""
    app.jinja_env.loader = ChoiceLoader([_WithoutInlineHandlers(), app.jinja_env.loader])
    admin = Admin(app, name="Chorus admin", index_view=ChorusIndexView(url="/admin"), csp_nonce_generator=csp_nonce)
    admin.add_view(UserView(User, db, name="Users"))
    admin.add_view(RoomView(Room, db, name="Rooms"))
    admin.add_view(MembershipView(Membership, db, name="Memberships"))
    admin.add_view(MessageView(Message, db, name="Messages"))
    admin.add_view(NotificationView(Notification, db, name="Notifications"))
