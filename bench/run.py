"""Chorus benchmarks beside a bare Flask-SocketIO baseline.

    .venv/bin/python bench/run.py                      # the quick default (make bench)
    .venv/bin/python bench/run.py --full               # the full sizes
    .venv/bin/python bench/run.py --scenarios fanout,history --modes eventlet,gevent

Scenarios: fanout (1), rooms (2), connections (3), cluster (4), mentions (5), history (6).
Results go to bench/results/<time>.json (and latest.json), the table to stdout, the plot to
docs/bench/. See the README's "Benchmarks" section and docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from bench import report  # noqa: E402
from bench.common import ROOT, Backend, Server, Worker, load_average, raise_nofile, wait_for_quiet  # noqa: E402
from bench.loadgen import LoadGen, expand, latency_summary, ms, node_ready  # noqa: E402
from bench.seed import Team, load_history, seed  # noqa: E402

SCENARIOS = ("fanout", "rooms", "connections", "cluster", "mentions", "history")
P99_LIMIT_MS = 500.0

SIZES = {
    # name: (quick, full)
    "step_seconds": (5, 15),
    "fanout_rates": ((25, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1300, 1600),
                     (10, 25, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600, 800, 1000, 1200,
                      1400, 1600, 2000)),
    "mode_rates": ((50, 100, 200, 400, 800, 1200),
                   (10, 25, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600, 800, 1000, 1200,
                    1400, 1600, 2000)),
    "quiet_wait": (5, 30),
    "cluster_sizes": ((2,), (1, 2)),
    "rooms_seconds": (30, 120),
    "connections": ((1000, 5000, 10000), (1000, 5000, 10000)),
    "idle_seconds": (30, 60),       # past the 25 s ping interval, so pings are counted
    "idle_at_every_count": (False, True),
    "mention_rate": (5, 10),
    "mention_seconds": (20, 60),
    "history_messages": (1_000_000, 1_000_000),
    "history_requests": (1000, 5000),
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
                       drain_timeout: float = 6.0, mentions: list[str] | None = None,
                       profile: Path | None = None) -> dict:
    """Offer rate messages/s for seconds; count deliveries per socket and check against the store."""
    cpu0 = [s.cpu_seconds() for s in target.servers]
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
        got = await target.gen.step(prefix=prefix, rate=rate, seconds=seconds, plan=plan, mentions=mentions,
                                    drain_timeout=drain_timeout)
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
        "max_ms": ms(got["lat"], "max"),
        "ack_p50_ms": ms(got["ack"], "p50"),
        "ack_p99_ms": ms(got["ack"], "p99"),
        "send_lag_p99_ms": ms(got["sendLag"], "p99"),
        "drain_s": got["drain"],
        "server_cpu_pct": cpu,
        "loadgen_cpu_pct": gen_cpu,
        "machine_cpu_pct": machine_cpu,
        "load1": load_average(),
        "notes": got["notes"],
        "db_waits": waits.top(),
    }
    result["holds"] = (result["p99_ms"] < P99_LIMIT_MS and lost == 0 and dup == 0 and unexpected == 0
                       and result["errors"] == 0 and result["acked_not_stored"] == 0 and len(stored) == count)
    return result


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
    return (f"  {r['target']:<9} {r['rate_msgs']:>5.0f} msg/s {r['deliveries_s']:>7.0f} deliv/s  "
            f"p50 {r['p50_ms']:6.1f} p99 {r['p99_ms']:7.1f} max {r['max_ms']:7.1f} ms  "
            f"lost {r['lost']} dup {r['duplicated']} err {r['errors']}  cpu srv {cpu}% gen {r['loadgen_cpu_pct']:.0f}%"
            f" all {r['machine_cpu_pct']:.0f}%  {'ok' if r['holds'] else 'FAIL'}")


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

    reference.engine = engine
    reference.url = backend.database_url
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


# -- scenario 1 and 4: fan-out ladder -----------------------------------------------------------

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
                busy = await wait_for_quiet(ctx.args.max_busy, ctx.args.quiet_wait or ctx.size("quiet_wait"), log)
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


def summarise_ladder(steps: list[dict], at_rate: float | None = None) -> dict:
    """The highest rate that held, its measured deliveries/s, and the step at a given rate."""
    held = [s for s in steps if s["holds"]]
    best = max(held, key=lambda s: s["rate_msgs"]) if held else None
    summary = {
        "max_rate_msgs": best["rate_msgs"] if best else 0,
        "sustained_deliveries_s": best["deliveries_s"] if best else 0.0,
        "p99_at_max_ms": best["p99_ms"] if best else float("nan"),
        "server_cpu_at_max_pct": sum(best["server_cpu_pct"]) if best else float("nan"),
    }
    if at_rate is not None:
        at = [s for s in steps if s["rate_msgs"] == at_rate and s["holds"]] or \
             [s for s in steps if s["rate_msgs"] == at_rate]
        if at:
            summary.update(at_rate_msgs=at_rate, p50_at_rate_ms=at[0]["p50_ms"], p99_at_rate_ms=at[0]["p99_ms"],
                           max_at_rate_ms=at[0]["max_ms"], server_cpu_at_rate_pct=sum(at[0]["server_cpu_pct"]))
    return summary


async def fanout_pair(ctx: Ctx, *, mode: str, servers_per_target: int, redis: bool, rates, tag: str,
                      room_size: int = 100) -> dict:
    """Chorus and the baseline, same mode and server count, one room of room_size members."""
    backend = Backend(ctx.args.db if not redis else "postgres", ctx.tmp, redis=redis)
    backend.create()
    backends = [backend]
    running: list = []
    gens: list[LoadGen] = []
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
            # migrated by that checkout's own migrations.
            root = Path(ctx.args.before_root)
            before_backend = Backend(backend.kind, ctx.tmp, redis=redis)
            before_backend.create(root=root)
            backends.append(before_backend)
            teams["before"] = seed(before_backend.database_url, room_size, [list(range(room_size))])
            before = start_servers(ctx, "chorus", servers_per_target, before_backend.env(SOCKETIO_ASYNC_MODE=mode),
                                   f"{tag}-before", root=root)
            running += before
            systems.append(("before", "chorus", before, db_reference(before_backend)))
        targets, plans = [], {}
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
        steps = await ladder(ctx, targets, rates, ctx.size("step_seconds"), tag, plans,
                             profile_rate=ctx.args.profile_rate)
        result = {
            "mode": mode, "servers": servers_per_target, "redis": redis, "db": backend.kind, "room_size": room_size,
            "steps": steps,
            "summary": {label: summarise_ladder(s, at_rate=50) for label, s in steps.items()},
        }
        c, b = result["summary"]["chorus"], result["summary"]["baseline"]
        result["summary"]["ratio_sustained"] = (c["sustained_deliveries_s"] / b["sustained_deliveries_s"]
                                                if b["sustained_deliveries_s"] else float("nan"))
        for target in targets:
            if target.reference:
                target.reference.engine.dispose()
        return result
    finally:
        await stop_gens(gens)
        stop_all(running)
        for b in backends:
            b.drop()


async def scenario_fanout(ctx: Ctx) -> dict:
    """1: one room of 100; the highest rate that holds, per async mode, Chorus and baseline."""
    out = {}
    for mode in ctx.args.modes:
        log(f"fanout ({mode}, 1 process, {ctx.args.db})")
        rates = ctx.size("fanout_rates") if mode == ctx.args.modes[0] else ctx.size("mode_rates")
        out[mode] = await fanout_pair(ctx, mode=mode, servers_per_target=1, redis=False, rates=rates,
                                      tag=f"f{mode[:2]}")
    return out


async def scenario_cluster(ctx: Ctx) -> dict:
    """4: the fan-out ladder on two processes sharing Redis, members split; plus one process on Redis."""
    out = {}
    mode = ctx.args.modes[0]
    for servers in ctx.args.cluster_sizes or ctx.size("cluster_sizes"):
        log(f"cluster ({mode}, {servers} process(es) over Redis, postgres)")
        out[f"{servers}p"] = await fanout_pair(ctx, mode=mode, servers_per_target=servers, redis=True,
                                               rates=ctx.size("fanout_rates"), tag=f"c{servers}")
    return out


# -- scenario 2: many rooms ---------------------------------------------------------------------

async def scenario_rooms(ctx: Ctx) -> dict:
    """2: 1,000 users in 100 rooms of 10, one message per user every 10 s."""
    users, size, period = 1000, 10, 10.0
    backend = Backend(ctx.args.db, ctx.tmp)
    backend.create()
    running, gens = [], []
    mode = ctx.args.modes[0]
    try:
        team = seed(backend.database_url, users, [list(range(k, k + size)) for k in range(0, users, size)])
        chorus = start_servers(ctx, "chorus", 1, backend.env(SOCKETIO_ASYNC_MODE=mode), "rooms-chorus")
        running += chorus
        rooms_of = member_rooms(team)
        gen = await LoadGen("rooms", ctx.tmp).start()
        gens.append(gen)
        took = (await gen.connect(member_dicts(team, chorus, rooms_of)))["seconds"]
        log(f"rooms: {users} sockets in {took:.1f} s")
        index = {uid: i for i, (uid, _n, _t) in enumerate(team.users)}
        plan = [(index[uid], room_id) for room_id, uids in team.rooms for uid in uids]
        random.Random(7).shuffle(plan)
        target = Target("chorus", "chorus", chorus, gen, rooms_of, db_reference(backend))
        await measure_step(target, plan, users / period, 3, f"rooms-warm-{random.randrange(1 << 30):x}.")
        await wait_for_quiet(ctx.args.max_busy, ctx.args.quiet_wait or ctx.size("quiet_wait"), log)
        seconds = ctx.size("rooms_seconds")
        r = await measure_step(target, plan, users / period, seconds, f"rooms-{random.randrange(1 << 30):x}.",
                               drain_timeout=10)
        log(describe_step(r))
        target.reference.engine.dispose()
        return {"users": users, "rooms": users // size, "room_size": size, "period_s": period,
                "seconds": seconds, "mode": mode, "db": backend.kind, "step": r}
    finally:
        await stop_gens(gens)
        stop_all(running)
        backend.drop()


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
                await wait_for_quiet(ctx.args.max_busy, ctx.args.quiet_wait or ctx.size("quiet_wait"), log)
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
        await wait_for_quiet(ctx.args.max_busy, ctx.args.quiet_wait or ctx.size("quiet_wait"), log)
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
               "notify_p50_ms": ms(notes, "p50"), "notify_p99_ms": ms(notes, "p99"), "notify_max_ms": ms(notes, "max"),
               "message_p50_ms": r["p50_ms"], "message_p99_ms": r["p99_ms"], "step": r}
        log(f"  mentions: {notes['count']}/{r['messages_stored']} notifications ({stored} stored), "
            f"p50 {out['notify_p50_ms']:.1f} ms, p99 {out['notify_p99_ms']:.1f} ms, max {out['notify_max_ms']:.1f} ms "
            f"(messages p99 {r['p99_ms']:.1f} ms)")
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
            await wait_for_quiet(ctx.args.max_busy, ctx.args.quiet_wait or ctx.size("quiet_wait"), log)
            n = ctx.size("history_requests")
            cpu0 = server.cpu_seconds()
            t0 = time.time()
            lat = [await page(rng.randrange(52, top + 1)) for _ in range(n)]
            wall = time.time() - t0
            out["sequential"] = {"requests": n, **latency_summary(lat), "per_s": n / wall,
                                 "server_cpu_pct": (server.cpu_seconds() - cpu0) / wall * 100}
            log(f"  sequential: {n} pages, p50 {out['sequential']['p50_ms']:.2f} ms, "
                f"p99 {out['sequential']['p99_ms']:.2f} ms, max {out['sequential']['max_ms']:.1f} ms")
            conc = 8
            t0 = time.time()

            async def client(k: int) -> list[float]:
                r = random.Random(100 + k)
                return [await page(r.randrange(52, top + 1)) for _ in range(n // conc)]

            lat = [x for chunk in await asyncio.gather(*(client(k) for k in range(conc))) for x in chunk]
            wall = time.time() - t0
            out["concurrent"] = {"clients": conc, "requests": len(lat), **latency_summary(lat), "per_s": len(lat) / wall}
            log(f"  {conc} concurrent: {len(lat) / wall:.0f} pages/s, p50 {out['concurrent']['p50_ms']:.2f} ms, "
                f"p99 {out['concurrent']['p99_ms']:.2f} ms")
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
    p.add_argument("--full", action="store_true", help="full sizes: longer steps, finer ladders, longer idle windows")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--modes", default="eventlet,gevent,threading",
                   help="async modes for the fan-out comparison; the first is used everywhere else")
    p.add_argument("--conn-modes", default="eventlet", help="async modes for the idle-connection scenario")
    p.add_argument("--db", choices=("postgres", "sqlite"), default="postgres",
                   help="database for scenarios 1-3 (4-6 always use PostgreSQL)")
    p.add_argument("--connections", default=None, help="socket counts for scenario 3, e.g. 1000,5000,10000")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle window per socket count in scenario 3")
    p.add_argument("--rates", default=None, help="fan-out ladder in messages/s, e.g. 25,50,100 (overrides the sizes)")
    p.add_argument("--step-seconds", type=float, default=None, help="length of each fan-out step")
    p.add_argument("--before-root", default=None,
                   help="also run the fan-out against Chorus checked out here (e.g. `git archive` of an older commit)")
    p.add_argument("--ws-compression", action="store_true",
                   help="let sockets negotiate permessage-deflate (WEBSOCKET_COMPRESSION=1), Chorus and baseline alike")
    p.add_argument("--cluster-sizes", default="", help="server processes per system in scenario 4 (quick: 2; full: 1,2)")
    p.add_argument("--profile", action="store_true", help="record py-spy on the Chorus server during one fan-out step")
    p.add_argument("--profile-rate", type=float, default=50, help="the fan-out rate (msgs/s) to profile at")
    p.add_argument("--max-busy", type=float, default=float(os.environ.get("BENCH_MAX_BUSY", "0.5")),
                   help="before each step, wait until the machine (our servers idle) uses fewer cores than this")
    p.add_argument("--quiet-wait", type=float, default=None, help="the longest wait for that before each step (s)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where results and profiles go")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.cluster_sizes = [int(x) for x in args.cluster_sizes.split(",") if x.strip()]
    args.conn_modes = [m.strip() for m in args.conn_modes.split(",") if m.strip()]
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
        results = {"machine": machine(), "args": {k: v for k, v in vars(args).items()}, "scenarios": {}}
        started = time.time()
        runners = {"fanout": scenario_fanout, "rooms": scenario_rooms, "connections": scenario_connections,
                   "cluster": scenario_cluster, "mentions": scenario_mentions, "history": scenario_history}
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
