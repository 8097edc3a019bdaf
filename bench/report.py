"""Tables and plots from a results dict (bench/run.py writes it; `python -m bench.report` rereads it).

Latency columns are p50, p99, p99.9 and max wherever the results have them; results written
before p99.9, the tail scenario and the long re-checks existed still print, with "-" for
what they lack.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def _f(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(a, b) -> str:
    if not a or not b or (isinstance(b, float) and math.isnan(b)) or (isinstance(a, float) and math.isnan(a)):
        return "-"
    return f"{a / b:.2f}x"


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary(s: dict) -> dict:
    """A ladder summary with the short-step figures under their new names, for old results too."""
    out = dict(s)
    # Before the long re-check, "sustained" was the best short step's figure.
    out.setdefault("short_step_deliveries_s", s.get("sustained_deliveries_s"))
    if "sustained_rate_msgs" not in s:
        out["sustained_deliveries_s"] = None
    return out


def _floor(s: dict, rule: str, text: str) -> str:
    """Mark a figure measured at the top of the ladder as a floor: the target never failed there."""
    if text == "-" or not s.get("top_of_ladder"):
        return text
    if rule == "max_rate_msgs" or (rule == "sustained" and s.get("sustained_rate_msgs") == s.get("max_rate_msgs")):
        return "≥ " + text
    return text


def pairs_of(fan: dict) -> list[tuple[str, dict]]:
    """The fan-out ladders of a results' fanout scenario, keyed mode-db (old results: keyed by mode)."""
    return [(k, p) for k, p in fan.items() if isinstance(p, dict) and "summary" in p]


def fanout_table(pair: dict, title: str) -> str:
    """The headline of one ladder: short steps, the long re-check, and 5,000 deliveries/s; Chorus as a ratio."""
    sums = {label: _summary(v) for label, v in pair["summary"].items() if isinstance(v, dict)}
    c, b = sums["chorus"], sums["baseline"]
    step = pair.get("step_seconds") or c.get("short_step_seconds")
    window = pair.get("window_seconds") or c.get("sustained_seconds")
    steps = f"{step:g} s steps" if step else "short steps"
    win = f"{window:g} s" if window else "the long window"
    deliveries = (c.get("at_rate_msgs") or 50) * pair["room_size"]
    # (label, key, digits, floor rule): floor rule says which rate a "≥" follows.
    spec = [
        (f"highest rate that holds in {steps} (msgs/s into the room)", "max_rate_msgs", 0, "max_rate_msgs"),
        ("deliveries/s at that rate (short step)", "short_step_deliveries_s", 0, "max_rate_msgs"),
        ("p99 at that rate (ms)", "p99_at_max_ms", 1, None),
        ("p99.9 at that rate (ms)", "p999_at_max_ms", 1, None),
        ("max at that rate (ms)", "max_at_max_ms", 1, None),
    ]
    if "sustained_rate_msgs" in c:
        spec += [
            (f"sustained: highest rate that holds for {win} (msgs/s)", "sustained_rate_msgs", 0, "sustained"),
            (f"sustained deliveries/s (over {win})", "sustained_deliveries_s", 0, "sustained"),
            ("p50 over that window (ms)", "sustained_p50_ms", 1, None),
            ("p99 over that window (ms)", "sustained_p99_ms", 1, None),
            ("p99.9 over that window (ms)", "sustained_p999_ms", 1, None),
            ("max over that window (ms)", "sustained_max_ms", 1, None),
            ("stalls > 50 ms in that window", "sustained_stalls", 0, None),
            ("server CPU at the sustained rate (% of a core)", "sustained_server_cpu_pct", 0, None),
        ]
    if "p99_at_rate_ms" in c:
        spec += [(f"p50 at {deliveries:,.0f} deliveries/s (short step, ms)", "p50_at_rate_ms", 1, None),
                 (f"p99 at {deliveries:,.0f} deliveries/s (short step, ms)", "p99_at_rate_ms", 1, None),
                 (f"p99.9 at {deliveries:,.0f} deliveries/s (short step, ms)", "p999_at_rate_ms", 1, None),
                 (f"max at {deliveries:,.0f} deliveries/s (short step, ms)", "max_at_rate_ms", 1, None)]

    def cell(s: dict, key: str, digits: int, rule) -> str:
        value = s.get(key)
        if key == "sustained_rate_msgs" and value is None and s.get("sustained_tried_msgs"):
            return "none held (tried " + ", ".join(f"{r:g}" for r in s["sustained_tried_msgs"]) + ")"
        text = _f(value, digits)
        return _floor(s, rule, text) if rule else text

    others = [label for label in ("before",) if label in sums]
    headers = ["", "Chorus", "baseline", "Chorus / baseline"]
    for label in others:
        headers += ["before (other checkout)", "Chorus / before"]
    rows = []
    for name, key, digits, rule in spec:
        row = [name, cell(c, key, digits, rule), cell(b, key, digits, rule), _ratio(c.get(key), b.get(key))]
        for label in others:
            row += [cell(sums[label], key, digits, rule), _ratio(c.get(key), sums[label].get(key))]
        rows.append(row)
    return f"### {title}\n" + _table(headers, rows)


def steps_table(pair: dict) -> str:
    """Every step of a ladder, and its long re-checks."""
    rows = []
    for kind, groups in (("step", pair["steps"]), ("re-check", pair.get("sustained", {}))):
        for label, steps in groups.items():
            for r in steps:
                rows.append([label, kind, _f(r["rate_msgs"], 0), _f(r.get("seconds"), 0),
                             _f(r["offered_deliveries_s"], 0), _f(r["deliveries_s"], 0), _f(r["p50_ms"]),
                             _f(r["p99_ms"]), _f(r.get("p999_ms")), _f(r["max_ms"]), r["lost"], r["duplicated"],
                             r["errors"], "+".join(f"{c:.0f}" for c in r["server_cpu_pct"]),
                             _f(r["loadgen_cpu_pct"], 0), "ok" if r["holds"] else "fail"])
    return _table(["target", "", "msgs/s", "s", "offered deliv/s", "delivered/s", "p50 ms", "p99 ms", "p99.9 ms",
                   "max ms", "lost", "dup", "err", "server CPU %", "loadgen CPU %", ""], rows)


def tail_table(tail: dict) -> str:
    """The fixed 5,000 deliveries/s window: latency, losses and stalls per database and target."""
    rows, notes = [], []
    for db, targets in tail.get("dbs", {}).items():
        for label, r in targets.items():
            st = r.get("stalls", {})
            rows.append([db, label, _f(r["deliveries_s"], 0), _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r.get("p999_ms")),
                         _f(r["max_ms"]), r["lost"], r["duplicated"], f"{r['messages_stored']}/{r['messages_sent']}",
                         _f(st.get("count")), _f(st.get("per_minute")), _f(st.get("longest_s")),
                         _f(st.get("median_gap_s")), "+".join(f"{c:.0f}" for c in r["server_cpu_pct"]),
                         "ok" if r["holds"] else "fail"])
        c, b = targets.get("chorus"), targets.get("baseline")
        if c and b:
            notes.append(f"{db}: Chorus / baseline p99 {_ratio(c['p99_ms'], b['p99_ms'])}, "
                         f"p99.9 {_ratio(c.get('p999_ms'), b.get('p999_ms'))}, max {_ratio(c['max_ms'], b['max_ms'])}; "
                         f"stalls {c['stalls']['count']} vs {b['stalls']['count']}.")
    title = (f"### 1t. Tail: {tail['rate_msgs'] * tail['room_size']:,.0f} deliveries/s ({tail['rate_msgs']:g} msgs/s "
             f"into one room of {tail['room_size']}) for {tail['seconds']:g} s, {tail['mode']}, one process\n"
             f"Stalls: bursts of deliveries slower than {tail['stall_ms']:g} ms (runs of {tail['bucket_s'] * 1000:g} ms "
             f"buckets of intended send time); gap: start to start, in seconds.\n")
    return title + _table(["db", "target", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "lost", "dup",
                           "stored/sent", "stalls", "stalls/min", "longest stall s", "median gap s", "server CPU %",
                           ""], rows) + ("\n\n" + "\n".join(notes) if notes else "")


def mixed_table(mixed: dict) -> str:
    """Sends, edits and reactions: throughput, latency overall and per kind, and the revs' bookkeeping."""
    rows = []
    for name, setup in mixed["setups"].items():
        where = f"{name} ({setup['processes']} process{'es' if setup['processes'] > 1 else ''}, {setup['db']}" \
                f"{', Redis' if setup['redis'] else ''})"
        for r in setup["steps"]:
            ops = r.get("ops", {})
            rv = r.get("revs") or {}
            kinds = " / ".join(f"{_f(r.get(k + '_latency', {}).get('p99_ms'))}" for k in ("send", "edit", "react"))
            rows.append([where, _f(r["rate_msgs"], 0), _f(r["seconds"], 0),
                         f"{ops.get('send', 0):,} / {ops.get('edit', 0):,} / {ops.get('react', 0):,}",
                         _f(r["deliveries_s"], 0), _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r.get("p999_ms")),
                         _f(r["max_ms"]), kinds, r["lost"], r["duplicated"], r["errors"],
                         f"{r.get('revs_taken', '-')} / {r['messages_stored']}",
                         f"{rv.get('catch_ups', '-')} ({_f(rv.get('catch_ups_per_1000'), 2)})",
                         "+".join(f"{c:.0f}" for c in r["server_cpu_pct"]), "ok" if r["holds"] else "fail"])
    mix = mixed.get("mix") or {}
    total = sum(mix.values()) or 1
    parts = "/".join(f"{100 * mix.get(k, 0) / total:g}" for k in ("send", "edit", "react"))
    return (f"### 7. Mixed: sends/edits/reactions {parts} into {mixed['rooms']} rooms of the same "
            f"{mixed['room_size']} members, {mixed['mode']}\n"
            "Every op reaches the room's 100 sockets; an edit or reaction with nothing yet to act on is sent as a "
            "message, so the ops column is what was done. Revs taken: what the rooms' sequences moved, against the "
            "changes stored (sends in the table, edits and reactions acknowledged).\n" + _table(
                ["setup", "ops/s", "s", "sends / edits / reactions", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms",
                 "max ms", "p99 send / edit / reaction ms", "lost", "dup", "err", "revs taken / changes",
                 "catch-ups (per 1,000)", "server CPU %", ""], rows))


def rooms_table(rooms: dict) -> str:
    """Scenario 2: one row per window (thread share, round, database); replies and root summaries apart."""
    title = (f"### 2. Many rooms: {rooms['users']:,} users in {rooms['rooms']} rooms of {rooms['room_size']}, "
             f"one message per user every {rooms['period_s']:.0f} s, {rooms['seconds']:g} s\n")
    if "step" in rooms:  # results from before thread replies: one window, no share
        r = rooms["step"]
        return title + _table(
            ["msgs/s", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "lost", "dup", "stored/sent",
             "server CPU %"],
            [[_f(r["rate_msgs"], 0), _f(r["deliveries_s"], 0), _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r.get("p999_ms")),
              _f(r["max_ms"]), r["lost"], r["duplicated"], f"{r['messages_stored']}/{r['messages_sent']}",
              _f(r["server_cpu_pct"][0], 0)]])
    rows, notes = [], []
    for db, data in rooms["setups"].items():
        for r in data["windows"]:
            th = r.get("threads") or {}
            ops = th.get("ops", {})
            top, rep, sm = th.get("top_latency", {}), th.get("reply_latency", {}), th.get("summary_latency", {})
            rv = r.get("revs") or {}
            rows.append([db, f"{r['thread_share']:g}", r.get("round", 1), _f(r["rate_msgs"], 0),
                         f"{ops.get('top', 0):,} / {ops.get('reply', 0):,} ({ops.get('alsoInRoom', 0):,})",
                         _f(r["deliveries_s"], 0), _f(th.get("changes_delivered_s"), 0),
                         _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r.get("p999_ms")), _f(r["max_ms"]),
                         f"{_f(top.get('p99_ms'))} / {_f(rep.get('p99_ms'))}",
                         f"{_f(top.get('p999_ms'))} / {_f(rep.get('p999_ms'))}",
                         f"{_f(th.get('summaries_per_reply'), 3)} / {_f(th.get('summaries_per_reply_delivery'), 3)}",
                         f"{_f(sm.get('p99_ms'))} / {_f(sm.get('max_ms'))}", th.get("summary_missing", "-"),
                         f"{r['lost']}, {r['duplicated']}, {r['errors']}, {r.get('unanswered', '-')}", f"{r['messages_stored']}/{r['messages_sent']}",
                         f"{rv.get('catch_ups', '-')} ({_f(rv.get('catch_ups_per_1000'), 2)})",
                         "+".join(f"{c:.0f}" for c in r["server_cpu_pct"]), "ok" if r["holds"] else "fail"])
        # Each share against share 0, over the windows of each (their mean when there are rounds).
        by_share: dict[float, list[dict]] = {}
        for r in data["windows"]:
            by_share.setdefault(r["thread_share"], []).append(r)
        if 0 in by_share:
            def mean(rs, key):
                vals = [x[key] if key != "cpu" else sum(x["server_cpu_pct"]) for x in rs]
                return sum(vals) / len(vals)
            for share, rs in by_share.items():
                if share == 0:
                    continue
                z = by_share[0]
                notes.append(f"{db}: share {share:g} / share 0: " + ", ".join(
                    f"{name} {_ratio(mean(rs, key), mean(z, key))}"
                    for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"), ("max", "max_ms"),
                                      ("server CPU", "cpu"))) + ".")
    return (title + "Messages: top-level and replies (every member gets a reply); changes: messages and root "
            "summaries. Summaries per reply: committed (revs taken beyond the messages stored) per reply stored / "
            "received per reply delivered.\n" + _table(
                ["setup", "thread share", "round", "msgs/s", "top-level / replies (also in room)", "messages deliv/s",
                 "changes deliv/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "p99 top / reply ms",
                 "p99.9 top / reply ms", "summaries per reply", "summary p99 / max ms", "summaries missing",
                 "lost, dup, err, unanswered", "stored/sent", "catch-ups (per 1,000)", "server CPU %", ""], rows)
            + ("\n\n" + "\n".join(notes) if notes else ""))


def presence_table(pr: dict) -> str:
    """Scenario 8: messages without and with presence and typing traffic, per setup, and what that traffic did."""
    rows, bg_rows = [], []
    for name, setup in pr["setups"].items():
        if "windows" not in setup:
            continue
        for w in setup["windows"]:
            r = w["step"]
            sp = w.get("split") or {}
            other = ", ".join(f"{k} {v:.0f}" for k, v in (w.get("other_cpu_pct") or {}).items())
            rows.append([name, "with" if w["with_background"] else "without", w["round"], f"{w['alive_before']:,}",
                         _f(r["deliveries_s"], 0), _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r["p999_ms"]), _f(r["max_ms"]),
                         f"{_f(sp.get('dm_p99_ms'))} / {_f(sp.get('room_p99_ms'))}",
                         f"{r['lost']}, {r['duplicated']}, {r['errors']}",
                         " + ".join(f"{c:.0f}" for c in r["server_cpu_pct"]), other or "-",
                         _f(r["loadgen_cpu_pct"], 0), _f(w.get("loop_p99_ms")), _f(r["machine_cpu_pct"], 0),
                         " + ".join(f"{g.get('2', [0, 0])[0]:.0f} ({g.get('2', [0, 0])[1]:.1f} s)"
                                    for g in w.get("gc") or []) or "-",
                         "holds" if r["holds"] else "fails"])
            b = w.get("bg")
            if b:
                bg_rows.append([name, w["round"], _f(b["mean_typists"], 0), _f(b["typing_notices_s"]),
                                _f(b["typing_relays_s"], 0),
                                f"{b['typing_relays']:,} / {b['typing_relays_expected']:,}",
                                f"{_f(b['typing_relay_p50_ms'])} / {_f(b['typing_relay_p99_ms'])} / "
                                f"{_f(b['typing_relay_max_ms'])}",
                                _f(b["activity_s"]),
                                f"{b['presence_changes']} ({b['presence_offline']} off, {b['presence_comebacks']} back)",
                                _f(b["presence_changes_per_min"]),
                                f"{_f(b['told_per_change_mean'])} ({_f(b['audience_per_change_mean'])})",
                                _f(b["presence_events_s"], 0),
                                f"{_f(b['presence_first_p50_ms'], 0)} / {_f(b['presence_first_p99_ms'], 0)}",
                                b["presence_other_events"]])
    out = [f"### 8. Presence and typing beside messages: {pr['sockets']:,} sockets, {pr['rate_msgs']:g} msgs/s "
           f"({pr['dm_share']:.0%} into DMs), {pr['seconds']:g} s windows\n" + _table(
               ["setup", "presence+typing", "round", "sockets", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
                "p99 DM / room ms", "lost, dup, err", "server CPU %", "other CPU %", "generator CPU %",
                "generator loop p99 ms", "machine CPU %", "full GCs (paused) per server", ""], rows)]
    if bg_rows:
        out.append(_table(["setup", "round", "typists", "typing notices/s", "relays/s", "relayed / expected",
                           "relay p50 / p99 / max ms", "activity/s", "presence changes", "per min",
                           "sockets told per change (audience)", "presence events/s", "first told p50 / p99 ms",
                           "other presence events"], bg_rows))
    ratio_rows = []
    for name, setup in pr["setups"].items():
        ra = (setup.get("summary") or {}).get("ratio")
        if ra:
            ratio_rows.append([name] + [_f(ra.get(k), 2) + "x" if ra.get(k) else "-" for k in
                                        ("p50_ms", "p99_ms", "p999_ms", "max_ms")]
                              + [", ".join(f"{k[:-8]} {v:.2f}x" for k, v in ra.items()
                                           if k.endswith("_cpu_pct") and v)])
    if ratio_rows:
        out.append("With / without (same run):\n" + _table(["setup", "p50", "p99", "p99.9", "max", "CPU"], ratio_rows))
    return "\n\n".join(out)


def _rev_rows(label: str, steps: list[dict]) -> list | None:
    revs = [r["revs"] for r in steps if r.get("revs")]
    if not revs:
        return None
    live = sum(x["deliveries"] for x in revs)
    ups = sum(x["catch_ups"] for x in revs)
    return [label, len(revs), f"{live:,}", f"{sum(x['gaps'] for x in revs):,}", ups,
            f"{ups / live * 1000:.2f}" if live else "-", sum(x["failures"] for x in revs),
            _f(max((x["catch_up_max_ms"] for x in revs if x["catch_ups"]), default=None)),
            sum(len(x["rooms_behind"]) for x in revs)]


def revs_table(results: dict) -> str | None:
    """The sockets' rev cursors over every Chorus step of the run, per scenario."""
    sc = results.get("scenarios", {})
    rows = []
    for key, pair in pairs_of(sc.get("fanout") or {}):
        rows.append(_rev_rows(f"1. fan-out {key}, short steps", pair["steps"].get("chorus", [])))
        rows.append(_rev_rows(f"1. fan-out {key}, {pair.get('window_seconds', 60):g} s windows",
                              pair.get("sustained", {}).get("chorus", [])))
    for key, pair in (sc.get("cluster") or {}).items():
        if isinstance(pair, dict) and "steps" in pair:
            rows.append(_rev_rows(f"4. cluster {key}, short steps", pair["steps"].get("chorus", [])))
            rows.append(_rev_rows(f"4. cluster {key}, {pair.get('window_seconds', 60):g} s windows",
                                  pair.get("sustained", {}).get("chorus", [])))
    for db, data in ((sc.get("rooms") or {}).get("setups") or {}).items():
        for r in data["windows"]:
            rows.append(_rev_rows(f"2. rooms {db}, thread share {r['thread_share']:g}, round {r.get('round', 1)}", [r]))
    for name, setup in ((sc.get("mixed") or {}).get("setups") or {}).items():
        for r in setup["steps"]:
            rows.append(_rev_rows(f"7. mixed {name}, {r['rate_msgs']:g} ops/s, {r['seconds']:g} s", [r]))
    rows = [r for r in rows if r]
    if not rows:
        return None
    return ("### Rev cursors: catch-ups per 1,000 live changes (Chorus)\n"
            "Each socket keeps the page's cursor per room; a change that skips a rev is held, and a gap not filled "
            "within the grace window (1.5 s) sends one catch-up (`?since=`), at most one in flight per room. "
            "Past a gap: live changes that arrived before an earlier rev (filled in time unless a catch-up followed). "
            "Rooms behind: rooms where a socket's cursor ended below the room's head.\n" + _table(
                ["steps", "n", "live changes", "past a gap", "catch-ups", "per 1,000", "failed", "longest catch-up ms",
                 "rooms behind"], rows))


def tables(results: dict) -> str:
    """Every scenario's table, as Markdown."""
    out = []
    sc = results.get("scenarios", {})
    fan = sc.get("fanout") or {}
    pairs = pairs_of(fan)
    for key, pair in pairs:
        out.append(fanout_table(pair, f"1. Fan-out, one room of {pair['room_size']}, {pair.get('mode', key)}, "
                                      f"one process, {pair['db']}"))
    if len(pairs) > 1:
        rows = []
        with_before = any("before" in pair["summary"] for _k, pair in pairs)
        for key, pair in pairs:
            c, b = _summary(pair["summary"]["chorus"]), _summary(pair["summary"]["baseline"])
            row = [pair.get("mode", key), pair["db"],
                   _floor(c, "sustained", _f(c["sustained_deliveries_s"], 0)),
                   _floor(b, "sustained", _f(b["sustained_deliveries_s"], 0)),
                   _ratio(c["sustained_deliveries_s"], b["sustained_deliveries_s"]),
                   _floor(c, "max_rate_msgs", _f(c["short_step_deliveries_s"], 0)),
                   _floor(b, "max_rate_msgs", _f(b["short_step_deliveries_s"], 0)),
                   _ratio(c["short_step_deliveries_s"], b["short_step_deliveries_s"]),
                   _f(c.get("p99_at_rate_ms")), _f(b.get("p99_at_rate_ms")),
                   _f(c.get("p999_at_rate_ms")), _f(b.get("p999_at_rate_ms"))]
            if with_before:
                bf = _summary(pair["summary"].get("before") or {})
                row += [_f(bf.get("sustained_deliveries_s"), 0),
                        _ratio(c["sustained_deliveries_s"], bf.get("sustained_deliveries_s"))]
            rows.append(row)
        headers = ["mode", "db", "Chorus sustained deliv/s", "baseline sustained deliv/s", "Chorus / baseline",
                   "Chorus short-step deliv/s", "baseline short-step deliv/s", "Chorus / baseline",
                   "Chorus p99 @5k ms", "baseline p99 @5k ms", "Chorus p99.9 @5k ms", "baseline p99.9 @5k ms"]
        if with_before:
            headers += ["before sustained deliv/s", "Chorus / before"]
        out.append("### 1b. Fan-out per async mode and database (one process; sustained = held for the long "
                   "window, short-step = the ladder's best)\n" + _table(headers, rows))
    tail = sc.get("tail") or {}
    if tail.get("dbs"):
        out.append(tail_table(tail))
    rooms = sc.get("rooms") or {}
    if "step" in rooms or rooms.get("setups"):
        out.append(rooms_table(rooms))
    conn = sc.get("connections") or {}
    if conn.get("rows"):
        rows = []
        base = {(r["mode"], r["sockets"]): r for r in conn["rows"] if r["target"] == "baseline"}
        for r in conn["rows"]:
            if r["target"] != "chorus":
                continue
            b = base.get((r["mode"], r["sockets"]), {})
            rows.append([r["mode"], _f(r["sockets"]), f"{r['connected']:,}", _f(r["kb_per_socket"]),
                         _f(b.get("kb_per_socket")), _ratio(r["kb_per_socket"], b.get("kb_per_socket")),
                         _f(r["rss_mb"], 0), _f(r["idle_cpu_pct"]), _f(b.get("idle_cpu_pct")),
                         _f(r["connects_per_s"], 0), _f(b.get("connects_per_s"), 0)])
        out.append("### 3. Idle authenticated sockets on one process\n" + _table(
            ["mode", "sockets", "connected", "Chorus KB/socket", "baseline KB/socket", "ratio", "Chorus RSS MB",
             "Chorus idle CPU %", "baseline idle CPU %", "Chorus connects/s", "baseline connects/s"], rows))
    cl = sc.get("cluster") or {}
    if "2p" in cl and "summary" in cl.get("2p", {}):
        rows = []
        # The single process without Redis to compare with: the cluster's mode on PostgreSQL.
        cl_mode = cl["2p"].get("mode")
        local = [p for _k, p in pairs if p.get("db") == "postgres" and p.get("mode", cl_mode) == cl_mode] or \
                [p for _k, p in pairs]
        one_local = local[0]["summary"] if local else None
        for label, key in (("1 process, no Redis (scenario 1)", None), ("1 process over Redis", "1p"),
                           ("2 processes over Redis", "2p")):
            s = one_local if key is None else cl.get(key, {}).get("summary")
            if not s or "chorus" not in s:
                continue
            c, b = _summary(s["chorus"]), _summary(s["baseline"])
            rows.append([label, _floor(c, "sustained", _f(c["sustained_deliveries_s"], 0)),
                         _floor(b, "sustained", _f(b["sustained_deliveries_s"], 0)),
                         _ratio(c["sustained_deliveries_s"], b["sustained_deliveries_s"]),
                         _floor(c, "max_rate_msgs", _f(c["short_step_deliveries_s"], 0)),
                         _floor(b, "max_rate_msgs", _f(b["short_step_deliveries_s"], 0)),
                         _f(c.get("p50_at_rate_ms")), _f(c.get("p99_at_rate_ms")), _f(c.get("p999_at_rate_ms")),
                         _f(b.get("p99_at_rate_ms")), _f(b.get("p999_at_rate_ms"))])
        out.append("### 4. Cluster: fan-out over Redis (postgres)\n" + _table(
            ["setup", "Chorus sustained deliv/s", "baseline sustained deliv/s", "Chorus / baseline",
             "Chorus short-step deliv/s", "baseline short-step deliv/s", "Chorus p50 @5k ms", "Chorus p99 @5k ms",
             "Chorus p99.9 @5k ms", "baseline p99 @5k ms", "baseline p99.9 @5k ms"], rows))
        one = cl.get("1p", {}).get("summary") or one_local or {}
        which = "one process over Redis" if "1p" in cl else "one process without Redis (scenario 1)"
        c1, b1 = _summary(one.get("chorus", {})), _summary(one.get("baseline", {}))
        c2, b2 = _summary(cl["2p"]["summary"]["chorus"]), _summary(cl["2p"]["summary"]["baseline"])
        # Results from before the long re-check only have the short-step figure.
        key, what = (("sustained_deliveries_s", "sustained") if "sustained_rate_msgs" in cl["2p"]["summary"]["chorus"]
                     else ("short_step_deliveries_s", "short-step"))
        out.append(f"Two processes over Redis / {which}, {what} deliveries/s: "
                   f"Chorus {_ratio(c2[key], c1.get(key))}, baseline {_ratio(b2[key], b1.get(key))}.")
    if "before" in (cl.get("2p", {}).get("summary") or {}):
        out.append(fanout_table(cl["2p"], "4b. Cluster, two processes over Redis, postgres, beside the checkout before"))
    men = sc.get("mentions") or {}
    if "notify_p99_ms" in men:
        out.append("### 5. Mentions through the Celery worker\n" + _table(
            ["msgs/s", "messages", "notifications stored / received", "dup", "notify p50 ms", "notify p99 ms",
             "notify p99.9 ms", "notify max ms", "message p99 ms", "message p99.9 ms", "message max ms"],
            [[_f(men["rate_msgs"], 0), men["messages"], f"{men['notifications_stored']} / {men['notifications_received']}",
              men["notifications_duplicated"], _f(men["notify_p50_ms"]), _f(men["notify_p99_ms"]),
              _f(men.get("notify_p999_ms")), _f(men["notify_max_ms"]), _f(men["message_p99_ms"]),
              _f(men.get("message_p999_ms")), _f(men.get("message_max_ms"))]]))
    hist = sc.get("history") or {}
    if "sequential" in hist:
        s, c, q = hist["sequential"], hist["concurrent"], hist["sql"]
        out.append(f"### 6. History pages, {hist['messages']:,} messages in PostgreSQL\n" + _table(
            ["", "requests", "pages/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"],
            [["one client", s["requests"], _f(s["per_s"], 0), _f(s["p50_ms"], 2), _f(s["p99_ms"], 2),
              _f(s.get("p999_ms"), 2), _f(s["max_ms"], 1)],
             [f"{c['clients']} concurrent clients", c["requests"], _f(c["per_s"], 0), _f(c["p50_ms"], 2),
              _f(c["p99_ms"], 2), _f(c.get("p999_ms"), 2), _f(c["max_ms"], 1)],
             ["page query inside PostgreSQL", 200, "-", _f(q["p50_ms"], 3), _f(q["p99_ms"], 3),
              _f(q.get("p999_ms"), 3), _f(q["max_ms"], 2)]]))
    mixed = sc.get("mixed") or {}
    if mixed.get("setups"):
        out.append(mixed_table(mixed))
    pr = sc.get("presence") or {}
    if pr.get("setups"):
        out.append(presence_table(pr))
    revs = revs_table(results)
    if revs:
        out.append(revs)
    errors = [f"- {name}: {r['error']}" for name, r in sc.items() if isinstance(r, dict) and "error" in r]
    if errors:
        out.append("### Errors\n" + "\n".join(errors))
    return "\n\n".join(out)


def plots(results: dict, outdir: Path) -> list[Path]:
    """p99 latency against offered load, Chorus and baseline, for each fan-out ladder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ladders = []
    for key, pair in (results.get("scenarios", {}).get("fanout") or {}).items():
        if isinstance(pair, dict) and "steps" in pair:
            ladders.append((f"1 process, {pair.get('mode', key)}, {pair.get('db', '')}", pair))
    for key, pair in (results.get("scenarios", {}).get("cluster") or {}).items():
        if isinstance(pair, dict) and "steps" in pair:
            ladders.append((f"{key[0]} process(es) over Redis", pair))
    if not ladders:
        return []
    outdir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, pair) in enumerate(ladders):
        for label, style in (("chorus", "-o"), ("baseline", "--s")):
            steps = sorted(pair["steps"].get(label, []), key=lambda r: (r["rate_msgs"], r.get("attempt", 1)))
            best: dict[float, dict] = {}
            for r in steps:  # the retried step when there was one
                best[r["rate_msgs"]] = r
            xs = [r["rate_msgs"] * pair["room_size"] for r in best.values()]
            ys = [max(0.1, r["p99_ms"]) for r in best.values()]
            if xs:
                ax.plot(xs, ys, style, color=colors[k % len(colors)], label=f"{label}, {name}", markersize=4)
    ax.axhline(500, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    ax.axvline(5000, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (deliveries/s = messages/s x 100 members)")
    ax.set_ylabel("p99 end-to-end latency (ms)")
    ax.set_title("Fan-out: p99 latency against offered load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = outdir / "fanout-p99.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json"
    data = json.loads(source.read_text())
    print(tables(data))
    if "--plot" in sys.argv:
        for p in plots(data, Path(__file__).resolve().parent.parent / "docs" / "bench"):
            print(p)
