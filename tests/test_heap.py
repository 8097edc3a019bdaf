"""The garbage collector's frozen generation: what `refreeze` frees and freezes, and when a
server does it (app/ops/heap.py)."""
from __future__ import annotations

import gc
import weakref

import pytest

from app.ops import heap


class Node:
    """An object that can sit in a reference cycle and be watched by a weak reference."""

    def __init__(self):
        self.other = None


@pytest.fixture
def unfrozen_after():
    yield
    gc.unfreeze()  # leave the test process's collector as it was


def test_refreeze_frees_cycles_that_died_while_frozen_and_freezes_the_living(unfrozen_after):
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    alive = Node()
    heap.freeze_startup_objects()
    assert gc.is_tracked(alive)
    del a, b
    gc.collect()
    assert gone() is not None  # frozen: no collection visits it
    frozen = heap.refreeze()
    assert gone() is None  # refreeze collected the frozen generation too
    assert frozen == gc.get_freeze_count() > 0
    assert alive is not None


def test_a_refreeze_is_due_after_its_period_or_when_the_heap_grew_by_a_quarter(unfrozen_after):
    refreezer = heap.Refreezer(300, now=1000)
    assert not refreezer.due(1010)
    assert refreezer.due(1300)
    grown = [[i] for i in range(max(200_000, refreezer.blocks // 3))]  # a quarter more blocks, at least
    assert refreezer.due(1010)
    refreezer.run(1010)
    assert not refreezer.due(1020)  # the growth is the new baseline
    del grown
