"""The history query (app.queries.history) on SQLite and on PostgreSQL: the dicts it builds
from columns are exactly `serializers.message_dict`'s, and a page costs a fixed number of
statements whatever its size (the mentions and reactions come in the page's rows on
PostgreSQL, in two more statements on SQLite). Edited, deleted and reacted-to messages are in
the pages too.

The other history tests (paging, windows, refusals, REST) run on SQLite in test_history.py.
"""
from __future__ import annotations

import pytest
from sqlalchemy import event

from app.actions import message_edit, messages, reactions
from app.extensions import db
from app.lib import serializers
from app.lib.errors import ChatError
from app.models import Message, User
from app.queries import history
from tests.conftest import sqlite_app

# Statements for one page, and for a window around a message.
PAGE_STATEMENTS = {"postgresql": 1, "sqlite": 3}
AROUND_STATEMENTS = {"postgresql": 2, "sqlite": 4}
# Changes since a rev: the room's head, then the page.
SINCE_STATEMENTS = {"postgresql": 2, "sqlite": 4}


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, tmp_path):
    """The app on an empty SQLite file, then on a PostgreSQL database of its own."""
    if request.param == "sqlite":
        with sqlite_app(tmp_path / "test.db") as app:
            yield app
        return
    from tests.integration.cluster import pg_app

    with pg_app("chorus_history") as app:
        with app.app_context():
            db.create_all()
        yield app


@pytest.fixture
def chat(app, team, make_user, make_room):
    """#general: messages with and without mentions, some by zed (no display name); #other interleaved."""
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    zed = make_user("zed", display_name="")
    room = team["room"]
    with app.app_context():
        owner = db.session.get(User, alice.id)
        from app.actions import memberships

        memberships.do_invite_user(owner, room.id, "zed")
    other = make_room(alice, "other", members=[bob])
    bodies = [
        (alice, "@carol and @bob, look"),   # two mentions, in the order written
        (zed, "hello @alice"),              # an author without a display name
        (bob, "plain **markdown** here"),
        (zed, "no one at all"),
        (carol, "`@bob` in code is no mention, @zed is"),
    ]
    ids = []
    with app.app_context():
        for i in range(3):
            for author, body in bodies:
                ids.append(messages.do_send_message(db.session.get(User, author.id), room.id, f"{body} {i}").message.id)
                messages.do_send_message(db.session.get(User, alice.id), other.id, f"elsewhere {i}")
        # An edit that changes the mentions, a deleted message, reactions (the reader's among them).
        message_edit.do_edit_message(db.session.get(User, alice.id), ids[0], "@bob first, then @carol")
        message_edit.do_delete_message(db.session.get(User, zed.id), ids[3])
        for who, emoji in ((carol, "👍"), (bob, "👍"), (zed, "🎉")):
            reactions.do_react(db.session.get(User, who.id), ids[2], emoji, True)
        reactions.do_react(db.session.get(User, carol.id), ids[5], "👀", True)
    return {"room": room, "ids": ids, "reader": bob}


def expected(ids: list[int]) -> list[list]:
    """message_dict of each message, as (key, value) pairs: the order of keys counts too."""
    reader = db.session.execute(db.select(User).filter_by(username="bob")).scalar_one()
    return [_items(serializers.message_dict(db.session.get(Message, i), viewer_id=reader.id)) for i in ids]


def _items(data: dict) -> list:
    return [(k, _items(v) if isinstance(v, dict) else v) for k, v in data.items()]


def test_pages_are_exactly_message_dict(app, chat):
    ids, room = chat["ids"], chat["room"]
    with app.app_context():
        reader = db.session.get(User, chat["reader"].id)
        pages = [
            history.get_messages(reader, room.id)[0],
            history.get_messages(reader, room.id, before=ids[9], limit=4)[0],
            history.get_messages(reader, room.id, after=ids[2], limit=6)[0],
            history.get_messages_around(reader, room.id, ids[7], limit=5)[0],
            history.get_changes(reader, room.id, 0)[0],
        ]
        db.session.expunge_all()
        # The untouched ones in the order sent, then the edited, the deleted and the reacted-to.
        by_rev = [ids[1], ids[4], *ids[6:], ids[0], ids[3], ids[2], ids[5]]
        assert [[m["id"] for m in page] for page in pages] == [ids, ids[5:9], ids[3:9], ids[5:10], by_rev]
        for page in pages:
            assert [_items(m) for m in page] == expected([m["id"] for m in page])
    first, by_zed, reacted, deleted, in_code = pages[0][:5]
    assert first["mentions"] == ["carol", "bob"] and first["body"] == "@bob first, then @carol"
    assert first["edited_at"] is not None and deleted["deleted"] is True and "body" not in deleted
    assert reacted["reactions"] == [{"emoji": "👍", "count": 2, "users": ["carol", "bob"], "me": True},
                                    {"emoji": "🎉", "count": 1, "users": ["zed"], "me": False}]
    assert in_code["mentions"] == ["zed"]
    assert by_zed["author"] == {"id": by_zed["author"]["id"], "username": "zed", "display_name": "zed"}
    assert first["author"]["display_name"] == "Alice"
    assert pages[0][2]["mentions"] == [] and "<strong>markdown</strong>" in pages[0][2]["html"]


def test_rest_page_is_message_dict(app, chat, bearer):
    ids, room = chat["ids"], chat["room"]
    response = app.test_client().get(f"/api/v1/rooms/{room.id}/messages?before={ids[-1]}&limit=7",
                                     headers=bearer(chat["reader"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["has_more"] is True
    with app.app_context():  # JSON sorts the keys: the values must match
        assert body["messages"] == [serializers.message_dict(db.session.get(Message, i)) for i in ids[-8:-1]]


@pytest.fixture
def statements(app):
    """The SQL statements the app runs while the test looks: a list, cleared by the test."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("limit", [1, 5, 15])
def test_a_page_costs_the_same_statements_whatever_its_size(app, chat, statements, limit):
    ids, room = chat["ids"], chat["room"]
    dialect = "postgresql" if "postgresql" in app.config["SQLALCHEMY_DATABASE_URI"] else "sqlite"
    with app.app_context():
        reader = db.session.get(User, chat["reader"].id)
        for kwargs in ({}, {"before": ids[-1]}, {"after": ids[0] - 1}):
            statements.clear()
            page, _ = history.get_messages(reader, room.id, limit=limit, **kwargs)
            assert len(page) == min(limit, len(ids) - ("before" in kwargs))
            assert len(statements) == PAGE_STATEMENTS[dialect], statements
        statements.clear()
        page, _, _ = history.get_messages_around(reader, room.id, ids[7], limit=limit)
        assert ids[7] in [m["id"] for m in page]
        assert len(statements) == AROUND_STATEMENTS[dialect], statements
        statements.clear()
        page, _, _ = history.get_changes(reader, room.id, 0, limit=limit)
        assert len(page) == limit
        assert len(statements) == SINCE_STATEMENTS[dialect], statements


def test_a_page_request_costs_the_token_and_the_page(app, chat, statements, bearer):
    """Through the API: one statement for the bearer token, then the page's."""
    room = chat["room"]
    dialect = "postgresql" if "postgresql" in app.config["SQLALCHEMY_DATABASE_URI"] else "sqlite"
    client, headers = app.test_client(), bearer(chat["reader"])
    counts = []
    for limit in (1, 15):
        statements.clear()
        assert client.get(f"/api/v1/rooms/{room.id}/messages?limit={limit}", headers=headers).status_code == 200
        counts.append(len(statements))
    assert counts == [1 + PAGE_STATEMENTS[dialect]] * 2


def test_refusals_on_both_databases(app, chat, team, make_room, bearer):
    """A page that comes back empty says why: no such room, not a member, or merely empty."""
    room = chat["room"]
    secret = make_room(team["alice"], "secret", is_private=True)
    empty = make_room(team["alice"], "empty", members=[team["bob"]])
    client = app.test_client()

    def status(user, room_id, query=""):
        response = client.get(f"/api/v1/rooms/{room_id}/messages{query}", headers=bearer(user))
        return response.status_code, response.get_json().get("error", {}).get("code")

    assert status(team["dave"], room.id) == (403, "not_member")
    assert status(team["bob"], secret.id) == (404, "not_found")
    assert status(team["bob"], 10**12) == (404, "not_found")
    assert status(team["bob"], 2**64) == (404, "not_found")
    assert status(team["bob"], empty.id) == (200, None)
    assert status(team["bob"], room.id, f"?after={chat['ids'][-1]}") == (200, None)
    assert status(team["bob"], room.id, f"?around={chat['ids'][-1] + 1000}") == (404, "not_found")
    with app.app_context():  # bad paging from someone who may not read the room: access answers first
        dave = db.session.get(User, team["dave"].id)
        for kwargs in ({"limit": 0}, {"before": 5, "after": 1}):
            with pytest.raises(ChatError) as refused:
                history.get_messages(dave, room.id, **kwargs)
            assert refused.value.code == "not_member"
            with pytest.raises(ChatError) as refused:
                history.get_messages(dave, secret.id, **kwargs)
            assert refused.value.code == "not_found"
