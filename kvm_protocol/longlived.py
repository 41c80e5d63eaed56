"""Keep what a long-running process built at start-up out of the garbage collector's full passes.

The server, the simulator and a controller host each hold a large, stable set of objects
(modules, the topology, the fabric, hundreds of sessions and OSD models). CPython's full
(generation 2) collection walks all of them; in a 1,000-Rx lab such a pass took 20-120 ms,
collected nothing, and when it fell into a push it held up every switch of that process
(docs/PERFORMANCE.md). ``gc.freeze()`` moves the objects alive now into a generation the
collector never scans; they are still freed by reference counting when dropped.
"""

from __future__ import annotations

import gc


def freeze_long_lived(*, collect: bool = True) -> None:
    """Exempt every object alive now from full passes (call once start-up has built what the
    process keeps). `collect`: first collect what is garbage now, so that it is not kept for
    ever; that is itself a full pass, a pause as long as the ones this avoids. A process
    already serving (a controller host whose controllers just settled, maybe just as a push
    comes in) passes False and keeps the little cyclic garbage of its start-up instead."""
    if collect:
        gc.collect()
    gc.freeze()
