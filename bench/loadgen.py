"""The Python side of the load generator: drives bench/loadgen.mjs (Node, socket.io-client).

The sockets live in a Node process because a Python Socket.IO client costs more CPU per
received message than the server does to send it: on two cores a Python generator would
measure itself. Node spends a few microseconds per delivery, so the server under test
stays the bottleneck. See loadgen.mjs for the command protocol and the timing rules.

Every recorded socket also keeps the page's rev cursor per room and catches up as the page
does (a gap not filled within the grace window); a step reports those counts under "revs".

Latency summaries, Node's and latency_summary()'s alike, give p50, p99, p99.9 and max
(nearest rank); a step also returns its per-second series and the 100 ms buckets that held
a slow delivery, from which run.py counts stalls.
"""
from __future__ import annotations

import asyncio
import json
import math
import shutil
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent


def node_ready() -> str | None:
    """None when node and socket.io-client are installed, else what is missing."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs)"
    if not (HERE / "node_modules" / "socket.io-client").is_dir():
        return "bench/node_modules is missing (cd bench && npm ci)"
    return None


class LoadGen:
    """One Node load-generator process and the member sockets it holds."""

    def __init__(self, name: str, logdir: Path):
        self.name = name
        self.log_path = logdir / f"loadgen-{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.members: list[dict] = []
        self._ps: psutil.Process | None = None

    async def start(self) -> "LoadGen":
        """Start the Node process."""
        missing = node_ready()
        if missing:
            raise RuntimeError(missing)
        self._log = open(self.log_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            "node", "--max-old-space-size=4096", str(HERE / "loadgen.mjs"), cwd=HERE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log, limit=2**28,
        )
        self._ps = psutil.Process(self.proc.pid)
        return self

    async def call(self, cmd: str, **fields) -> dict:
        """Send one command and wait for its reply."""
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator {self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"load generator {self.name}: {reply['error']}")
        return reply

    async def connect(self, members: list[dict], *, concurrency: int = 50, timeout_ms: int = 60000) -> dict:
        """Open one socket per member dict {id, url, token, rooms, record?}; returns the connect summary."""
        reply = await self.call("connect", members=members, concurrency=concurrency, timeout=timeout_ms)
        self.members += members
        if reply["failed"]:
            raise RuntimeError(f"{reply['failed']} sockets failed to connect: {reply['errors']}")
        return reply

    async def step(self, *, prefix: str, rate: float, seconds: float, plan: list[tuple[int, int]],
                   mentions: list[str] | None = None, mix: dict | None = None, threads: dict | None = None,
                   drain_timeout: float = 6.0, slow_ms: float = 50.0, bucket_seconds: float = 0.1,
                   split_rooms: list[int] | None = None) -> dict:
        """Offer rate ops/s for seconds following plan [(member index, room id), ...].

        Without mix every op is a send; mix {send, edit, react} (weights) makes it a mixed step.
        threads {share, also} makes that share of the sends thread replies (and that share of
        those also_in_room), and reports replies and root summaries apart ("threads").
        split_rooms: deliveries into these rooms get a latency summary apart ("split": in, out).
        """
        return await self.call("step", prefix=prefix, rate=rate, seconds=seconds, plan=plan, mentions=mentions,
                               mix=mix, threads=threads, drainTimeout=drain_timeout, slowMs=slow_ms,
                               bucketSeconds=bucket_seconds, splitRooms=split_rooms)

    async def background_start(self, *, typing: dict | None = None, activity: dict | None = None,
                               churn: dict | None = None, seed: int = 1) -> dict:
        """Start typing bursts, periodic `activity` and presence churn beside whatever runs next (see loadgen.mjs)."""
        return await self.call("background", action="start", typing=typing, activity=activity, churn=churn, seed=seed)

    async def background_stop(self, *, settle: float = 3.0) -> dict:
        """Stop the background traffic, keep counting for settle seconds, and return its counts."""
        return await self.call("background", action="stop", settle=settle)

    async def activate(self, member_indices: list[int]) -> dict:
        """One `activity` from each of these members' sockets (idle -> active), unmeasured."""
        return await self.call("activate", members=member_indices)

    async def churn_prime(self, member_indices: list[int], count: int) -> dict:
        """Close count of these members' sockets, so the churn has people to bring back from its start."""
        return await self.call("churnPrime", members=member_indices, count=count)

    async def loop_delay(self) -> dict:
        """The generator's event-loop delay since the last reading (p50, p99, p999, max in seconds)."""
        return await self.call("loop")

    async def alive(self) -> int:
        """How many of the sockets are connected."""
        return (await self.call("alive"))["alive"]

    async def close_sockets(self) -> None:
        """Disconnect every socket, keep the process."""
        await self.call("close")
        self.members = []

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the Node process so far."""
        t = self._ps.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        """The Node process's resident memory."""
        return self._ps.memory_info().rss

    async def stop(self) -> None:
        """Close every socket and end the process."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await asyncio.wait_for(self.call("exit"), 30)
        except Exception:
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._log.close()


def expand(ranges: list[list[int]]) -> set[int]:
    """The indices in [[start, end), ...]."""
    out: set[int] = set()
    for start, end in ranges:
        out.update(range(start, end))
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def latency_summary(latencies: list[float]) -> dict:
    """p50, p99, p99.9 and max in milliseconds (latencies in seconds)."""
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "p999_ms": percentile(latencies, 99.9) * 1000,
        "max_ms": (max(latencies) * 1000) if latencies else float("nan"),
    }


def ms(summary: dict, key: str) -> float:
    """A value (p50, p99, p999, max) of a Node percentile summary, in milliseconds (NaN when absent)."""
    value = summary.get(key)
    return float("nan") if value is None else value * 1000
