"""Threads on two servers, no faults: concurrent replies keep every root's summary exact.

Six users, on servers a and b by turns, reply through `ReliableClient` to the same root at
once (every 20-40 ms each while at most three wait for their acks, so both processes store
batches of replies to one root while the other does): a fifth of them to a second root,
some also sent to the room, one a reply to a reply (it attaches to the root), one a
quote-reply, a few top-level messages between, and one reply deleted mid-way. Two more
clients only listen, and a third connects half-way and reads the room from the start
while replies keep coming (pages of 20).

Afterwards, with PostgreSQL's replies as the judge:
- each root's `thread` in history (the main timeline and `?thread=`) counts the replies not
  deleted, names the first repliers and the newest reply's time;
- every summary broadcast (`message_updated`, change `thread`) counted exactly the replies
  committed before its rev, and took the rev right after them: a reply and its root's
  summary are one commit;
- every client, from live events and catch-up, holds every message as stored, each root
  with that summary, each thread's replies and the main timeline; the revs it saw run
  1, 2, 3, ... to the room's head, each on one message, each delivered live once;
- `?thread=` read back from the newest reply with a small `limit` and `before=` gives the
  root and every reply exactly once, in id order;
- the root's author has one notification per reply by someone else (the worker made them);
- no process logged an error.

`pytest -s` prints the figures: replies, summaries broadcast (fewer than replies: replies
stored in one batch share a summary), deliveries and catch-ups.
"""
from __future__ import annotations

import random
import re
import time
from datetime import timezone

import pytest

from app.actions.threads import THREAD_REPLIERS_SHOWN
from app.lib.serializers import iso
from tests.integration.client import ReliableClient, in_main_timeline, wait_for
from tests.integration.cluster import Cluster, require_services, running_cluster
from tests.integration.test_faults import cluster_log_errors, stored_states

USERS = ["t0", "t1", "t2", "t3", "t4", "t5"]
LISTENERS = {"t0-b": ("t0", "b"), "t3-a": ("t3", "a")}
ROUNDS = 40                  # replies per user
EVERY = (0.02, 0.04)         # seconds between two replies of one user (at most three waiting)
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b")


# --- PostgreSQL as the judge, for both thread test files ------------------------------------

def stored_thread(cluster: Cluster, root_id: int) -> list[tuple[int, str, str, bool]]:
    """A thread's replies as stored, in id order: (id, author's username, created_at as the
    API writes it, deleted)."""
    rows = cluster.sql(
        "SELECT m.id, u.username, m.created_at, m.deleted_at IS NOT NULL FROM messages m "
        "JOIN users u ON u.id = m.author_id WHERE m.thread_root_id = %s ORDER BY m.id", root_id)
    return [(i, username, iso(at if at.tzinfo else at.replace(tzinfo=timezone.utc)), deleted)
            for i, username, at, deleted in rows]


def expected_summary(replies: list[tuple[int, str, str, bool]]) -> dict:
    """The summary a root must carry for these replies (docs/API.md "Shapes"): replies not
    deleted, the newest one's time, the first repliers in the order of their first reply."""
    live = [r for r in replies if not r[3]]
    repliers = list(dict.fromkeys(username for _, username, _, _ in live))[:THREAD_REPLIERS_SHOWN]
    return {"reply_count": len(live), "last_reply_at": max((at for _, _, at, _ in live), default=None),
            "repliers": repliers}


def stored_main_timeline(cluster: Cluster, room_id: int) -> list[int]:
    """The ids of the room's main timeline: top-level messages and replies also sent to the room."""
    return [row[0] for row in cluster.sql(
        "SELECT id FROM messages WHERE room_id = %s AND (thread_root_id IS NULL OR also_in_room) ORDER BY id",
        room_id)]


def last_rev(cluster: Cluster, room_id: int) -> int:
    return cluster.sql("SELECT last_rev FROM rooms WHERE id = %s", room_id)[0][0]


def thread_view_problems(cluster: Cluster, client: ReliableClient, room_id: int, roots: list[int]) -> list[str]:
    """How a client's view of the room's threads differs from PostgreSQL: each root's summary,
    each thread's replies, the main timeline, and its rooms' states."""
    problems = []
    if client.states(room_id) != stored_states(cluster, room_id):
        problems.append(f"{client.name}: the room's states differ from PostgreSQL's")
    for root_id in roots:
        replies = stored_thread(cluster, root_id)
        if client.thread_ids(root_id) != [r[0] for r in replies]:
            problems.append(f"{client.name}: thread {root_id} holds {client.thread_ids(root_id)}, "
                            f"stored {[r[0] for r in replies]}")
        if client.summary(root_id) != expected_summary(replies):
            problems.append(f"{client.name}: root {root_id} summary {client.summary(root_id)}, "
                            f"expected {expected_summary(replies)}")
    if client.main_ids(room_id) != stored_main_timeline(cluster, room_id):
        problems.append(f"{client.name}: main timeline {client.main_ids(room_id)} differs from PostgreSQL's")
    return problems + [f"{client.name}: {p}" for p in client.problems]


def logged_errors(cluster: Cluster, names) -> dict[str, str]:
    """Tracebacks (cluster_log_errors) and lines logged at ERROR or CRITICAL, per process."""
    found = cluster_log_errors(cluster, names)
    for name in names:
        lines = [line for line in cluster.log(name).splitlines() if ERROR_LINE.search(line)]
        if lines:
            found[name] = found.get(name, "") + "\n".join(lines[:10])
    return found


def summary_broadcast_problems(deliveries: list[dict]) -> list[str]:
    """Replay the room's live changes (from every client, one per rev) in rev order and check
    each root summary against the replies committed before it: the count of replies not
    deleted, the repliers, the newest reply's time. And each reply is one commit with its
    root's summary: every rev between a reply and the next summary of its root is another
    new message or summary of that commit (no edit, delete or reaction comes between)."""
    by_rev: dict[int, dict] = {}
    for data in deliveries:
        by_rev.setdefault(data["rev"], data)
    problems, replies = [], {}  # reply id -> (root, username, created_at, deleted)
    for rev in sorted(by_rev):
        data = by_rev[rev]
        kind = (data.get("change") or {}).get("kind")
        root_id = data.get("thread_root_id")
        if "change" not in data and root_id is not None:
            replies[data["id"]] = (root_id, data["author"]["username"], data["created_at"], False)
        elif kind == "delete" and root_id is not None:
            replies[data["id"]] = replies[data["id"]][:3] + (True,)
        elif kind == "thread":
            committed = [(i, *r[1:]) for i, r in sorted(replies.items()) if r[0] == data["id"]]
            if data["thread"] != expected_summary(committed):
                problems.append(f"summary of {data['id']} at rev {rev}: {data['thread']}, "
                                f"expected {expected_summary(committed)}")
    for rev, data in sorted(by_rev.items()):
        if "change" in data or data.get("thread_root_id") is None:
            continue
        after = rev + 1
        while after in by_rev and not ((by_rev[after].get("change") or {}).get("kind") == "thread"
                                       and by_rev[after]["id"] == data["thread_root_id"]):
            between = by_rev[after]
            if "change" in between and between["change"]["kind"] != "thread":
                problems.append(f"reply {data['id']} (rev {rev}): rev {after} is {between.get('change')} "
                                f"of {between['id']} before its root's summary")
                break
            after += 1
        if after not in by_rev:
            problems.append(f"reply {data['id']} (rev {rev}): no summary of its root after it")
    return problems


# --- The run ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The cluster, the clients and what happened."""
    require_services()
    with running_cluster(tmp_path_factory.mktemp("threads-busy"), env={"RATELIMIT_ENABLED": "0"}) as cluster:
        tokens = {short: cluster.register("a", f"thr_{short}") for short in USERS}
        user_ids = {short: cluster.api("a", tokens[short], "GET", "/me").json()["id"] for short in USERS}
        room = cluster.api("a", tokens["t0"], "POST", "/rooms", json={"name": "threads"}).json()["id"]
        for short in USERS[1:]:
            r = cluster.api("a", tokens["t0"], "POST", f"/rooms/{room}/members", json={"username": f"thr_{short}"})
            assert r.status_code == 201, r.text

        def client(name, short, server, **kwargs):
            return ReliableClient(name, user_ids[short], tokens[short], [cluster.servers[server]], [room], **kwargs)

        active = {short: client(short, short, "ab"[i % 2]) for i, short in enumerate(USERS)}
        listening = {name: client(name, short, server) for name, (short, server) in LISTENERS.items()}
        late = client("t5-late", "t5", "b", page_size=20)
        clients = {**active, **listening, late.name: late}
        try:
            for c in [*active.values(), *listening.values()]:
                c.start()
            assert all(c.wait_until(lambda c=c: c.connected, 20) for c in clients.values() if c is not late)
            first = active["t0"].queue_send(room, "first question")
            second = active["t1"].queue_send(room, "second question")
            assert wait_for(lambda: first.message and second.message, 10)
            roots = [first.message["id"], second.message["id"]]

            rng = random.Random(31)
            replies, specials = [], {}
            due = {short: time.monotonic() + rng.uniform(*EVERY) for short in USERS}
            sent = dict.fromkeys(USERS, 0)
            while any(n < ROUNDS for n in sent.values()):
                now = time.monotonic()
                for short, c in active.items():
                    if sent[short] >= ROUNDS or due[short] > now or len(c.outbox) > 2:
                        continue  # a user types on while a few of its sends wait for their acks
                    due[short] = now + rng.uniform(*EVERY)
                    n = sent[short] = sent[short] + 1
                    if short == "t5" and n % 10 == 0:
                        specials.setdefault("top", []).append(c.queue_send(room, f"t5 top level {n}"))
                    root = roots[1] if rng.random() < 0.2 else roots[0]
                    replies.append(c.queue_send(room, f"{short} replies {n}", thread_root_id=root,
                                                also_in_room=rng.random() < 0.1))
                if sent["t0"] == ROUNDS // 2 and "late" not in specials:
                    specials["late"] = late.start()
                doomed = next((op for op in active["t3"].sends if op.message and op.thread_root_id == roots[0]), None)
                if sent["t3"] >= ROUNDS // 3 and doomed and "deleted" not in specials:
                    # A reply of t3 to the first root, deleted while the others keep replying.
                    specials["deleted"] = active["t3"].queue_delete(doomed.message["id"])
                target = next((op for op in active["t2"].sends if op.message and op.thread_root_id == roots[0]), None)
                if sent["t4"] >= ROUNDS // 2 and target and "nested" not in specials:
                    # A reply to a reply: it attaches to that reply's root.
                    specials["nested"] = active["t4"].queue_send(room, "t4 answers a reply",
                                                                  thread_root_id=target.message["id"])
                    specials["quote"] = active["t1"].queue_send(room, "t1 quotes the first", quote_of=roots[0])
                time.sleep(0.002)
            drained = all(c.wait_until(c.idle, 30) for c in clients.values())

            def converged():
                return all(not thread_view_problems(cluster, c, room, roots) and c.cursor[room] ==
                           last_rev(cluster, room) for c in clients.values())

            wait_for(converged, 10)
            result = {"cluster": cluster, "room": room, "roots": roots, "active": active, "clients": clients,
                      "late": late, "replies": replies + [specials["nested"]], "specials": specials,
                      "drained": drained, "tokens": tokens, "user_ids": user_ids}
            print(figures(result))
            yield result
        finally:
            for c in clients.values():
                c.stop()


def figures(run: dict) -> str:
    """One line: replies, summaries broadcast, deliveries, catch-ups, late deliveries."""
    clients = run["clients"].values()
    summaries = {(d["id"], d["rev"]) for c in clients for d in c.live_log
                 if (d.get("change") or {}).get("kind") == "thread"}
    return (f"[threads, two servers] clients={len(clients)} replies={len(run['replies'])} "
            f"summaries={len(summaries)} head={last_rev(run['cluster'], run['room'])} "
            f"deliveries={sum(c.deliveries for c in clients)} "
            f"catch_ups={sum(c.gap_catch_ups() for c in clients)} "
            f"late_joiner_pages={run['late'].catch_up_pages} late_deliveries={sum(c.late_live for c in clients)}")


def test_every_reply_was_stored_and_the_roots_count_is_exact_in_history(run):
    cluster, room, (first, second) = run["cluster"], run["room"], run["roots"]
    assert run["drained"]
    replies = run["replies"]
    assert all(op.message is not None and not op.duplicate for op in replies)
    assert run["specials"]["deleted"].message["deleted"] is True
    assert run["specials"]["nested"].message["thread_root_id"] == first
    assert run["specials"]["quote"].message["quote_of"] == first
    acked = {root: {op.message["id"] for op in replies if op.message["thread_root_id"] == root}
             for root in (first, second)}
    acked[first].discard(run["specials"]["deleted"].message_id)
    token = run["tokens"]["t2"]
    main = cluster.api("b", token, "GET", f"/rooms/{room}/messages", params={"after": 0, "limit": 200}).json()
    assert not main["has_more"]
    in_main = {m["id"]: m for m in main["messages"]}
    for root in (first, second):
        stored = stored_thread(cluster, root)
        assert [r[0] for r in stored if not r[3]] == sorted(acked[root])
        assert in_main[root]["thread"] == expected_summary(stored)
        assert in_main[root]["thread"]["reply_count"] == len(acked[root])
        thread = cluster.api("a", token, "GET", f"/rooms/{room}/messages", params={"thread": root}).json()
        assert thread["root"]["thread"] == expected_summary(stored)
        assert cluster.sql("SELECT reply_count FROM messages WHERE id = %s", root)[0][0] == len(acked[root])
    assert len(acked[first]) >= 150
    # The two servers' replies interleave in the room's sequence (users t0, t2, t4 are on a).
    on_a = {f"thr_{short}" for short in USERS[::2]}
    servers = [username in on_a for _, username, _, _ in stored_thread(cluster, first)]
    assert sum(x != y for x, y in zip(servers, servers[1:])) >= 50


def test_every_summary_broadcast_counted_the_replies_before_it(run):
    deliveries = [d for c in run["clients"].values() for d in c.live_log]
    assert summary_broadcast_problems(deliveries) == []
    summaries = {d["rev"] for d in deliveries if (d.get("change") or {}).get("kind") == "thread"}
    assert 10 <= len(summaries) <= len(run["replies"]) + 1, figures(run)  # + 1: the delete's summary


def test_every_client_holds_every_reply_and_each_roots_summary(run):
    for client in run["clients"].values():
        assert thread_view_problems(run["cluster"], client, run["room"], run["roots"]) == []
    late = run["late"]
    # The late client read the first half from pages, and the rest arrived live meanwhile.
    assert late.catch_up_pages >= 3 and len(late.via_resync) >= 50 and late.deliveries >= 50
    clients = run["clients"].values()
    assert 1000 * sum(c.gap_catch_ups() for c in clients) / sum(c.deliveries for c in clients) < 1, figures(run)


def test_revs_run_whole_to_the_head_and_each_was_delivered_once(run):
    cluster, room = run["cluster"], run["room"]
    head = last_rev(cluster, room)
    stored_revs = [row[0] for row in cluster.sql("SELECT rev FROM messages WHERE room_id = %s", room)]
    assert len(set(stored_revs)) == len(stored_revs) and max(stored_revs) == head
    owners: dict[int, int] = {}
    for client in run["clients"].values():
        assert client.cursor[room] == head, client.name
        live = [d["rev"] for d in client.live_log]
        assert len(live) == len(set(live)), client.name
        for d in client.live_log:
            assert owners.setdefault(d["rev"], d["id"]) == d["id"]
        if client is not run["late"]:
            # Connected before the first root: every change of the room reached it live.
            assert sorted(live) == list(range(1, head + 1)), client.name
    assert sorted(owners) == list(range(1, head + 1))


def test_thread_pages_give_every_reply_once_in_id_order(run):
    cluster, room = run["cluster"], run["room"]
    reader = run["clients"]["t3-a"]
    for root, limit in zip(run["roots"], (7, 3)):
        stored = [r[0] for r in stored_thread(cluster, root)]
        pages = reader.read_thread(room, root, limit=limit)
        assert [p["has_more"] for p in pages] == [True] * (len(pages) - 1) + [False]
        assert all(len(p["messages"]) == limit for p in pages[:-1])
        ids = [m["id"] for p in reversed(pages) for m in p["messages"]]
        assert ids == [root, *stored]  # the root first, then every reply once, tombstone included
        assert all(p["root"]["id"] == root and p["root"]["thread"] == expected_summary(stored_thread(cluster, root))
                   for p in pages)
        # The id of a reply reads its root's thread.
        by_reply = cluster.api("b", run["tokens"]["t0"], "GET", f"/rooms/{room}/messages",
                               params={"thread": stored[-1], "limit": 2}).json()
        assert by_reply["root"]["id"] == root and [m["id"] for m in by_reply["messages"]] == stored[-2:]
    assert reader.problems == []
    # The main timeline paged back from its newest message: top-level and also-in-room only.
    main, before = [], None
    while True:
        params = {"limit": 9, **({"before": before} if before else {})}
        page = cluster.api("a", run["tokens"]["t4"], "GET", f"/rooms/{room}/messages", params=params).json()
        main[:0] = page["messages"]
        if not page["has_more"]:
            break
        before = page["messages"][0]["id"]
    assert [m["id"] for m in main] == stored_main_timeline(cluster, room)
    assert all(in_main_timeline(m) for m in main) and sum(m["thread_root_id"] is not None for m in main) >= 5


def test_the_roots_author_is_notified_of_every_reply_once(run):
    cluster = run["cluster"]
    for root, author in zip(run["roots"], ("t0", "t1")):
        expected = sorted(r[0] for r in stored_thread(cluster, root) if not r[3] and r[1] != f"thr_{author}")

        def notified():
            return [row[0] for row in cluster.sql(
                "SELECT message_id FROM notifications WHERE user_id = %s AND kind = 'thread_reply' "
                "AND message_id IN (SELECT id FROM messages WHERE thread_root_id = %s AND deleted_at IS NULL) "
                "ORDER BY message_id",
                run["user_ids"][author], root)]

        wait_for(lambda: notified() == expected, 20)
        assert notified() == expected


def test_no_process_logged_an_error(run):
    assert logged_errors(run["cluster"], ["a", "b", "worker"]) == {}
