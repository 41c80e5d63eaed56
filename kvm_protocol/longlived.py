"""Keep what a long-running process built at start-up out of the garbage collector's full passes.

The server, the simulator and a controller host each hold a large, stable set of objects
(modules, the topology, the fabric, hundreds of sessions and OSD models). CPython's full
(generation 2) collection walks all of them; in a 1,000-Rx lab such a pass took 20-120 ms,
collected nothing, and when it fell into a push it held up every switch of that process
(docs/PERFORMANCE.md). ``gc.freeze()`` moves the objects alive now into a generation the
collector never scans; they are still freed by reference counting when dropped.

``tune_collector()`` makes the young collections rarer (every 10,000 net allocations
instead of 700). A process that answers a steady stream of requests or frames keeps many
objects alive for a moment; at 700, every young collection found some of them still alive
and moved them on, and those promotions set off full passes (the lab's server: 4-6 a
second while the room came up, then one every ~5 s under the pushes, 27-95 ms each). At
10,000 the lab's server, simulator and hosts ran no full pass at all after start-up; a
young collection takes 1-6 ms instead of 0.1.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000   # net allocations between young collections (CPython: 700)


def freeze_long_lived(*, collect: bool = True) -> None:
    """Exempt every object alive now from full passes (call once start-up has built what the
    process keeps). `collect`: first collect what is garbage now, so that it is not kept for
    ever; that is itself a full pass, a pause as long as the ones this avoids. A process
    already serving (a controller host whose controllers just settled, maybe just as a push
    comes in) passes False and keeps the little cyclic garbage of its start-up instead."""
    if collect:
        gc.collect()
    gc.freeze()


def tune_collector(young: int = YOUNG_THRESHOLD) -> None:
    """Collect the young generation every `young` net allocations; the older generations'
    thresholds stay as they are. Call once, at the start of a long-running process."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
