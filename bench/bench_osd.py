"""OSD benchmarks: chord → frame drawn, key-forwarding cost while closed, RSS of a renderer.

    .venv/bin/python bench/bench_osd.py [--runs 300] [--keys 20000] [--out result.json]

Prints one JSON object. Goals (docs/OSD.md): chord→frame p99 < 16 ms at 1920×1080,
forwarding p99 < 1 ms, RSS of a process with pygame and one renderer < 80 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kvm_protocol.keys import sequence_events, text_events  # noqa: E402
from kvm_protocol.results import ResultCode  # noqa: E402
from osd import events as ev  # noqa: E402
from osd.model import Mode  # noqa: E402
from osd.screen import OsdMachine  # noqa: E402

SIZE = (1920, 1080)
ROWS = tuple(ev.DeviceRow(f"{i:04d}", f"调度工作站 {i}", "grey") for i in range(1, 30))

_RSS_CHILD = """
import json, os, sys
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
sys.path.insert(0, sys.argv[1])
import pygame
from osd.render import Renderer
from bench.bench_osd import logged_in_machine
machine, _ = logged_in_machine()
surface = pygame.Surface((1920, 1080))
Renderer().draw(machine.model, surface, pygame.Surface((1920, 1080)))
status = open("/proc/self/status").read()
print(json.dumps({k: int(v.split()[0]) for k, v in
       (line.split(":", 1) for line in status.splitlines()) if k in ("VmRSS", "VmHWM")}))
"""


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "min_ms": round(min(samples_ms), 4),
        "p50_ms": round(statistics.median(samples_ms), 4),
        "p99_ms": round(pct(samples_ms, 99), 4),
        "max_ms": round(max(samples_ms), 4),
    }


def logged_in_machine() -> tuple[OsdMachine, float]:
    """A machine logged in, with a device list, menu open; returns it and the clock (ms)."""
    m = OsdMachine()
    now = 0.0
    m.start(now)
    for event in (ev.NetworkStatus(True), ev.ServerStatus(True), ev.DeviceInfo("5001", "RX-FW")):
        m.handle(event, now)
    for key in text_events("hxfj") + sequence_events("Tab") + text_events("123456"):
        now += 20
        m.handle(ev.KeyInput(key), now)
    for key in sequence_events("Enter"):
        now += 20
        m.handle(ev.KeyInput(key), now)
    m.handle(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"), now)
    m.handle(ev.DeviceList(Mode.CONNECT, ROWS), now)
    return m, now


def bench_chord_to_frame(runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """From the chord's completing key event to the menu frame drawn on a full-HD surface.

    Returns wall-clock and CPU-time summaries."""
    import pygame

    from osd.render import Renderer

    renderer = Renderer()
    surface = pygame.Surface(SIZE)
    video = pygame.Surface(SIZE)
    video.fill((40, 90, 140))
    m, now = logged_in_machine()
    chord = sequence_events("Shift+O Shift+O")
    esc = sequence_events("Esc")
    samples: list[float] = []
    cpu: list[float] = []
    for i in range(runs + 5):
        for key in esc:
            now += 30
            m.handle(ev.KeyInput(key), now)
        now += 1000
        for key in chord[:5]:
            now += 40
            m.handle(ev.KeyInput(key), now)
        now += 40
        c0, t0 = time.thread_time(), time.perf_counter()
        out = m.handle(ev.KeyInput(chord[5]), now)  # the 2nd O press fires the chord
        draws = [e for e in out if isinstance(e, ev.Draw)]
        assert draws, "the chord did not open the menu"
        renderer.draw(draws[-1].model, surface, video)
        elapsed = (time.perf_counter() - t0) * 1000
        cpu_ms = (time.thread_time() - c0) * 1000
        for key in chord[6:]:
            now += 40
            m.handle(ev.KeyInput(key), now)
        if i >= 5:  # the first frames warm the glyph caches
            samples.append(elapsed)
            cpu.append(cpu_ms)
    return summary(samples), summary(cpu)


def bench_forwarding(keys: int) -> dict[str, float]:
    """Cost of passing one key event through the closed OSD (chord detector + gates)."""
    m, now = logged_in_machine()
    for key in sequence_events("Esc"):
        now += 30
        m.handle(ev.KeyInput(key), now)
    stream = text_events("the quick brown fox jumps over the lazy dog 0123456789, HELLO! ")
    samples: list[float] = []
    forwarded = 0
    while len(samples) < keys:
        for key in stream:
            now += 15
            t0 = time.perf_counter()
            out = m.handle(ev.KeyInput(key), now)
            samples.append((time.perf_counter() - t0) * 1000)
            forwarded += sum(isinstance(e, ev.ForwardKey) for e in out)
    assert forwarded == len(samples), "every key was forwarded at once (no O in the stream)"
    return summary(samples)


def bench_rss() -> dict[str, float]:
    """RSS of a fresh process with pygame loaded and one renderer that drew one frame."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(ROOT)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    kb = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rss_mb": round(kb["VmRSS"] / 1024, 1), "peak_rss_mb": round(kb["VmHWM"] / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="chord→frame runs")
    parser.add_argument("--keys", type=int, default=20000, help="forwarded key events")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    (c, c_cpu), f, p = bench_chord_to_frame(args.runs), bench_forwarding(args.keys), bench_rss()
    result: dict[str, object] = {
        "chord_to_frame_1080p": c,
        "chord_to_frame_1080p_cpu_time": c_cpu,
        "forward_key_closed": f,
        "process": p,
        "goals": {"chord_to_frame_p99_ms": 16, "forward_p99_ms": 1, "rss_mb": 80},
        "python": sys.version.split()[0],
        # Timings are wall clock: on a busy machine (load > cores) p99 mostly measures waiting
        # for a CPU; min_ms is the cost when the process gets one.
        "cpus": os.cpu_count(),
        "loadavg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    result["met"] = {
        "chord_to_frame": c["p99_ms"] < 16,
        "forward": f["p99_ms"] < 1,
        "rss": p["rss_mb"] < 80,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
