"""Account pages: thin wrappers over app.actions.users."""
import re
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm

from app.actions import users
from app.auth import bp
from app.auth.forms import LoginForm, PasswordForm, RegisterForm, TokenForm
from app.extensions import login_manager
from app.lib.errors import ChatError
from app.lib import serializers
from app.realtime import identity
from app.security import bearer_token, login_limit, registration_limit


@login_manager.user_loader
def load_user(user_id: str):
    """Flask-Login: the user of the login session named in the cookie ("<user id>:<secret>").

    During a socket's events, the socket's own copy (no query); otherwise one query for the
    user and the session, which must be neither revoked nor expired.
    """
    user = identity.connected_user(user_id)
    if user is not None:
        return user
    if bearer_token(request) is not None:
        # Flask-Login asks this loader first whenever a session cookie came along. A request
        # carrying a bearer token is that token's alone: the cookie must not authenticate a
        # call that, being a bearer call, skips the CSRF check.
        return load_user_from_request(request)
    user = users.get_user_by_session(user_id, request.remote_addr)
    if user is not None and identity.is_socket_event():
        identity.remember(user)  # a socket re-checking its session keeps the fresh copy
    return user


@login_manager.request_loader
def load_user_from_request(req):
    """Flask-Login: a bearer token in the Authorization header."""
    token = bearer_token(req)
    return users.get_user_by_token(token) if token is not None else None


@login_manager.unauthorized_handler
def unauthorized():
    """JSON 401 for the API, the login page for everything else."""
    if request.path.startswith("/api/"):
        return {"error": {"code": "unauthorized", "message": "Log in or send a bearer token."}}, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


# Browsers read a backslash as a slash ("/\evil.example" goes to evil.example), and a
# CR or LF cannot go into a Location header at all.
_UNSAFE_IN_PATH = re.compile(r"[\\\x00-\x20\x7f]")


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would hand phishers a trusted link.
    if (target and target.startswith("/") and not target.startswith("//") and not _UNSAFE_IN_PATH.search(target)
            and not urlsplit(target).netloc):
        return target
    return url_for("chat.index")


@bp.route("/login", methods=["GET", "POST"])
@login_limit
def login():
    """Log in with username and password."""
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    form = LoginForm()
    status = 400 if form.is_submitted() else 200
    headers = {}
    if form.validate_on_submit():
        try:
            user = users.authenticate(form.username.data, form.password.data, request.remote_addr)
        except ChatError as exc:
            flash(exc.message, "error")
            status = exc.status
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
        else:
            users.do_start_session(user, request.user_agent.string, request.remote_addr)
            login_user(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status, headers


@bp.route("/register", methods=["GET", "POST"])
@registration_limit
def register():
    """Create an account and log in."""
    if not current_app.config["REGISTRATION_OPEN"]:
        return render_template("error.html", code=403, message="Registration is closed on this server."), 403
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = users.do_register_user(form.username.data, form.password.data, form.display_name.data)
        except ChatError as exc:
            field = getattr(form, exc.field, None) if exc.field else None
            (field.errors if field is not None else form.form_errors).append(exc.message)
        else:
            users.do_start_session(user, request.user_agent.string, request.remote_addr)
            login_user(user)
            return redirect(url_for("chat.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


@bp.get("/account")
@login_required
def account():
    """The profile page: password, login sessions, API tokens for bots and scripts."""
    return _account_page()


def _account_page(new_token: str | None = None, status: int = 200, password_form: PasswordForm | None = None):
    from app.chat.routes import page_context  # the sidebar and bell every signed-in page shows

    tokens = [serializers.token_dict(t) for t in users.get_api_tokens(current_user)]
    current = current_user.login.session_id if current_user.login is not None else None
    sessions = [serializers.session_dict(s, current_id=current) for s in users.get_active_sessions(current_user)]
    return render_template(
        "account/tokens.html", tokens=tokens, token_form=TokenForm(), new_token=new_token,
        sessions=sessions, password_form=password_form or PasswordForm(formdata=None), **page_context()
    ), status


@bp.post("/account/password")
@login_required
def change_password():
    """Change the password; every other session is logged out."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _account_page(status=400, password_form=form)
    try:
        revoked = users.do_change_password(current_user, form.current_password.data, form.new_password.data)
    except ChatError as exc:
        field = getattr(form, exc.field, None) if exc.field else None
        (field.errors if field is not None else form.form_errors).append(exc.message)
        if exc.code == "rate_limited":
            flash(exc.message, "error")
        return _account_page(status=exc.status, password_form=form)
    flash(f"Password changed. {_sessions_ended(revoked)}", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/sessions/<int:session_id>/revoke")
@login_required
def revoke_session(session_id: int):
    """Log one session out; revoking this one is a logout."""
    if FlaskForm().validate_on_submit():
        try:
            users.do_revoke_session(current_user, session_id)
        except ChatError as exc:
            flash(exc.message, "error")
        else:
            if current_user.login is not None and current_user.login.session_id == session_id:
                logout_user()
                return redirect(url_for("auth.login"))
            flash("Session logged out.", "info")
    return redirect(url_for("auth.account"))


@bp.post("/account/sessions/logout-all")
@login_required
def logout_everywhere():
    """Log out every session of the account, this one included."""
    if not FlaskForm().validate_on_submit():
        return redirect(url_for("auth.account"))
    revoked = users.do_end_all_sessions(current_user)
    logout_user()
    flash(f"Logged out everywhere. {_sessions_ended(revoked)}", "info")
    return redirect(url_for("auth.login"))


def _sessions_ended(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended."


@bp.post("/account/tokens")
@login_required
def create_token():
    """Issue a token and show it once."""
    form = TokenForm()
    if not form.validate_on_submit():
        flash("Name the token (at most 64 characters).", "error")
        return _account_page(status=400)
    token = users.do_create_api_token(current_user, form.name.data)
    return _account_page(new_token=token)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    """Revoke a token: it stops working at once."""
    if FlaskForm().validate_on_submit():
        try:
            users.do_revoke_api_token(current_user, token_id)
        except ChatError as exc:
            flash(exc.message, "error")
        else:
            flash("Token revoked.", "info")
    return redirect(url_for("auth.account"))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out: the session is revoked (its cookies die with it) and the user's sockets close."""
    users.do_end_session(current_user)
    logout_user()
    return redirect(url_for("auth.login"))
