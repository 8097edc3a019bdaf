"""REST routes for the caller's password and login sessions."""
from __future__ import annotations

from flask_login import current_user, login_required, logout_user

from app.actions import users
from app.api import bp
from app.api.routes import _json
from app.lib import serializers, validation


@bp.post("/me/password")
@login_required
def change_password():
    """Change the caller's password, given the current one; every other session ends."""
    data = _json()
    revoked = users.do_change_password(
        current_user, validation.get_str(data, "current_password"), validation.get_str(data, "new_password")
    )
    return {"revoked_sessions": revoked}


@bp.get("/me/sessions")
@login_required
def list_sessions():
    """The caller's live login sessions, the one this request came through marked current."""
    current = current_user.login.session_id if current_user.login is not None else None
    return {"sessions": [serializers.session_dict(s, current_id=current)
                         for s in users.get_active_sessions(current_user)]}


@bp.delete("/me/sessions")
@login_required
def logout_everywhere():
    """End every login session of the caller (bearer tokens are not sessions and keep working)."""
    revoked = users.do_end_all_sessions(current_user)
    if current_user.login is not None:
        logout_user()
    return {"revoked_sessions": revoked}


@bp.delete("/me/sessions/<int:session_id>")
@login_required
def revoke_session(session_id: int):
    """End one of the caller's login sessions."""
    users.do_revoke_session(current_user, session_id)
    if current_user.login is not None and current_user.login.session_id == session_id:
        logout_user()
    return "", 204
