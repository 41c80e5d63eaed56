"""The simulator as a Python API: the fabric and its link endpoints on one event-loop thread.

    with Simulator({"tx": [{"id": "0001"}], "rx": [{"id": "5001"}]}) as sim:
        sim.ports()["5001"]["url"]              # socket://127.0.0.1:PORT
        sim.press("5001", "Shift+O Shift+O")
        sim.state()

Every method may be called from any thread: the work runs in the loop thread and the
caller waits for it (bounded). Bad input raises ``SimError`` with a clear message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import resource
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from firmware_sim.config import SimConfig, build_fabric, load_config, parse_config
from firmware_sim.fabric import FAULT_KINDS, FabricError
from firmware_sim.links import LinkError, LinkHub
from firmware_sim.pattern import FrameView, frame_png
from kvm_protocol.keys import KeyEvent, KeySyntaxError, Mod, sequence_events, text_events
from kvm_protocol.session import SessionConfig
from kvm_protocol.yamlconf import ConfigError

T = TypeVar("T")
CALL_TIMEOUT = 30.0
MAX_EVENTS = 10000          # key events in one request
MAX_GARBAGE = 65536         # bytes injected in one request


class SimError(ValueError):
    """A request the simulator refuses; the message says why."""


def raise_nofile_limit(needed: int) -> int:
    """Raise the soft open-files limit towards the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed, 65536)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


class Simulator:
    """Simulated Tx/Rx hardware, seats and walls, each device on its own serial endpoint."""

    def __init__(
        self,
        config: SimConfig | Mapping[str, Any] | None = None,
        *,
        session_config: SessionConfig | None = None,
    ) -> None:
        if isinstance(config, SimConfig):
            self.config = config
        else:
            try:
                self.config = parse_config(dict(config) if config is not None else None)
            except ConfigError as e:
                raise SimError(f"bad simulator config:\n{e}") from None
        self.fabric = build_fabric(self.config)
        self.session_config = session_config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._hub: LinkHub | None = None
        self._render_lock = threading.Lock()
        self._control: Any = None

    @classmethod
    def from_file(cls, path: Path) -> Simulator:
        try:
            return cls(load_config(path))
        except ConfigError as e:
            raise SimError(f"bad simulator config:\n{e}") from None

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Open every device's endpoint and run the loop thread; raises SimError on failure."""
        if self._thread is not None:
            raise SimError("the simulator is already running")
        devices = len(self.fabric.tx) + len(self.fabric.rx)
        limit = raise_nofile_limit(devices * 3 + 256)
        if limit < devices * 2 + 64:
            raise SimError(
                f"the open-files limit is {limit}, too low for {devices} devices "
                f"(needs about {devices * 2 + 64}); raise it with ulimit -n"
            )
        loop = asyncio.new_event_loop()
        hub = LinkHub(loop, self.fabric, session_config=self.session_config)
        try:
            if self.config.pty:
                hub.open_ptys()
            elif self.config.unix_dir is not None:
                loop.run_until_complete(hub.listen_unix(self.config.unix_dir))
            else:
                loop.run_until_complete(hub.listen_tcp(self.config.base_port))
        except LinkError as e:
            loop.run_until_complete(hub.close())
            loop.close()
            raise SimError(str(e)) from None
        self._loop, self._hub = loop, hub
        self._thread = threading.Thread(target=self._run, name="kvm-sim-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def stop(self) -> None:
        """Close every endpoint and stop the loop thread (idempotent)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        loop, thread, hub = self._loop, self._thread, self._hub
        if loop is None or thread is None or hub is None:
            return
        fut = asyncio.run_coroutine_threadsafe(hub.close(), loop)
        try:
            fut.result(CALL_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT)
            loop.close()
            self._loop = self._thread = self._hub = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _call(self, fn: Callable[[LinkHub], T]) -> T:
        """Run `fn(hub)` in the loop thread, then send what the fabric produced."""
        loop, hub = self._loop, self._hub
        if loop is None or hub is None:
            raise SimError("the simulator is not running")

        def work() -> T:
            try:
                return fn(hub)
            finally:
                hub.dispatch()

        try:
            if threading.current_thread() is self._thread:
                return work()
            fut: concurrent.futures.Future[T] = concurrent.futures.Future()

            def run() -> None:
                try:
                    fut.set_result(work())
                except BaseException as e:  # handed to the caller's thread
                    fut.set_exception(e)

            loop.call_soon_threadsafe(run)
            return fut.result(CALL_TIMEOUT)
        except (FabricError, LinkError) as e:
            raise SimError(str(e)) from None
        except TimeoutError:
            raise SimError(f"the simulator did not answer within {CALL_TIMEOUT:g} s") from None

    # --- inspection --------------------------------------------------------------------

    def ports(self) -> dict[str, dict[str, Any]]:
        """Device ID → {kind, url, port}: where each device's serial link is."""
        return self._call(lambda hub: hub.ports())

    def write_ports_file(self, path: Path, control_url: str | None = None) -> None:
        """Write ``{"control_url": ..., "devices": ports()}`` atomically."""
        body = {"control_url": control_url, "devices": self.ports()}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def state(self, only: str | None = None) -> dict[str, Any]:
        """Every device, seat and wall as JSON-able data (docs/SIMULATOR.md, "state");
        `only` ``"tx"`` or ``"rx"``: the devices of that kind alone."""
        if only not in (None, "tx", "rx"):
            raise SimError(f"only: tx or rx, not {only!r}")

        def snap(hub: LinkHub) -> dict[str, Any]:
            state = hub.fabric.snapshot(only)
            for dev in (*state.get("tx", ()), *state.get("rx", ())):
                dev["link"] = hub.link_state(dev["id"])
            return state

        return self._call(snap)

    # --- the seat keyboard and mouse ---------------------------------------------------------

    def send_events(self, target: str, events: list[KeyEvent]) -> dict[str, Any]:
        """Key events on the keyboard of a seat (named, or by one of its Rx IDs)."""
        if len(events) > MAX_EVENTS:
            raise SimError(f"at most {MAX_EVENTS} key events at once, got {len(events)}")
        got = self._call(lambda hub: hub.fabric.seat_keys(target, events))
        return {"target": target, "events": len(events), "delivered_to": got}

    def press(self, target: str, spec: str) -> dict[str, Any]:
        """Chords such as ``"Shift+O Shift+O F1 1 Enter"`` (kvm_protocol.keys names)."""
        try:
            events = sequence_events(spec)
        except KeySyntaxError as e:
            raise SimError(f"bad keys {spec!r}: {e}") from None
        return self.send_events(target, events)

    def type_text(self, target: str, text: str) -> dict[str, Any]:
        """Type `text` (US layout) on the keyboard of a seat."""
        if not text:
            raise SimError("nothing to type")
        try:
            events = text_events(text)
        except KeySyntaxError as e:
            raise SimError(f"cannot type {text!r}: {e}") from None
        return self.send_events(target, events)

    def mouse_to_screen(self, seat: str, n: int) -> dict[str, Any]:
        """Move the seat's mouse onto screen `n` (1-based); that Rx becomes active."""
        def move(hub: LinkHub) -> dict[str, Any]:
            hub.fabric.mouse_to_screen(seat, n)
            s = hub.fabric.seat_for(seat)
            return {"seat": s.name, "active": s.active, "active_rx": s.active_rx}

        return self._call(move)

    # --- faults -------------------------------------------------------------------------

    def fault(self, device: str, kind: str, head: int | None = None) -> None:
        """Apply a fault: network-down|network-up|power-off|power-on|video-off|video-on|
        stream-fault|stream-ok (video-off/on for one head when `head` is given)."""
        if kind not in FAULT_KINDS:
            raise SimError(f"unknown fault {kind!r}; one of: {', '.join(FAULT_KINDS)}")

        def apply(hub: LinkHub) -> None:
            hub.fabric.fault(device, kind, head)
            if kind in ("power-on", "power-off"):
                hub.power_changed(device)

        self._call(apply)

    def splice(self, wall: str, on: bool) -> None:
        """Start or stop a wall's splice presentation."""
        self._call(lambda hub: hub.fabric.set_splice(wall, on))

    def inject_garbage(self, device: str, data: bytes) -> None:
        """Send raw bytes down `device`'s link to its host, past the session."""
        if not data:
            raise SimError("no garbage bytes given")
        if len(data) > MAX_GARBAGE:
            raise SimError(f"at most {MAX_GARBAGE} garbage bytes at once")

        def inject(hub: LinkHub) -> None:
            if device not in hub.endpoints:
                raise FabricError(f"no device {device!r}")
            hub.inject(device, data)

        self._call(inject)

    # --- pictures ------------------------------------------------------------------------

    def frame_view(self, rx: str, head: int = 1) -> FrameView:
        """What head `head` of Rx `rx` shows now, as data for the renderer."""

        def view(hub: LinkHub) -> FrameView:
            fabric = hub.fabric
            dev = fabric.get_rx(rx)
            h = dev.head(head)
            if h is None:
                raise FabricError(f"Rx {rx} has heads 1..{len(dev.heads)}, not {head}")
            tile = None
            wall = fabric.wall_of(rx)
            if wall is not None and wall.splice and head == 1:
                pos = wall.position(rx)
                assert pos is not None
                tile = (pos[0], pos[1], wall.rows, wall.cols)
            tx = fabric.tx.get(h.source[0]) if h.source is not None else None
            return FrameView(
                rx=rx, head=head, power=dev.power,
                tx_id=h.source[0] if h.source else None,
                tx_head=h.source[1] if h.source else 0,
                tx_name=tx.name if tx is not None else "",
                video=h.video, overlay=dev.overlay, tile=tile,
            )

        return self._call(view)

    def frame_png(self, rx: str, head: int = 1, size: tuple[int, int] | None = None) -> bytes:
        """PNG of what head `head` of Rx `rx` shows now (a splicing wall tile: its part)."""
        if size is not None and not (64 <= size[0] <= 3840 and 64 <= size[1] <= 2160):
            raise SimError(f"frame size must be 64..3840 x 64..2160, got {size[0]}x{size[1]}")
        view = self.frame_view(rx, head)
        with self._render_lock:
            return frame_png(view, size or self.config.frame_size)

    # --- control server ---------------------------------------------------------------------

    def serve_control(self, port: int = 0) -> str:
        """Start the JSON control server on 127.0.0.1:`port` (0: any); returns its URL."""
        from firmware_sim.control import ControlServer

        if self._control is not None:
            raise SimError("the control server is already running")
        try:
            self._control = ControlServer(self, port)
        except (OSError, OverflowError) as e:
            reason = getattr(e, "strerror", None) or e
            raise SimError(f"cannot serve control on 127.0.0.1:{port}: {reason}") from None
        self._control.start()
        return str(self._control.url)


def parse_event(raw: object, where: str) -> KeyEvent:
    """A key event from JSON ``{"usage": 4, "mods": 2, "pressed": true}``; SimError if bad."""
    if not isinstance(raw, dict) or set(raw) - {"usage", "mods", "pressed"}:
        raise SimError(f"{where}: expected {{usage, mods, pressed}}")
    usage, mods, pressed = raw.get("usage"), raw.get("mods", 0), raw.get("pressed")
    for name, value in (("usage", usage), ("mods", mods)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise SimError(f"{where}.{name}: expected an integer 0..255, got {value!r}")
    if not isinstance(pressed, bool):
        raise SimError(f"{where}.pressed: expected true or false, got {pressed!r}")
    assert isinstance(usage, int) and isinstance(mods, int)
    return KeyEvent(usage, Mod(mods), pressed)
