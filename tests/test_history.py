"""History: pages before and after an id, and around a message (`?around=<id>`), from the
query (app.queries.history), the REST API and the room page.

Messages of a second room are interleaved with the room's own, so ids in a room have gaps
and a window that leaked another room's messages would show.
"""
from __future__ import annotations

import re

import pytest

from app.actions import messages
from app.extensions import db
from app.lib.errors import ChatError
from app.models import User
from app.queries import history as history_query
from tests.test_actions import _fill, refuse, row


def row_user(ref) -> User:
    return db.session.get(User, ref.id)


@pytest.fixture
def history(app, team, make_room):
    """#general with 30 messages, #other (alice and bob) with 30 interleaved ones; ids of each."""
    alice, room = team["alice"], team["room"]
    other = make_room(alice, "other", members=[team["bob"]])
    ids, other_ids = [], []
    with app.app_context():
        author = row_user(alice)
        for i in range(30):
            ids.append(messages.do_send_message(author, room.id, f"general {i:02d}").message.id)
            other_ids.append(messages.do_send_message(author, other.id, f"other {i:02d}").message.id)
    return {"room": room, "other": other, "ids": ids, "other_ids": other_ids}


def around(app, user, room_id, message_id, limit=None):
    """(ids of the page, has_more_before, has_more_after) from the action."""
    with app.app_context():
        page, before, after = history_query.get_messages_around(row_user(user), room_id, message_id, limit=limit)
        return [m["id"] for m in page], before, after


def refusal(app, user, room_id, message_id, limit=None) -> ChatError:
    with app.app_context():
        with pytest.raises(ChatError) as info:
            history_query.get_messages_around(row_user(user), room_id, message_id, limit=limit)
        db.session.rollback()
    return info.value


# --- Pages before and after an id ----------------------------------------------------------

def test_history_pages(app, team):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    ids = _fill(app, alice, room.id, 7)
    with app.app_context():
        reader = row(User, bob)
        page, more = history_query.get_messages(reader, room.id, limit=3)
        assert [m["id"] for m in page] == ids[-3:] and more
        page, more = history_query.get_messages(reader, room.id, before=ids[-3], limit=3)
        assert [m["id"] for m in page] == ids[1:4] and more
        page, more = history_query.get_messages(reader, room.id, before=ids[1], limit=3)
        assert [m["id"] for m in page] == ids[:1] and not more
        page, more = history_query.get_messages(reader, room.id, after=ids[0], limit=3)
        assert [m["id"] for m in page] == ids[1:4] and more
        page, more = history_query.get_messages(reader, room.id, after=ids[3], limit=3)
        assert [m["id"] for m in page] == ids[4:] and not more
        page, more = history_query.get_messages(reader, room.id, after=ids[-1])
        assert page == [] and not more
        page, more = history_query.get_messages(reader, room.id)
        assert [m["id"] for m in page] == ids and not more


def test_history_default_and_maximum_page_size(app, team):
    alice, room = team["alice"], team["room"]
    ids = _fill(app, alice, room.id, 52)
    with app.app_context():
        page, more = history_query.get_messages(row(User, alice), room.id)
        assert [m["id"] for m in page] == ids[-50:] and more
        page, more = history_query.get_messages(row(User, alice), room.id, limit=200)
        assert len(page) == 52 and not more


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 201}, {"limit": -1}, {"before": 5, "after": 1}])
def test_history_refuses_bad_paging(app, team, kwargs):
    with app.app_context():
        refuse("invalid", history_query.get_messages, row(User, team["alice"]), team["room"].id, **kwargs)


def test_history_needs_membership(app, team, make_room):
    secret = make_room(team["alice"], "secret", is_private=True)
    with app.app_context():
        refuse("not_member", history_query.get_messages, row(User, team["dave"]), team["room"].id)
        refuse("not_found", history_query.get_messages, row(User, team["dave"]), secret.id)


# --- Around a message ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("index", "limit", "window"),
    [
        (15, 5, (13, 18)),   # two older, the message, two newer
        (15, 4, (13, 17)),   # an even limit gives the odd one to the older side
        (15, 1, (15, 16)),   # the message alone
        (15, 2, (14, 16)),
        (15, 29, (1, 30)),   # 14 newer exist, so 14 older
    ],
)
def test_page_is_centred_on_the_message(app, team, history, index, limit, window):
    ids = history["ids"]
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[index], limit)
    assert page == ids[window[0]:window[1]]
    assert ids[index] in page
    assert more_before is (window[0] > 0)
    assert more_after is (window[1] < len(ids))


def test_default_limit_is_the_page_size(app, team, history):
    ids = history["ids"]
    with app.app_context():
        app.config["HISTORY_PAGE_SIZE"] = 7
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[10])
    assert page == ids[7:14] and more_before and more_after


def test_a_window_reaching_the_end_is_filled_with_older_messages(app, team, history):
    ids = history["ids"]
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[-1], 5)
    assert page == ids[-5:] and more_before is True and more_after is False
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[-2], 5)
    assert page == ids[-5:] and more_before is True and more_after is False


def test_a_window_at_the_start_has_nothing_older(app, team, history):
    ids = history["ids"]
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[0], 5)
    assert page[0] == ids[0] and more_before is False and more_after is True
    assert page == ids[:len(page)]  # no gap after the first message
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[1], 5)
    assert page[:2] == ids[:2] and more_before is False and more_after is True


def test_a_window_reaching_the_start_is_filled_with_newer_messages(app, team, history):
    ids = history["ids"]
    page, more_before, more_after = around(app, team["bob"], history["room"].id, ids[0], 5)
    assert page == ids[:5] and more_before is False and more_after is True


def test_a_room_smaller_than_the_window_is_returned_whole(app, team, make_room):
    small = make_room(team["alice"], "small", members=[team["bob"]])
    with app.app_context():
        author = row_user(team["alice"])
        ids = [messages.do_send_message(author, small.id, f"s{i}").message.id for i in range(3)]
    for message_id in ids:
        page, more_before, more_after = around(app, team["bob"], small.id, message_id, 50)
        assert message_id in page and (more_before, more_after) == (False, False)
        assert page == ids[:len(page)] or page == ids[-len(page):]
    assert around(app, team["bob"], small.id, ids[1], 50)[0] == ids


def test_window_never_holds_messages_of_another_room(app, team, history):
    page, _, _ = around(app, team["bob"], history["room"].id, history["ids"][15], 200)
    assert page == history["ids"]
    assert not set(page) & set(history["other_ids"])


@pytest.mark.parametrize("limit", [0, -1, 201])
def test_limit_out_of_bounds_is_invalid(app, team, history, limit):
    error = refusal(app, team["bob"], history["room"].id, history["ids"][3], limit)
    assert error.code == "invalid" and error.field == "limit"


def test_limit_bounds_are_accepted(app, team, history):
    ids = history["ids"]
    assert around(app, team["bob"], history["room"].id, ids[3], 1)[0] == [ids[3]]
    assert around(app, team["bob"], history["room"].id, ids[3], 200)[0] == ids


def test_a_message_of_another_room_is_not_found(app, team, history):
    error = refusal(app, team["bob"], history["room"].id, history["other_ids"][15])
    assert error.code == "not_found" and error.field == "around"
    # Also when the caller may read that other room: the anchor must be in the room asked.
    assert refusal(app, team["alice"], history["room"].id, history["other_ids"][0]).code == "not_found"


def test_a_missing_message_is_not_found(app, team, history):
    assert refusal(app, team["bob"], history["room"].id, history["other_ids"][-1] + 1000).code == "not_found"


def test_around_needs_membership(app, team, history, make_room):
    assert refusal(app, team["dave"], history["room"].id, history["ids"][0]).code == "not_member"
    secret = make_room(team["alice"], "secret", is_private=True)
    with app.app_context():
        secret_id = messages.do_send_message(row_user(team["alice"]), secret.id, "hush").message.id
    assert refusal(app, team["bob"], secret.id, secret_id).code == "not_found"


# --- REST --------------------------------------------------------------------------------

def rest(app, bearer, user, query):
    return app.test_client().get(f"/api/v1/rooms/{query}", headers=bearer(user))


def test_rest_around_returns_the_window_and_both_flags(app, team, history, bearer):
    ids, room = history["ids"], history["room"]
    response = rest(app, bearer, team["bob"], f"{room.id}/messages?around={ids[15]}&limit=5")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"messages", "has_more_before", "has_more_after"}
    assert [m["id"] for m in body["messages"]] == ids[13:18]
    assert [m["body"] for m in body["messages"]] == [f"general {i:02d}" for i in range(13, 18)]
    assert body["has_more_before"] is True and body["has_more_after"] is True


def test_rest_around_the_newest_message(app, team, history, bearer):
    ids, room = history["ids"], history["room"]
    body = rest(app, bearer, team["bob"], f"{room.id}/messages?around={ids[-1]}&limit=3").get_json()
    assert [m["id"] for m in body["messages"]] == ids[-3:]
    assert (body["has_more_before"], body["has_more_after"]) == (True, False)


@pytest.mark.parametrize("extra", ["before={b}", "after={b}", "before={b}&after={b}"])
def test_rest_around_with_before_or_after_is_400(app, team, history, bearer, extra):
    ids, room = history["ids"], history["room"]
    query = f"{room.id}/messages?around={ids[10]}&" + extra.format(b=ids[5])
    response = rest(app, bearer, team["bob"], query)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("value", ["0", "-3", "x", "1.5", str(2**64)])
def test_rest_bad_around_is_400(app, team, history, bearer, value):
    response = rest(app, bearer, team["bob"], f"{history['room'].id}/messages?around={value}")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid"


def test_rest_around_a_message_of_another_room_is_404(app, team, history, bearer):
    response = rest(app, bearer, team["bob"], f"{history['room'].id}/messages?around={history['other_ids'][3]}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_rest_around_a_private_room_of_others_is_404(app, team, history, bearer, make_room):
    secret = make_room(team["alice"], "secret", is_private=True)
    with app.app_context():
        secret_id = messages.do_send_message(row_user(team["alice"]), secret.id, "hush").message.id
    response = rest(app, bearer, team["bob"], f"{secret.id}/messages?around={secret_id}")
    assert response.status_code == 404 and "hush" not in response.get_data(as_text=True)


def test_rest_pages_around_then_outwards_without_gaps(app, team, history, bearer):
    """A client opened on a linked message pages back with before= and forward with after=."""
    ids, room = history["ids"], history["room"]
    body = rest(app, bearer, team["bob"], f"{room.id}/messages?around={ids[12]}&limit=6").get_json()
    seen = [m["id"] for m in body["messages"]]
    while body.get("has_more_before", body.get("has_more")) and seen:
        body = rest(app, bearer, team["bob"], f"{room.id}/messages?before={seen[0]}&limit=4").get_json()
        seen = [m["id"] for m in body["messages"]] + seen
    more = True
    while more:
        body = rest(app, bearer, team["bob"], f"{room.id}/messages?after={seen[-1]}&limit=4").get_json()
        seen += [m["id"] for m in body["messages"]]
        more = body["has_more"]
    assert seen == ids


# --- The room page ------------------------------------------------------------------------

def rendered_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'id="message-(\d+)"', response.get_data(as_text=True))]


def test_room_page_around_renders_that_window(app, team, login, make_room):
    alice, bob, room = team["alice"], team["bob"], team["room"]
    with app.app_context():
        author = row_user(alice)
        ids = [messages.do_send_message(author, room.id, f"line-{i:03d}-end").message.id for i in range(120)]
    client = login(bob)
    response = client.get(f"/rooms/{room.id}?around={ids[60]}")
    assert response.status_code == 200
    # The default page of 50: 25 older, the message, 24 newer.
    assert rendered_ids(response) == ids[35:85]
    page = response.get_data(as_text=True)
    assert "line-060-end" in page and "line-034-end" not in page and "line-085-end" not in page
    assert "line-119-end" not in page  # not the newest page
    assert 'id="load-older"' in page
    # Without around, the newest 50 as before.
    assert rendered_ids(client.get(f"/rooms/{room.id}")) == ids[-50:]


def test_room_page_around_the_newest_message_is_the_newest_page(app, team, login):
    alice, room = team["alice"], team["room"]
    with app.app_context():
        author = row_user(alice)
        ids = [messages.do_send_message(author, room.id, f"m{i}").message.id for i in range(60)]
    assert rendered_ids(login(team["bob"]).get(f"/rooms/{room.id}?around={ids[-1]}")) == ids[-50:]


def test_room_page_around_a_message_not_in_the_room_opens_the_latest_page(app, team, history, login):
    # A stale link (a message of another room, or one that is gone) still opens the room.
    response = login(team["bob"]).get(f"/rooms/{history['room'].id}?around={history['other_ids'][5]}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "That message is no longer in this room." in html
    assert "other 05" not in html
    assert f'id="message-{history["ids"][-1]}"' in html


def test_room_page_bad_around_is_400(app, team, history, login):
    assert login(team["bob"]).get(f"/rooms/{history['room'].id}?around=abc").status_code == 400
