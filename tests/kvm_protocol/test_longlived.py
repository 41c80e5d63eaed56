"""kvm_protocol.longlived: what start-up built leaves the collector's full passes; garbage
that exists at that moment is collected first, not frozen for ever."""

from __future__ import annotations

import gc
import weakref

from kvm_protocol.longlived import freeze_long_lived


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_freeze_collects_the_garbage_first_and_keeps_the_living_out_of_full_passes() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a               # a cycle: only the collector can free it
    dead = weakref.ref(a)
    del a, b
    kept = Node()
    before = gc.get_freeze_count()
    try:
        freeze_long_lived()
        assert dead() is None             # collected, not frozen with the rest
        assert gc.get_freeze_count() > before
        assert kept.other is None
    finally:
        gc.unfreeze()


def test_freeze_without_collecting_keeps_the_garbage_of_the_moment() -> None:
    """The controller host's way: no full pass (no pause); what was garbage then stays."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    dead = weakref.ref(a)
    del a, b
    try:
        freeze_long_lived(collect=False)
        gc.collect()
        assert dead() is not None         # frozen: no full pass looks at it any more
    finally:
        gc.unfreeze()
        gc.collect()
    assert dead() is None
