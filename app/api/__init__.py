"""The REST API under /api/v1: JSON in, JSON out, session cookie or bearer token."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import routes  # noqa: E402,F401
from app.api import presence  # noqa: E402,F401
from app.api import sessions  # noqa: E402,F401
