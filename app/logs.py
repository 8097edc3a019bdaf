"""Logging with a request or event id on every line, so one action can be followed across logs."""
from __future__ import annotations

import logging
import sys
import uuid

from flask import Flask, g, has_app_context, request


def current_request_id() -> str:
    """The id of the HTTP request, socket event or task being handled ("-" outside any)."""
    if not has_app_context():
        return "-"
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex[:12]
    return g.request_id


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


def configure_logging(app: Flask) -> None:
    """One stderr handler on the root logger, with the request id in each line."""
    root = logging.getLogger()
    if not any(isinstance(f, RequestIdFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d %(request_id)s] %(name)s: %(message)s")
        )
        root.addHandler(handler)
        root.setLevel(app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def _take_request_id():
        # A proxy's id is kept when it is sane, so nginx and Chorus logs line up.
        incoming = request.headers.get("X-Request-ID", "")
        if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum():
            g.request_id = incoming

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = current_request_id()
        return response
