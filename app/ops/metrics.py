"""Prometheus metrics, one set per process (Celery workers aggregate their children)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

connected_sockets = Gauge(
    "chorus_connected_sockets", "Socket.IO connections open on this process", multiprocess_mode="livesum"
)
messages_sent = Counter("chorus_messages_sent_total", "Messages stored and broadcast")
events_emitted = Counter("chorus_events_emitted_total", "Events emitted to sockets", ["event"])
tasks = Counter("chorus_tasks_total", "Background tasks by state: queued, done, retried, failed", ["task", "state"])
task_latency = Histogram(
    "chorus_task_latency_seconds",
    "From a task's enqueueing after commit to its completion",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
gc_pauses = Histogram(
    "chorus_gc_pause_seconds",
    "How long each run of Python's cyclic garbage collector stopped the process, by generation",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
frozen_objects = Gauge(
    "chorus_gc_frozen_objects", "Objects alive at start-up, excluded from garbage collections",
    multiprocess_mode="max",
)
send_batch_size = Histogram(
    "chorus_send_batch_size", "Messages of one room stored by one statement and commit (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
