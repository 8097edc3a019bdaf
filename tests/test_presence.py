"""Presence: states, the coalescing flusher, who hears about whom, `activity`, GET /api/v1/presence,
and the Redis store's sweeps and claims against a real Redis (skipped without one)."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest

from app import create_app
from app.config import TestConfig
from app.extensions import db, socketio
from app.models import User
from app.realtime import presence
from tests.conftest import events_named


def flush(app, now: float | None = None) -> int:
    """Run the flusher once, as the background job does every PRESENCE_FLUSH_SECONDS."""
    with app.app_context():
        return presence.flush_now(now)


def states(app, *users) -> dict:
    with app.app_context():
        return presence.get_states([u.id for u in users])


def presences(client) -> list[dict]:
    return events_named(client, "presence")


def drain(app, *clients) -> None:
    """Flush what is pending and forget what the clients received so far."""
    flush(app)
    for client in clients:
        client.get_received()


def expected(user, state, status_text="", status_emoji="", dnd_until=None) -> dict:
    return {"user_id": user.id, "state": state, "status_text": status_text, "status_emoji": status_emoji,
            "dnd_until": dnd_until}


# --- States and events ---------------------------------------------------------------------

def test_a_connecting_user_is_idle_for_those_sharing_a_room_and_nobody_else(app, team, live):
    alice, bob, carol, dave = team["alice"], team["bob"], team["carol"], team["dave"]
    b, d = live(bob), live(dave)
    drain(app, b, d)
    assert states(app, alice) == {alice.id: "offline"}
    a = live(alice)
    assert states(app, alice, bob, carol, dave) == {
        alice.id: "idle", bob.id: "idle", carol.id: "offline", dave.id: "idle"}
    assert flush(app) == 1
    assert presences(b) == [expected(alice, "idle")]
    assert presences(a) == [expected(alice, "idle")]  # the user's own other tabs see it too
    assert presences(d) == []  # dave shares no room with alice


def test_activity_makes_the_user_active_and_the_sweep_idle_again(app, team, live):
    alice, bob = team["alice"], team["bob"]
    a, b = live(alice), live(bob)
    drain(app, a, b)
    assert a.emit("activity", {}, callback=True) == {"ok": True}
    assert states(app, alice) == {alice.id: "active"}
    flush(app)
    assert presences(b) == [expected(alice, "active")]
    # Input again while active: nothing new to say.
    assert a.emit("activity", {}, callback=True) == {"ok": True}
    assert flush(app) == 0 and presences(b) == []
    # PRESENCE_IDLE_SECONDS later, without input, the sweep finds the change.
    later = time.time() + app.config["PRESENCE_IDLE_SECONDS"] + 1
    assert states(app, alice) == {alice.id: "active"}
    flush(app, now=later)
    assert presences(b) == [expected(alice, "idle")]
    assert states(app, alice) == {alice.id: "idle"}


@pytest.mark.parametrize("args", [(), (None,), ("x",), ([],), (5,)])
def test_activity_needs_an_object(app, team, live, args):
    a = live(team["alice"])
    ack = a.emit("activity", *args, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid"


def test_offline_only_when_the_last_tab_closes(app, team, live):
    alice, bob = team["alice"], team["bob"]
    b, tab1, tab2 = live(bob), live(alice), live(alice)
    drain(app, b)
    tab1.disconnect()
    assert flush(app) == 0 and presences(b) == []
    assert states(app, alice) == {alice.id: "idle"}
    tab2.disconnect()
    assert states(app, alice) == {alice.id: "offline"}
    flush(app)
    assert presences(b) == [expected(alice, "offline")]


def test_a_disconnect_goes_offline_even_when_the_socket_registry_fails(app, team, live, monkeypatch):
    """The registry and presence are forgotten one after the other, each on its own: a
    registry that fails (Redis away) must not leave the user online."""
    alice = team["alice"]
    tab = live(alice)
    registry = app.extensions["chorus.sockets"]

    def unreachable(_sid):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(registry, "remove", unreachable)
    tab.disconnect()
    assert states(app, alice) == {alice.id: "offline"}


def test_a_reconnect_within_the_flush_window_sends_nothing(app, team, live):
    alice, bob = team["alice"], team["bob"]
    b, a = live(bob), live(alice)
    drain(app, b, a)
    a.disconnect()
    live(alice)
    assert flush(app) == 0
    assert presences(b) == []


def test_many_tabs_opened_and_closed_between_two_flushes_make_at_most_one_event(app, team, live):
    alice, bob = team["alice"], team["bob"]
    b = live(bob)
    drain(app, b)
    for _ in range(10):
        live(alice).disconnect()
    tab = live(alice)
    for _ in range(5):
        live(alice).disconnect()
    flush(app)
    assert presences(b) == [expected(alice, "idle")]
    tab.disconnect()
    for _ in range(5):
        live(alice).disconnect()
    flush(app)
    assert presences(b) == [expected(alice, "offline")]


def test_one_emit_to_the_user_channel_of_everyone_who_shares_a_room_or_dm(app, team, make_user, make_room,
                                                                          live, emitted):
    alice, bob, carol, dave = team["alice"], team["bob"], team["carol"], team["dave"]
    erin, frank = make_user("erin"), make_user("frank")
    make_room(alice, "secret", members=[erin], is_private=True)
    make_room(alice, "other", members=[bob])  # bob twice: still one channel
    make_room(frank, "far", members=[dave])
    live(alice)
    flush(app)
    presence_emits = [(data, to) for event, data, to in emitted if event == "presence"]
    assert len(presence_emits) == 1
    data, to = presence_emits[0]
    assert data == expected(alice, "idle")
    assert sorted(to) == sorted(f"user:{u.id}" for u in (alice, bob, carol, erin))


def test_a_status_change_is_pushed_once(app, team, live):
    alice, bob = team["alice"], team["bob"]
    a, b = live(alice), live(bob)
    drain(app, a, b)
    dnd = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    with app.app_context():
        user = db.session.get(User, alice.id)
        user.status_text, user.status_emoji, user.dnd_until = "In a meeting", "📅", dnd
        db.session.commit()
        presence.status_changed(alice.id)
    flush(app)
    assert presences(b) == [expected(alice, "idle", "In a meeting", "📅", "2031-05-06T07:08:09.000Z")]
    with app.app_context():
        presence.status_changed(alice.id)  # nothing actually changed
    assert flush(app) == 0 and presences(b) == []


def test_a_status_change_of_someone_offline_is_pushed_as_offline(app, team, live):
    alice, bob = team["alice"], team["bob"]
    b = live(bob)
    drain(app, b)
    with app.app_context():
        db.session.get(User, alice.id).status_text = "away"
        db.session.commit()
        presence.status_changed(alice.id)
    flush(app)
    assert presences(b) == [expected(alice, "offline", "away")]


def test_logout_takes_the_user_offline(app, team, login, live):
    alice, bob = team["alice"], team["bob"]
    b = live(bob)
    http = login(alice)
    a = socketio.test_client(app, flask_test_client=http)
    drain(app, b)
    assert states(app, alice) == {alice.id: "idle"}
    assert http.post("/logout").status_code == 302
    assert not a.is_connected()
    flush(app)
    assert presences(b) == [expected(alice, "offline")]


def test_get_states_in_a_worker_app_reads_the_same_store_kind(tmp_path):
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/w.db"})
    worker = create_app(config, worker=True)
    with worker.app_context():
        assert presence.get_states([1, 2]) == {1: "offline", 2: "offline"}
        presence.status_changed(1)  # marks dirty; no flusher runs in a worker
        assert presence.store().take_dirty() == [1]


def test_the_background_jobs_flush_on_their_own(app, team, live):
    """start_presence_jobs runs the flusher every PRESENCE_FLUSH_SECONDS (threads in tests)."""
    alice, bob = team["alice"], team["bob"]
    b = live(bob)
    drain(app, b)
    app.config["PRESENCE_FLUSH_SECONDS"] = 0.05
    jobs = presence.start_presence_jobs(app)
    try:
        live(alice)
        deadline = time.monotonic() + 10
        got = []
        while time.monotonic() < deadline and not got:
            got = presences(b)
            time.sleep(0.02)
        assert got == [expected(alice, "idle")]
    finally:
        jobs.stop()


# --- GET /api/v1/presence -------------------------------------------------------------------

def test_presence_api_answers_for_people_sharing_a_room_and_the_caller(app, team, make_user, live, bearer):
    alice, bob, carol, dave = team["alice"], team["bob"], team["carol"], team["dave"]
    live(bob)
    live(alice).emit("activity", {}, callback=True)
    with app.app_context():
        db.session.get(User, carol.id).status_emoji = "🌴"
        db.session.commit()
    ids = f"{dave.id},{carol.id},{alice.id},{bob.id},{carol.id},999999"
    response = app.test_client().get(f"/api/v1/presence?user_ids={ids}", headers=bearer(alice))
    assert response.status_code == 200
    assert response.get_json() == {"presence": [
        expected(carol, "offline", status_emoji="🌴"), expected(alice, "active"), expected(bob, "idle")]}
    # dave shares nothing with alice, and alice nothing with dave but himself.
    response = app.test_client().get(f"/api/v1/presence?user_ids={alice.id},{dave.id}", headers=bearer(dave))
    assert response.get_json() == {"presence": [expected(dave, "offline")]}


def test_presence_api_with_an_empty_list(app, team, bearer):
    response = app.test_client().get("/api/v1/presence?user_ids=", headers=bearer(team["alice"]))
    assert response.status_code == 200 and response.get_json() == {"presence": []}


@pytest.mark.parametrize("query", [
    "", "?user_ids=abc", "?user_ids=1,,2", "?user_ids=1,", "?user_ids=-1", "?user_ids=0", "?user_ids=1.5",
    "?user_ids=%C2%B2", "?user_ids=99999999999999999999", "?user_ids=" + "9" * 5000, "?user_ids=0x10",
    "?user_ids=" + ",".join(str(i) for i in range(1, 202)),
])
def test_presence_api_refuses_bad_ids(app, team, bearer, query):
    response = app.test_client().get(f"/api/v1/presence{query}", headers=bearer(team["alice"]))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and error["message"]


def test_presence_api_takes_200_ids(app, team, bearer):
    ids = ",".join(str(i) for i in range(1, 201))
    response = app.test_client().get(f"/api/v1/presence?user_ids={ids}", headers=bearer(team["alice"]))
    assert response.status_code == 200
    assert {p["user_id"] for p in response.get_json()["presence"]} == {
        team[n].id for n in ("alice", "bob", "carol")}


def test_presence_api_needs_a_login(app, team):
    response = app.test_client().get(f"/api/v1/presence?user_ids={team['bob'].id}")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


# --- The Redis store (cluster mode), against a real Redis -----------------------------------

@pytest.fixture
def redis_stores():
    """Two RedisPresenceStores (two "servers") on one fresh key prefix, with short settings."""
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("needs Redis at 127.0.0.1:6379")
    prefix = f"chorus-test-{uuid.uuid4().hex[:10]}:presence:"
    stores = [presence.RedisPresenceStore(url, prefix, idle_seconds=300, ttl_seconds=60) for _ in range(2)]
    yield stores
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def test_redis_store_states_and_claims(redis_stores):
    a, b = redis_stores
    now = time.time()
    assert a.get_states([1, 2], now) == {1: "offline", 2: "offline"}
    a.connected(1, "sid-a1", now)
    b.connected(1, "sid-b1", now)
    b.connected(2, "sid-b2", now)
    assert b.get_states([1, 2, 3], now) == {1: "idle", 2: "idle", 3: "offline"}
    b.record_activity(2, now)
    assert a.get_states([2], now) == {2: "active"}
    # Every dirty user is taken by exactly one server.
    taken = a.take_dirty(1) + b.take_dirty(10) + a.take_dirty(10)
    assert sorted(taken) == [1, 2]
    # And each state is sent once, by whichever server claims it first.
    assert a.claim_change(1, "s", now) == "idle"
    assert b.claim_change(1, "s", now) is None
    assert b.claim_change(1, "other status", now) == "idle"
    a.disconnected("sid-a1", now)
    assert b.get_states([1], now) == {1: "idle"}  # still on b
    b.disconnected("sid-b1", now)
    assert a.get_states([1], now) == {1: "offline"}
    assert a.claim_change(1, "other status", now) == "offline"


def test_redis_store_sweeps_a_dead_servers_sockets_once(redis_stores):
    a, b = redis_stores
    now = time.time()
    a.connected(1, "sid-a1", now)  # a will "die": it never refreshes
    b.connected(2, "sid-b2", now)
    a.take_dirty(10)
    b.heartbeat(now + 40)  # b refreshes its own sockets
    assert a.sweep(now + 30) == 0
    assert b.get_states([1, 2], now + 59) == {1: "idle", 2: "idle"}
    # Past the TTL: exactly one of two sweeping servers handles the expiry.
    assert a.sweep(now + 61) + b.sweep(now + 61) == 1
    assert b.get_states([1, 2], now + 61) == {1: "offline", 2: "idle"}
    assert b.take_dirty(10) == [1]


def test_redis_store_idle_sweep_and_heartbeat_revival(redis_stores):
    a, b = redis_stores
    now = time.time()
    a.connected(1, "sid-a1", now)
    a.record_activity(1, now)
    assert sorted(a.take_dirty(10)) == [1]
    a.record_activity(1, now + 10)  # still active: not dirty again
    assert a.take_dirty(10) == []
    a.heartbeat(now + 150)
    assert a.sweep(now + 200) == 0
    a.heartbeat(now + 260)
    assert b.sweep(now + 311) == 1 and a.sweep(now + 311) == 0
    assert b.get_states([1], now + 311) == {1: "idle"}
    assert a.take_dirty(10) == [1]
    # a stalled past the TTL, was swept, then refreshes: its user comes back.
    b.sweep(now + 400)
    assert b.get_states([1], now + 400) == {1: "offline"}
    a.take_dirty(10)
    assert a.heartbeat(now + 401) == 1
    assert b.get_states([1], now + 401) == {1: "idle"}
    assert a.take_dirty(10) == [1]


def test_a_socket_that_leaves_during_a_heartbeat_is_not_revived(redis_stores, monkeypatch):
    """The heartbeat writes deadlines in chunks and yields between them. A socket that
    disconnects while its chunk is written (its own removal landing first) must be gone
    before the next chunk, not "revived" and flushed as online until the heartbeat ends."""
    a, b = redis_stores
    now = time.time()
    for user_id in range(1, 1002):  # two chunks
        a.connected(user_id, f"sid-{user_id}", now)
    b.sweep(now + 61)  # a stalled past the TTL: every socket swept, so each write "revives"
    a.take_dirty(2000)
    pipeline, seen = a._redis.pipeline, {}

    def pipeline_with_a_disconnect(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        def execute_after_the_disconnect():
            if "first" not in seen:
                seen["first"] = a.disconnected("sid-1")  # lands between snapshot and write
            return execute()

        pipe.execute = execute_after_the_disconnect
        return pipe

    def between_chunks(_seconds=0):
        seen["between"] = (b.get_states([1, 2], now + 62), set(a.take_dirty(2000)))

    monkeypatch.setattr(a._redis, "pipeline", pipeline_with_a_disconnect)
    monkeypatch.setattr(presence.socketio, "sleep", between_chunks)
    assert a.heartbeat(now + 62) == 1001
    states, dirty = seen["between"]
    assert states == {1: "offline", 2: "idle"}
    assert 2 in dirty  # revived, to be flushed as back online; user 1 only as gone
    assert b.get_states([1], now + 62) == {1: "offline"}


def test_a_worker_app_reads_the_servers_presence_from_redis(redis_stores, tmp_path):
    """create_app(worker=True) in the cluster mode: get_states sees what the servers wrote, and
    status_changed leaves the user for a server's flusher."""
    server_store, _ = redis_stores
    prefix = server_store._prefix[: -len("presence:")]
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/w.db",
                                         "REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_KEY_PREFIX": prefix})
    worker = create_app(config, worker=True)
    now = time.time()
    server_store.connected(7, "sid-7", now)
    server_store.connected(8, "sid-8", now)
    server_store.record_activity(8, now)
    server_store.take_dirty(10)
    with worker.app_context():
        assert presence.get_states([7, 8, 9]) == {7: "idle", 8: "active", 9: "offline"}
        presence.status_changed(9)
    assert server_store.take_dirty(10) == [9]


def test_a_burst_past_the_redis_pool_waits_for_a_connection_instead_of_failing(redis_stores, monkeypatch):
    """Thousands of sockets closing at once (a deploy) outnumber the pool's connections: the
    calls queue for one. redis-py's default pool raised "Too many connections" instead, and
    a disconnect that failed so left its socket alive in presence."""
    import threading

    from app.realtime import registry

    monkeypatch.setattr(registry, "REDIS_POOL_SIZE", 2)
    registry.shared_redis.cache_clear()
    try:
        store = presence.RedisPresenceStore("redis://127.0.0.1:6379/0", redis_stores[0]._prefix,
                                            idle_seconds=300, ttl_seconds=60)
        pool = store._redis.connection_pool
        held = [pool.get_connection(), pool.get_connection()]  # every connection busy
        done, failed = threading.Event(), []

        def disconnect_during_the_burst():
            try:
                store.connected(7, "sid-burst")
                store.disconnected("sid-burst")
            except Exception as exc:  # what the default pool did
                failed.append(exc)
            done.set()

        threading.Thread(target=disconnect_during_the_burst, daemon=True).start()
        assert not done.wait(0.3)  # waiting for a connection, not failing
        for connection in held:
            pool.release(connection)
        assert done.wait(10) and failed == []
        assert store.get_states([7]) == {7: "offline"}
    finally:
        registry.shared_redis.cache_clear()
