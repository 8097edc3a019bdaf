"""The admin console (/admin) and the flask sub-commands."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from app import create_app
from app.actions import users
from app.config import TestConfig
from app.extensions import db
from app.lib.access import get_membership
from app.models import Membership, Message, Room, User
from tests.factories import UserFactory

ADMIN_URLS = ["/admin/", "/admin/user/", "/admin/room/", "/admin/membership/", "/admin/message/", "/admin/notification/"]


@pytest.fixture
def admin_client(make_user, login):
    """A logged-in administrator's HTTP client."""
    return login(make_user("root", is_admin=True))


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_anonymous_users_get_403_with_a_login_link(app, url):
    response = app.test_client().get(url)
    assert response.status_code == 403
    assert f'href="/login?next={url}' in response.get_data(as_text=True)


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_non_admins_get_403(make_user, login, url):
    client = login(make_user("bob"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admins_get_200(admin_client, url):
    assert admin_client.get(url).status_code == 200


def test_admin_pages_show_data_but_no_password_hashes(app, team, admin_client):
    from app.actions import messages

    with app.app_context():
        messages.do_send_message(db.session.get(User, team["alice"].id), team["room"].id, "admin can read this")
        hashes = list(db.session.execute(db.select(User.password_hash)).scalars())
    users_page = admin_client.get("/admin/user/").get_data(as_text=True)
    for name in ("alice", "bob", "carol", "dave", "root"):
        assert name in users_page
    details = admin_client.get(f"/admin/user/details/?id={team['bob'].id}").get_data(as_text=True)
    assert "bob" in details
    for page in (users_page, details):
        for password_hash in set(hashes):
            assert password_hash not in page
        assert "password_hash" not in page
    assert "admin can read this" in admin_client.get("/admin/message/").get_data(as_text=True)
    assert "general" in admin_client.get("/admin/room/").get_data(as_text=True)


def test_admin_disable_action_goes_through_the_action(app, team, admin_client, bearer, live):
    bob = team["bob"]
    headers = bearer(bob)
    socket = live(bob)
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200

    response = admin_client.post("/admin/user/action/", data={"action": "disable", "rowid": str(bob.id)})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(User, bob.id).is_disabled
        assert not db.session.get(User, team["alice"].id).is_disabled
    # The action's side effects: the token stops working and the live socket is closed.
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 401
    assert not socket.is_connected()
    # The disconnect ran inside the admin's request, yet bob's socket is the one forgotten.
    assert app.extensions["chorus.sockets"].sids_of(bob.id) == []

    admin_client.post("/admin/user/action/", data={"action": "enable", "rowid": str(bob.id)})
    with app.app_context():
        assert not db.session.get(User, bob.id).is_disabled
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200


def test_admin_make_admin_action(app, team, admin_client):
    rowids = [str(team["bob"].id), str(team["carol"].id)]
    response = admin_client.post("/admin/user/action/", data={"action": "make_admin", "rowid": rowids})
    assert response.status_code == 302
    with app.app_context():
        admins = set(db.session.execute(db.select(User.username).filter_by(is_admin=True)).scalars())
    assert admins == {"root", "bob", "carol"}


def test_non_admins_cannot_run_admin_actions(app, team, login):
    client = login(team["alice"])
    response = client.post("/admin/user/action/", data={"action": "disable", "rowid": str(team["bob"].id)})
    assert response.status_code == 403
    with app.app_context():
        assert not db.session.get(User, team["bob"].id).is_disabled


def test_admin_views_are_read_only(app, team, admin_client):
    bob, room = team["bob"], team["room"]
    admin_client.post("/admin/user/delete/", data={"id": str(bob.id)})
    admin_client.post(f"/admin/user/edit/?id={bob.id}", data={"username": "mallory", "is_admin": "y"})
    admin_client.post("/admin/user/new/", data={"username": "mallory", "password_hash": "x"})
    admin_client.post("/admin/room/delete/", data={"id": str(room.id)})
    admin_client.post("/admin/membership/delete/", data={"id": "1"})
    assert admin_client.get("/admin/user/new/").status_code != 200
    assert admin_client.get(f"/admin/user/edit/?id={bob.id}").status_code != 200
    with app.app_context():
        stored = db.session.get(User, bob.id)
        assert (stored.username, stored.is_admin) == ("bob", False)
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 5
        assert db.session.get(Room, room.id) is not None
        assert db.session.execute(db.select(db.func.count(Membership.id))).scalar_one() == 3


def test_admin_action_checks_csrf_when_enabled(tmp_path):
    config = type("CsrfCfg", (TestConfig,), {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'csrf.db'}", "WTF_CSRF_ENABLED": True,
    })
    app = create_app(config)
    with app.app_context():
        db.create_all()
        root = UserFactory(username="root", is_admin=True)
        bob = SimpleNamespace(id=UserFactory(username="bob").id)
        root_id = root.id
        login_id = users.do_start_session(root).get_id()
    try:
        client = app.test_client()
        with client.session_transaction() as sess:
            sess["_user_id"] = login_id
            sess["_fresh"] = True
        page = client.get("/admin/user/").get_data(as_text=True)
        token = re.search(r'id="action_form".*?name="csrf_token" value="([^"]+)"', page, re.S).group(1)

        refused = client.post("/admin/user/action/", data={"action": "disable", "rowid": str(bob.id)})
        assert refused.status_code == 400
        with app.app_context():
            assert not db.session.get(User, bob.id).is_disabled

        done = client.post(
            "/admin/user/action/", data={"action": "disable", "rowid": str(bob.id), "csrf_token": token}
        )
        assert done.status_code == 302
        with app.app_context():
            assert db.session.get(User, bob.id).is_disabled
    finally:
        with app.app_context():
            db.engine.dispose()


# --- flask create-admin / seed-demo ---------------------------------------------------------

def test_create_admin_creates_an_account(app, fast_hashing):
    result = app.test_cli_runner().invoke(args=["create-admin", "Boss", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    assert "Created administrator Boss." in result.output
    with app.app_context():
        boss = users.get_user_by_username("boss")
        assert boss.username == "Boss" and boss.is_admin and boss.check_password("long-enough-pw")


def test_create_admin_ignores_closed_registration(app, fast_hashing):
    app.config["REGISTRATION_OPEN"] = False
    result = app.test_cli_runner().invoke(args=["create-admin", "boss", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert users.get_user_by_username("boss").is_admin


def test_create_admin_promotes_an_existing_user(app, make_user):
    make_user("bob")
    result = app.test_cli_runner().invoke(args=["create-admin", "BOB", "--password", "ignored-password"])
    assert result.exit_code == 0, result.output
    assert "bob is now an administrator." in result.output
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 1
        assert users.get_user_by_username("bob").is_admin


def test_create_admin_prompts_for_a_password(app, fast_hashing):
    result = app.test_cli_runner().invoke(args=["create-admin", "boss"], input="long-enough-pw\nlong-enough-pw\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert users.get_user_by_username("boss").check_password("long-enough-pw")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["create-admin", "bad name", "--password", "long-enough-pw"], "Usernames are 1-32"),
     (["create-admin", "boss", "--password", "short"], "Passwords are 8 to 256")],
)
def test_create_admin_refuses_bad_input(app, fast_hashing, args, message):
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 0


def test_seed_demo_is_idempotent(app, fast_hashing):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
        assert "Demo ready: room 'general' with users alice, bob, carol" in result.output
    with app.app_context():
        names = sorted(db.session.execute(db.select(User.username)).scalars())
        assert names == ["alice", "bob", "carol"]
        rooms = list(db.session.execute(db.select(Room)).scalars())
        assert [r.name for r in rooms] == ["general"]
        members = sorted(
            db.session.execute(
                db.select(User.username).join(Membership, Membership.user_id == User.id)
                .filter(Membership.room_id == rooms[0].id)
            ).scalars()
        )
        assert members == ["alice", "bob", "carol"]
        assert db.session.execute(db.select(db.func.count(Message.id))).scalar_one() == 1
        alice = users.get_user_by_username("alice")
        assert alice.check_password(app.config["DEMO_PASSWORD"]) and not alice.is_admin
        assert rooms[0].owner_id == alice.id


def test_seed_demo_completes_a_partial_setup(app, make_user, make_room, fast_hashing):
    alice, bob = make_user("alice"), make_user("bob")
    make_room(alice, "General", members=[bob])
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 3
        room = db.session.execute(db.select(Room)).scalar_one()
        carol = users.get_user_by_username("carol")
        assert get_membership(room.id, carol.id) is not None
        assert db.session.execute(db.select(db.func.count(Membership.id))).scalar_one() == 3


def test_admin_deletes_messages_through_the_action(app, team, admin_client, live, make_room):
    from app.actions import messages
    from app.models import Message, Room
    from tests.conftest import events_named

    alice, bob = team["alice"], team["bob"]
    secret = make_room(alice, "secret", members=[bob], is_private=True)  # the admin is no member
    with app.app_context():
        sent = messages.do_send_message(db.session.get(User, bob.id), secret.id, "delete me").data
    socket = live(alice)
    response = admin_client.post("/admin/message/action/", data={"action": "delete_messages", "rowid": str(sent["id"])})
    assert response.status_code == 302
    with app.app_context():
        stored = db.session.get(Message, sent["id"])
        assert stored.is_deleted and stored.body == "" and db.session.get(Room, secret.id).last_rev == 2
    # Members see the tombstone live, as from any other door.
    update = events_named(socket, "message_updated")[-1]
    assert update["deleted"] is True and update["change"]["kind"] == "delete"
    missing = admin_client.post("/admin/message/action/", data={"action": "delete_messages", "rowid": "999999"},
                                follow_redirects=True)
    assert "No such message" in missing.get_data(as_text=True)
