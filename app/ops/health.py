"""Reachability checks of the engines Chorus runs on."""
from __future__ import annotations

from flask import Flask
from sqlalchemy import text

from app.extensions import db


def _short(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def check_database() -> str | None:
    """None when the database answers, else why not."""
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any driver error means "not reachable"
        db.session.rollback()
        return _short(exc)
    finally:
        db.session.remove()


def check_redis(url: str | None) -> str | None:
    """None when Redis answers (or is not configured), else why not."""
    if not url:
        return None
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
        return None
    except Exception as exc:
        return _short(exc)


def check_services(app: Flask) -> dict[str, str]:
    """Every failing part by name ("database", "redis") with its error; empty when all is well."""
    problems = {}
    with app.app_context():
        database = check_database()
        if database:
            problems["database"] = database
    redis_problem = check_redis(app.config.get("REDIS_URL"))
    if redis_problem:
        problems["redis"] = redis_problem
    return problems


def describe(problems: dict[str, str]) -> str:
    """One line for a log or a terminal."""
    return "; ".join(f"{part} unreachable ({error})" for part, error in problems.items())
