"""Account pages: thin wrappers over app.actions.users."""
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app import events
from app.actions import users
from app.auth import bp
from app.auth.forms import LoginForm, RegisterForm
from app.extensions import db, login_manager
from app.lib.errors import ChatError
from app.models import User


@login_manager.user_loader
def load_user(user_id: str):
    """Flask-Login: the user stored in the session."""
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


@login_manager.request_loader
def load_user_from_request(req):
    """Flask-Login: a bearer token in the Authorization header."""
    header = req.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return users.get_user_by_token(header[len("Bearer "):].strip())
    return None


@login_manager.unauthorized_handler
def unauthorized():
    """JSON 401 for the API, the login page for everything else."""
    if request.path.startswith("/api/"):
        return {"error": {"code": "unauthorized", "message": "Log in or send a bearer token."}}, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would hand phishers a trusted link.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("chat.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with username and password."""
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    form = LoginForm()
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            user = users.authenticate(form.username.data, form.password.data)
        except ChatError as exc:
            flash(exc.message, "error")
            status = 401
        else:
            login_user(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), status


@bp.route("/register", methods=["GET", "POST"])
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
            login_user(user)
            return redirect(url_for("chat.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out; the user's live sockets close with the session."""
    user_id = current_user.id
    logout_user()
    events.disconnect_user_now(user_id)
    return redirect(url_for("auth.login"))
