"""Server-rendered pages; live updates come over Socket.IO."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from app.actions import memberships, notifications, rooms
from app.chat import bp
from app.chat.forms import CreateRoomForm, InviteForm
from app.lib import serializers, validation
from app.lib.access import access_room
from app.lib.errors import ChatError
from app.queries import history
from app.queries import notifications as notification_queries
from app.queries import rooms as room_queries


def page_context() -> dict:
    """What every signed-in page shows: the sidebar rooms and the bell."""
    return {
        "me": {**serializers.user_dict(current_user), "is_admin": current_user.is_admin},
        "sidebar_rooms": room_queries.get_rooms_for_user(current_user),
        "sidebar_dms": room_queries.get_dms(current_user),
        "wildcard_warn_members": current_app.config["WILDCARD_WARN_MEMBERS"],
        "unread_notifications": notification_queries.get_unread_count(current_user),
        "action_form": FlaskForm(),
    }


@bp.get("/")
@login_required
def index():
    """The lobby: your rooms, public rooms to join, a form to create one."""
    return render_template("chat/index.html", create_form=CreateRoomForm(), **page_context())


@bp.post("/rooms")
@login_required
def create_room():
    """Create a room from the lobby form."""
    form = CreateRoomForm()
    if form.validate_on_submit():
        try:
            room = rooms.do_create_room(current_user, form.name.data, form.topic.data, form.is_private.data)
        except ChatError as exc:
            flash(exc.message, "error")
        else:
            return redirect(url_for("chat.room", room_id=room.id))
    else:
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
    return render_template("chat/index.html", create_form=form, **page_context()), 400


@bp.get("/rooms/<int:room_id>")
@login_required
def room(room_id: int):
    """A room: the latest messages (or those around ?around=<id>) rendered here; new ones
    are appended live by the page script."""
    room_obj, membership = access_room(room_id, current_user)
    page, has_more, has_more_after = [], False, False
    around = validation.parse_id(request.args.get("around"), "around")
    members = []
    if membership is not None:
        if around is not None:
            try:
                page, has_more, has_more_after = history.get_messages_around(current_user, room_id, around)
            except ChatError:
                # A link to a message that is gone still opens its room, at the latest page.
                flash("That message is no longer in this room.", "info")
                around = None
        if around is None:
            page, has_more = history.get_messages(current_user, room_id)
        members = [serializers.user_dict(u) for u in room_queries.get_members(room_obj)]
    return render_template(
        "chat/room.html",
        room=room_queries.room_view(room_obj, current_user),
        messages=page,
        has_more=has_more,
        has_more_after=has_more_after,
        around=around,
        members=members,
        invite_form=InviteForm(),
        max_length=current_app.config["MESSAGE_MAX_LENGTH"],
        **page_context(),
    )


def _room_form_action(room_id: int, action) -> object:
    if FlaskForm().validate_on_submit():
        try:
            action()
        except ChatError as exc:
            flash(exc.message, "error")
    return redirect(url_for("chat.room", room_id=room_id))


@bp.post("/rooms/<int:room_id>/join")
@login_required
def join_room(room_id: int):
    """Join a public room."""
    return _room_form_action(room_id, lambda: memberships.do_join_room(current_user, room_id))


@bp.post("/rooms/<int:room_id>/invite")
@login_required
def invite(room_id: int):
    """Add someone to the room."""
    form = InviteForm()
    if not form.validate_on_submit():
        flash("Give a username.", "error")
        return redirect(url_for("chat.room", room_id=room_id))
    try:
        invitee = memberships.do_invite_user(current_user, room_id, form.username.data.strip())
    except ChatError as exc:
        flash(exc.message, "error")
    else:
        flash(f"{invitee.username} was added to the room.", "info")
    return redirect(url_for("chat.room", room_id=room_id))


@bp.post("/rooms/<int:room_id>/leave")
@login_required
def leave_room(room_id: int):
    """Leave a room and go back to the lobby."""
    if FlaskForm().validate_on_submit():
        try:
            memberships.do_leave_room(current_user, room_id)
        except ChatError as exc:
            flash(exc.message, "error")
            return redirect(url_for("chat.room", room_id=room_id))
    return redirect(url_for("chat.index"))


@bp.get("/notifications")
@login_required
def notifications_page():
    """Every recent notification, newest first, each linking to its message."""
    items = notification_queries.get_notifications(current_user, limit=100)
    return render_template(
        "chat/notifications.html",
        notifications=[serializers.notification_dict(n) for n in items],
        **page_context(),
    )


@bp.post("/notifications/read")
@login_required
def mark_all_read():
    """Mark every notification read."""
    if FlaskForm().validate_on_submit():
        try:
            notifications.do_mark_notifications_read(current_user, all_=True)
        except ChatError as exc:
            flash(exc.message, "error")
    return redirect(url_for("chat.notifications_page"))
