"""Benchmarks of the controller service (kvm-rx); prints one JSON document.

    .venv/bin/python bench/bench_rx.py [--rounds 200] [--many 250] [--out FILE]

- ``switch_latency_ms``: Enter on F1 (the ``KeyInput`` arriving from the firmware link) →
  the ``SwitchHead`` written to the link, through the real kvm-server on loopback
  (POST /seat/connect, the watch released, reconcile). Simulator latency 0. Goal p99 < 20.
- ``render_ms``: the OSD menu model drawn on a 1920×1080 RGBA overlay (and PNG-encoded).
- ``one_process``: RSS and threads of one ``kvm-rx`` process after it rendered the overlay
  (pygame and the CJK font loaded). Goal RSS < 80 MB.
- ``many_process``: RSS and threads of one ``kvm-rx --many`` process hosting N controllers,
  all adopted, with their long polls open.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from kvm_protocol import messages as msg  # noqa: E402
from kvm_protocol.keys import KEY_NAMES  # noqa: E402
from kvm_protocol.session import Event, Received  # noqa: E402
from osd.runtime import Controller, ControllerConfig, _default_link_factory  # noqa: E402
from tests.osd.test_runtime_env import ROOM, RxEnv, wait_until  # noqa: E402

KVM_RX = str(Path(sys.executable).parent / "kvm-rx")
ENTER = KEY_NAMES["Enter"]


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 3)

    return {"n": len(s), "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(s[-1], 3),
            "mean": round(statistics.fmean(s), 3)}


def proc_status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key.lower() + "_mb"] = round(int(value.split()[0]) / 1024, 1)
        elif key == "Threads":
            out["threads"] = int(value)
    return out


# --- 1. Enter → SwitchHead ------------------------------------------------------------------

class _Marks:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.enter: float | None = None
        self.switch: float | None = None
        self.post_start: float | None = None
        self.post_end: float | None = None
        self.watch_ends: list[float] = []


def _instrument(client: Any, marks: _Marks) -> None:
    """Time the connect call and the watch answer that follows it."""
    connect, watch = client.connect, client.watch

    def timed_connect(text: str) -> Any:
        marks.post_start = time.perf_counter()
        out = connect(text)
        marks.post_end = time.perf_counter()
        return out

    def timed_watch(*args: Any, **kw: Any) -> Any:
        out = watch(*args, **kw)
        marks.watch_ends.append(time.perf_counter())
        return out

    client.connect, client.watch = timed_connect, timed_watch


def bench_latency(tmp: Path, rounds: int) -> dict[str, Any]:
    room = ROOM | {"settings": {"auto_close_ms": 0}}   # the menu stays open between rounds
    env = RxEnv(tmp, room, sim_overrides={"latency_ms": [0, 0]})
    marks = _Marks()

    def factory(url: str, on_event: Any, first_port: Any) -> Any:
        def spy(event: Event) -> None:
            if (isinstance(event, Received) and isinstance(event.message, msg.KeyInput)
                    and event.message.usage == ENTER and event.message.pressed):
                with marks.cond:
                    marks.enter, marks.switch = time.perf_counter(), None
            on_event(event)

        link = _default_link_factory(url, spy, first_port, loop=env.hub.links)
        send = link.send

        def timed_send(message: msg.Message) -> int:
            seq = send(message)
            if isinstance(message, msg.SwitchHead):
                with marks.cond:
                    marks.switch = time.perf_counter()
                    marks.cond.notify_all()
            return seq

        link.send = timed_send   # type: ignore[method-assign]
        return link

    try:
        cfg = ControllerConfig(serial_url=env.ports["5001"]["url"], server_url=env.url,
                               state_dir=tmp / "rx-5001", name="5001")
        ctrl = Controller(cfg, hub=env.hub, link_factory=factory)
        ctrl.start()
        env.controllers["5001"] = ctrl
        wait_until(lambda: ctrl.snapshot()["status"] == "网络正常", 30, "adopted")
        wait_until(lambda: env.gateway.reporting() >= {"SIM-TX-0001", "SIM-TX-0002"}, 30, "Tx")
        env.sim.type_text("5001", "hxfj")
        env.sim.press("5001", "Tab")
        env.sim.type_text("5001", "123456")
        env.sim.press("5001", "Enter")
        wait_until(lambda: ctrl.snapshot()["rows"], 30, "the menu")
        _instrument(ctrl.client, marks)
        samples: list[float] = []
        phases: dict[str, list[float]] = {
            "controller_enter_to_post": [],             # key in → POST /seat/connect sent
            "server_post_to_watch_answer": [],          # server: connect + watch released
            "controller_watch_answer_to_switchhead": [],  # watch body → SwitchHead written
            "server_connect_call": []}                  # the POST's own round trip
        for i in range(rounds):
            target = "2" if i % 2 else "1"
            env.sim.type_text("5001", target)
            wait_until(lambda: ctrl.snapshot()["input"] == target, 5, "typed")  # noqa: B023
            with marks.cond:
                marks.enter = marks.switch = marks.post_start = marks.post_end = None
                marks.watch_ends = []
            env.sim.press("5001", "Enter")
            with marks.cond:
                ok = marks.cond.wait_for(
                    lambda: marks.enter is not None and marks.switch is not None, 10)
                enter, switch = marks.enter, marks.switch
            assert ok and enter is not None and switch is not None
            samples.append((switch - enter) * 1000.0)
            wait_until(lambda: ctrl.snapshot()["feedback"] == "连接成功"
                       and ctrl.snapshot()["input"] == "" and ctrl.snapshot()["converged"],
                       10, "the round to finish")
            # The watch answer that caused the switch: the last one before it.
            watched = max((t for t in marks.watch_ends if t <= (switch or 0)), default=None)
            if marks.post_start and marks.post_end and watched:
                ms = {k: (v - enter) * 1000.0 for k, v in (
                    ("post", marks.post_start), ("answer", marks.post_end),
                    ("watch", watched), ("switch", switch))}
                phases["controller_enter_to_post"].append(ms["post"])
                phases["server_post_to_watch_answer"].append(ms["watch"] - ms["post"])
                phases["controller_watch_answer_to_switchhead"].append(ms["switch"] - ms["watch"])
                phases["server_connect_call"].append(ms["answer"] - ms["post"])
        return {"enter_to_switchhead": percentiles(samples),
                **{k: percentiles(v) for k, v in phases.items() if v}}
    finally:
        env.close()


# --- 2. render --------------------------------------------------------------------------------

def bench_render(rounds: int) -> dict[str, Any]:
    from kvm_protocol.keys import KeyEvent, Mod, text_events
    from kvm_protocol.results import ResultCode
    from osd import events as ev
    from osd.control import OverlayPainter
    from osd.model import Mode
    from osd.screen import OsdMachine

    machine = OsdMachine()
    machine.start(0.0)
    machine.handle(ev.NetworkStatus(True), 0.0)
    machine.handle(ev.ServerStatus(True), 0.0)
    machine.handle(ev.DeviceInfo("5001", "RX-FW 2.4.1"), 0.0)
    for key in text_events("hxfj"):
        machine.handle(ev.KeyInput(key), 1.0)
    machine.handle(ev.KeyInput(KeyEvent(KEY_NAMES["Tab"], Mod.NONE, True)), 1.0)
    machine.handle(ev.KeyInput(KeyEvent(ENTER, Mod.NONE, True)), 2.0)
    machine.handle(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"), 3.0)
    rows = tuple(ev.DeviceRow(f"{i:04d}", f"计算机 {i}", "grey") for i in range(1, 20))
    machine.handle(ev.DeviceList(Mode.CONNECT, rows), 4.0)
    model = machine.model
    assert model.menu is not None
    painter = OverlayPainter()
    painter.surface(model, (1920, 1080))   # fonts and panels warm
    draw, png = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        painter.surface(model, (1920, 1080))
        draw.append((time.perf_counter() - t0) * 1000.0)
    import pygame

    from osd.control import encode_png

    surface = painter.surface(model, (1920, 1080))
    for _ in range(max(5, rounds // 10)):
        t0 = time.perf_counter()
        encode_png(pygame.image.tobytes(surface, "RGBA"), (1920, 1080))
        png.append((time.perf_counter() - t0) * 1000.0)
    return {"menu_1920x1080_ms": percentiles(draw), "png_encode_1920x1080_ms": percentiles(png)}


# --- 3./4. processes ----------------------------------------------------------------------------

def _start_rx(argv: list[str], log: Path) -> tuple[subprocess.Popen[str], str]:
    with open(log, "w") as err:
        proc = subprocess.Popen([KVM_RX, *argv, "--log-level", "warning"], text=True,
                                stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("kvm-rx: control endpoint"):
        raise RuntimeError(f"kvm-rx did not start: {log.read_text()[-2000:]}")
    return proc, line.split()[-1]


def _stop_rx(proc: subprocess.Popen[str]) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    if proc.stdout is not None:
        proc.stdout.close()
    return round(time.monotonic() - t0, 2)


def bench_one_process(tmp: Path) -> dict[str, Any]:
    env = RxEnv(tmp)
    try:
        proc, url = _start_rx(["--serial", env.ports["5001"]["url"], "--server", env.url,
                               "--state-dir", str(tmp / "one"), "--control-port", "0"],
                              tmp / "rx.log")
        try:
            wait_until(lambda: requests.get(url + "/osd", params={"rx": "5001"}, timeout=5)
                       .json().get("status") == "网络正常", 30, "adopted")
            before = proc_status(proc.pid)
            requests.get(url + "/osd.png", params={"rx": "5001"}, timeout=30).raise_for_status()
            after = proc_status(proc.pid)
        finally:
            stop_s = _stop_rx(proc)
        return {"before_render": before, "after_render": after, "sigterm_stop_s": stop_s}
    finally:
        env.close()


def bench_many(tmp: Path, n: int) -> dict[str, Any]:
    rx = [{"id": str(5001 + i), "name": f"Rx {i + 1}", "serial": f"SIM-RX-{5001 + i}"}
          for i in range(n)]
    room = ROOM | {"rx": rx, "grants": [{"user": "hxfj", "scope": "view",
                                         "devices": ["0001-0002"]}]}
    env = RxEnv(tmp, room, device_timeout_s=30)
    try:
        lines = [f"server: {env.url}", "controllers:"]
        for d in rx:
            lines.append(f"  - {{serial: '{env.ports[d['id']]['url']}', "
                         f"state_dir: '{tmp}/rx/{d['id']}', name: 'r{d['id']}'}}")
        (tmp / "many.yaml").write_text("\n".join(lines) + "\n")
        t0 = time.monotonic()
        proc, url = _start_rx(["--many", str(tmp / "many.yaml"), "--control-port", "0"],
                              tmp / "rx.log")
        try:
            def adopted() -> bool:
                rows = requests.get(url + "/controllers", timeout=10).json()["controllers"]
                return sum(1 for r in rows if r["adopted"]) == n

            wait_until(adopted, 300, f"{n} controllers adopted", interval=0.5)
            ready_s = round(time.monotonic() - t0, 2)
            time.sleep(5)   # heartbeats and long polls settle
            status = proc_status(proc.pid)
            rows = requests.get(url + "/controllers", timeout=10).json()["controllers"]
            server_ok = sum(1 for r in rows if r["server_ok"])
        finally:
            stop_s = _stop_rx(proc)
        return {"controllers": n, "all_adopted_s": ready_s, **status,
                "threads_per_controller": round(status["threads"] / n, 2),
                "rss_per_controller_kb": round(status["vmrss_mb"] * 1024 / n, 1),
                "server_ok": server_ok, "sigterm_stop_s": stop_s}
    finally:
        env.close()


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--many", type=int, default=250)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    result: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-rx-") as d:
        tmp = Path(d)
        benches: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("switch_latency_ms", lambda: bench_latency(tmp / "lat", args.rounds)),
            ("render_ms", lambda: bench_render(args.rounds)),
            ("one_process", lambda: bench_one_process(tmp / "one")),
            ("many_process", lambda: bench_many(tmp / "many", args.many)),
        ]
        for name, fn in benches:
            t0 = time.monotonic()
            result[name] = fn()
            print(f"bench_rx: {name} done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
