"""Scenario 8 (presence): 5,000 sockets, presence and typing traffic beside messages into rooms and DMs.

One run per setup (the cluster: two eventlet processes, Redis, PostgreSQL, a Celery worker;
the embedded mode: one process, SQLite) measures the same open-loop message rate, into rooms
and DMs, in windows without and with the background traffic, on the same servers and sockets:

- **People.** --presence-users steady users (5,000) plus CHURNERS (100) whose sockets come
  and go; each user is in two rooms of ROOM_SIZE (two different partitions of everyone) and
  in two DMs (a ring: i with i+1), all seeded in bulk. One DM is opened through
  `POST /api/v1/dms` as a check that the seeded rows are the ones the app would use.
- **Messages.** --presence-rate messages/s, --presence-dm-share of them into DMs, the rest
  into rooms, sent by steady users by bench/loadgen.mjs's open-loop clock; every delivery to
  a steady user's socket is counted and checked against the messages table (run.py's
  measure_step), DM deliveries' latency apart.
- **Typing.** --typing-share of the steady users typing at any moment: bursts of
  TYPING_BURST_S seconds arrive as a Poisson process; a typist sends `typing` every
  TYPING_EVERY_S seconds and `typing {stop}` at the end (the page's pace), into one of its
  rooms or DMs (DMs in the messages' share). Typists come from the active set.
- **Activity.** --active-share of the steady users are active: each sends `activity` once a
  minute at its own phase (the page's most). They are made active once before the windows
  (unmeasured), so in the windows activity changes nobody's state.
- **Presence changes.** --presence-changes of the users per minute (1 %): the changes
  alternate between a churner's socket closing (offline) and the churner away longest
  coming back (a new socket, then its first `activity`: active), so each churner is away
  about CHURN_AWAY_S seconds. Every socket counts each `presence` it gets by user and state,
  so each change's fan-out (sockets told) is exact.

The servers run with PRESENCE_IDLE_SECONDS=3600: with the default 300 s, the active set
(which sends nothing in the windows without traffic) would turn idle in a later window and
put a burst of presence changes into a window meant to have none.
"""
from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import psutil
import requests

from bench.common import Backend, Worker, raise_nofile, wait_for_quiet
from bench.loadgen import LoadGen, ms, percentile
from bench.seed import seed

SETUPS = {
    # name: (database, server processes, Redis and a Celery worker)
    "cluster": ("postgres", 2, True),
    "embedded": ("sqlite", 1, False),
}
CHURNERS = 100            # users whose sockets come and go, beside the steady ones
ROOM_SIZE = 50            # each user is in two rooms of this size (two partitions of everyone)
TYPING_BURST_S = 10.0     # a typist types this long, then its message goes (a `stop`)
TYPING_EVERY_S = 3.0      # the page repeats `typing` at most this often (static/js/lib/typing.js)
ACTIVITY_PERIOD_S = 60.0  # the page sends `activity` at most once a minute
CHURN_AWAY_S = 30.0       # about how long a churner stays away
LEAD_S = 12.0             # background traffic starts this long before a window: typing bursts reach steady state
IDLE_SECONDS = "3600"     # PRESENCE_IDLE_SECONDS for the servers (see the module's docstring)


def layout(n: int, room_size: int, rng: random.Random) -> tuple[list[list[int]], list[list[int]]]:
    """Rooms (two partitions of the n users into rooms of room_size) and DMs (a ring of pairs), as user indices."""
    order = list(range(n))
    shuffled = order[:]
    rng.shuffle(shuffled)
    rooms = [order[k:k + room_size] for k in range(0, n, room_size)]
    rooms += [shuffled[k:k + room_size] for k in range(0, n, room_size)]
    dms = [[i, (i + 1) % n] for i in range(n)]
    return rooms, dms


def interleave(a: list, b: list, share_b: float, length: int) -> list:
    """length entries, share_b of them from b (evenly spread), each list cycled."""
    out, ia, ib = [], 0, 0
    for k in range(length):
        if b and int((k + 1) * share_b) > int(k * share_b):
            out.append(b[ib % len(b)])
            ib += 1
        else:
            out.append(a[ia % len(a)])
            ia += 1
    return out


class CpuMeter:
    """CPU seconds of a set of processes (user + system, from /proc/<pid>/stat via psutil) between two readings."""

    def __init__(self, find):
        self.find = find

    def read(self) -> dict[int, float]:
        """CPU seconds so far per process."""
        out = {}
        for proc in self.find():
            try:
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return out

    @staticmethod
    def pct(before: dict[int, float], after: dict[int, float], wall: float) -> float:
        """Percent of one core between the readings (a process born in between counts from zero)."""
        return sum(v - before.get(pid, 0.0) for pid, v in after.items()) / wall * 100


def _named(name: str):
    def find():
        return [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]
    return find


def _tree(pid: int):
    def find():
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    return find


def _changes(changes: list, audience: dict[int, int]):
    """The changes made (not failed), sockets told per change, the audience expected, first and last
    arrival after each change (s), and how many changes each (user, state) had."""
    made = [c for c in changes if c[1] != "failed"]
    # Events are counted by (user, state): a user who changed the same way twice in one run of the
    # traffic shares one count between the two changes (the generator avoids it when it can), and
    # only the first of them has a delay to measure.
    times: dict[tuple, int] = {}
    for c in made:
        times[(c[0], c[1])] = times.get((c[0], c[1]), 0) + 1
    told = [c[4] / times[(c[0], c[1])] for c in made]
    expected = [audience.get(c[0], 0) - (1 if c[1] == "offline" else 0) for c in made]
    seen: set[tuple] = set()
    first, last = [], []
    for c in made:
        if (c[0], c[1]) in seen or c[5] is None:
            continue
        seen.add((c[0], c[1]))
        first.append(c[5])
        last.append(c[6])
    return made, told, expected, first, last, times


def gc_pauses(url: str) -> dict[str, list[float]]:
    """The server's garbage-collector pauses so far, from /metrics: generation -> [runs, seconds, runs over 0.25 s]."""
    out: dict[str, list[float]] = {}
    try:
        text = requests.get(f"{url}/metrics", timeout=5).text
    except requests.RequestException:
        return out
    for line in text.splitlines():
        if not line.startswith("chorus_gc_pause_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        gen = name.split('generation="', 1)[1].split('"', 1)[0]
        row = out.setdefault(gen, [0.0, 0.0, 0.0, 0.0])  # runs, seconds, runs <= 0.25 s
        if name.startswith("chorus_gc_pause_seconds_count"):
            row[0] = float(value)
        elif name.startswith("chorus_gc_pause_seconds_sum"):
            row[1] = float(value)
        elif 'le="0.25"' in name:
            row[3] = float(value)
    return {gen: [runs, secs, runs - upto] for gen, (runs, secs, _x, upto) in out.items()}


def gc_delta(before: dict, after: dict) -> dict:
    """Collector runs, seconds paused and runs over 0.25 s between two gc_pauses readings, by generation."""
    return {gen: [round(a - b, 4) for a, b in zip(after[gen], before.get(gen, [0, 0, 0]))] for gen in after}


def summarise_bg(bg: dict, audience: dict[int, int]) -> dict:
    """The background traffic's counts: typing relays, activity, each presence change's fan-out and delay."""
    secs = max(1e-9, bg["seconds"])
    t = bg["typing"]
    pres = bg["presence"]
    made, told, expected, first, last, times = _changes(pres["changes"], audience)
    return {
        "seconds": secs,
        "typing_bursts": t["bursts"],
        "typing_notices": t["out"],
        "typing_stops": t["stopsOut"],
        "typing_notices_s": t["out"] / secs,
        "mean_typists": t["meanTypists"],
        "typing_relays_expected": t["expected"],
        "typing_relays": t["in"],
        "typing_relays_s": t["in"] / secs,
        "typing_relays_missing": t["expected"] - t["in"],
        "typing_echoed_to_typist": t["echo"],
        "typing_unexpected": t["unexpected"],
        "typing_skipped": t["skipped"],
        "typing_relay_p50_ms": ms(t["lat"], "p50"),
        "typing_relay_p99_ms": ms(t["lat"], "p99"),
        "typing_relay_p999_ms": ms(t["lat"], "p999"),
        "typing_relay_max_ms": ms(t["lat"], "max"),
        "activity_sent": bg["activity"]["out"],
        "activity_s": bg["activity"]["out"] / secs,
        "presence_changes": len(made),
        "presence_offline": sum(1 for c in made if c[1] == "offline"),
        "presence_comebacks": sum(1 for c in made if c[1] == "active"),
        "presence_failed": len(pres["changes"]) - len(made),
        "presence_changes_per_min": len(made) / secs * 60,
        "presence_events": pres["in"],
        "presence_events_s": pres["in"] / secs,
        # Sockets told per change, and what the seeded rooms and DMs say they should be.
        "told_per_change_mean": sum(told) / len(told) if told else None,
        "told_per_change_min": min(told) if told else None,
        "told_per_change_max": max(told) if told else None,
        "audience_per_change_mean": sum(expected) / len(expected) if expected else None,
        "changes_told_nobody": sum(1 for n in told if n == 0),
        "changes_repeated": sum(k - 1 for k in times.values()),
        # A comeback seen as idle first (the flusher ran between the connect and the activity).
        "comeback_idle_events": sum(c[7] for c in made),
        "presence_other_events": pres["other"],
        "presence_first_p50_ms": percentile(first, 50) * 1000,
        "presence_first_p99_ms": percentile(first, 99) * 1000,
        "presence_last_p99_ms": percentile(last, 99) * 1000,
        "presence_last_max_ms": (max(last) * 1000) if last else float("nan"),
        "churn_errors": pres["churnErrors"],
        "comebacks_unresolved": pres.get("unresolved", 0),
        "away_at_end": pres["away"],
    }


def describe_window(w: dict) -> str:
    """The background traffic's counts in a progress line."""
    b = w.get("bg")
    extra = "  ".join(f"{k} {v:.0f}%" for k, v in w["other_cpu_pct"].items())
    full = "; ".join(f"{g.get('2', [0, 0, 0])[0]:.0f} full GCs, {g.get('2', [0, 0, 0])[1]:.2f} s" for g in w.get("gc") or [])
    text = (f"            other CPU: {extra}; generator loop delay p99 {w['loop_p99_ms']:.1f} ms, max {w['loop_max_ms']:.1f} ms"
            f"; server collector: {full or '-'}")
    if w["split"]:
        text += (f"\n            DMs p99 {w['split']['dm_p99_ms']:.1f} ms max {w['split']['dm_max_ms']:.1f}; "
                 f"rooms p99 {w['split']['room_p99_ms']:.1f} ms max {w['split']['room_max_ms']:.1f}")
    if not b:
        return text
    return text + (
        f"\n            typing: {b['typing_notices_s']:.1f} notices/s ({b['mean_typists']:.0f} typists), "
        f"{b['typing_relays_s']:.0f} relays/s, {b['typing_relays']}/{b['typing_relays_expected']} relayed, "
        f"echo {b['typing_echoed_to_typist']}, unexpected {b['typing_unexpected']}, "
        f"p99 {b['typing_relay_p99_ms']:.1f} ms max {b['typing_relay_max_ms']:.1f}"
        f"\n            presence: {b['presence_changes']} changes ({b['presence_changes_per_min']:.1f}/min, "
        f"{b['presence_failed']} failed), told {b['told_per_change_mean'] or 0:.1f} sockets each "
        f"(audience {b['audience_per_change_mean'] or 0:.1f}), {b['presence_events_s']:.0f} events/s, "
        f"first p50 {b['presence_first_p50_ms']:.0f} ms p99 {b['presence_first_p99_ms']:.0f} ms; "
        f"activity {b['activity_s']:.1f}/s; other presence events {b['presence_other_events']}")


async def run(ctx, runner) -> dict:
    """Run the scenario on each of --presence-setups; runner is bench.run (its step and process helpers)."""
    a = ctx.args
    log = runner.log
    mode = a.modes[0]
    users = a.presence_users
    n = users + CHURNERS
    seconds = a.tail_seconds
    nofile = raise_nofile(25000)
    order = [(k + 1, with_bg) for k in range(a.presence_rounds)
             for with_bg in ((False, True) if k % 2 == 0 else (True, False))]
    rng = random.Random(15)
    room_lists, dm_lists = layout(n, ROOM_SIZE, rng)
    # Churners spread over the index range, so they are in every part of the layout.
    step = n // CHURNERS
    churn = sorted({k * step + step - 1 for k in range(CHURNERS)})
    churn_set = set(churn)
    steady = [i for i in range(n) if i not in churn_set]
    active = sorted(rng.sample(steady, round(a.active_share * len(steady))))
    changes_per_s = a.presence_changes * n / 60
    typing_rate = a.typing_share * len(steady) / TYPING_BURST_S
    out = {"mode": mode, "users": users, "churners": CHURNERS, "sockets": n, "room_size": ROOM_SIZE,
           "rooms": len(room_lists), "dms": len(dm_lists), "seconds": seconds, "rate_msgs": a.presence_rate,
           "dm_share": a.presence_dm_share, "typing_share": a.typing_share, "typing_burst_s": TYPING_BURST_S,
           "typing_every_s": TYPING_EVERY_S, "typing_bursts_s": typing_rate, "active_users": len(active),
           "activity_period_s": ACTIVITY_PERIOD_S, "changes_per_min": changes_per_s * 60,
           "churn_away_s": CHURN_AWAY_S, "lead_s": LEAD_S, "presence_idle_seconds": float(IDLE_SECONDS),
           "nofile": nofile, "rounds": a.presence_rounds, "setups": {}}
    log(f"presence: {n:,} sockets ({users:,} steady + {CHURNERS} churners), {len(room_lists)} rooms of {ROOM_SIZE}, "
        f"{len(dm_lists):,} DMs; {a.presence_rate:g} msgs/s ({a.presence_dm_share:.0%} into DMs); typing "
        f"{typing_rate:.1f} bursts/s, activity from {len(active):,}, {changes_per_s * 60:.0f} presence changes/min; "
        f"open-file limit {nofile}")
    if nofile < n + 200:
        log(f"  the open-file limit ({nofile}) is below {n + 200}: sockets will fail to connect")
    for name in a.presence_setups:
        db, processes, redis = SETUPS[name]
        log(f"presence ({name}: {processes} process(es), {db}{', Redis and a Celery worker' if redis else ''})")
        out["setups"][name] = await run_setup(ctx, runner, name, db, processes, redis, mode, n, room_lists, dm_lists,
                                              churn, steady, active, changes_per_s, typing_rate, order, seconds)
    return out


async def run_setup(ctx, runner, name, db, processes, redis, mode, n, room_lists, dm_lists, churn, steady, active,
                    changes_per_s, typing_rate, order, seconds) -> dict:
    """One setup: seed, start, connect every socket, then the windows without and with the background traffic."""
    a = ctx.args
    log = runner.log
    backend = Backend(db, ctx.tmp, redis=redis)
    backend.create()
    running, gens = [], []
    reference = None
    try:
        t0 = time.time()
        team = seed(backend.database_url, n, room_lists, dms=dm_lists)
        log(f"  seeded {n:,} users, {len(team.rooms)} rooms, {len(team.dms):,} DMs in {time.time() - t0:.1f} s")
        env = backend.env(SOCKETIO_ASYNC_MODE=mode, PRESENCE_IDLE_SECONDS=IDLE_SECONDS)
        servers = runner.start_servers(ctx, "chorus", processes, env, f"pr-{name}")
        running += servers
        worker = None
        if redis:
            worker = Worker(f"pr-{name}-worker", env, ctx.tmp)
            running.append(worker)
            worker.wait_ready()
        dm_check = check_dm(servers[0].url, team, dm_lists)
        log(f"  POST /api/v1/dms for a seeded pair: {dm_check}")
        all_rooms = list(team.rooms) + list(team.dms)
        rooms_of: dict[int, set[int]] = {}
        for room_id, uids in all_rooms:
            for uid in uids:
                rooms_of.setdefault(uid, set()).add(room_id)
        churn_set = set(churn)
        members = [{"id": uid, "url": servers[i % len(servers)].url, "token": token,
                    "rooms": sorted(rooms_of.get(uid, ())), "record": i not in churn_set}
                   for i, (uid, _name, token) in enumerate(team.users)]
        gen = await LoadGen(f"presence-{name}", ctx.tmp).start()
        gens.append(gen)
        t0 = time.time()
        conn = await gen.connect(members, concurrency=50, timeout_ms=60000)
        alive = await gen.alive()
        log(f"  {conn['connected']:,} sockets connected on {processes} process(es) in {conn['seconds']:.1f} s "
            f"({alive:,} alive)")
        # Each user's presence audience: everyone sharing a room or DM, the user included.
        index = {uid: i for i, (uid, _n, _t) in enumerate(team.users)}
        audience: dict[int, set[int]] = {}
        for _room, uids in all_rooms:
            for uid in uids:
                audience.setdefault(uid, {uid}).update(uids)
        audience_n = {uid: len(s) for uid, s in audience.items()}
        steady_ids = {team.users[i][0] for i in steady}
        # Deliveries are checked for steady users only: churners' sockets are away by design.
        target_rooms = {uid: r for uid, r in rooms_of.items() if uid in steady_ids}
        reference = runner.db_reference(backend)
        target = runner.Target("chorus", "chorus", servers, gen, target_rooms, reference)
        prng = random.Random(16)
        room_entries = [(index[uid], room_id) for room_id, uids in team.rooms for uid in uids if uid in steady_ids]
        dm_entries = [(index[next(u for u in uids if u in steady_ids)], room_id) for room_id, uids in team.dms
                      if any(u in steady_ids for u in uids)]
        prng.shuffle(room_entries)
        prng.shuffle(dm_entries)
        plan = interleave(room_entries, dm_entries, a.presence_dm_share, 6000)
        dm_ids = [room_id for room_id, _u in team.dms]
        active_set = set(active)
        typing_rooms = [(i, r) for i, r in room_entries if i in active_set]
        typing_dms = [(index[uid], room_id) for room_id, uids in team.dms for uid in uids
                      if index[uid] in active_set]
        prng.shuffle(typing_rooms)
        prng.shuffle(typing_dms)
        candidates = interleave(typing_rooms, typing_dms, a.presence_dm_share, 20000)
        background = {
            "typing": {"rate": typing_rate, "burstSeconds": TYPING_BURST_S, "every": TYPING_EVERY_S,
                       "candidates": candidates},
            "activity": {"members": active, "period": ACTIVITY_PERIOD_S},
            "churn": {"members": churn, "rate": changes_per_s, "maxSeconds": LEAD_S + seconds + 60},
        }
        # The connect storm's presence (every user online) settles; then the active set turns active,
        # and some churners go away, so comebacks start with the first window.
        await asyncio.sleep(3)
        await wait_for_quiet(a.max_busy, 60, log)
        act = await gen.activate(active)
        prime = await gen.churn_prime(churn, round(changes_per_s / 2 * CHURN_AWAY_S))
        log(f"  {act['ok']:,} of {act['sent']:,} users made active (refused: {act['failed'] or 'none'}), "
            f"{prime['away']} churners away; warming up")
        await asyncio.sleep(3)
        await wait_for_quiet(a.max_busy, 60, log)
        # Warm up with both kinds of traffic, unrecorded.
        await gen.background_start(**background, seed=99)
        await runner.measure_step(target, plan, a.presence_rate, 5, f"pr-warm-{random.randrange(1 << 30):x}.")
        await gen.background_stop(settle=1)
        meters = {"worker": CpuMeter(_tree(worker.proc.pid)) if worker else None,
                  "redis": CpuMeter(_named("redis-server")) if redis else None,
                  "postgres": CpuMeter(_named("postgres")) if db == "postgres" else None}
        meters = {k: v for k, v in meters.items() if v}
        windows = []
        for rnd, with_bg in order:
            busy = await wait_for_quiet(a.max_busy, ctx.quiet_wait(), log)
            if with_bg:
                await gen.background_start(**background, seed=rnd)
                await asyncio.sleep(LEAD_S)
            alive0 = await gen.alive()
            before = {k: m.read() for k, m in meters.items()}
            gc0 = [gc_pauses(srv.url) for srv in servers]
            wall0 = time.time()
            r = await runner.measure_step(target, plan, a.presence_rate, seconds,
                                          f"pr-{'bg' if with_bg else 'no'}-{rnd}-{random.randrange(1 << 30):x}.",
                                          drain_timeout=10, split_rooms=dm_ids)
            wall = time.time() - wall0
            other = {k: CpuMeter.pct(before[k], m.read(), wall) for k, m in meters.items()}
            gc = [gc_delta(b, gc_pauses(srv.url)) for b, srv in zip(gc0, servers)]
            bg = await gen.background_stop(settle=3) if with_bg else None
            alive1 = await gen.alive()
            split = r.get("split") or {}
            w = {
                "with_background": with_bg, "round": rnd, "busy_before_cores": busy, "step": r,
                # Per server: generation -> [collections, seconds paused, collections over 0.25 s] in the window.
                "gc": gc,
                "alive_before": alive0, "alive_after": alive1, "other_cpu_pct": other,
                "loop_p99_ms": r["loadgen_loop"]["p99_ms"], "loop_max_ms": r["loadgen_loop"]["max_ms"],
                "split": {"dm_p50_ms": split["dm"]["p50_ms"], "dm_p99_ms": split["dm"]["p99_ms"],
                          "dm_p999_ms": split["dm"]["p999_ms"], "dm_max_ms": split["dm"]["max_ms"],
                          "dm_deliveries": split["dm"]["count"],
                          "room_p50_ms": split["room"]["p50_ms"], "room_p99_ms": split["room"]["p99_ms"],
                          "room_p999_ms": split["room"]["p999_ms"], "room_max_ms": split["room"]["max_ms"],
                          "room_deliveries": split["room"]["count"]} if split else None,
                "bg": summarise_bg(bg, audience_n) if bg else None,
                "bg_raw_changes": bg["presence"]["changes"] if bg else None,
            }
            windows.append(w)
            log(runner.describe_step(r) + f"  ({'with' if with_bg else 'without'} presence+typing, round {rnd}; "
                f"{alive0:,} sockets alive)\n" + describe_window(w))
            if not r["holds"]:
                await asyncio.sleep(20)
        return {"db": db, "processes": processes, "redis": redis, "connected": conn["connected"],
                "connect_s": conn["seconds"], "alive_after_connect": alive, "dm_check": dm_check,
                "active_made": act["ok"], "active_refused": act["failed"], "windows": windows, "summary": compare(windows)}
    finally:
        if reference is not None:
            reference.engine.dispose()
        for gen in gens:
            await gen.stop()
        runner.stop_all(running)
        backend.drop()


def check_dm(url: str, team, dm_lists) -> dict:
    """Open the first seeded DM through the API: it must answer 200 (existing) with the seeded room."""
    uid, _name, token = team.users[dm_lists[0][0]]
    other = team.users[dm_lists[0][1]][1]
    resp = requests.post(f"{url}/api/v1/dms", json={"usernames": [other]},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    room = body.get("room", body)
    return {"status": resp.status_code, "same_room": room.get("id") == team.dms[0][0], "kind": room.get("kind")}


def compare(windows: list[dict]) -> dict:
    """With against without, from the same run: the means of each kind's windows and their ratios."""
    def mean(rows, get):
        vals = [get(w) for w in rows]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    out = {}
    for label, flag in (("without", False), ("with", True)):
        rows = [w for w in windows if w["with_background"] == flag]
        if not rows:
            continue
        s = {k: mean(rows, lambda w, k=k: w["step"][k]) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms",
                                                                  "loadgen_cpu_pct", "machine_cpu_pct")}
        nserv = len(rows[0]["step"]["server_cpu_pct"])
        for i in range(nserv):
            s[f"server{i}_cpu_pct"] = mean(rows, lambda w, i=i: w["step"]["server_cpu_pct"][i])
        for k in rows[0]["other_cpu_pct"]:
            s[f"{k}_cpu_pct"] = mean(rows, lambda w, k=k: w["other_cpu_pct"][k])
        s["lost"] = sum(w["step"]["lost"] for w in rows)
        s["duplicated"] = sum(w["step"]["duplicated"] for w in rows)
        s["errors"] = sum(w["step"]["errors"] for w in rows)
        out[label] = s
    if "with" in out and "without" in out:
        out["ratio"] = {k: (out["with"][k] / out["without"][k]) if out["without"].get(k) and out["with"].get(k)
                        is not None else None
                        for k in out["with"] if k.endswith("_ms") or k.endswith("_pct")}
    return out
