"""Tables and plots from a results dict (bench/run.py writes it; `python -m bench.report` rereads it)."""
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


def fanout_table(pair: dict, title: str) -> str:
    """The headline of one Chorus/baseline ladder, with Chorus as a ratio of the baseline."""
    s = pair["summary"]
    c, b = s["chorus"], s["baseline"]
    rows = [
        ["highest rate that holds (msgs/s into the room)", _f(c["max_rate_msgs"], 0), _f(b["max_rate_msgs"], 0),
         _ratio(c["max_rate_msgs"], b["max_rate_msgs"])],
        ["sustained deliveries/s at that rate", _f(c["sustained_deliveries_s"], 0), _f(b["sustained_deliveries_s"], 0),
         _ratio(c["sustained_deliveries_s"], b["sustained_deliveries_s"])],
        ["p99 at that rate (ms)", _f(c["p99_at_max_ms"]), _f(b["p99_at_max_ms"]),
         _ratio(c["p99_at_max_ms"], b["p99_at_max_ms"])],
    ]
    if "p99_at_rate_ms" in c:
        rate = c["at_rate_msgs"]
        deliveries = rate * pair["room_size"]
        rows.append([f"p50 at {deliveries:,.0f} deliveries/s (ms)", _f(c["p50_at_rate_ms"]),
                     _f(b.get("p50_at_rate_ms")), _ratio(c["p50_at_rate_ms"], b.get("p50_at_rate_ms"))])
        rows.append([f"p99 at {deliveries:,.0f} deliveries/s (ms)", _f(c["p99_at_rate_ms"]),
                     _f(b.get("p99_at_rate_ms")), _ratio(c["p99_at_rate_ms"], b.get("p99_at_rate_ms"))])
    headers = ["", "Chorus", "baseline", "Chorus / baseline"]
    before = s.get("before")
    if before:
        headers += ["before (other checkout)", "Chorus / before"]
        keys = ["max_rate_msgs", "sustained_deliveries_s", "p99_at_max_ms", "p50_at_rate_ms", "p99_at_rate_ms"]
        for row, key in zip(rows, keys):
            row += [_f(before.get(key), 0 if key in ("max_rate_msgs", "sustained_deliveries_s") else 1),
                    _ratio(c.get(key), before.get(key))]
    return f"### {title}\n" + _table(headers, rows)


def steps_table(pair: dict) -> str:
    """Every step of a ladder."""
    rows = []
    for label, steps in pair["steps"].items():
        for r in steps:
            rows.append([label, _f(r["rate_msgs"], 0), _f(r["offered_deliveries_s"], 0), _f(r["deliveries_s"], 0),
                         _f(r["p50_ms"]), _f(r["p99_ms"]), _f(r["max_ms"]), r["lost"], r["duplicated"], r["errors"],
                         "+".join(f"{c:.0f}" for c in r["server_cpu_pct"]), _f(r["loadgen_cpu_pct"], 0),
                         "ok" if r["holds"] else "fail"])
    return _table(["target", "msgs/s", "offered deliv/s", "delivered/s", "p50 ms", "p99 ms", "max ms", "lost", "dup",
                   "err", "server CPU %", "loadgen CPU %", ""], rows)


def tables(results: dict) -> str:
    """Every scenario's table, as Markdown."""
    out = []
    sc = results.get("scenarios", {})
    fan = sc.get("fanout") or {}
    for mode, pair in fan.items():
        if isinstance(pair, dict) and "summary" in pair:
            out.append(fanout_table(pair, f"1. Fan-out, one room of {pair['room_size']}, {mode}, one process, "
                                          f"{pair['db']}"))
    modes = [(m, p) for m, p in fan.items() if isinstance(p, dict) and "summary" in p]
    if len(modes) > 1:
        rows = []
        for mode, pair in modes:
            c, b = pair["summary"]["chorus"], pair["summary"]["baseline"]
            rows.append([mode, _f(c["sustained_deliveries_s"], 0), _f(b["sustained_deliveries_s"], 0),
                         _ratio(c["sustained_deliveries_s"], b["sustained_deliveries_s"]),
                         _f(c.get("p99_at_rate_ms")), _f(b.get("p99_at_rate_ms"))])
        out.append("### 1b. Async modes (fan-out, one process)\n" + _table(
            ["mode", "Chorus deliv/s", "baseline deliv/s", "Chorus / baseline", "Chorus p99 @5k ms",
             "baseline p99 @5k ms"], rows))
    rooms = sc.get("rooms") or {}
    if "step" in rooms:
        r = rooms["step"]
        out.append(f"### 2. Many rooms: {rooms['users']:,} users in {rooms['rooms']} rooms of {rooms['room_size']}, "
                   f"one message per user every {rooms['period_s']:.0f} s, {rooms['seconds']} s\n" + _table(
                       ["msgs/s", "deliveries/s", "p50 ms", "p99 ms", "max ms", "lost", "dup", "stored/sent",
                        "server CPU %"],
                       [[_f(r["rate_msgs"], 0), _f(r["deliveries_s"], 0), _f(r["p50_ms"]), _f(r["p99_ms"]),
                         _f(r["max_ms"]), r["lost"], r["duplicated"], f"{r['messages_stored']}/{r['messages_sent']}",
                         _f(r["server_cpu_pct"][0], 0)]]))
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
        one_local = (fan.get(next(iter(fan), ""), {}) or {}).get("summary") if fan else None
        for label, key in (("1 process, no Redis (scenario 1)", None), ("1 process over Redis", "1p"),
                           ("2 processes over Redis", "2p")):
            s = one_local if key is None else cl.get(key, {}).get("summary")
            if not s or "chorus" not in s:
                continue
            c, b = s["chorus"], s["baseline"]
            rows.append([label, _f(c["sustained_deliveries_s"], 0), _f(b["sustained_deliveries_s"], 0),
                         _ratio(c["sustained_deliveries_s"], b["sustained_deliveries_s"]),
                         _f(c.get("p50_at_rate_ms")), _f(c.get("p99_at_rate_ms")), _f(b.get("p99_at_rate_ms"))])
        out.append("### 4. Cluster: fan-out over Redis\n" + _table(
            ["setup", "Chorus deliv/s", "baseline deliv/s", "Chorus / baseline", "Chorus p50 @5k ms",
             "Chorus p99 @5k ms", "baseline p99 @5k ms"], rows))
        one = cl.get("1p", {}).get("summary") or one_local or {}
        which = "one process over Redis" if "1p" in cl else "one process without Redis (scenario 1)"
        c1, b1 = one.get("chorus", {}), one.get("baseline", {})
        c2, b2 = cl["2p"]["summary"]["chorus"], cl["2p"]["summary"]["baseline"]
        out.append(f"Two processes over Redis / {which}, sustained deliveries/s: "
                   f"Chorus {_ratio(c2['sustained_deliveries_s'], c1.get('sustained_deliveries_s'))}, "
                   f"baseline {_ratio(b2['sustained_deliveries_s'], b1.get('sustained_deliveries_s'))}.")
    men = sc.get("mentions") or {}
    if "notify_p99_ms" in men:
        out.append("### 5. Mentions through the Celery worker\n" + _table(
            ["msgs/s", "messages", "notifications stored / received", "dup", "notify p50 ms", "notify p99 ms",
             "notify max ms", "message p99 ms"],
            [[_f(men["rate_msgs"], 0), men["messages"], f"{men['notifications_stored']} / {men['notifications_received']}",
              men["notifications_duplicated"], _f(men["notify_p50_ms"]), _f(men["notify_p99_ms"]),
              _f(men["notify_max_ms"]), _f(men["message_p99_ms"])]]))
    hist = sc.get("history") or {}
    if "sequential" in hist:
        s, c, q = hist["sequential"], hist["concurrent"], hist["sql"]
        out.append(f"### 6. History pages, {hist['messages']:,} messages in PostgreSQL\n" + _table(
            ["", "requests", "pages/s", "p50 ms", "p99 ms", "max ms"],
            [["one client", s["requests"], _f(s["per_s"], 0), _f(s["p50_ms"], 2), _f(s["p99_ms"], 2), _f(s["max_ms"], 1)],
             [f"{c['clients']} concurrent clients", c["requests"], _f(c["per_s"], 0), _f(c["p50_ms"], 2),
              _f(c["p99_ms"], 2), _f(c["max_ms"], 1)],
             ["page query inside PostgreSQL", 200, "-", _f(q["p50_ms"], 3), _f(q["p99_ms"], 3), _f(q["max_ms"], 2)]]))
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
    for mode, pair in (results.get("scenarios", {}).get("fanout") or {}).items():
        if isinstance(pair, dict) and "steps" in pair:
            ladders.append((f"1 process, {mode}", pair))
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
