"""Codec throughput: encode + decode of a realistic message mix; prints JSON.

Usage: python bench/bench_codec.py [--frames N] [--runs R]
The decoder is fed 256-byte chunks, as a port read loop would. Rates are from
the median wall time of the runs (and, for reference, the median CPU time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kvm_protocol import messages as m
from kvm_protocol.codec import FrameDecoder, encode_frame

# Roughly what a busy seat sends: mostly key events, then acks and status.
MIX: list[m.Message] = [
    *[m.KeyInput(0x04 + i, 0x02 * (i % 2), i % 3 != 0) for i in range(8)],
    *[m.KeyForward(0x04 + i, 0, i % 2 == 0) for i in range(6)],
    m.Ack(17),
    m.Ack(18),
    m.Heartbeat(123_456),
    m.HeadStatus(1, "0001", 1, True),
    m.HeadStatus(2, "", 0, False),
    m.SwitchHead(1, "0042", 2),
    m.SwitchResult(9, 1, m.SwitchStatus.OK),
    m.NetworkStatus(True),
    m.OsdOverlay(True),
    m.Hello(m.PROTOCOL_VERSION, m.DeviceKind.RX, "SIM-RX-5001", 2, "RX-FW 2.4.1"),
]


def run_once(items: list[tuple[m.Message, int]]) -> tuple[float, float, int, float]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    data = b"".join([encode_frame(msg, seq) for msg, seq in items])
    t1 = time.perf_counter()
    dec = FrameDecoder()
    got = 0
    for i in range(0, len(data), 256):
        got += len(dec.feed(data[i : i + 256]))
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    if got != len(items):
        raise SystemExit(f"decoded {got} of {len(items)} frames")
    return t1 - t0, t2 - t1, len(data), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    items = [(MIX[i % len(MIX)], i % 256) for i in range(args.frames)]
    runs = [run_once(items) for _ in range(max(1, args.runs))]
    enc = statistics.median(r[0] for r in runs)
    dec = statistics.median(r[1] for r in runs)
    both = statistics.median(r[0] + r[1] for r in runs)
    cpu = statistics.median(r[3] for r in runs)
    n = args.frames
    print(
        json.dumps(
            {
                "codec_frames_per_s": round(n / both),
                # CPU time instead of wall time: steadier when the machine is shared
                "codec_frames_per_cpu_s": round(n / cpu),
                "encode_frames_per_s": round(n / enc),
                "decode_frames_per_s": round(n / dec),
                "avg_frame_bytes": round(runs[0][2] / n, 1),
                "frames_per_run": n,
                "runs": len(runs),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
