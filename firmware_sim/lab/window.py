"""The lab's window: the monitor and keyboard of one seat (Rx 5001 by default).

It shows the simulator's video frame of the Rx's head 1 with the controller's OSD
plane composed over it, refreshed a few times a second, and sends the real
keyboard's presses and releases to the simulator as that seat's key events.
Closing the window stops the lab.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING, Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame
import requests

from firmware_sim.lab.picture import png_size
from kvm_protocol.keys import KEY_NAMES, MODIFIER_USAGES, KeyEvent, Mod

if TYPE_CHECKING:
    from firmware_sim.lab.up import LabRunner

REFRESH_S = 0.25
SEMICOLON_USAGE = 0x33
QUOTE_USAGE = 0x34
GRAVE_USAGE = 0x35
LBRACKET_USAGE = 0x2F
RBRACKET_USAGE = 0x30
BACKSLASH_USAGE = 0x31


def _build_keymap() -> dict[int, int]:
    k = KEY_NAMES
    keymap: dict[int, int] = {}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789":
        keymap[getattr(pygame, f"K_{ch}")] = k[ch.upper()]
    for i in range(1, 13):
        keymap[getattr(pygame, f"K_F{i}")] = k[f"F{i}"]
    named = {
        "K_RETURN": "Enter",
        "K_KP_ENTER": "Enter",
        "K_ESCAPE": "Esc",
        "K_BACKSPACE": "Backspace",
        "K_TAB": "Tab",
        "K_SPACE": "Space",
        "K_MINUS": "Minus",
        "K_EQUALS": "Equal",
        "K_COMMA": "Comma",
        "K_PERIOD": "Period",
        "K_SLASH": "Slash",
        "K_INSERT": "Insert",
        "K_HOME": "Home",
        "K_PAGEUP": "PageUp",
        "K_DELETE": "Delete",
        "K_END": "End",
        "K_PAGEDOWN": "PageDown",
        "K_RIGHT": "Right",
        "K_LEFT": "Left",
        "K_DOWN": "Down",
        "K_UP": "Up",
        "K_LCTRL": "Ctrl",
        "K_LSHIFT": "Shift",
        "K_LALT": "Alt",
        "K_LGUI": "Win",
        "K_RCTRL": "RCtrl",
        "K_RSHIFT": "RShift",
        "K_RALT": "RAlt",
        "K_RGUI": "RWin",
    }
    for attr, name in named.items():
        code = getattr(pygame, attr, None)
        if code is not None:
            keymap[code] = k[name]
    keymap[pygame.K_SEMICOLON] = SEMICOLON_USAGE
    keymap[pygame.K_QUOTE] = QUOTE_USAGE
    keymap[pygame.K_BACKQUOTE] = GRAVE_USAGE
    keymap[pygame.K_LEFTBRACKET] = LBRACKET_USAGE
    keymap[pygame.K_RIGHTBRACKET] = RBRACKET_USAGE
    keymap[pygame.K_BACKSLASH] = BACKSLASH_USAGE
    return keymap


KEYMAP: dict[int, int] = _build_keymap()


class KeyTracker:
    """pygame key events → HID `KeyEvent`s with the modifier byte the firmware would report."""

    def __init__(self) -> None:
        self.held: set[int] = set()

    def mods(self) -> Mod:
        mods = Mod.NONE
        for usage in self.held:
            mods |= MODIFIER_USAGES.get(usage, Mod.NONE)
        return mods

    def event(self, key: int, pressed: bool) -> KeyEvent | None:
        """The HID event for one pygame KEYDOWN/KEYUP, or None for keys the seat has not got."""
        usage = KEYMAP.get(key)
        if usage is None:
            return None
        if pressed:
            if usage in self.held and usage not in MODIFIER_USAGES:
                return KeyEvent(usage, self.mods(), True)  # auto-repeat of a held key
            self.held.add(usage)
        elif usage in self.held:
            self.held.discard(usage)
        else:
            return None  # a release whose press went elsewhere (window focus)
        return KeyEvent(usage, self.mods(), pressed)

    def release_all(self) -> list[KeyEvent]:
        """Releases for every held key (the window lost focus), modifiers last."""
        out = []
        for usage in sorted(self.held, key=lambda u: u in MODIFIER_USAGES):
            self.held.discard(usage)
            out.append(KeyEvent(usage, self.mods(), False))
        return out


class _Sender(threading.Thread):
    """Sends key events to the simulator in order, off the drawing thread."""

    def __init__(self, sim_url: str, rx: str) -> None:
        super().__init__(name="window-keys", daemon=True)
        self.url = f"{sim_url}/keys"
        self.rx = rx
        self.queue: queue.Queue[KeyEvent | None] = queue.Queue()
        self.error: str | None = None

    def run(self) -> None:
        with requests.Session() as session:
            while True:
                first = self.queue.get()
                if first is None:
                    return
                batch = [first]
                while True:
                    try:
                        more = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._send(session, batch)
                        return
                    batch.append(more)
                self._send(session, batch)

    def _send(self, session: requests.Session, events: list[KeyEvent]) -> None:
        body = {
            "rx": self.rx,
            "events": [
                {"usage": e.usage, "mods": int(e.mods), "pressed": e.pressed} for e in events
            ],
        }
        try:
            resp = session.post(self.url, json=body, timeout=5)
            self.error = None if resp.status_code < 400 else f"keys: HTTP {resp.status_code}"
        except requests.RequestException as exc:
            self.error = f"keys: {exc.__class__.__name__}"


class _Fetcher(threading.Thread):
    """Fetches the frame and the OSD plane a few times a second."""

    def __init__(self, runner: LabRunner, rx: str, host_url: str) -> None:
        super().__init__(name="window-frames", daemon=True)
        self.runner = runner
        self.rx = rx
        self.host_url = host_url
        self.latest: tuple[bytes, bytes | None] | None = None
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    self.latest = self._fetch(session)
                    self.error = None
                except (requests.RequestException, ValueError) as exc:  # PictureError too
                    self.error = f"no picture: {exc.__class__.__name__}"
                self.stop.wait(REFRESH_S)

    def _fetch(self, session: requests.Session) -> tuple[bytes, bytes | None]:
        sim = self.runner.sim_url
        frame = session.get(f"{sim}/frame", params={"rx": self.rx, "head": "1"}, timeout=3)
        frame.raise_for_status()
        state: Any = session.get(f"{sim}/state", timeout=3).json()
        visible = any(r.get("id") == self.rx and r.get("overlay") for r in state.get("rx", []))
        overlay = None
        if visible:
            w, h = png_size(frame.content)
            resp = session.get(
                f"{self.host_url}/osd.png",
                timeout=3,
                params={"rx": self.rx, "w": str(w), "h": str(h)},
            )
            if resp.status_code == 200:
                overlay = resp.content
        return frame.content, overlay


def run_window(runner: LabRunner, rx: str | None = None) -> None:
    """The main-thread loop while the window is open; returns when the lab should stop."""
    from firmware_sim.lab.picture import PictureError, compose, load_png

    assert runner.topology is not None
    ids = [d.id for d in runner.topology.rx]
    rx = rx or ("5001" if "5001" in ids else ids[0])
    pygame.display.init()
    pygame.font.init()
    screen = pygame.display.set_mode((960, 540), pygame.RESIZABLE)
    pygame.display.set_caption(f"kvm-lab: monitor and keyboard of Rx {rx} (close to stop the lab)")
    font = pygame.font.Font(None, 22)
    sender = _Sender(runner.sim_url, rx)
    fetcher = _Fetcher(runner, rx, runner.host_url(runner.rx_host[rx]))
    sender.start()
    fetcher.start()
    tracker = KeyTracker()
    picture: pygame.Surface | None = None
    shown: tuple[bytes, bytes | None] | None = None
    clock = pygame.time.Clock()
    try:
        while not runner.stop_event.is_set():
            for ev in pygame.event.get():
                if ev.type == pygame.QUIT:
                    runner.stop_event.set()
                elif ev.type in (pygame.KEYDOWN, pygame.KEYUP):
                    key = tracker.event(ev.key, ev.type == pygame.KEYDOWN)
                    if key is not None:
                        sender.queue.put(key)
                elif ev.type == pygame.WINDOWFOCUSLOST:
                    for key in tracker.release_all():
                        sender.queue.put(key)
            latest = fetcher.latest
            if latest is not None and latest is not shown:
                shown = latest
                try:
                    frame = load_png(latest[0], "frame")
                    overlay = load_png(latest[1], "overlay") if latest[1] else None
                    picture = compose(frame, overlay)
                except PictureError:
                    picture = None
            screen.fill((0, 0, 0))
            if picture is not None:
                screen.blit(pygame.transform.smoothscale(picture, screen.get_size()), (0, 0))
            problem = fetcher.error or sender.error
            if problem:
                screen.blit(font.render(problem, True, (255, 80, 80)), (8, 8))
            pygame.display.flip()
            runner.poll()
            clock.tick(30)
    finally:
        fetcher.stop.set()
        sender.queue.put(None)
        sender.join(2)
        fetcher.join(2)
        pygame.display.quit()
