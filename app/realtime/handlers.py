"""Socket.IO handlers: authenticate, parse, call one action, acknowledge."""
from __future__ import annotations

import functools
import logging

from flask import current_app, request
from flask_login import current_user, login_user
from flask_socketio import ConnectionRefusedError, disconnect, join_room

from app import events, ratelimit
from app.actions import message_edit, messages, reactions, read_markers, users
from app.extensions import db, socketio
from app.lib import validation
from app.lib.errors import ChatError
from app.ops import metrics
from app.queries import rooms as room_queries
from app.realtime import guard, identity, presence, typing_relay

log = logging.getLogger(__name__)


def _registry():
    return current_app.extensions["chorus.sockets"]


@socketio.on("connect")
def on_connect(auth=None):
    """Accept a socket logged in by session cookie or `auth: {token}`; subscribe its channels."""
    user = None
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        user = users.get_user_by_token(auth["token"])
        if user is not None:
            # Only this socket's copy of the session: the HTTP session is untouched.
            login_user(user)
    elif current_user.is_authenticated:
        user = current_user._get_current_object()
    if user is None or user.is_disabled:
        raise ConnectionRefusedError("Log in first.", {"code": "unauthorized"})
    identity.remember(user)
    join_room(events.user_channel(user.id))
    for room_id in room_queries.get_room_ids_for_user(user.id):
        join_room(events.room_channel(room_id))
    _registry().add(user.id, request.sid)
    metrics.connected_sockets.inc()
    presence.socket_connected(user.id, request.sid)


@socketio.on("disconnect")
def on_disconnect(*_args):
    """Forget the socket and close its connection.

    By sid, not by current_user: a disconnect caused by an HTTP logout or an admin's
    disable runs inside that request, whose user is someone else or nobody.
    """
    manager = socketio.server.manager
    if manager.is_connected(request.sid, request.namespace):
        # python-socketio marks a socket as leaving before it calls this; anything else is
        # not a disconnect (guard.Packet already refuses a client's event of that name).
        log.warning("disconnect handler called for connected socket %s; ignored", request.sid)
        return
    # Each step on its own: a registry that fails (Redis away) must not keep the socket
    # "online" in presence, whose heartbeat would otherwise refresh it for ever.
    try:
        presence.socket_disconnected(request.sid)
    except Exception:  # Redis away: the socket's entry expires with the TTL; the close must still happen
        log.warning("could not record the disconnect of %s in presence", request.sid, exc_info=True)
    try:
        if _registry().remove(request.sid):
            metrics.connected_sockets.dec()
    except Exception:  # Redis away: a dead sid in the registry is harmless and expires
        log.warning("could not forget socket %s in the registry", request.sid, exc_info=True)
    # The Engine.IO session goes too: left open, it could CONNECT again with the socket's
    # copy of a session that has since been logged out.
    guard.close_connection(socketio.server, manager.eio_sid_from_sid(request.sid, request.namespace))


def socket_action(handler):
    """Run a handler for a logged-in socket and turn its outcome into an ack dict."""

    @functools.wraps(handler)
    def wrapper(data=None, *extra):
        if not current_user.is_authenticated or current_user.is_disabled:
            disconnect()
            return {"ok": False, "error": {"code": "unauthorized", "message": "Log in first."}}
        try:
            ratelimit.check_socket_event(current_user.id, request.event["message"])
            result = handler(validation.require_mapping(data))
        except ChatError as exc:
            db.session.rollback()
            return {"ok": False, **exc.to_dict()}
        except Exception:
            db.session.rollback()
            log.exception("socket handler %s failed", handler.__name__)
            return {"ok": False, "error": {"code": "internal", "message": "Something went wrong; try again."}}
        return {"ok": True, **result}

    return wrapper


@socketio.on("send")
@socket_action
def on_send(data: dict) -> dict:
    """client -> send {room_id, body, client_id, thread_root_id?, also_in_room?, quote_of?};
    ack {ok, message, duplicate}."""
    result = messages.do_send_message(
        current_user,
        validation.get_int(data, "room_id"),
        validation.get_str(data, "body"),
        validation.get_str(data, "client_id", required=False),
        **validation.get_reply_fields(data),
    )
    return {"message": result.data, "duplicate": not result.created}


@socketio.on("edit")
@socket_action
def on_edit(data: dict) -> dict:
    """client -> edit {message_id, body}; ack {ok, message}."""
    return {"message": message_edit.do_edit_message(
        current_user, validation.get_int(data, "message_id"), validation.get_str(data, "body"))}


@socketio.on("delete")
@socket_action
def on_delete(data: dict) -> dict:
    """client -> delete {message_id}; ack {ok, message} (the tombstone)."""
    return {"message": message_edit.do_delete_message(current_user, validation.get_int(data, "message_id"))}


@socketio.on("react")
@socket_action
def on_react(data: dict) -> dict:
    """client -> react {message_id, emoji, on}; ack {ok, message}."""
    return {"message": reactions.do_react(
        current_user, validation.get_int(data, "message_id"), validation.get_str(data, "emoji"),
        validation.get_bool(data, "on", True))}


@socketio.on("read")
@socket_action
def on_read(data: dict) -> dict:
    """client -> read {room_id, message_id?}; ack {ok, last_read_message_id}."""
    last = read_markers.do_mark_room_read(
        current_user, validation.get_int(data, "room_id"), validation.get_int(data, "message_id", required=False)
    )
    return {"last_read_message_id": last}


@socketio.on("activity")
@socket_action
def on_activity(data: dict) -> dict:
    """client -> activity {}: the page had input (the user is active); ack {ok}."""
    presence.record_activity(current_user.id)
    return {}


@socketio.on("typing")
@socket_action
def on_typing(data: dict) -> dict:
    """client -> typing {room_id, thread_root_id?, stop?}; relayed to the room's other sockets; ack {ok}."""
    typing_relay.relay_typing(
        current_user, request.sid, validation.get_int(data, "room_id"),
        validation.get_int(data, "thread_root_id", required=False), validation.get_bool(data, "stop", False),
    )
    return {}


@socketio.on_error_default
def on_error(exc):
    """Last resort for errors outside socket_action: log, never crash the server."""
    db.session.rollback()
    log.exception("unhandled socket error: %s", exc)
    if request.event["message"] == "connect":
        # Returning would accept the socket half set up: not registered, so no logout would reach it.
        raise ConnectionRefusedError("Something went wrong; try again.", {"code": "internal"})
    return {"ok": False, "error": {"code": "internal", "message": "Something went wrong; try again."}}
