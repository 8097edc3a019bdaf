"""Chorus benchmarks beside a bare Flask-SocketIO baseline.

    .venv/bin/python bench/run.py                      # the quick default (make bench), ~30 min
    .venv/bin/python bench/run.py --full               # the full sizes, every async mode
    .venv/bin/python bench/run.py --scenarios tail --tail-seconds 10 --quiet-wait 1
    .venv/bin/python bench/run.py --scenarios fanout --fanout-dbs sqlite --rates 25,50 --step-seconds 3

Scenarios: fanout (1), tail (1t), rooms (2), connections (3), cluster (4), mentions (5),
history (6), mixed (7), presence (8). Every fan-out figure has the bare baseline beside Chorus (and the checkout of
--before-root when given), measured in the same invocation.

- fanout: a room of 100 members, every member sending in turn; the rate steps up in short
  steps until a target fails twice in a row; then each target's best short-step rate is
  re-checked for --tail-seconds (60 s), stepping down the ladder at most twice until one
  holds: that verified rate is the "sustained" one. eventlet on each of --fanout-dbs
  (PostgreSQL and SQLite by default); the other --modes (--full) on the first of them.
- tail: the same room at a fixed 50 messages/s (5,000 deliveries/s) for --tail-seconds on
  each of --tail-dbs: p50, p99, p99.9, max, and stalls, i.e. bursts of deliveries slower
  than 50 ms (runs of 100 ms buckets of intended send time), with the per-second p99 series
  in the JSON.
- rooms: 1,000 users in 100 rooms of 10, one message per user every 10 s, a share of them
  thread replies (--thread-share, 0.3; 0 for none), each share one window on the same
  servers: top-level and reply latency apart, root summaries per reply, catch-ups.
- mixed: sends, edits and reactions (--mix, 70/20/10) into two busy rooms of the same 100
  members, for --tail-seconds at each of --mixed-rates, on the cluster (two processes,
  Redis, PostgreSQL) and the embedded mode (one process, SQLite): Chorus only (the baseline
  has no edits), with every op's deliveries counted and the revs the rooms took checked.
- presence: 5,000 sockets (--presence-users) with presence and typing traffic (typing bursts,
  `activity` once a minute, 1 % of users changing presence a minute) beside messages into
  rooms and DMs at a fixed open-loop rate, in windows without and with that traffic on the
  same servers: latency, CPU per process, presence fan-out, typing relays (bench/presence.py).

Every Chorus step also reports the sockets' rev cursors: live changes, gaps, and catch-ups
per 1,000 deliveries (the page's rules, run by the load generator).

Latency is reported as p50, p99, p99.9 and max everywhere. Results go to
bench/results/<time>.json (and latest.json), the tables to stdout, the plot to docs/bench/.
The plan and its estimated duration are printed first. See docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from bench import report  # noqa: E402
from bench.common import ROOT, Backend, Server, Worker, load_average, raise_nofile, wait_for_quiet  # noqa: E402
from bench.loadgen import LoadGen, expand, latency_summary, ms, node_ready  # noqa: E402
from bench.seed import Team, load_history, seed  # noqa: E402

SCENARIOS = ("fanout", "tail", "rooms", "connections", "cluster", "mentions", "history", "mixed", "presence")
# Not in the default run (make bench): named with --scenarios.
OPT_IN = ("presence",)
DBS = ("postgres", "sqlite")
P99_LIMIT_MS = 500.0
TAIL_RATE = 50.0          # messages/s into the room of 100: 5,000 deliveries/s, the p99 < 50 ms target's load
STALL_MS = 50.0           # a delivery slower than this is slow; a run of buckets holding one is a stall
STALL_BUCKET_S = 0.1      # slow deliveries grouped by intended send time into buckets this long
VERIFY_STEP_DOWNS = 2     # how many rungs the long re-check may step down before giving up

SIZES = {
    # name: (quick, full)
    "step_seconds": (5, 15),
    # Quick: from 50 (25 always held) with fewer rungs, as each target now also gets 60 s windows.
    "fanout_rates": ((50, 100, 200, 300, 400, 600, 800, 1200, 1600),
                     (10, 25, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600, 800, 1000, 1200,
                      1400, 1600, 2000)),
    "mode_rates": ((50, 100, 200, 400, 800, 1200),
                   (10, 25, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600, 800, 1000, 1200,
                    1400, 1600, 2000)),
    "quiet_wait": (5, 30),
    "cluster_sizes": ((2,), (1, 2)),
    "rooms_seconds": (30, 120),
    "connections": ((1000, 10000), (1000, 5000, 10000)),
    "idle_seconds": (30, 60),       # past the 25 s ping interval, so pings are counted
    "idle_at_every_count": (False, True),
    "mention_rate": (5, 10),
    "mention_seconds": (20, 60),
    "history_messages": (1_000_000, 1_000_000),
    "history_requests": (2000, 5000),   # p99.9 of 1,000 would be the second-slowest page
}


def log(text: str) -> None:
    """Progress on stderr, so stdout keeps the table."""
    print(text, file=sys.stderr, flush=True)


@dataclass
class Ctx:
    """What every scenario needs: options, a scratch directory, the results."""

    args: argparse.Namespace
    tmp: Path
    results: dict = field(default_factory=dict)

    def size(self, name: str):
        """A size for the chosen profile (quick or full)."""
        return SIZES[name][1 if self.args.full else 0]

    def quiet_wait(self) -> float:
        """The longest wait for a quiet machine before a step: --quiet-wait, else the profile's."""
        return self.args.quiet_wait if self.args.quiet_wait is not None else self.size("quiet_wait")


# -- one measured step ---------------------------------------------------------------------

class Target:
    """One system under test (Chorus or baseline): its servers, its load generator, its members."""

    def __init__(self, label: str, kind: str, servers: list[Server], gen: LoadGen, rooms_of: dict[int, set[int]],
                 reference=None):
        self.label = label
        self.kind = kind
        self.servers = servers
        self.gen = gen
        self.rooms_of = rooms_of
        # reference(prefix) -> {client_id: message id} of what was stored; None: the acks are the truth
        self.reference = reference


async def measure_step(target: Target, plan: list[tuple[int, int]], rate: float, seconds: float, prefix: str, *,
                       drain_timeout: float = 6.0, mentions: list[str] | None = None, mix: dict | None = None,
                       threads: dict | None = None, profile: Path | None = None,
                       split_rooms: list[int] | None = None) -> dict:
    """Offer rate messages/s (ops/s with mix) for seconds; count deliveries per socket and check against the store.

    In a mixed step an edit or reaction counts as stored when its ack said ok: each makes one
    new rev, broadcast to the room like a new message, and is counted per socket the same way.
    With threads {share, also}, that share of the sends are thread replies: they are stored
    and delivered like messages, and their roots' summaries are checked against the revs the
    rooms took (see thread_summary). Deliveries into split_rooms get their latency apart ("split").
    """
    heads_of = getattr(target.reference, "heads", None) if threads is not None else None
    heads0 = heads_of() if heads_of else None
    cpu0 = [s.cpu_seconds() for s in target.servers]
    batches0 = send_batches(target)
    gen0 = target.gen.cpu_seconds()
    sys0 = psutil.cpu_times()
    wall0 = time.time()
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(target.servers[0].pid),
             "--duration", str(max(1, int(seconds))), "--rate", "250", "--format", "raw", "--output", str(profile),
             "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with WaitSampler(getattr(target.reference, "url", None)) as waits:
        got = await target.gen.step(prefix=prefix, rate=rate, seconds=seconds, plan=plan, mentions=mentions, mix=mix,
                                    threads=threads, drain_timeout=drain_timeout, slow_ms=STALL_MS,
                                    bucket_seconds=STALL_BUCKET_S, split_rooms=split_rooms)
    wall = time.time() - wall0
    cpu = [(s.cpu_seconds() - c) / wall * 100 for s, c in zip(target.servers, cpu0)]
    gen_cpu = (target.gen.cpu_seconds() - gen0) / wall * 100
    sys1 = psutil.cpu_times()
    total = sum(sys1) - sum(sys0)
    idle = (sys1.idle + sys1.iowait) - (sys0.idle + sys0.iowait)
    machine_cpu = (total - idle) / total * 100 * psutil.cpu_count() if total else float("nan")
    if spy is not None:
        try:
            spy.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()

    count = got["count"]
    room_of = [plan[i % len(plan)][1] for i in range(count)]
    acked = expand(got["acked"])
    if target.reference:
        stored = {int(cid[len(prefix):]) for cid in target.reference(prefix)}
    else:
        stored = set(acked)
    stored |= expand(got.get("changed", []))
    by_room: dict[int, set[int]] = {}
    for i in stored:
        by_room.setdefault(room_of[i], set()).add(i)
    lost = dup = unexpected = 0
    for member in got["members"]:
        want: set[int] = set()
        for r in target.rooms_of.get(member["id"], ()):
            want |= by_room.get(r, set())
        seen = expand(member["seen"])
        lost += len(want - seen)
        unexpected += len(seen - want)
        dup += sum(extra for _i, extra in member["dup"])
    span = max(1e-9, (got["lastArrival"] or time.time()) - got["first"])
    room_size: dict[int, int] = {}
    for rooms in target.rooms_of.values():
        for r in rooms:
            room_size[r] = room_size.get(r, 0) + 1
    result = {
        "target": target.label,
        "rate_msgs": rate,
        "seconds": seconds,
        "offered_deliveries_s": got["expected"] / max(1e-9, got["last"] - got["first"] + 1 / rate),
        "messages_sent": count,
        "messages_acked": len(acked),
        # Sends that got no answer at all by the end of the drain (not counted in errors).
        "unanswered": count - len(acked) - len(got["errors"]),
        "messages_stored": len(stored),
        "acked_not_stored": len(acked - stored),
        "stored_not_acked": len(stored - acked),
        "errors": len(got["errors"]),
        "error_codes": sorted(set(got["errors"].values()))[:5],
        "expected_deliveries": sum(room_size.get(room_of[i], 0) for i in stored),
        "delivered": got["delivered"],
        "deliveries_s": got["delivered"] / span,
        "lost": lost,
        "duplicated": dup,
        "unexpected": unexpected,
        "p50_ms": ms(got["lat"], "p50"),
        "p99_ms": ms(got["lat"], "p99"),
        "p999_ms": ms(got["lat"], "p999"),
        "max_ms": ms(got["lat"], "max"),
        "ack_p50_ms": ms(got["ack"], "p50"),
        "ack_p99_ms": ms(got["ack"], "p99"),
        "ack_p999_ms": ms(got["ack"], "p999"),
        "ack_max_ms": ms(got["ack"], "max"),
        "send_lag_p99_ms": ms(got["sendLag"], "p99"),
        "send_lag_max_ms": ms(got["sendLag"], "max"),
        # By intended send second: deliveries and their p99 (ms); a second with none is null.
        "per_second_deliveries": [n for n, _p50, _p99, _mx in got["perSecond"]],
        "per_second_p99_ms": [None if p99 is None else round(p99 * 1000, 2) for _n, _p50, p99, _mx in got["perSecond"]],
        "per_second_max_ms": [None if mx is None else round(mx * 1000, 2) for _n, _p50, _p99, mx in got["perSecond"]],
        "stalls": stall_summary(got["slow"], got["bucketSeconds"], seconds),
        "drain_s": got["drain"],
        "server_cpu_pct": cpu,
        "loadgen_cpu_pct": gen_cpu,
        "machine_cpu_pct": machine_cpu,
        "load1": load_average(),
        "notes": got["notes"],
        "db_waits": waits.top(),
        "send_batch_mean": batch_mean(batches0, send_batches(target)),
        "revs": rev_summary(got["revs"], target),
        # The generator's own event-loop delay during the step: a busy generator timestamps late.
        "loadgen_loop": {k: ms(got["loop"], key) for k, key in (("p50_ms", "p50"), ("p99_ms", "p99"),
                                                                ("max_ms", "max"))} if got.get("loop") else None,
    }
    if got.get("split"):
        result["split"] = {name: {"count": got["split"][key]["count"], "p50_ms": ms(got["split"][key], "p50"),
                                  "p99_ms": ms(got["split"][key], "p99"), "p999_ms": ms(got["split"][key], "p999"),
                                  "max_ms": ms(got["split"][key], "max")}
                           for name, key in (("dm", "in"), ("room", "out"))}
    if mix:
        result["ops"] = got["ops"]
        result["unmatched_reactions"] = got["unmatched"]
        for kind, lat in got["kindLat"].items():
            result[f"{kind}_latency"] = {"count": lat["count"], "p50_ms": ms(lat, "p50"), "p99_ms": ms(lat, "p99"),
                                         "p999_ms": ms(lat, "p999"), "max_ms": ms(lat, "max")}
    result["holds"] = (result["p99_ms"] < P99_LIMIT_MS and lost == 0 and dup == 0 and unexpected == 0
                       and result["errors"] == 0 and result["acked_not_stored"] == 0 and len(stored) == count)
    if threads is not None:
        th = result["threads"] = thread_summary(got, threads, target, heads0, heads_of() if heads_of else None,
                                                by_room, stored, span)
        result["holds"] = result["holds"] and th["summary_missing"] == 0 and th["summary_dup"] == 0 \
            and th["summary_unexpected"] == 0
    return result


def thread_summary(got: dict, threads: dict, target: Target, heads0: dict | None, heads1: dict | None,
                   by_room: dict[int, set[int]], stored: set[int], span: float) -> dict:
    """A thread step's replies and root summaries: latency apart, and every summary accounted for.

    A reply takes rev N and its root's new summary rev N+1 (a batch of replies to one root
    takes one summary after them), so what a room's rev moved beyond the messages stored in
    it is the summaries it committed; every member socket of the room should get each once.
    """
    t = got["threads"]
    s = t["summaries"]
    replies = expand(t["replies"]) & stored
    committed: dict[int, int] = {}
    if heads0 is not None and heads1 is not None:
        for room in set(heads1) | set(heads0):
            committed[room] = (heads1.get(room) or 0) - (heads0.get(room) or 0) - len(by_room.get(room, ()))
    expected = missing = extra = 0
    for member in got["members"]:
        have = {int(r): n for r, n in (member.get("summaries") or {}).items()}
        for room in target.rooms_of.get(member["id"], ()):
            want = committed.get(room, 0)
            expected += want
            missing += max(0, want - have.get(room, 0))
            extra += max(0, have.get(room, 0) - want)
        extra += sum(n for r, n in have.items() if r not in target.rooms_of.get(member["id"], ()))
    received = s["received"] - s["dup"]
    reply_deliveries = t["kindLat"]["reply"]["count"]

    def lat(summary: dict) -> dict:
        return {"count": summary["count"], "p50_ms": ms(summary, "p50"), "p99_ms": ms(summary, "p99"),
                "p999_ms": ms(summary, "p999"), "max_ms": ms(summary, "max")}

    summaries_committed = sum(committed.values()) if committed else None
    return {
        "share": threads.get("share", 0), "also_share": threads.get("also", 0),
        "ops": t["ops"],
        "replies_stored": len(replies),
        "top_latency": lat(t["kindLat"]["top"]),
        "reply_latency": lat(t["kindLat"]["reply"]),
        "also_in_room_latency": lat(t["kindLat"]["alsoInRoom"]),
        "summaries_committed": summaries_committed,
        "summaries_per_reply": summaries_committed / len(replies) if replies and summaries_committed is not None
        else None,
        "summary_deliveries": received,
        "summary_expected": expected,
        "summary_missing": missing,
        "summary_unexpected": extra,
        "summary_dup": s["dup"],
        "summary_unmatched": s["unmatched"],
        "summary_distinct_seen": s["distinct"],
        # Per reply delivered to a socket, how many root summaries that socket got (1.0 unless batched).
        "summaries_per_reply_delivery": received / reply_deliveries if reply_deliveries else None,
        "summary_latency": lat(s["lat"]),
        "summary_deliveries_s": received / span,
        # Every live change a socket got: messages (top-level and replies) and root summaries.
        "changes_delivered_s": (got["delivered"] + received) / span,
        "notifications": got["notes"]["count"],
    }


def rev_summary(revs: dict, target: Target) -> dict | None:
    """The rev cursors of a step: live changes with a rev, gaps, catch-ups per 1,000, and cursors left behind.

    None for a target whose events carry no rev (the baseline, a checkout before the rev model).
    """
    if not revs.get("deliveries"):
        return None
    heads = target.reference.heads() if target.reference and hasattr(target.reference, "heads") else {}
    rooms = revs.get("rooms") or {}
    behind = sorted(int(r) for r, (low, _high, _top, _gaps) in rooms.items()
                    if heads.get(int(r)) is not None and low < heads[int(r)])
    lat = revs["catchUpLat"]
    return {
        "deliveries": revs["deliveries"],
        "gaps": revs["gaps"],
        "catch_ups": revs["catchUps"],
        "catch_ups_per_1000": revs["catchUps"] / revs["deliveries"] * 1000,
        "pages": revs["pages"],
        "fetched": revs["fetched"],
        "failures": revs["failures"],
        "resets": revs["resets"],
        "catch_up_p50_ms": ms(lat, "p50"),
        "catch_up_max_ms": ms(lat, "max"),
        "grace_ms": revs["graceMs"],
        # Rooms where some socket's cursor ended below the room's head in the database.
        "rooms_behind": behind,
        "sockets_holding_gap": sum(g for *_x, g in rooms.values()),
        "heads": {str(k): v for k, v in heads.items()},
        "cursors": rooms,
    }


def stall_summary(slow: list[list], bucket_s: float, window_s: float) -> dict:
    """Stalls: runs of consecutive buckets (of intended send time) that held a delivery slower than STALL_MS.

    A whole-process pause of the server (a GC, a blocking call, a checkpoint) delays every
    message sent during it, so it shows as one run of slow buckets, however many sockets
    it hit; a pause every 10 s shows as 6 stalls a minute with a median gap near 10 s.
    The gap is measured start to start, so it is the period of a periodic pause.
    """
    runs: list[list] = []  # [first bucket, buckets, slow deliveries, max latency in s]
    for bucket, count, worst in sorted(slow):
        if runs and bucket == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
            runs[-1][2] += count
            runs[-1][3] = max(runs[-1][3], worst)
        else:
            runs.append([bucket, 1, count, worst])
    starts = [first * bucket_s for first, *_ in runs]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    return {
        "threshold_ms": STALL_MS,
        "bucket_s": bucket_s,
        "count": len(runs),
        "per_minute": len(runs) / window_s * 60 if window_s else float("nan"),
        "longest_s": round(max((n for _b, n, *_ in runs), default=0) * bucket_s, 3),
        "median_gap_s": round(statistics.median(gaps), 3) if gaps else None,
        "slow_deliveries": sum(c for *_x, c, _w in runs),
        # Each burst: start (s into the window), length (s), slow deliveries, worst latency (ms).
        "bursts": [[round(b * bucket_s, 2), round(n * bucket_s, 2), c, round(w * 1000, 1)]
                   for b, n, c, w in runs[:300]],
    }


def send_batches(target: Target) -> tuple[float, float] | None:
    """(messages, statements) so far from Chorus's chorus_send_batch_size histogram, summed over its servers."""
    if target.kind != "chorus":
        return None
    import requests

    total = count = 0.0
    for server in target.servers:
        try:
            text = requests.get(f"{server.url}/metrics", timeout=5).text
        except requests.RequestException:
            return None
        for line in text.splitlines():
            if line.startswith("chorus_send_batch_size_sum "):
                total += float(line.split()[-1])
            elif line.startswith("chorus_send_batch_size_count "):
                count += float(line.split()[-1])
    return total, count


def batch_mean(before, after) -> float | None:
    """Messages per store statement between two send_batches readings (group commit at work when above 1)."""
    if not before or not after or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


class WaitSampler:
    """Samples what the target's PostgreSQL sessions wait on, every 100 ms, during a step."""

    def __init__(self, database_url: str | None):
        import threading

        self.url = database_url if database_url and database_url.startswith("postgresql") else None
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True) if self.url else None

    def _run(self) -> None:
        import psycopg2

        db_name = self.url.rsplit("/", 1)[1]
        conn = psycopg2.connect(self.url.rsplit("/", 1)[0] + "/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self._stop.wait(0.1):
                cur.execute("SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') || ' ' || state || ' | '"
                            " || left(regexp_replace(query, '\\s+', ' ', 'g'), 48) FROM pg_stat_activity"
                            " WHERE datname = %s AND state <> 'idle' AND pid <> pg_backend_pid()", (db_name,))
                self.samples += 1
                for (what,) in cur.fetchall():
                    self.counts[what] = self.counts.get(what, 0) + 1
        conn.close()

    def __enter__(self) -> "WaitSampler":
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=5)

    def top(self, n: int = 6) -> list[tuple[str, float]]:
        """The commonest waits, as the average number of sessions in each."""
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])[:n]
        return [(what, round(count / max(1, self.samples), 2)) for what, count in ranked]


def describe_step(r: dict) -> str:
    """One progress line."""
    cpu = "+".join(f"{c:.0f}" for c in r["server_cpu_pct"])
    st = r["stalls"]
    return (f"  {r['target']:<9} {r['rate_msgs']:>5.0f} msg/s {r['seconds']:>3.0f} s {r['deliveries_s']:>7.0f} deliv/s  "
            f"{'' if r.get('send_batch_mean') is None else 'batch %.1f ' % r['send_batch_mean']}"
            f"p50 {r['p50_ms']:6.1f} p99 {r['p99_ms']:7.1f} p99.9 {r['p999_ms']:7.1f} max {r['max_ms']:7.1f} ms  "
            f"stalls {st['count']} (longest {st['longest_s']:.1f} s)  "
            f"lost {r['lost']} dup {r['duplicated']} err {r['errors']}  cpu srv {cpu}% gen {r['loadgen_cpu_pct']:.0f}%"
            f" all {r['machine_cpu_pct']:.0f}%  {'ok' if r['holds'] else 'FAIL'}{rev_text(r.get('revs'))}")


def rev_text(revs: dict | None) -> str:
    """The rev cursors in a progress line."""
    if not revs:
        return ""
    behind = f", {len(revs['rooms_behind'])} room(s) behind" if revs["rooms_behind"] else ""
    return (f"\n            revs: {revs['deliveries']} live, {revs['gaps']} past a gap, {revs['catch_ups']} catch-ups "
            f"({revs['catch_ups_per_1000']:.2f} per 1,000), {revs['failures']} failed{behind}")


def db_reference(backend: Backend):
    """A reference function reading what the messages table holds for a step's client_ids."""
    from sqlalchemy import create_engine, text

    url = backend.database_url
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    engine = create_engine(url, pool_size=1)

    def reference(prefix: str) -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT client_id, id FROM messages WHERE client_id LIKE :p"),
                                {"p": prefix + "%"}).all()
        return {cid: mid for cid, mid in rows}

    def heads() -> dict[int, int]:
        """Each room's latest rev (empty for a schema without one)."""
        try:
            with engine.connect() as conn:
                return dict(conn.execute(text("SELECT id, last_rev FROM rooms")).all())
        except Exception:
            return {}

    reference.engine = engine
    reference.url = backend.database_url
    reference.heads = heads
    return reference


# -- building systems under test --------------------------------------------------------------

def start_servers(ctx: Ctx, kind: str, count: int, env: dict, label: str, root: Path | None = None) -> list[Server]:
    """Start count servers of one kind (from another checkout when root is given); wait until they answer."""
    if ctx.args.ws_compression:
        env = {**env, "WEBSOCKET_COMPRESSION": "1"}
    servers = [Server(f"{label}-{i}", kind, env, ctx.tmp, root=root) for i in range(count)]
    for server in servers:
        server.wait_ready()
    return servers


def stop_all(things) -> None:
    """Stop servers and workers, ignoring those already gone."""
    for thing in things:
        try:
            thing.stop()
        except Exception as exc:  # pragma: no cover - best effort cleanup
            log(f"  could not stop {getattr(thing, 'name', thing)}: {exc}")


async def stop_gens(gens: list[LoadGen]) -> None:
    """End the load generators."""
    for gen in gens:
        await gen.stop()


def baseline_env(backend: Backend, team: Team, ctx: Ctx, mode: str, *, redis: bool) -> dict:
    """The baseline's environment: the same users and rooms, its own Redis channel."""
    members_file = team.write_baseline_members(ctx.tmp / f"baseline-{backend.run_id}.json")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(BASELINE_MEMBERS=str(members_file), SOCKETIO_ASYNC_MODE=mode, PYTHONUNBUFFERED="1")
    if redis:
        env.update(REDIS_URL=backend.redis_url, SOCKETIO_CHANNEL=backend.channel + "-baseline")
    return env


def member_rooms(team: Team) -> dict[int, set[int]]:
    """user id -> the rooms they are in."""
    rooms: dict[int, set[int]] = {}
    for room_id, uids in team.rooms:
        for uid in uids:
            rooms.setdefault(uid, set()).add(room_id)
    return rooms


def member_dicts(team: Team, servers: list[Server], rooms_of: dict[int, set[int]], *, record: bool = True,
                 users=None) -> list[dict]:
    """One socket per user, spread round-robin over the servers."""
    users = team.users if users is None else users
    return [{"id": uid, "url": servers[i % len(servers)].url, "token": token, "rooms": sorted(rooms_of.get(uid, ())),
             "record": record} for i, (uid, _name, token) in enumerate(users)]


# -- scenario 1, 1t and 4: fan-out ladder, long windows, tail ------------------------------------

async def ladder(ctx: Ctx, targets: list[Target], rates, seconds: float, tag: str,
                 plans: dict[str, list[tuple[int, int]]], profile_rate: float | None = None) -> dict[str, list[dict]]:
    """Step the offered rate up for every target, interleaved, until each fails twice in a row."""
    steps: dict[str, list[dict]] = {t.label: [] for t in targets}
    alive = {t.label for t in targets}
    for target in targets:  # warm up: first sends, imports, caches; not recorded
        await measure_step(target, plans[target.label], rates[0], 2,
                           f"{tag}-warm-{target.label}-{random.randrange(1 << 30):x}.")
    for rate in rates:
        if not alive:
            break
        for target in targets:
            if target.label not in alive:
                continue
            for attempt in (1, 2):
                busy = await wait_for_quiet(ctx.args.max_busy, ctx.quiet_wait(), log)
                prefix = f"{tag}-{target.label}-{int(rate)}-{attempt}-{random.randrange(1 << 30):x}."
                profile = None
                if ctx.args.profile and target.kind == "chorus" and rate == profile_rate and attempt == 1:
                    profile = ctx.out / f"profile-{tag}-{target.label}-{int(rate)}.txt"
                r = await measure_step(target, plans[target.label], rate, seconds, prefix, profile=profile)
                r["attempt"] = attempt
                r["busy_before_cores"] = busy
                if profile is not None:
                    r["profile"] = str(profile)
                steps[target.label].append(r)
                log(describe_step(r))
                if r["holds"]:
                    break
                await asyncio.sleep(3)  # let a backlog clear before the retry
            else:
                alive.discard(target.label)
    return steps


async def verify_sustained(ctx: Ctx, targets: list[Target], steps: dict[str, list[dict]], rates, seconds: float,
                           tag: str, plans: dict[str, list[tuple[int, int]]]) -> dict[str, list[dict]]:
    """Re-check each target's best short-step rate for a long window, stepping down the ladder until one holds.

    A 5 s step can hold on a queue the server would never drain; a rate is only called
    sustained when a whole window of `seconds` holds at it. At most VERIFY_STEP_DOWNS rungs
    down are tried, so a target that holds nothing for that long costs three windows.
    """
    windows: dict[str, list[dict]] = {}
    for target in targets:
        held = [s["rate_msgs"] for s in steps[target.label] if s["holds"]]
        windows[target.label] = []
        if not held:
            continue
        # The rung that held, then the rungs below it, highest first.
        tries = sorted((r for r in rates if r <= max(held)), reverse=True)[:1 + VERIFY_STEP_DOWNS]
        for rate in tries:
            busy = await wait_for_quiet(ctx.args.max_busy, ctx.quiet_wait(), log)
            prefix = f"{tag}-{target.label}-long{int(rate)}-{random.randrange(1 << 30):x}."
            r = await measure_step(target, plans[target.label], rate, seconds, prefix, drain_timeout=10)
            r["busy_before_cores"] = busy
            r["window"] = "sustained"
            windows[target.label].append(r)
            log(describe_step(r) + f"  ({seconds:.0f} s re-check)")
            if r["holds"]:
                break
            await asyncio.sleep(5)  # let the backlog of the failed window clear
    return windows


def summarise_ladder(steps: list[dict], at_rate: float | None = None, windows: list[dict] | None = None,
                     rates=None) -> dict:
    """The highest rate that held in short steps, the one verified over a long window, and the step at at_rate.

    max_rate_msgs / p99_at_max_ms keep their old meaning (short steps); sustained_* are the
    long window's when windows is given (None when no window held), else (old results)
    the short step's.
    """
    held = [s for s in steps if s["holds"]]
    best = max(held, key=lambda s: s["rate_msgs"]) if held else None
    summary = {
        "max_rate_msgs": best["rate_msgs"] if best else 0,
        "short_step_seconds": best["seconds"] if best else None,
        "short_step_deliveries_s": best["deliveries_s"] if best else 0.0,
        "p99_at_max_ms": best["p99_ms"] if best else float("nan"),
        "p999_at_max_ms": best["p999_ms"] if best else float("nan"),
        "max_at_max_ms": best["max_ms"] if best else float("nan"),
        "server_cpu_at_max_pct": sum(best["server_cpu_pct"]) if best else float("nan"),
        # The ladder ended while still holding: the figure is a floor, not a limit.
        "top_of_ladder": bool(best and rates and best["rate_msgs"] >= max(rates)),
    }
    if windows is None:
        summary["sustained_deliveries_s"] = summary["short_step_deliveries_s"]
    else:
        ok = [w for w in windows if w["holds"]]
        w = ok[0] if ok else None
        summary.update(
            sustained_rate_msgs=w["rate_msgs"] if w else None,
            sustained_seconds=w["seconds"] if w else None,
            sustained_deliveries_s=w["deliveries_s"] if w else None,
            sustained_p50_ms=w["p50_ms"] if w else None,
            sustained_p99_ms=w["p99_ms"] if w else None,
            sustained_p999_ms=w["p999_ms"] if w else None,
            sustained_max_ms=w["max_ms"] if w else None,
            sustained_server_cpu_pct=sum(w["server_cpu_pct"]) if w else None,
            sustained_stalls=w["stalls"]["count"] if w else None,
            sustained_tried_msgs=[x["rate_msgs"] for x in windows],
        )
    if at_rate is not None:
        at = [s for s in steps if s["rate_msgs"] == at_rate and s["holds"]] or \
             [s for s in steps if s["rate_msgs"] == at_rate]
        if at:
            summary.update(at_rate_msgs=at_rate, p50_at_rate_ms=at[0]["p50_ms"], p99_at_rate_ms=at[0]["p99_ms"],
                           p999_at_rate_ms=at[0]["p999_ms"], max_at_rate_ms=at[0]["max_ms"],
                           server_cpu_at_rate_pct=sum(at[0]["server_cpu_pct"]))
    return summary


def _ratio(a, b) -> float:
    """a / b, NaN when either is missing or zero (a target that held nothing)."""
    return a / b if a and b else float("nan")


@asynccontextmanager
async def pair_targets(ctx: Ctx, *, db: str, mode: str, servers_per_target: int, redis: bool, tag: str,
                       room_size: int = 100):
    """Chorus and the baseline (and --before-root's Chorus), one room of room_size members each, connected.

    Yields (targets, plans); stops every process and drops every database on the way out.
    """
    backend = Backend(db, ctx.tmp, redis=redis)
    backend.create()
    backends = [backend]
    running: list = []
    gens: list[LoadGen] = []
    targets: list[Target] = []
    try:
        team = seed(backend.database_url, room_size, [list(range(room_size))])
        chorus = start_servers(ctx, "chorus", servers_per_target, backend.env(SOCKETIO_ASYNC_MODE=mode),
                               f"{tag}-chorus")
        running += chorus
        base = start_servers(ctx, "baseline", servers_per_target,
                             baseline_env(backend, team, ctx, mode, redis=redis), f"{tag}-baseline")
        running += base
        systems = [("chorus", "chorus", chorus, db_reference(backend)), ("baseline", "baseline", base, None)]
        teams = {"chorus": team, "baseline": team}
        if ctx.args.before_root:
            # The same scenario against another checkout (e.g. before a change), on a database
            # of the same kind migrated by that checkout's own migrations.
            root = Path(ctx.args.before_root)
            before_backend = Backend(backend.kind, ctx.tmp, redis=redis)
            backends.append(before_backend)
            before_backend.create(root=root)
            teams["before"] = seed(before_backend.database_url, room_size, [list(range(room_size))])
            before = start_servers(ctx, "chorus", servers_per_target, before_backend.env(SOCKETIO_ASYNC_MODE=mode),
                                   f"{tag}-before", root=root)
            running += before
            systems.append(("before", "chorus", before, db_reference(before_backend)))
        plans = {}
        for label, kind, servers, ref in systems:
            its_team = teams[label]
            rooms_of = member_rooms(its_team)
            # Every member sends in turn, on the server its own socket is on.
            plans[label] = [(i, its_team.rooms[0][0]) for i in range(room_size)]
            gen = await LoadGen(f"{tag}-{label}", ctx.tmp).start()
            gens.append(gen)
            took = (await gen.connect(member_dicts(its_team, servers, rooms_of)))["seconds"]
            log(f"  {tag}: {room_size} {label} sockets on {len(servers)} process(es) in {took:.1f} s")
            targets.append(Target(label, kind, servers, gen, rooms_of, ref))
        yield targets, plans
    finally:
        for target in targets:
            if target.reference:
                target.reference.engine.dispose()
        await stop_gens(gens)
        stop_all(running)
        for b in backends:
            b.drop()


async def fanout_pair(ctx: Ctx, *, db: str, mode: str, servers_per_target: int, redis: bool, rates, tag: str,
                      room_size: int = 100) -> dict:
    """The ladder, then the long re-check, for Chorus and the baseline (same mode, server count and db)."""
    seconds, window = ctx.size("step_seconds"), ctx.args.tail_seconds
    async with pair_targets(ctx, db=db, mode=mode, servers_per_target=servers_per_target, redis=redis, tag=tag,
                            room_size=room_size) as (targets, plans):
        steps = await ladder(ctx, targets, rates, seconds, tag, plans, profile_rate=ctx.args.profile_rate)
        windows = await verify_sustained(ctx, targets, steps, rates, window, tag, plans)
    result = {
        "mode": mode, "servers": servers_per_target, "redis": redis, "db": db, "room_size": room_size,
        "rates": list(rates), "step_seconds": seconds, "window_seconds": window,
        "steps": steps, "sustained": windows,
        "summary": {label: summarise_ladder(s, at_rate=TAIL_RATE, windows=windows[label], rates=rates)
                    for label, s in steps.items()},
    }
    c, b = result["summary"]["chorus"], result["summary"]["baseline"]
    result["summary"]["ratio_sustained"] = _ratio(c["sustained_deliveries_s"], b["sustained_deliveries_s"])
    result["summary"]["ratio_short_step"] = _ratio(c["short_step_deliveries_s"], b["short_step_deliveries_s"])
    return result


async def scenario_fanout(ctx: Ctx) -> dict:
    """1: one room of 100; per async mode and database, the short-step and the sustained rate, Chorus and baseline."""
    out = {}
    for k, mode in enumerate(ctx.args.modes):
        # The first mode (eventlet, as deployed) on every db; the others compare socket layers,
        # which the database does not change, so the first db is enough for them.
        for db in ctx.args.fanout_dbs if k == 0 else ctx.args.fanout_dbs[:1]:
            log(f"fanout ({mode}, 1 process, {db})")
            rates = ctx.size("fanout_rates") if k == 0 else ctx.size("mode_rates")
            out[f"{mode}-{db}"] = await fanout_pair(ctx, db=db, mode=mode, servers_per_target=1, redis=False,
                                                    rates=rates, tag=f"f{mode[:2]}{db[:2]}")
    return out


async def scenario_tail(ctx: Ctx) -> dict:
    """1t: a fixed 5,000 deliveries/s for a long window per target and db: p99.9, max and stalls."""
    mode = ctx.args.modes[0]
    seconds = ctx.args.tail_seconds
    out = {"mode": mode, "rate_msgs": TAIL_RATE, "room_size": 100, "seconds": seconds,
           "stall_ms": STALL_MS, "bucket_s": STALL_BUCKET_S, "dbs": {}}
    for db in ctx.args.tail_dbs:
        log(f"tail ({mode}, 1 process, {db}): {TAIL_RATE:.0f} msgs/s = {TAIL_RATE * 100:,.0f} deliveries/s "
            f"for {seconds:.0f} s per target")
        rows = {}
        async with pair_targets(ctx, db=db, mode=mode, servers_per_target=1, redis=False,
                                tag=f"t{db[:2]}") as (targets, plans):
            for target in targets:  # warm up, as the ladder does; not recorded
                await measure_step(target, plans[target.label], TAIL_RATE, 3,
                                   f"t{db[:2]}-warm-{target.label}-{random.randrange(1 << 30):x}.")
            for target in targets:
                busy = await wait_for_quiet(ctx.args.max_busy, ctx.quiet_wait(), log)
                r = await measure_step(target, plans[target.label], TAIL_RATE, seconds,
                                       f"t{db[:2]}-{target.label}-{random.randrange(1 << 30):x}.", drain_timeout=10)
                r["busy_before_cores"] = busy
                rows[target.label] = r
                st = r["stalls"]
                gap = "-" if st["median_gap_s"] is None else f"{st['median_gap_s']:.1f} s"
                log(describe_step(r) + f"\n            stalls > {STALL_MS:.0f} ms: {st['count']} "
                    f"({st['per_minute']:.1f}/min), longest {st['longest_s']:.1f} s, median gap {gap}, "
                    f"{st['slow_deliveries']} slow deliveries")
        out["dbs"][db] = rows
    return out


async def scenario_cluster(ctx: Ctx) -> dict:
    """4: the fan-out ladder and re-check on two processes sharing Redis, members split; --full adds one process."""
    out = {}
    mode = ctx.args.modes[0]
    for servers in ctx.args.cluster_sizes or ctx.size("cluster_sizes"):
        log(f"cluster ({mode}, {servers} process(es) over Redis, postgres)")
        out[f"{servers}p"] = await fanout_pair(ctx, db="postgres", mode=mode, servers_per_target=servers, redis=True,
                                               rates=ctx.size("fanout_rates"), tag=f"c{servers}")
    return out


# -- scenario 2: many rooms ---------------------------------------------------------------------

ROOMS_SETUPS = {
    # name: (database, Redis and a Celery worker)
    # One process on PostgreSQL without Redis, tasks run in-process: the scenario as it always ran.
    "postgres": ("postgres", False),
    # One process on PostgreSQL with Redis and a Celery worker, as the cluster mode deploys it.
    "postgres-redis": ("postgres", True),
    # The embedded mode: one process on SQLite, tasks in-process.
    "sqlite": ("sqlite", False),
}


async def scenario_rooms(ctx: Ctx) -> dict:
    """2: 1,000 users in 100 rooms of 10, one message per user every 10 s; a share of them thread replies.

    Each of --thread-share's shares gets a window of --rooms-seconds on the same servers and
    sockets, in that order and then reversed for each further --rooms-rounds (A B B A ...),
    so shares compare within one run; each of --rooms-setups gets its own database and server.
    """
    a = ctx.args
    users, size, period = 1000, 10, 10.0
    seconds = a.rooms_seconds or ctx.size("rooms_seconds")
    order = [(k + 1, share) for k in range(a.rooms_rounds)
             for share in (a.thread_share if k % 2 == 0 else a.thread_share[::-1])]
    mode = a.modes[0]
    out = {"users": users, "rooms": users // size, "room_size": size, "period_s": period, "seconds": seconds,
           "mode": mode, "thread_shares": a.thread_share, "also_in_room_share": a.also_in_room,
           "rounds": a.rooms_rounds, "setups": {}}
    for setup in a.rooms_setups:
        db, redis = ROOMS_SETUPS[setup]
        backend = Backend(db, ctx.tmp, redis=redis)
        backend.create()
        running, gens = [], []
        reference = None
        try:
            team = seed(backend.database_url, users, [list(range(k, k + size)) for k in range(0, users, size)])
            env = backend.env(SOCKETIO_ASYNC_MODE=mode)
            chorus = start_servers(ctx, "chorus", 1, env, f"rooms-{setup}-chorus")
            running += chorus
            if redis:
                worker = Worker(f"rooms-{setup}-worker", env, ctx.tmp)
                running.append(worker)
                worker.wait_ready()
            rooms_of = member_rooms(team)
            gen = await LoadGen(f"rooms-{setup}", ctx.tmp).start()
            gens.append(gen)
            took = (await gen.connect(member_dicts(team, chorus, rooms_of)))["seconds"]
            log(f"rooms ({mode}, 1 process, {db}{', Redis and a Celery worker' if redis else ''}): "
                f"{users} sockets in {took:.1f} s; thread shares "
                f"{', '.join(f'{x:g}' for x in a.thread_share)} x {a.rooms_rounds} round(s) of {seconds:g} s")
            index = {uid: i for i, (uid, _n, _t) in enumerate(team.users)}
            plan = [(index[uid], room_id) for room_id, uids in team.rooms for uid in uids]
            random.Random(7).shuffle(plan)
            reference = db_reference(backend)
            target = Target("chorus", "chorus", chorus, gen, rooms_of, reference)
            # Warm up with the largest share: the reply path's code and caches, and roots in the rooms.
            await measure_step(target, plan, users / period, 3, f"rooms-warm-{random.randrange(1 << 30):x}.",
                               threads={"share": max(a.thread_share), "also": a.also_in_room})
            windows = []
            for rnd, share in order:
                busy = await wait_for_quiet(a.max_busy, ctx.quiet_wait(), log)
                r = await measure_step(target, plan, users / period, seconds,
                                       f"rooms-{int(share * 100)}-{rnd}-{random.randrange(1 << 30):x}.",
                                       drain_timeout=10, threads={"share": share, "also": a.also_in_room})
                r["busy_before_cores"] = busy
                r["thread_share"] = share
                r["round"] = rnd
                windows.append(r)
                log(describe_step(r) + f"  (thread share {share:g}, round {rnd})" + thread_text(r["threads"]))
                if not r["holds"]:
                    # Let a backlog clear, past the connection pool's 30 s checkout timeout, before the next.
                    await asyncio.sleep(35)
            out["setups"][setup] = {"db": db, "redis": redis, "windows": windows}
        finally:
            if reference is not None:
                reference.engine.dispose()
            await stop_gens(gens)
            stop_all(running)
            backend.drop()
    return out


def thread_text(th: dict) -> str:
    """A thread window's replies and root summaries in a progress line."""
    ops = th["ops"]
    top, rep, sm = th["top_latency"], th["reply_latency"], th["summary_latency"]
    per = "-" if th["summaries_per_reply"] is None else f"{th['summaries_per_reply']:.3f}"
    got = "-" if th["summaries_per_reply_delivery"] is None else f"{th['summaries_per_reply_delivery']:.3f}"
    return (f"\n            ops: {ops['top']} top-level, {ops['reply']} replies, {ops['alsoInRoom']} also in room; "
            f"p99 top {top['p99_ms']:.1f} / reply {rep['p99_ms']:.1f} / summary {sm['p99_ms']:.1f} ms"
            f"\n            summaries: {th['summaries_committed']} committed ({per} per reply), "
            f"{th['summary_deliveries']} received ({got} per reply delivered), missing {th['summary_missing']}, "
            f"unexpected {th['summary_unexpected']}, dup {th['summary_dup']}, unmatched {th['summary_unmatched']}; "
            f"notifications {th['notifications']}")


# -- scenario 3: idle connections -----------------------------------------------------------------

async def idle_connections(ctx: Ctx, kind: str, mode: str, counts, backend: Backend, team: Team) -> list[dict]:
    """Connect counts[0], then up to counts[1], ...; RSS growth per socket and idle CPU at each."""
    env = backend.env(SOCKETIO_ASYNC_MODE=mode) if kind == "chorus" else \
        baseline_env(backend, team, ctx, mode, redis=False)
    server = start_servers(ctx, kind, 1, env, f"conn-{kind}-{mode}")[0]
    gen = await LoadGen(f"conn-{kind}-{mode}", ctx.tmp).start()
    rooms_of = member_rooms(team)
    rows = []
    try:
        # Warm up: a few sockets load every lazily imported module and fill the caches.
        await gen.connect(member_dicts(team, [server], rooms_of, record=False, users=team.users[-20:]))
        await gen.close_sockets()
        await asyncio.sleep(2)
        rss0 = server.rss()
        connected = 0
        for n in counts:
            batch = member_dicts(team, [server], rooms_of, record=False, users=team.users[connected:n])
            took = (await gen.connect(batch, concurrency=40))["seconds"]
            connected = n
            await asyncio.sleep(3)
            rss = server.rss()
            idle = ctx.size("idle_seconds") if n == counts[-1] or ctx.size("idle_at_every_count") else 0
            cpu0, t0 = server.cpu_seconds(), time.time()
            await asyncio.sleep(idle)
            cpu = (server.cpu_seconds() - cpu0) / (time.time() - t0) * 100 if idle else float("nan")
            alive = await gen.alive()
            row = {"target": kind, "mode": mode, "sockets": n, "connected": alive, "connect_s": took,
                   "connects_per_s": len(batch) / took if took else 0, "rss_base_mb": rss0 / 2**20,
                   "rss_mb": rss / 2**20, "kb_per_socket": (rss - rss0) / n / 1024, "idle_cpu_pct": cpu,
                   "idle_seconds": idle, "loadgen_rss_mb": gen.rss() / 2**20}
            rows.append(row)
            log(f"  {kind:<8} {mode:<9} {n:>6} sockets ({alive} alive): RSS {rss / 2**20:7.1f} MB, "
                f"{row['kb_per_socket']:.1f} KB/socket, idle CPU {cpu:.1f}% over {idle:.0f} s "
                f"(connected {len(batch)} in {took:.1f} s)")
        return rows
    finally:
        await gen.stop()
        stop_all([server])


async def scenario_connections(ctx: Ctx) -> dict:
    """3: 1,000 / 5,000 / 10,000 idle authenticated sockets on one process, Chorus and baseline."""
    counts = ctx.size("connections")
    limit = raise_nofile(max(counts) * 2 + 1000)
    backend = Backend(ctx.args.db, ctx.tmp)
    backend.create()
    out = {"nofile": limit, "rows": []}
    try:
        n = max(counts)
        team = seed(backend.database_url, n, [list(range(k, min(n, k + 10))) for k in range(0, n, 10)])
        for mode in ctx.args.conn_modes:
            log(f"connections ({mode}, {backend.kind})")
            for kind in ("chorus", "baseline"):
                await wait_for_quiet(ctx.args.max_busy, ctx.quiet_wait(), log)
                out["rows"] += await idle_connections(ctx, kind, mode, counts, backend, team)
        return out
    finally:
        backend.drop()


# -- scenario 5: mentions through the worker --------------------------------------------------------

async def scenario_mentions(ctx: Ctx) -> dict:
    """5: send -> the mentioned user's `notification`, through Redis and a real Celery worker."""
    from sqlalchemy import text

    backend = Backend("postgres", ctx.tmp, redis=True)
    backend.create()
    running, gens = [], []
    mode = ctx.args.modes[0]
    size = 20
    try:
        team = seed(backend.database_url, size, [list(range(size))])
        env = backend.env(SOCKETIO_ASYNC_MODE=mode)
        chorus = start_servers(ctx, "chorus", 1, env, "mentions-chorus")
        running += chorus
        worker = Worker("mentions-worker", env, ctx.tmp)
        running.append(worker)
        worker.wait_ready()
        rooms_of = member_rooms(team)
        gen = await LoadGen("mentions", ctx.tmp).start()
        gens.append(gen)
        await gen.connect(member_dicts(team, chorus, rooms_of))
        room_id = team.rooms[0][0]
        plan = [(i, room_id) for i in range(size)]
        # Message i is sent by member i % size and mentions the next member.
        mentions = [team.users[(i + 1) % size][1] for i in range(size)]
        target = Target("chorus", "chorus", chorus, gen, rooms_of, db_reference(backend))
        rate, seconds = ctx.size("mention_rate"), ctx.size("mention_seconds")
        await measure_step(target, plan, rate, 3, f"men-warm-{random.randrange(1 << 30):x}.", mentions=mentions,
                           drain_timeout=10)
        await wait_for_quiet(ctx.args.max_busy, ctx.quiet_wait(), log)
        prefix = f"men-{random.randrange(1 << 30):x}."
        r = await measure_step(target, plan, rate, seconds, prefix, mentions=mentions, drain_timeout=15)
        notes = r["notes"]
        with target.reference.engine.connect() as conn:
            stored = conn.execute(text(
                "SELECT count(*) FROM notifications n JOIN messages m ON m.id = n.message_id "
                "WHERE m.client_id LIKE :p"), {"p": prefix + "%"}).scalar_one()
        target.reference.engine.dispose()
        out = {"rate_msgs": rate, "seconds": seconds, "room_size": size, "mode": mode,
               "messages": r["messages_stored"], "notifications_stored": stored,
               "notifications_received": notes["count"],
               "notifications_duplicated": notes["count"] - notes["distinct"],
               "notify_p50_ms": ms(notes, "p50"), "notify_p99_ms": ms(notes, "p99"),
               "notify_p999_ms": ms(notes, "p999"), "notify_max_ms": ms(notes, "max"),
               "message_p50_ms": r["p50_ms"], "message_p99_ms": r["p99_ms"], "message_p999_ms": r["p999_ms"],
               "message_max_ms": r["max_ms"], "step": r}
        log(f"  mentions: {notes['count']}/{r['messages_stored']} notifications ({stored} stored), "
            f"p50 {out['notify_p50_ms']:.1f} ms, p99 {out['notify_p99_ms']:.1f} ms, "
            f"p99.9 {out['notify_p999_ms']:.1f} ms, max {out['notify_max_ms']:.1f} ms (messages p99 {r['p99_ms']:.1f} ms)")
        return out
    finally:
        await stop_gens(gens)
        stop_all(running)
        backend.drop()


# -- scenario 6: history ----------------------------------------------------------------------

async def scenario_history(ctx: Ctx) -> dict:
    """6: GET /rooms/<id>/messages?before=<random id> with 1,000,000 messages in PostgreSQL."""
    import aiohttp

    backend = Backend("postgres", ctx.tmp)
    backend.create()
    running = []
    mode = ctx.args.modes[0]
    try:
        team = seed(backend.database_url, 10, [list(range(10))])
        room_id = team.rooms[0][0]
        count = ctx.size("history_messages")
        t0 = time.time()
        top = load_history(backend.database_url, room_id, [u for u, _, _ in team.users], count)
        loaded = time.time() - t0
        log(f"history: {count} messages loaded in {loaded:.1f} s")
        server = start_servers(ctx, "chorus", 1, backend.env(SOCKETIO_ASYNC_MODE=mode), "history-chorus")[0]
        running.append(server)
        token = team.users[0][2]
        headers = {"Authorization": f"Bearer {token}"}
        rng = random.Random(11)
        url = f"{server.url}/api/v1/rooms/{room_id}/messages"
        out = {"messages": count, "load_seconds": loaded, "mode": mode}
        async with aiohttp.ClientSession(headers=headers) as http:
            async def page(before: int) -> float:
                started = time.perf_counter()
                async with http.get(url, params={"before": str(before)}) as resp:
                    body = await resp.json()
                    assert resp.status == 200 and len(body["messages"]) == 50, (resp.status, body)
                return time.perf_counter() - started

            for _ in range(100):
                await page(rng.randrange(52, top + 1))
            await wait_for_quiet(ctx.args.max_busy, ctx.quiet_wait(), log)
            n = ctx.size("history_requests")
            cpu0 = server.cpu_seconds()
            t0 = time.time()
            lat = [await page(rng.randrange(52, top + 1)) for _ in range(n)]
            wall = time.time() - t0
            out["sequential"] = {"requests": n, **latency_summary(lat), "per_s": n / wall,
                                 "server_cpu_pct": (server.cpu_seconds() - cpu0) / wall * 100}
            log(f"  sequential: {n} pages, p50 {out['sequential']['p50_ms']:.2f} ms, "
                f"p99 {out['sequential']['p99_ms']:.2f} ms, p99.9 {out['sequential']['p999_ms']:.2f} ms, "
                f"max {out['sequential']['max_ms']:.1f} ms")
            conc = 8
            t0 = time.time()

            async def client(k: int) -> list[float]:
                r = random.Random(100 + k)
                return [await page(r.randrange(52, top + 1)) for _ in range(n // conc)]

            lat = [x for chunk in await asyncio.gather(*(client(k) for k in range(conc))) for x in chunk]
            wall = time.time() - t0
            out["concurrent"] = {"clients": conc, "requests": len(lat), **latency_summary(lat), "per_s": len(lat) / wall}
            log(f"  {conc} concurrent: {len(lat)} pages, {len(lat) / wall:.0f} pages/s, "
                f"p50 {out['concurrent']['p50_ms']:.2f} ms, p99 {out['concurrent']['p99_ms']:.2f} ms, "
                f"p99.9 {out['concurrent']['p999_ms']:.2f} ms, max {out['concurrent']['max_ms']:.1f} ms")
        out["sql"] = history_sql_timing(backend, room_id, top, rng)
        return out
    finally:
        stop_all(running)
        backend.drop()


def history_sql_timing(backend: Backend, room_id: int, top: int, rng: random.Random) -> dict:
    """The page query alone (as the ORM issues it), timed inside PostgreSQL, for the breakdown."""
    import psycopg2

    conn = psycopg2.connect(backend.database_url)
    times = []
    with conn.cursor() as cur:
        for _ in range(200):
            cur.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM messages WHERE room_id = %s AND id < %s "
                "ORDER BY id DESC LIMIT 51", (room_id, rng.randrange(52, top + 1)))
            times.append(cur.fetchone()[0][0]["Execution Time"] / 1000)
        cur.execute("EXPLAIN SELECT * FROM messages WHERE room_id = %s AND id < %s ORDER BY id DESC LIMIT 51",
                    (room_id, top // 2))
        plan = "\n".join(row[0] for row in cur.fetchall())
    conn.close()
    return {**latency_summary(times), "plan": plan}


# -- scenario 7: mixed workload -----------------------------------------------------------------

MIXED_SETUPS = {
    # name: (database, server processes, Redis)
    "cluster": ("postgres", 2, True),
    "embedded": ("sqlite", 1, False),
}


def mix_text(mix: dict) -> str:
    """The mix as sends/edits/reactions in percent, e.g. 70/20/10."""
    total = sum(mix.values()) or 1
    return "/".join(f"{100 * mix.get(k, 0) / total:g}" for k in ("send", "edit", "react"))


def room_revs(reference) -> dict[int, int]:
    """Each room's latest rev, read from the database."""
    return reference.heads()


async def scenario_mixed(ctx: Ctx) -> dict:
    """7: sends, edits and reactions into busy rooms, per setup and rate, for a long window each."""
    a = ctx.args
    mode = a.modes[0]
    rooms, size = 2, 100
    out = {"mode": mode, "rooms": rooms, "room_size": size, "mix": a.mix, "seconds": a.tail_seconds,
           "rates": a.mixed_rates, "setups": {}}
    for name in a.mixed_setups:
        db, processes, redis = MIXED_SETUPS[name]
        log(f"mixed ({name}: {processes} process(es), {db}{', Redis' if redis else ''}): "
            f"sends/edits/reactions {mix_text(a.mix)} at {','.join(f'{r:g}' for r in a.mixed_rates)} ops/s "
            f"for {a.tail_seconds:.0f} s")
        backend = Backend(db, ctx.tmp, redis=redis)
        backend.create()
        running, gens, rows = [], [], []
        reference = None
        try:
            # Every member is in both rooms: each op reaches 100 sockets, each socket follows two cursors.
            team = seed(backend.database_url, size, [list(range(size))] * rooms)
            servers = start_servers(ctx, "chorus", processes, backend.env(SOCKETIO_ASYNC_MODE=mode), f"mx-{name}")
            running += servers
            rooms_of = member_rooms(team)
            gen = await LoadGen(f"mixed-{name}", ctx.tmp).start()
            gens.append(gen)
            took = (await gen.connect(member_dicts(team, servers, rooms_of)))["seconds"]
            log(f"  {size} sockets on {processes} process(es), {rooms} rooms each, in {took:.1f} s")
            reference = db_reference(backend)
            target = Target("chorus", "chorus", servers, gen, rooms_of, reference)
            room_ids = [r for r, _m in team.rooms]
            # Member k acts in every room in turn, so each has messages of its own to edit in each.
            plan = [(k % size, room_ids[(k // size) % rooms]) for k in range(size * rooms)]
            await measure_step(target, plan, a.mixed_rates[0], 3, f"mx-warm-{random.randrange(1 << 30):x}.",
                               mix=a.mix)
            for rate in a.mixed_rates:
                busy = await wait_for_quiet(a.max_busy, ctx.quiet_wait(), log)
                heads0 = room_revs(reference)
                r = await measure_step(target, plan, rate, a.tail_seconds,
                                       f"mx-{name}-{int(rate)}-{random.randrange(1 << 30):x}.", mix=a.mix,
                                       drain_timeout=10)
                heads1 = room_revs(reference)
                r["busy_before_cores"] = busy
                # One rev per visible change: what the rooms took must equal what was stored and changed.
                r["revs_taken"] = sum(heads1.get(k, 0) - heads0.get(k, 0) for k in room_ids)
                r["revs_match"] = r["revs_taken"] == r["messages_stored"]
                rows.append(r)
                log(describe_step(r) + f"\n            ops {r['ops']}, revs taken {r['revs_taken']} "
                    f"for {r['messages_stored']} changes stored"
                    + "".join(f"; {k} p99 {r[k + '_latency']['p99_ms']:.1f} ms" for k in ("send", "edit", "react")))
        finally:
            if reference is not None:
                reference.engine.dispose()
            await stop_gens(gens)
            stop_all(running)
            backend.drop()
        out["setups"][name] = {"db": db, "processes": processes, "redis": redis, "steps": rows}
    return out


# -- scenario 8: presence and typing beside messages ----------------------------------------------

async def scenario_presence(ctx: Ctx) -> dict:
    """8: 5,000 sockets; messages into rooms and DMs without and with presence and typing traffic (bench/presence.py)."""
    from bench import presence

    return await presence.run(ctx, sys.modules[__name__])


# -- the plan and its estimated duration -------------------------------------------------------------

# Rough costs in seconds on the 2-core machine, from timed runs: creating, migrating and
# seeding a database, starting its servers and connecting 100 sockets; the per-step
# overhead (the one-second quiet sample, the drain, the checks); what a failed step adds
# (the drain timeout and the pause before the retry); the same for a long window.
COST = {"pair_setup": 6.0, "before_setup": 5.0, "step": 2.0, "failed_step": 9.0, "window": 2.0,
        "failed_window": 15.0, "connect_per_socket": 1 / 350 + 1 / 1300}  # Chorus's connects, then the baseline's


def estimate_plan(ctx: Ctx) -> list[dict]:
    """Each scenario of the run with a likely and an upper duration (s); waits for a quiet machine not included.

    Likely: each target climbs two thirds of the ladder before failing twice and needs 1.5
    long windows; at most: every rung holds (or fails only at the top) and every target
    needs all three long windows.
    """
    a = ctx.args
    targets = 3 if a.before_root else 2
    setup = COST["pair_setup"] + (COST["before_setup"] if a.before_root else 0)
    step, window = ctx.size("step_seconds"), a.tail_seconds

    def ladder_cost(rungs: int) -> tuple[float, float]:
        warm = targets * (2 + COST["step"])
        climb = step + COST["step"]
        fail = 2 * (step + COST["failed_step"])
        likely = targets * (math.ceil(rungs * 2 / 3) * climb + fail + 1.5 * (window + COST["window"])
                            + 0.5 * COST["failed_window"])
        most = targets * ((rungs - 1) * climb + fail + 3 * window + COST["window"] + 2 * COST["failed_window"])
        return setup + warm + likely, setup + warm + most

    plan = []
    for name in a.scenarios:
        if name == "fanout":
            pairs = [(m, d, ctx.size("fanout_rates") if k == 0 else ctx.size("mode_rates"))
                     for k, m in enumerate(a.modes) for d in (a.fanout_dbs if k == 0 else a.fanout_dbs[:1])]
            costs = [ladder_cost(len(r)) for _m, _d, r in pairs]
            what = ", ".join(f"{m}/{d}" for m, d, _r in pairs)
            plan.append({"scenario": name, "what": f"ladder of {len(pairs[0][2])} x {step:g} s steps, then "
                                                   f"{window:g} s re-checks: {what}",
                         "likely_s": sum(c[0] for c in costs), "most_s": sum(c[1] for c in costs)})
        elif name == "tail":
            each = setup + targets * (3 + COST["step"]) + targets * (window + COST["window"])
            plan.append({"scenario": name, "what": f"{TAIL_RATE * 100:,.0f} deliveries/s for {window:g} s x "
                                                   f"{targets} targets on {', '.join(a.tail_dbs)}",
                         "likely_s": each * len(a.tail_dbs), "most_s": each * len(a.tail_dbs) * 1.2})
        elif name == "rooms":
            secs = a.rooms_seconds or ctx.size("rooms_seconds")
            n = len(a.thread_share) * a.rooms_rounds
            each = COST["pair_setup"] + 10 + 5 + n * (secs + COST["window"] + 2)
            plan.append({"scenario": name, "what": f"{n} x {secs:g} s (thread shares "
                                                   f"{', '.join(f'{x:g}' for x in a.thread_share)}) on "
                                                   f"{', '.join(a.rooms_setups)}",
                         "likely_s": each * len(a.rooms_setups),
                         "most_s": (each + 45 * n) * len(a.rooms_setups)})
        elif name == "connections":
            counts = ctx.size("connections")
            idle = ctx.size("idle_seconds") * (len(counts) if ctx.size("idle_at_every_count") else 1)
            each = 2 * (5 + 4 * len(counts) + idle) + max(counts) * COST["connect_per_socket"]
            t = 10 + max(counts) / 1000 + each * len(a.conn_modes)
            plan.append({"scenario": name, "what": f"{','.join(map(str, counts))} sockets, {a.db}", "likely_s": t,
                         "most_s": t * 1.3})
        elif name == "cluster":
            sizes = a.cluster_sizes or ctx.size("cluster_sizes")
            costs = [ladder_cost(len(ctx.size("fanout_rates"))) for _ in sizes]
            plan.append({"scenario": name, "what": f"{','.join(map(str, sizes))} process(es) over Redis, postgres",
                         "likely_s": sum(c[0] for c in costs) + 5 * len(sizes),
                         "most_s": sum(c[1] for c in costs) + 5 * len(sizes)})
        elif name == "mentions":
            t = COST["pair_setup"] + 8 + ctx.size("mention_seconds") + 5
            plan.append({"scenario": name, "what": f"{ctx.size('mention_seconds')} s", "likely_s": t,
                         "most_s": t + 15})
        elif name == "history":
            n = ctx.size("history_requests")
            t = 10 + ctx.size("history_messages") / 100_000 + n / 150 + n / 190 + 5
            plan.append({"scenario": name, "what": f"{ctx.size('history_messages'):,} messages, {n:,} pages x 2",
                         "likely_s": t, "most_s": t * 1.3})
        elif name == "mixed":
            each = COST["pair_setup"] + 8 + len(a.mixed_rates) * (window + COST["window"] + 10)
            plan.append({"scenario": name, "what": f"{mix_text(a.mix)} at {','.join(f'{r:g}' for r in a.mixed_rates)} ops/s "
                                                   f"x {window:g} s on {', '.join(a.mixed_setups)}",
                         "likely_s": each * len(a.mixed_setups), "most_s": each * len(a.mixed_setups) * 1.3})
        elif name == "presence":
            # Seed, start, connect 5,100 sockets (and the presence of each), warm up; then the windows.
            n = 2 * a.presence_rounds
            each = 60 + (a.presence_users + 100) / 150 + n * (window + 12 + COST["window"] + 8) - 6 * a.presence_rounds
            plan.append({"scenario": name, "what": f"{a.presence_users + 100:,} sockets, {a.presence_rate:g} msgs/s, "
                                                   f"{n} x {window:g} s (without, with presence+typing) on "
                                                   f"{', '.join(a.presence_setups)}",
                         "likely_s": each * len(a.presence_setups), "most_s": each * len(a.presence_setups) * 1.4})
    return plan


def describe_plan(plan: list[dict]) -> str:
    """The plan as a few lines, with the estimated total."""
    lines = ["plan (estimated; plus up to --quiet-wait before each step when the machine is busy):"]
    for item in plan:
        lines.append(f"  {item['scenario']:<12} ~{item['likely_s'] / 60:4.1f} min (at most ~{item['most_s'] / 60:4.1f})"
                     f"  {item['what']}")
    likely, most = sum(i["likely_s"] for i in plan), sum(i["most_s"] for i in plan)
    lines.append(f"  {'total':<12} ~{likely / 60:4.1f} min (at most ~{most / 60:4.1f})")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------

def machine() -> dict:
    """What the figures were measured on."""
    versions = {}
    for pkg in ("Flask", "Flask-SocketIO", "python-socketio", "python-engineio", "eventlet", "gevent",
                "SQLAlchemy", "psycopg2-binary", "redis", "celery", "aiohttp", "simple-websocket"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    pg = redis_v = None
    try:
        import psycopg2

        from bench.common import PG_ADMIN_URL

        conn = psycopg2.connect(PG_ADMIN_URL)
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0]
        conn.close()
        import redis

        from bench.common import REDIS_BASE_URL

        redis_v = redis.Redis.from_url(REDIS_BASE_URL).info("server")["redis_version"]
    except Exception:
        pass
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu_model, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(), "postgresql": pg,
            "redis": redis_v, "versions": versions, "load1_at_start": load_average()}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true",
                   help="full sizes: longer steps, finer ladders, longer idle windows, gevent and threading too")
    p.add_argument("--scenarios", default=None,
                   help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all but {','.join(OPT_IN)})")
    p.add_argument("--modes", default=None,
                   help="async modes for the fan-out comparison (quick: eventlet; --full: eventlet,gevent,threading); "
                        "the first runs on every --fanout-dbs and is used by every other scenario, the others run "
                        "on the first of --fanout-dbs only")
    p.add_argument("--conn-modes", default="eventlet", help="async modes for the idle-connection scenario")
    p.add_argument("--db", choices=DBS, default="postgres",
                   help="database for scenarios 2-3, rooms and connections (4-6 always use PostgreSQL)")
    p.add_argument("--fanout-dbs", default="postgres,sqlite",
                   help="databases for the fan-out ladder (scenario 1), each beside its own baseline run; "
                        "sqlite is the embedded mode")
    p.add_argument("--tail-dbs", default="postgres,sqlite", help="databases for the tail scenario")
    p.add_argument("--tail-seconds", type=float, default=60.0,
                   help="the long window (s): the tail scenario's fixed 5,000 deliveries/s, and the re-check that "
                        "makes a fan-out rate 'sustained'")
    p.add_argument("--connections", default=None,
                   help="socket counts for scenario 3 (quick: 1000,10000; full: 1000,5000,10000)")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle window per socket count in scenario 3")
    p.add_argument("--rates", default=None,
                   help="fan-out ladder in messages/s, e.g. 25,50,100 (overrides the sizes; quick: "
                        + ",".join(str(r) for r in SIZES["fanout_rates"][0]) + ")")
    p.add_argument("--step-seconds", type=float, default=None, help="length of each short fan-out step (quick: 5 s)")
    p.add_argument("--before-root", default=None,
                   help="also run fanout, tail and cluster against Chorus checked out here (e.g. `git archive` of an "
                        "older commit), on a database of the same kind migrated by that checkout")
    p.add_argument("--ws-compression", action="store_true",
                   help="let sockets negotiate permessage-deflate (WEBSOCKET_COMPRESSION=1), Chorus and baseline alike")
    p.add_argument("--cluster-sizes", default="", help="server processes per system in scenario 4 (quick: 2; full: 1,2)")
    p.add_argument("--profile", action="store_true", help="record py-spy on the Chorus server during one fan-out step")
    p.add_argument("--profile-rate", type=float, default=50, help="the fan-out rate (msgs/s) to profile at")
    p.add_argument("--max-busy", type=float, default=float(os.environ.get("BENCH_MAX_BUSY", "0.5")),
                   help="before each step, wait until the machine (our servers idle) uses fewer cores than this")
    p.add_argument("--quiet-wait", type=float, default=None, help="the longest wait for that before each step (s)")
    p.add_argument("--thread-share", default="0.3",
                   help="scenario 2 (rooms): the share of sends that are thread replies to a recent message of the "
                        "room; several, comma-separated (e.g. 0,0.3), run one window each on the same servers, in "
                        "one invocation; 0 is the scenario without threads")
    p.add_argument("--also-in-room", type=float, default=0.1,
                   help="scenario 2: the share of thread replies also sent to the room (also_in_room)")
    p.add_argument("--rooms-seconds", type=float, default=None,
                   help="scenario 2: each window's length (quick: 30 s, full: 120 s)")
    p.add_argument("--rooms-rounds", type=int, default=1,
                   help="scenario 2: rounds over --thread-share, each after the first in reverse order (A B B A)")
    p.add_argument("--rooms-setups", default=None,
                   help="scenario 2, comma-separated: postgres (one process, no Redis, tasks in-process: as it "
                        "always ran), postgres-redis (one process with Redis and a Celery worker, as the cluster "
                        "deploys it), sqlite (the embedded mode); default: --db")
    p.add_argument("--mixed-rates", default="100,200",
                   help="ops/s for the mixed scenario (each op reaches the room's 100 sockets), one long window each")
    p.add_argument("--mixed-setups", default="cluster,embedded",
                   help="where the mixed scenario runs: cluster (2 processes, Redis, PostgreSQL), embedded (SQLite)")
    p.add_argument("--mix", default="70/20/10", help="sends/edits/reactions of the mixed scenario, in parts")
    p.add_argument("--presence-setups", default="cluster,embedded",
                   help="where the presence scenario runs: cluster (2 processes, Redis, PostgreSQL, a Celery worker), "
                        "embedded (1 process, SQLite)")
    p.add_argument("--presence-users", type=int, default=5000,
                   help="presence scenario: steady users, one socket each (100 churners come on top)")
    p.add_argument("--presence-rate", type=float, default=50,
                   help="presence scenario: messages/s, the same in the windows without and with the traffic")
    p.add_argument("--presence-dm-share", type=float, default=0.4,
                   help="presence scenario: the share of messages (and typing) in DMs; the rest in rooms of 50")
    p.add_argument("--typing-share", type=float, default=0.05, help="presence scenario: users typing at any moment")
    p.add_argument("--active-share", type=float, default=0.3,
                   help="presence scenario: users active, each sending `activity` once a minute")
    p.add_argument("--presence-changes", type=float, default=0.01,
                   help="presence scenario: the share of users changing presence per minute (sockets closing and "
                        "coming back)")
    p.add_argument("--presence-rounds", type=int, default=1,
                   help="presence scenario: rounds of (without, with), each after the first reversed (A B B A)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where results and profiles go")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    if args.scenarios is None:
        args.scenarios = ",".join(s for s in SCENARIOS if s not in OPT_IN)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.modes is None:
        # gevent and threading cost a ladder each and compare socket layers, not Chorus: --full only.
        args.modes = "eventlet,gevent,threading" if args.full else "eventlet"
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for option in ("fanout_dbs", "tail_dbs"):
        dbs = [d.strip() for d in getattr(args, option).split(",") if d.strip()]
        if not dbs or set(dbs) - set(DBS):
            p.error(f"--{option.replace('_', '-')}: a comma-separated subset of {','.join(DBS)}")
        setattr(args, option, dbs)
    if args.tail_seconds <= 0:
        p.error("--tail-seconds must be positive")
    args.cluster_sizes = [int(x) for x in args.cluster_sizes.split(",") if x.strip()]
    args.mixed_rates = [float(x) for x in args.mixed_rates.split(",") if x.strip()]
    args.mixed_setups = [x.strip() for x in args.mixed_setups.split(",") if x.strip()]
    if set(args.mixed_setups) - set(MIXED_SETUPS):
        p.error(f"--mixed-setups: a comma-separated subset of {','.join(MIXED_SETUPS)}")
    try:
        parts = [float(x) for x in args.mix.split("/")]
        args.mix = dict(zip(("send", "edit", "react"), parts + [0.0] * (3 - len(parts))))
    except ValueError:
        p.error("--mix: sends/edits/reactions, e.g. 70/20/10")
    args.conn_modes = [m.strip() for m in args.conn_modes.split(",") if m.strip()]
    args.presence_setups = [x.strip() for x in args.presence_setups.split(",") if x.strip()]
    if not args.presence_setups or set(args.presence_setups) - {"cluster", "embedded"}:
        p.error("--presence-setups: a comma-separated subset of cluster,embedded")
    if args.presence_rounds < 1 or args.presence_users < 1:
        p.error("--presence-rounds and --presence-users must be at least 1")
    try:
        args.thread_share = [float(x) for x in args.thread_share.split(",") if x.strip()]
    except ValueError:
        p.error("--thread-share: shares between 0 and 1, e.g. 0.3 or 0,0.3")
    if not args.thread_share or any(not 0 <= x <= 1 for x in args.thread_share) or not 0 <= args.also_in_room <= 1:
        p.error("--thread-share and --also-in-room: shares between 0 and 1")
    if args.rooms_rounds < 1:
        p.error("--rooms-rounds must be at least 1")
    args.rooms_setups = [d.strip() for d in (args.rooms_setups or args.db).split(",") if d.strip()]
    if not args.rooms_setups or set(args.rooms_setups) - set(ROOMS_SETUPS):
        p.error(f"--rooms-setups: a comma-separated subset of {','.join(ROOMS_SETUPS)}")
    if args.rates:
        rates = tuple(float(x) for x in args.rates.split(","))
        SIZES["fanout_rates"] = SIZES["mode_rates"] = (rates, rates)
    if args.step_seconds:
        SIZES["step_seconds"] = (args.step_seconds, args.step_seconds)
    if args.idle_seconds:
        SIZES["idle_seconds"] = (args.idle_seconds, args.idle_seconds)
    if args.connections:
        counts = tuple(int(x) for x in args.connections.split(","))
        SIZES["connections"] = (counts, counts)
    return args


async def amain(args: argparse.Namespace) -> dict:
    """Run the chosen scenarios in order and collect their results."""
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        ctx = Ctx(args, Path(tmp))
        ctx.out = Path(args.out)
        ctx.out.mkdir(parents=True, exist_ok=True)
        plan = estimate_plan(ctx)
        log(describe_plan(plan))
        results = {"machine": machine(), "args": {k: v for k, v in vars(args).items()}, "plan": plan,
                   "scenarios": {}}
        started = time.time()
        runners = {"fanout": scenario_fanout, "tail": scenario_tail, "rooms": scenario_rooms,
                   "connections": scenario_connections, "cluster": scenario_cluster, "mentions": scenario_mentions,
                   "history": scenario_history, "mixed": scenario_mixed, "presence": scenario_presence}
        for name in args.scenarios:
            t0 = time.time()
            try:
                results["scenarios"][name] = await runners[name](ctx)
            except Exception as exc:
                import traceback

                log(f"{name} failed: {exc}")
                traceback.print_exc()
                results["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                for log_file in sorted(ctx.tmp.glob("*.log")):
                    tail = log_file.read_text(errors="replace")[-1500:]
                    if "Traceback" in tail or "Error" in tail:
                        log(f"--- {log_file.name}\n{tail}")
            results["scenarios"].setdefault(name, {})["elapsed_s"] = time.time() - t0
        results["elapsed_s"] = time.time() - started
        # The servers' and generators' logs outlive the scratch directory, for errors found later.
        logs = ctx.out / f"logs-{time.strftime('%Y%m%d-%H%M%S')}"
        logs.mkdir(parents=True, exist_ok=True)
        for log_file in ctx.tmp.glob("*.log"):
            shutil.copy(log_file, logs / log_file.name)
        results["logs"] = str(logs)
        return results


def main(argv=None) -> int:
    """Entry point."""
    args = parse_args(argv)
    missing = node_ready()
    if missing and set(args.scenarios) - {"history"}:
        print(f"bench: {missing}", file=sys.stderr)
        return 2
    raise_nofile(25000)
    results = asyncio.run(amain(args))
    out = Path(args.out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(results, indent=1, default=str)
    (out / f"{stamp}.json").write_text(text)
    (out / "latest.json").write_text(text)
    print(report.tables(results))
    if not args.no_plot:
        for path in report.plots(results, ROOT / "docs" / "bench"):
            log(f"plot: {path.relative_to(ROOT)}")
    log(f"results: {(out / 'latest.json').relative_to(ROOT) if out.is_relative_to(ROOT) else out / 'latest.json'}"
        f"  ({results['elapsed_s']:.0f} s)")
    failed = [n for n, r in results["scenarios"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
