"""Link round-trip latency: send a needs_ack message, wait for its Ack; prints JSON.

Over a pseudo-terminal pair (the Link opens the slave path through pyserial)
and over socket:// on loopback, each against a device Session on the other end
(tests/kvm_protocol/peer.py). p50/p99 in milliseconds over --count round trips.
Every wait is bounded (2 s per round trip).

Usage: python bench/bench_link.py [--count N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kvm_protocol import messages as m
from kvm_protocol.session import Acked, Event, LinkUp
from kvm_protocol.transport import Link
from tests.kvm_protocol.peer import FdDevice, TcpDeviceServer

WAIT = 2.0


class Waiter:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.acked: set[int] = set()
        self.up = False

    def __call__(self, event: Event) -> None:
        with self.cond:
            if isinstance(event, Acked):
                self.acked.add(event.seq)
            elif isinstance(event, LinkUp):
                self.up = True
            self.cond.notify_all()

    def wait(self, pred: object) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, WAIT)  # type: ignore[arg-type]


def measure(url: str, count: int) -> dict[str, float | int]:
    waiter = Waiter()
    samples: list[float] = []
    failures = 0
    with Link(url, waiter) as link:
        if not waiter.wait(lambda: waiter.up):
            raise SystemExit(f"{url}: link did not come up")
        for i in range(count):
            msg = m.OsdOverlay(i % 2 == 0)
            t0 = time.perf_counter()
            seq = link.send(msg)
            if waiter.wait(lambda s=seq: s in waiter.acked):
                samples.append((time.perf_counter() - t0) * 1000)
                with waiter.cond:
                    waiter.acked.discard(seq)
            else:
                failures += 1
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "max_ms": round(samples[-1], 3),
        "round_trips": len(samples),
        "failures": failures,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()

    master, slave = os.openpty()
    tty.setraw(slave)
    device = FdDevice(master, close=lambda: None)
    try:
        pty = measure(os.ttyname(slave), args.count)
    finally:
        device.stop()
        os.close(slave)
        os.close(master)

    server = TcpDeviceServer()
    try:
        sock = measure(server.url, args.count)
    finally:
        server.close()

    print(
        json.dumps(
            {
                "pty": pty,
                "socket": sock,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
