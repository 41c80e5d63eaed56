"""kvm_protocol.longlived: what start-up built leaves the collector's full passes; garbage
that exists at that moment is collected first, not frozen for ever."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from kvm_protocol.longlived import YOUNG_THRESHOLD, freeze_long_lived, tune_collector


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


def test_a_tuned_collector_leaves_what_a_request_keeps_for_a_moment_alone() -> None:
    """5,000 objects alive at once (a request's worth): at CPython's default of 700 that is
    several young collections, each moving the survivors towards the full passes; tuned,
    none. The older generations' thresholds are left as they were."""
    before = gc.get_threshold()
    seen: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    def burst() -> list[int]:
        gc.collect()                       # start from an empty young generation
        seen.clear()
        gc.callbacks.append(count)
        try:
            held = [[i] for i in range(5_000)]
            del held
        finally:
            gc.callbacks.remove(count)
        return list(seen)

    try:
        gc.set_threshold(700, *before[1:])
        assert burst(), "the default collects during such a burst"
        tune_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert burst() == []
    finally:
        gc.set_threshold(*before)
