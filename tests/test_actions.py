"""Actions: the rows they write, the events they queue and who receives them."""
from __future__ import annotations

import hashlib

import pytest

from app.actions import memberships, messages, notifications, read_markers, rooms, users
from app.extensions import db
from app.lib.errors import ChatError
from app.models import ApiToken, Membership, Mention, Message, Notification, Room, User
from app.queries import notifications as notification_queries
from app.queries import rooms as room_queries
from tests.factories import PASSWORD


def row(model, ref):
    """The row behind a plain reference."""
    return db.session.get(model, ref.id)


def names(emitted) -> list[str]:
    """The event names emitted so far."""
    return [event for event, _, _ in emitted]


def count(model, **filters) -> int:
    """How many rows of model match the filters."""
    return db.session.execute(
        db.select(db.func.count()).select_from(model).filter_by(**filters)
    ).scalar_one()


def send(user_ref, room_id, body, client_id=None):
    """Send as the user behind user_ref; returns the SendResult."""
    return messages.do_send_message(row(User, user_ref), room_id, body, client_id)


def refuse(code: str, call, *args, **kwargs) -> ChatError:
    """Run an action that must raise ChatError(code); roll back as every handler does."""
    with pytest.raises(ChatError) as info:
        call(*args, **kwargs)
    db.session.rollback()
    assert info.value.code == code, info.value.message
    return info.value


# --- Registration ----------------------------------------------------------------------

@pytest.mark.parametrize("username", ["a", "Z", "_", "bob_99", "A" * 32, "MixedCase_1"])
def test_register_valid_usernames(app, fast_hashing, username):
    with app.app_context():
        user = users.do_register_user(username, "long-enough-pw", "  Shown\x07 Name ")
        stored = db.session.get(User, user.id)
        assert stored.username == username
        assert stored.username_key == username.lower()
        assert stored.display_name == "Shown Name"
        assert stored.password_hash != "long-enough-pw"
        assert stored.check_password("long-enough-pw")
        assert not stored.is_admin and not stored.is_disabled


@pytest.mark.parametrize(
    "username",
    ["", "a" * 33, "has space", "dash-name", "dot.name", "at@sign", "ünïcode", "<b>", " padded", "tab\t"],
)
def test_register_refuses_bad_usernames(app, fast_hashing, username):
    with app.app_context():
        error = refuse("invalid", users.do_register_user, username, "long-enough-pw")
        assert error.field == "username"
        assert count(User) == 0


def test_register_refuses_username_with_trailing_newline(app, fast_hashing, make_user):
    make_user("alice")
    with app.app_context():
        refuse("invalid", users.do_register_user, "alice\n", "long-enough-pw")
        assert count(User) == 1


@pytest.mark.parametrize("taken", ["alice", "ALICE", "aLiCe"])
def test_register_usernames_are_unique_ignoring_case(app, fast_hashing, make_user, taken):
    make_user("Alice")
    with app.app_context():
        error = refuse("conflict", users.do_register_user, taken, "long-enough-pw")
        assert error.field == "username" and error.status == 409
        assert count(User) == 1


@pytest.mark.parametrize("password", ["", "short", "7chars!", "x" * 257])
def test_register_refuses_bad_passwords(app, fast_hashing, password):
    with app.app_context():
        error = refuse("invalid", users.do_register_user, "newbie", password)
        assert error.field == "password"
        assert count(User) == 0


@pytest.mark.parametrize("password", ["8 chars!", "x" * 256])
def test_register_accepts_password_length_bounds(app, fast_hashing, password):
    with app.app_context():
        user = users.do_register_user("newbie", password)
        assert db.session.get(User, user.id).check_password(password)


def test_register_refuses_long_display_name(app, fast_hashing):
    with app.app_context():
        error = refuse("invalid", users.do_register_user, "newbie", "long-enough-pw", "d" * 65)
        assert error.field == "display_name"
        assert count(User) == 0


def test_registration_closed(app, fast_hashing):
    app.config["REGISTRATION_OPEN"] = False
    with app.app_context():
        error = refuse("registration_closed", users.do_register_user, "newbie", "long-enough-pw")
        assert error.status == 403
        assert count(User) == 0
        # Administrators (the CLI) may still create accounts.
        users.do_register_user("staff", "long-enough-pw", check_open=False, is_admin=True)
        assert db.session.execute(db.select(User.is_admin).filter_by(username_key="staff")).scalar_one()


# --- Authentication and tokens ----------------------------------------------------------

def test_authenticate(app, make_user):
    alice = make_user("Alice")
    with app.app_context():
        assert users.authenticate("Alice", PASSWORD).id == alice.id
        assert users.authenticate("aLICE", PASSWORD).id == alice.id


@pytest.mark.parametrize(
    ("username", "password"),
    [("Alice", "wrong-password"), ("nobody", PASSWORD), ("Al ice", PASSWORD), ("", PASSWORD), ("x" * 40, PASSWORD)],
)
def test_authenticate_refuses_with_one_vague_error(app, make_user, username, password):
    make_user("Alice")
    with app.app_context():
        error = refuse("unauthorized", users.authenticate, username, password)
        assert error.message == "Wrong username or password." and error.status == 401


def test_authenticate_refuses_disabled_user(app, make_user):
    make_user("alice", is_disabled=True)
    with app.app_context():
        refuse("unauthorized", users.authenticate, "alice", PASSWORD)


def test_tokens_are_stored_hashed(app, make_user, tmp_path):
    alice = make_user("alice")
    with app.app_context():
        token = users.do_create_api_token(row(User, alice), "laptop")
        stored = db.session.execute(db.select(ApiToken)).scalar_one()
        assert stored.user_id == alice.id and stored.name == "laptop"
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in {stored.token_hash, stored.name}
        assert users.get_user_by_token(token).id == alice.id
    # Neither the database nor its write-ahead log holds the plain token.
    db_files = [p for p in tmp_path.iterdir() if p.name.startswith("test.db")]
    assert db_files
    for path in db_files:
        assert token.encode() not in path.read_bytes()


def test_token_lookup_refuses_unknown_revoked_and_disabled(app, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with app.app_context():
        alice_token = users.do_create_api_token(row(User, alice))
        bob_token = users.do_create_api_token(row(User, bob))
        assert users.get_user_by_token("not-a-token") is None
        assert users.get_user_by_token("") is None
        assert users.get_user_by_token(alice_token + "x" * 300) is None

        token_id = db.session.execute(db.select(ApiToken.id).filter_by(user_id=alice.id)).scalar_one()
        refuse("not_found", users.do_revoke_api_token, row(User, bob), token_id)
        assert users.get_user_by_token(alice_token).id == alice.id
        users.do_revoke_api_token(row(User, alice), token_id)
        assert users.get_user_by_token(alice_token) is None

        users.do_disable_user(row(User, bob))
        assert users.get_user_by_token(bob_token) is None


# --- Rooms --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "9", "Dev-Ops_2", "x" * 64])
def test_create_room(app, make_user, emitted, name):
    alice = make_user("alice")
    with app.app_context():
        room = rooms.do_create_room(row(User, alice), name, "  Our\x00 topic\nhere ", True)
        stored = db.session.get(Room, room.id)
        assert (stored.name, stored.name_key, stored.topic) == (name, name.lower(), "Our topic here")
        assert stored.is_private and stored.owner_id == alice.id
        assert [m.user_id for m in stored.memberships] == [alice.id]
    assert len(emitted) == 1
    event, data, to = emitted[0]
    assert (event, to) == ("room_membership", f"user:{alice.id}")
    assert data["action"] == "joined"
    assert data["room"]["id"] == room.id and data["room"]["is_member"] is True
    assert data["room"]["member_count"] == 1 and data["room"]["is_private"] is True


def test_create_room_strips_the_name(app, make_user):
    alice = make_user("alice")
    with app.app_context():
        room = rooms.do_create_room(row(User, alice), "  padded  ")
        assert room.name == "padded"


@pytest.mark.parametrize(
    "name", ["", "   ", "-dash-first", "_under-first", "has space", "x" * 65, "émoji", "a/b", "a.b", "#general"]
)
def test_create_room_refuses_bad_names(app, make_user, emitted, name):
    alice = make_user("alice")
    with app.app_context():
        error = refuse("invalid", rooms.do_create_room, row(User, alice), name)
        assert error.field == "name"
        assert count(Room) == 0 and count(Membership) == 0
    assert emitted == []


def test_create_room_refuses_long_topic(app, make_user, emitted):
    alice = make_user("alice")
    with app.app_context():
        error = refuse("invalid", rooms.do_create_room, row(User, alice), "general", "t" * 251)
        assert error.field == "topic"
        assert count(Room) == 0
    assert emitted == []


@pytest.mark.parametrize("duplicate", ["general", "GENERAL", "General"])
def test_create_room_duplicate_name_ignoring_case(app, make_user, make_room, emitted, duplicate):
    alice, bob = make_user("alice"), make_user("bob")
    make_room(alice, "General")
    emitted.clear()
    with app.app_context():
        error = refuse("conflict", rooms.do_create_room, row(User, bob), duplicate)
        assert error.status == 409
        assert count(Room) == 1 and count(Membership, user_id=bob.id) == 0
    assert emitted == []


def test_join_public_room(app, make_user, make_room, emitted):
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room(alice, "general")
    with app.app_context():
        last = send(alice, room.id, "before bob came").message.id
    emitted.clear()
    with app.app_context():
        memberships.do_join_room(row(User, bob), room.id)
        membership = db.session.execute(db.select(Membership).filter_by(room_id=room.id, user_id=bob.id)).scalar_one()
        # History from before joining is not unread.
        assert membership.last_read_message_id == last
        assert room_queries.room_view(db.session.get(Room, room.id), row(User, bob))["unread"] == 0
    by_name = {event: (data, to) for event, data, to in emitted}
    assert set(by_name) == {"room_membership", "member_joined"}
    data, to = by_name["room_membership"]
    assert to == f"user:{bob.id}" and data["action"] == "joined" and data["room"]["id"] == room.id
    data, to = by_name["member_joined"]
    assert to == f"room:{room.id}"
    assert data == {"room_id": room.id, "user": {"id": bob.id, "username": "bob", "display_name": "Bob"},
                    "member_count": 2}


def test_join_twice_is_harmless(app, make_user, make_room, emitted):
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room(alice, "general", members=[bob])
    emitted.clear()
    with app.app_context():
        memberships.do_join_room(row(User, bob), room.id)
        assert count(Membership, room_id=room.id) == 2
    assert emitted == []


def test_join_private_room_as_non_member_is_not_found(app, make_user, make_room, emitted):
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room(alice, "secret", is_private=True)
    emitted.clear()
    with app.app_context():
        error = refuse("not_found", memberships.do_join_room, row(User, bob), room.id)
        # The same answer as a room that does not exist.
        missing = refuse("not_found", memberships.do_join_room, row(User, bob), room.id + 100)
        assert error.message == missing.message and error.status == 404
        assert count(Membership, user_id=bob.id) == 0
    assert emitted == []


def test_invite_to_public_room_by_any_member(app, make_user, make_room, emitted):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    room = make_room(alice, "general", members=[bob])
    emitted.clear()
    with app.app_context():
        invitee = memberships.do_invite_user(row(User, bob), room.id, "CAROL")
        assert invitee.id == carol.id
        assert count(Membership, room_id=room.id, user_id=carol.id) == 1
    assert sorted((event, to) for event, _, to in emitted) == [
        ("member_joined", f"room:{room.id}"), ("room_membership", f"user:{carol.id}"),
    ]


def test_invite_to_private_room_owner_only(app, make_user, make_room, emitted):
    alice, bob, carol, dave = (make_user(n) for n in ("alice", "bob", "carol", "dave"))
    room = make_room(alice, "secret", members=[bob], is_private=True)
    emitted.clear()
    with app.app_context():
        error = refuse("forbidden", memberships.do_invite_user, row(User, bob), room.id, "carol")
        assert error.status == 403
        refuse("not_found", memberships.do_invite_user, row(User, dave), room.id, "carol")
        assert count(Membership, user_id=carol.id) == 0
    assert emitted == []
    with app.app_context():
        memberships.do_invite_user(row(User, alice), room.id, "carol")
        assert count(Membership, room_id=room.id, user_id=carol.id) == 1


def test_invite_to_public_room_needs_membership(app, make_user, make_room, emitted):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    room = make_room(alice, "general")
    emitted.clear()
    with app.app_context():
        refuse("not_member", memberships.do_invite_user, row(User, bob), room.id, "carol")
        assert count(Membership, user_id=carol.id) == 0
    assert emitted == []


@pytest.mark.parametrize(
    ("username", "code"),
    [("nobody", "not_found"), ("not a name", "not_found"), ("", "not_found"), ("disabled", "not_found"),
     ("bob", "conflict"), ("BOB", "conflict"), ("alice", "conflict")],
)
def test_invite_refusals(app, make_user, make_room, emitted, username, code):
    alice, bob = make_user("alice"), make_user("bob")
    make_user("disabled", is_disabled=True)
    room = make_room(alice, "general", members=[bob])
    emitted.clear()
    with app.app_context():
        error = refuse(code, memberships.do_invite_user, row(User, alice), room.id, username)
        assert error.field == "username"
        assert count(Membership, room_id=room.id) == 2
    assert emitted == []


def test_leave_room(app, make_user, make_room, emitted):
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room(alice, "secret", members=[bob], is_private=True)
    emitted.clear()
    with app.app_context():
        memberships.do_leave_room(row(User, bob), room.id)
        assert count(Membership, room_id=room.id, user_id=bob.id) == 0
    by_name = {event: (data, to) for event, data, to in emitted}
    assert by_name["room_membership"] == (
        {"action": "left", "room": {"id": room.id, "name": "secret"}}, f"user:{bob.id}"
    )
    data, to = by_name["member_left"]
    assert to == f"room:{room.id}" and data["member_count"] == 1 and data["user"]["id"] == bob.id
    emitted.clear()
    with app.app_context():
        # Gone from a private room, bob can no longer see it.
        refuse("not_found", memberships.do_leave_room, row(User, bob), room.id)
        refuse("not_found", memberships.do_join_room, row(User, bob), room.id)
    assert emitted == []


def test_owner_leaving_hands_the_room_to_the_longest_standing_member(app, make_user, make_room):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    room = make_room(alice, "secret", members=[bob, carol], is_private=True)
    with app.app_context():
        memberships.do_leave_room(row(User, alice), room.id)
        assert row(Room, room).owner_id == bob.id
        # The new owner can still invite people into the private room.
        memberships.do_invite_user(row(User, bob), room.id, "alice")
        assert count(Membership, room_id=room.id, user_id=alice.id) == 1


def test_leave_room_not_a_member(app, make_user, make_room, emitted):
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room(alice, "general")
    emitted.clear()
    with app.app_context():
        refuse("not_member", memberships.do_leave_room, row(User, bob), room.id)
    assert emitted == []


def test_rooms_for_user_hide_others_private_rooms(app, make_user, make_room):
    alice, bob = make_user("alice"), make_user("bob")
    make_room(alice, "general")
    make_room(alice, "secret", is_private=True)
    mine = make_room(bob, "bobs-den", is_private=True)
    with app.app_context():
        listed = room_queries.get_rooms_for_user(row(User, bob))
        assert [r["name"] for r in listed] == ["bobs-den", "general"]
        assert [r["is_member"] for r in listed] == [True, False]
        assert listed[0]["id"] == mine.id and listed[0]["unread"] == 0
        assert "unread" not in listed[1]


# --- Sending ------------------------------------------------------------------------------

def test_send_message(app, team, emitted):
    alice, room = team["alice"], team["room"]
    emitted.clear()
    with app.app_context():
        result = send(alice, room.id, "Hello **team**", "c-1")
        assert result.created
        stored = db.session.get(Message, result.message.id)
        assert (stored.body, stored.html, stored.client_id) == (
            "Hello **team**", "<p>Hello <strong>team</strong></p>", "c-1"
        )
        assert (stored.room_id, stored.author_id) == (room.id, alice.id)
        author_membership = db.session.execute(
            db.select(Membership).filter_by(room_id=room.id, user_id=alice.id)
        ).scalar_one()
        assert author_membership.last_read_message_id == stored.id
    assert len(emitted) == 1
    event, data, to = emitted[0]
    assert (event, to) == ("message", f"room:{room.id}")
    assert data["id"] == result.message.id and data["body"] == "Hello **team**"
    assert data["author"] == {"id": alice.id, "username": "alice", "display_name": "Alice"}
    assert data["client_id"] == "c-1" and data["mentions"] == [] and data["room_id"] == room.id


@pytest.mark.parametrize("body", ["", " ", "\n\n\t", "\x00\x01\x02", " \x1b "])
def test_send_refuses_empty_body(app, team, emitted, body):
    emitted.clear()
    with app.app_context():
        error = refuse("invalid", send, team["alice"], team["room"].id, body)
        assert error.field == "body"
        assert count(Message) == 0
    assert emitted == []


def test_send_length_limit(app, team, emitted):
    alice, room = team["alice"], team["room"]
    emitted.clear()
    with app.app_context():
        error = refuse("too_large", send, alice, room.id, "x" * 4001)
        assert error.status == 413 and error.field == "body"
        assert count(Message) == 0
    assert emitted == []
    with app.app_context():
        assert len(send(alice, room.id, "x" * 4000).message.body) == 4000
        # Stripped control characters do not count.
        assert len(send(alice, room.id, "y" * 4000 + "\x07").message.body) == 4000
        assert count(Message) == 2


def test_send_non_member_of_public_room(app, team, emitted):
    emitted.clear()
    with app.app_context():
        error = refuse("not_member", send, team["dave"], team["room"].id, "let me in")
        assert error.status == 403
        assert count(Message) == 0
    assert emitted == []


def test_send_to_private_room_of_others_is_not_found(app, team, make_room, emitted):
    secret = make_room(team["alice"], "secret", is_private=True)
    emitted.clear()
    with app.app_context():
        refuse("not_found", send, team["bob"], secret.id, "hi")
        refuse("not_found", send, team["bob"], secret.id + 1000, "hi")
        assert count(Message) == 0
    assert emitted == []


def test_send_is_idempotent_by_client_id(app, team, emitted):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    emitted.clear()
    with app.app_context():
        first = send(alice, room.id, "only once", "retry-1")
        again = send(alice, room.id, "only once", "retry-1")
        assert first.created and not again.created
        assert again.message.id == first.message.id
        assert count(Message) == 1
    assert names(emitted) == ["message"]
    with app.app_context():
        # client_ids are per author.
        other = send(bob, room.id, "mine", "retry-1")
        assert other.created and other.message.id != first.message.id
        assert count(Message) == 2


def test_reusing_a_client_id_in_another_room_is_a_conflict(app, team, make_room):
    other = make_room(team["alice"], "other")
    with app.app_context():
        first = send(team["alice"], team["room"].id, "hi", "same-id")
        error = refuse("conflict", send, team["alice"], other.id, "hi again", "same-id")
        assert error.field == "client_id"
        assert count(Message, room_id=other.id) == 0
        assert count(Message, client_id="same-id") == 1 and first.created


@pytest.mark.parametrize("client_id", ["", "x" * 65, "has space", "a/b", "ünï", "<x>"])
def test_send_refuses_bad_client_ids(app, team, client_id):
    with app.app_context():
        error = refuse("invalid", send, team["alice"], team["room"].id, "hi", client_id)
        assert error.field == "client_id"
        assert count(Message) == 0


def test_send_accepts_client_id_characters(app, team):
    with app.app_context():
        assert send(team["alice"], team["room"].id, "hi", "A-z_0.9:" + "x" * 56).created


def test_send_strips_control_characters(app, team):
    with app.app_context():
        message = send(team["alice"], team["room"].id, "a\x00b\x1bc\x7fd\te\r\nf\rg").message
        assert db.session.get(Message, message.id).body == "abcd\te\nf\ng"


def test_mentions_resolved_for_members_only(app, team, make_user, emitted):
    alice, bob, carol, dave, room = (team[k] for k in ("alice", "bob", "carol", "dave", "room"))
    emitted.clear()
    with app.app_context():
        body = "@BOB @bob @Carol @dave @nobody @alice `@carol` bob@example.com"
        message = send(alice, room.id, body).message
        stored = db.session.get(Message, message.id)
        assert [m.user_id for m in stored.mentions] == [bob.id, carol.id]
        assert count(Mention) == 2
        assert '<span class="mention" data-username="bob">@bob</span>' in stored.html
        assert '<span class="mention" data-username="carol">@carol</span>' in stored.html
        # Non-members, unknown names and the author get no chip.
        for name in ("dave", "nobody", "alice"):
            assert f'data-username="{name}"' not in stored.html
    assert len(emitted) >= 1
    event, data, to = emitted[0]
    assert (event, to) == ("message", f"room:{room.id}")
    assert data["mentions"] == ["bob", "carol"]


def test_mention_of_a_non_member_still_delivers_the_message(app, team, emitted):
    emitted.clear()
    with app.app_context():
        message = send(team["alice"], team["room"].id, "@dave hello").message
        assert db.session.get(Message, message.id).mentions == []
    assert [(event, to) for event, _, to in emitted] == [("message", f"room:{team['room'].id}")]


# --- Read markers -------------------------------------------------------------------------

def _fill(app, user, room_id, n) -> list[int]:
    with app.app_context():
        return [send(user, room_id, f"message {i}").message.id for i in range(n)]


def test_mark_room_read(app, team, emitted):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    ids = _fill(app, alice, room.id, 4)
    emitted.clear()
    with app.app_context():
        reader = row(User, bob)
        assert room_queries.room_view(db.session.get(Room, room.id), reader)["unread"] == 4
        assert read_markers.do_mark_room_read(reader, room.id, ids[1]) == ids[1]
        assert room_queries.room_view(db.session.get(Room, room.id), reader)["unread"] == 2
        assert read_markers.do_mark_room_read(reader, room.id, ids[0]) == ids[1]  # never backwards
        assert read_markers.do_mark_room_read(reader, room.id, ids[-1] + 999) == ids[-1]  # clamped
        assert read_markers.do_mark_room_read(reader, room.id) == ids[-1]
    assert emitted == [
        ("room_read", {"room_id": room.id, "last_read_message_id": ids[1]}, f"user:{bob.id}"),
        ("room_read", {"room_id": room.id, "last_read_message_id": ids[-1]}, f"user:{bob.id}"),
    ]


def test_mark_room_read_without_new_messages(app, team, emitted):
    ids = _fill(app, team["alice"], team["room"].id, 2)
    emitted.clear()
    with app.app_context():
        reader = row(User, team["bob"])
        assert read_markers.do_mark_room_read(reader, team["room"].id) == ids[-1]
        assert read_markers.do_mark_room_read(reader, team["room"].id) == ids[-1]
    assert len(emitted) == 1


def test_mark_room_read_needs_membership(app, team, make_room, emitted):
    secret = make_room(team["alice"], "secret", is_private=True)
    emitted.clear()
    with app.app_context():
        refuse("not_member", read_markers.do_mark_room_read, row(User, team["dave"]), team["room"].id)
        refuse("not_found", read_markers.do_mark_room_read, row(User, team["dave"]), secret.id)
    assert emitted == []


# --- Notifications ------------------------------------------------------------------------

def _notify(app, team, n) -> list[int]:
    """n messages from alice mentioning bob and carol; returns bob's notification ids, oldest first."""
    with app.app_context():
        for i in range(n):
            send(team["alice"], team["room"].id, f"@bob @carol look {i}")
        return list(db.session.execute(
            db.select(Notification.id).filter_by(user_id=team["bob"].id).order_by(Notification.id)
        ).scalars())


def test_notifications_list_and_unread(app, team):
    bob_ids = _notify(app, team, 3)
    with app.app_context():
        bob = row(User, team["bob"])
        listed = notification_queries.get_notifications(bob)
        assert [n.id for n in listed] == bob_ids[::-1]  # newest first
        assert all(n.user_id == bob.id and n.kind == "mention" for n in listed)
        assert notification_queries.get_unread_count(bob) == 3
        assert notification_queries.get_unread_count(row(User, team["alice"])) == 0
        assert len(notification_queries.get_notifications(bob, limit=2)) == 2


def test_mark_notifications_read_by_ids(app, team, emitted):
    bob_ids = _notify(app, team, 3)
    with app.app_context():
        carol_ids = list(db.session.execute(
            db.select(Notification.id).filter_by(user_id=team["carol"].id)
        ).scalars())
    emitted.clear()
    with app.app_context():
        bob = row(User, team["bob"])
        # Carol's ids in bob's request are ignored.
        assert notifications.do_mark_notifications_read(bob, [bob_ids[0], *carol_ids]) == 1
        assert notification_queries.get_unread_count(bob) == 2
        assert notification_queries.get_unread_count(row(User, team["carol"])) == 3
        assert [n.id for n in notification_queries.get_notifications(bob, unread_only=True)] == bob_ids[:0:-1]
        assert notifications.do_mark_notifications_read(bob, [bob_ids[0]]) == 0  # already read
    assert emitted == [
        ("notifications_read", {"ids": [bob_ids[0], *carol_ids], "unread": 2}, f"user:{team['bob'].id}")
    ]


def test_mark_all_notifications_read(app, team, emitted):
    _notify(app, team, 3)
    emitted.clear()
    with app.app_context():
        bob = row(User, team["bob"])
        assert notifications.do_mark_notifications_read(bob, all_=True) == 3
        assert notification_queries.get_unread_count(bob) == 0
        assert notification_queries.get_unread_count(row(User, team["carol"])) == 3
        assert all(n.read_at is not None for n in notification_queries.get_notifications(bob))
        assert notifications.do_mark_notifications_read(bob, all_=True) == 0
    assert emitted == [("notifications_read", {"ids": None, "unread": 0}, f"user:{team['bob'].id}")]


@pytest.mark.parametrize("ids", [None, []])
def test_mark_notifications_read_needs_ids_or_all(app, team, ids):
    _notify(app, team, 1)
    with app.app_context():
        refuse("invalid", notifications.do_mark_notifications_read, row(User, team["bob"]), ids)
        assert notification_queries.get_unread_count(row(User, team["bob"])) == 1


# --- Nothing leaves a failed action -------------------------------------------------------

def test_a_failed_action_leaves_no_pending_events(app, team, emitted):
    """Refusals emit nothing, and the next successful commit carries only its own events."""
    alice, dave, room = team["alice"], team["dave"], team["room"]
    emitted.clear()
    with app.app_context():
        refuse("too_large", send, alice, room.id, "x" * 5000)
        refuse("not_member", send, dave, room.id, "hi")
        refuse("conflict", rooms.do_create_room, row(User, alice), "GENERAL")
        refuse("conflict", memberships.do_invite_user, row(User, alice), room.id, "bob")
        refuse("not_member", memberships.do_leave_room, row(User, dave), room.id)
        assert emitted == []
        users.do_set_admin(row(User, dave), True)
    assert emitted == []
