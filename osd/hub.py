"""Threads shared by the controllers of one process: timers, firmware links, blocking calls.

A ``Hub`` owns one timer thread (a heap of deadlines), one link loop (the I/O of every
controller's firmware link, ``kvm_protocol.transport.LinkLoop``) and a small thread pool. Each
controller gets ``Strand``s on that pool: tasks of one strand run one at a time, in
order, so a controller's server calls never overtake each other, while hundreds of
controllers share a handful of threads. Nothing here is module-level state: a process
may run several hubs (tests do). ``Backoff`` is the retry timing the controllers and
their shared long polls use.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kvm_protocol.transport import LinkLoop

log = logging.getLogger(__name__)
T = TypeVar("T")


class Backoff:
    """Capped exponential backoff; each delay times a random factor in ``jitter``
    (±20 % by default)."""

    def __init__(self, bounds: tuple[float, float], rng: random.Random,
                 jitter: tuple[float, float] = (0.8, 1.2)) -> None:
        self.first, self.cap = bounds
        self._rng = rng
        self._jitter = jitter
        self._n = 0

    def next(self) -> float:
        base: float = min(self.cap, self.first * (2 ** min(self._n, 20)))
        self._n += 1
        return base * self._rng.uniform(*self._jitter)

    def reset(self) -> None:
        self._n = 0


class TimerHandle:
    """A scheduled call; ``cancel()`` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Hub:
    """One timer thread and one worker pool for many controllers."""

    def __init__(self, workers: int = 8, *, clock: Callable[[], float] | None = None,
                 name: str = "kvm-rx") -> None:
        self.clock = clock or time.monotonic
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._resources: dict[Callable[[], object], object] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-io")
        self._timer = threading.Thread(target=self._run_timers, name=f"{name}-timer",
                                       daemon=True)
        self._timer.start()
        self._links: LinkLoop | None = None
        self._name = name

    @property
    def links(self) -> LinkLoop:
        """The loop that carries the firmware links of this hub's controllers."""
        with self._cond:
            if self._links is None:
                self._links = LinkLoop(clock=self.clock, name=f"{self._name}-links")
            return self._links

    # --- timers ------------------------------------------------------------------------
    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the timer thread at ``when`` (hub clock); keep it short."""
        handle = TimerHandle(when, callback)
        with self._cond:
            if not self._closed:
                heapq.heappush(self._heap, (when, next(self._seq), handle))
                if self._heap[0][2] is handle:
                    self._cond.notify()
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self.clock() + max(0.0, delay), callback)

    def _run_timers(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - self.clock()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, handle = heapq.heappop(self._heap)
            if not handle.cancelled:
                try:
                    handle.callback()
                except Exception:   # a bug in one controller must not stop the others' timers
                    log.exception("timer callback failed")

    def resource(self, factory: Callable[[], T]) -> T:
        """One shared instance per factory per hub (e.g. the process's overlay painter)."""
        with self._cond:
            if factory not in self._resources:
                self._resources[factory] = factory()
            return self._resources[factory]   # type: ignore[return-value]

    # --- work --------------------------------------------------------------------------
    def strand(self) -> Strand:
        return Strand(self)

    def _submit(self, fn: Callable[[], None]) -> bool:
        try:
            self._pool.submit(fn)
        except RuntimeError:   # pool shut down: the process is stopping
            return False
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the timer; queued work is dropped, running work finishes in the background."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._links is not None:
            self._links.close()
        if threading.current_thread() is not self._timer:
            self._timer.join(2.0)


class Strand:
    """Serial execution on a hub's pool: tasks run one at a time, in submission order."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._lock = threading.Lock()
        self._tasks: deque[Callable[[], None]] = deque()
        self._running = False
        self._closed = False

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            self._tasks.append(task)
            if self._running:
                return
            self._running = True
        if not self._hub._submit(self._drain):
            with self._lock:
                self._running = False
                self._tasks.clear()

    def close(self) -> None:
        """Drop queued tasks; later submissions are ignored."""
        with self._lock:
            self._closed = True
            self._tasks.clear()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._tasks:
                    self._running = False
                    return
                task = self._tasks.popleft()
            try:
                task()
            except Exception:
                log.exception("controller task failed")
