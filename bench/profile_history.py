"""CPU per history page (`GET /api/v1/rooms/<id>/messages?before=<id>`), in-process, on PostgreSQL.

    .venv/bin/python bench/profile_history.py                       # this checkout
    .venv/bin/python bench/profile_history.py git:HEAD~1 .          # before and after, same run
    .venv/bin/python bench/profile_history.py . --profile --limits memory   # cProfile top 30

Creates a throw-away PostgreSQL database on CHORUS_BENCH_PG's server (bench.common.Backend,
migrated with the first checkout's migrations), seeds 10 users in one room (half of them
with a display name) and loads --messages messages, every hundredth with a mention
(bench.seed.load_history, as bench/run.py's "history" scenario does). Then, for each checkout
and each rate-limit setting, a child process builds that checkout's app with create_app()
and times --requests pages of 50 through app.test_client() with a bearer token, printing
the mean CPU (user + system) per page. Checkouts are measured in turn, --rounds times, so
the before and the after share the machine's moment; the median of the rounds is shown.

A CHECKOUT is a directory holding `app/`, or `git:<rev>` (a `git archive` of that revision
into a temporary directory). --limits: `off` (RATELIMIT_ENABLED=0, as bench/run.py runs),
`memory` (Flask-Limiter on, in-memory storage: the embedded mode), `redis` (on, Redis
storage: the cluster mode and production). The API limit is raised so that no page is refused.

Each child also checks its answers: the statements one page costs, and a digest of the
response bodies of a fixed set of pages (raw bytes, and the parsed JSON), which must be
equal between checkouts that claim to return the same JSON.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- the child: one checkout, one rate-limit setting -------------------------------------------

def child(args: argparse.Namespace) -> None:
    """Build the checkout's app and time pages; print one JSON line."""
    checkout = Path(args.checkout).resolve()
    sys.path.insert(0, str(checkout))
    os.environ.update({
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": "profile-history-" + "x" * 32,
        "RATELIMIT_ENABLED": "0" if args.limits == "off" else "1",
        "REDIS_KEY_PREFIX": args.key_prefix,
        "LOG_LEVEL": "WARNING",
        "SOCKETIO_ASYNC_MODE": "threading",  # no eventlet import (and its warning): HTTP only here
    })
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("CHORUS_ENV", None)

    from sqlalchemy import event

    from app import create_app
    from app.extensions import db

    config = {"RATELIMIT_ENABLED": args.limits != "off", "API_RATE_LIMIT": "100000000 per minute"}
    if args.limits == "redis":
        config["RATELIMIT_STORAGE_URI"] = args.redis_url
    app = create_app(config)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {args.token}"}
    url = f"/api/v1/rooms/{args.room}/messages"

    def page(before: int):
        response = client.get(f"{url}?before={before}", headers=headers)
        assert response.status_code == 200, (response.status_code, response.data[:300])
        return response

    # What the answers are: a fixed set of pages, hashed; the statements of one page.
    check_ids = random.Random(5).sample(range(52, args.top + 1), 20) + [51, 52, 150, args.top + 1]
    raw, parsed = hashlib.sha256(), hashlib.sha256()
    for before in check_ids:
        body = page(before).get_data()
        raw.update(body)
        parsed.update(json.dumps(json.loads(body), sort_keys=True).encode())
    assert len(json.loads(page(args.top + 1).get_data())["messages"]) == 50
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(_conn, _cursor, statement, *_rest):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    page(args.top // 2)
    event.remove(engine, "before_cursor_execute", count)

    rng = random.Random(args.seed)
    for _ in range(50):  # warm caches (compiled statements, pools, imports)
        page(rng.randrange(52, args.top + 1))
    befores = [rng.randrange(52, args.top + 1) for _ in range(args.requests)]
    # As wsgi.py does at start-up: what is alive now is never walked by a collection again.
    gc.collect()
    gc.freeze()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for before in befores:
        page(before)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(args.sort).print_stats(args.top_n)
        sys.stderr.write(f"\n== cProfile of {checkout} (limits {args.limits}), sorted by {args.sort} ==\n")
        sys.stderr.write(out.getvalue())
    print(json.dumps({
        "cpu_ms": cpu / args.requests * 1000, "wall_ms": wall / args.requests * 1000,
        "statements": len(statements), "raw_digest": raw.hexdigest()[:16], "json_digest": parsed.hexdigest()[:16],
    }))


# -- the parent: database, checkouts, rounds ---------------------------------------------------

def resolve_checkout(spec: str, tmp: Path) -> Path:
    """A directory holding app/, made from `git:<rev>` with git archive when asked."""
    if not spec.startswith("git:"):
        path = Path(spec).resolve()
        if not (path / "app" / "__init__.py").exists():
            raise SystemExit(f"{spec}: no app/ there")
        return path
    rev = spec[4:]
    target = tmp / f"checkout-{len(list(tmp.iterdir()))}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkouts", nargs="*", default=["."], help="directories or git:<rev> (default: this checkout)")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limits", default="off,memory", help="comma-separated: off, memory, redis")
    p.add_argument("--profile", action="store_true", help="print a cProfile of the timed pages (one round)")
    p.add_argument("--sort", default="tottime", help="pstats sort key for --profile (tottime, cumulative)")
    p.add_argument("--top-n", type=int, default=30)
    # The child's arguments.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("checkout", "database-url", "redis-url", "key-prefix", "token"):
        p.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("room", "top", "seed"):
        p.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.limits = args.limits.strip()
        child(args)
        return

    sys.path.insert(0, str(ROOT))
    from sqlalchemy import create_engine, text

    from bench.common import Backend
    from bench.seed import load_history, seed

    limits = [x.strip() for x in args.limits.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="chorus-profile-") as tmp_name:
        tmp = Path(tmp_name)
        checkouts = [resolve_checkout(spec, tmp) for spec in args.checkouts]
        backend = Backend("postgres", tmp, redis="redis" in limits)
        backend.create(root=checkouts[0])
        try:
            team = seed(backend.database_url, 10, [list(range(10))])
            room_id = team.rooms[0][0]
            t0 = time.time()
            top = load_history(backend.database_url, room_id, [u for u, _, _ in team.users], args.messages)
            engine = create_engine(backend.database_url.replace("postgresql://", "postgresql+psycopg2://"))
            with engine.begin() as conn:  # some authors show a display name
                conn.execute(text("UPDATE users SET display_name = 'Name ' || username WHERE id % 2 = 0"))
            engine.dispose()
            print(f"{args.messages} messages loaded in {time.time() - t0:.1f} s; "
                  f"{args.requests} pages of 50 per measurement, {args.rounds} rounds", flush=True)
            results: dict[tuple[str, str], list[dict]] = {}
            for round_no in range(args.rounds):
                for limit in limits:
                    for spec, checkout in zip(args.checkouts, checkouts):
                        cmd = [
                            sys.executable, str(Path(__file__).resolve()), "--child",
                            "--checkout", str(checkout), "--database-url", backend.database_url,
                            "--redis-url", backend.redis_url or "", "--key-prefix", backend.key_prefix,
                            "--token", team.users[0][2], "--room", str(room_id), "--top", str(top),
                            "--seed", str(round_no), "--requests", str(args.requests), "--limits", limit,
                            "--sort", args.sort, "--top-n", str(args.top_n),
                        ]
                        if args.profile and round_no == 0:
                            cmd.append("--profile")
                        done = subprocess.run(cmd, cwd=checkout, stdout=subprocess.PIPE, text=True)
                        if done.returncode:
                            raise SystemExit(f"{spec} (limits {limit}) failed")
                        result = json.loads(done.stdout.strip().splitlines()[-1])
                        results.setdefault((spec, limit), []).append(result)
                        print(f"  round {round_no + 1} {spec:>14} limits {limit:<6} "
                              f"cpu {result['cpu_ms']:.3f} ms/page, wall {result['wall_ms']:.3f} ms/page, "
                              f"{result['statements']} statements", flush=True)
            print("\nmedian of the rounds:")
            print(f"{'checkout':>30} {'limits':<7} {'cpu ms/page':>11} {'wall ms/page':>12} {'statements':>10}"
                  f"  {'body digest':<16}  {'json digest':<16}")
            for (spec, limit), runs in results.items():
                print(f"{spec:>30} {limit:<7} {statistics.median(r['cpu_ms'] for r in runs):11.3f} "
                      f"{statistics.median(r['wall_ms'] for r in runs):12.3f} {runs[0]['statements']:>10}"
                      f"  {runs[0]['raw_digest']:<16}  {runs[0]['json_digest']:<16}")
        finally:
            backend.drop()


if __name__ == "__main__":
    main()
