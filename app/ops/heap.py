"""Python's cyclic garbage collector in a long-running process: startup objects frozen, pauses measured.

A full collection walks every tracked object. Right after start-up a server already holds
~170,000 of them (modules, functions, SQLAlchemy's mappers, templates), which never become
garbage, and walking them stopped the whole process for 60-130 ms each time the collector
decided on a full collection (every 10-15 s under chat load). `gc.freeze()` moves them into
the permanent generation, which collections do not visit.

The same holds for what thousands of connected sockets keep alive (their sessions, queues,
green threads): at 5,000 sockets a full collection walked them for 0.5-0.75 s every 4-15 s.
`refreeze()` collects everything once (frozen objects included, so cycles left by sockets
that have gone are freed) and freezes what is alive then. A server runs it every
GC_REFREEZE_SECONDS, and sooner when its heap has grown by a quarter since the last freeze:
one full pause then, instead of one every few seconds.
"""
from __future__ import annotations

import gc
import sys
import time

from app.ops import metrics

_started: list[float] = [0.0]


def freeze_startup_objects() -> int:
    """Collect once, then exclude every object alive now from later collections; returns how many."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    metrics.frozen_objects.set(frozen)
    return frozen


def refreeze() -> int:
    """Collect every object, frozen ones included, then freeze the survivors; returns how many."""
    gc.unfreeze()
    return freeze_startup_objects()


# How often the server looks at its heap, and by how much it must have grown to refreeze early.
_CHECK_SECONDS = 30.0
_GROWTH = 1.25


class Refreezer:
    """When to refreeze: every GC_REFREEZE_SECONDS, or sooner once the heap grew by a quarter
    since the last freeze (thousands of sockets connecting after a restart)."""

    def __init__(self, period: float, now: float) -> None:
        self.period = period
        self._mark(now)

    def _mark(self, now: float) -> None:
        self.last, self.blocks = now, sys.getallocatedblocks()

    def due(self, now: float) -> bool:
        """Whether to refreeze now (a cheap check: pymalloc's count of allocated blocks)."""
        return now - self.last >= self.period or sys.getallocatedblocks() > self.blocks * _GROWTH

    def run(self, now: float) -> int:
        """Refreeze and start the next period; returns how many objects are frozen."""
        frozen = refreeze()
        self._mark(now)
        return frozen


def start_refreezing(app) -> None:
    """In a server: refreeze when due (`Refreezer`), checked every 30 s; GC_REFREEZE_SECONDS=0 never."""
    from app.extensions import socketio

    period = app.config["GC_REFREEZE_SECONDS"]
    if period <= 0:
        return
    refreezer = Refreezer(period, time.monotonic())

    def refreeze_when_due():
        while True:
            socketio.sleep(_CHECK_SECONDS)
            if refreezer.due(time.monotonic()):
                refreezer.run(time.monotonic())

    socketio.start_background_task(refreeze_when_due)


def _on_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        metrics.gc_pauses.labels(str(info["generation"])).observe(time.perf_counter() - _started[0])


def watch_collections() -> None:
    """Record how long each collection stops the process (`chorus_gc_pause_seconds` in /metrics)."""
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
