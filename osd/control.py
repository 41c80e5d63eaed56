"""What the lab and tests see of running controllers: OSD state as JSON, the overlay as PNG.

``osd_snapshot`` turns a controller's screen model into plain data; ``OverlayPainter``
renders models onto transparent RGBA surfaces (one pygame renderer per process, shared
by every controller under a lock); ``ControlServer`` serves both on 127.0.0.1:

- ``GET /controllers``                      each controller: rx, link, server, status, converged
- ``GET /osd?rx=5001``                      the OSD state of one controller
- ``GET /osd.png?rx=5001[&w=1920&h=1080]``  the overlay plane, RGBA, transparent where empty
"""

from __future__ import annotations

import json
import logging
import struct
import sys
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from osd.client import format_source
from osd.model import ScreenKind, ScreenModel
from osd.state import OsdState

if TYPE_CHECKING:
    import pygame

    from osd.runtime import Controller

log = logging.getLogger("kvm.rx.control")

MIN_SIZE, MAX_SIZE = (64, 64), (3840, 2160)
# Pixel masks that put the bytes of a 32-bit surface in R, G, B, A order (little endian),
# so its buffer is PNG-ready.
RGBA_MASKS = (0x000000FF, 0x0000FF00, 0x00FF0000, 0xFF000000) if sys.byteorder == "little" \
    else (0xFF000000, 0x00FF0000, 0x0000FF00, 0x000000FF)


def osd_snapshot(ctrl: Controller) -> dict[str, Any]:
    """The OSD state of ``ctrl`` as JSON-able data; call with the controller's lock held.

    ``feedback`` is the feedback text shown in the menu; once the menu has closed (after
    a success it closes by itself) it is the last text it showed, so a poller sees it.
    """
    machine = ctrl.machine
    state = machine.state
    model = machine.model
    menu = model.menu or ctrl.shown.last_menu
    status = _status_text(model, state)
    rec = ctrl.reconciler
    desired = rec.desired or {}
    identity = ctrl.identity
    return {
        "rx": ctrl.rx_id,
        "name": ctrl.config.name,
        "serial": identity.serial if identity else "",
        "firmware": identity.firmware if identity else "",
        "link_up": ctrl.link_up,
        "adopted": ctrl.adopted is not None,
        "server_ok": ctrl.server_ok,
        "reported": ctrl.reported,
        "screen": model.kind.value,
        "overlay": ctrl.shown.overlay,
        "lang": model.lang,
        "user": state.user,
        "keys_allowed": state.keys_allowed,
        "active": state.active,
        "mode": state.menu.mode.value,
        "input": state.menu.text,
        "feedback": menu.feedback.text if menu is not None and menu.feedback else None,
        "status": status,
        "rows": [{"id": r.id, "name": r.name, "colour": r.colour.value}
                 for r in (menu.rows if menu is not None else ())],
        "page": ({"number": menu.page.number, "count": menu.page.count}
                 if menu is not None else {"number": 1, "count": 1}),
        "heads": [{"head": h, "source": format_source(rec.actual.get(h)),
                   "desired": format_source(desired.get(h)) if rec.desired else None}
                  for h in range(1, rec.heads + 1)],
        "converged": rec.converged,
        "stats": dict(ctrl.shown.stats),
    }


def _status_text(model: ScreenModel, state: OsdState) -> str:
    """The login screen's status line, or what it would say."""
    if model.login is not None:
        return model.login.status.text
    connectivity = state.connectivity
    return connectivity.text(model.lang) if connectivity is not None else ""


def controller_summary(ctrl: Controller) -> dict[str, Any]:
    """One row of ``GET /controllers``: enough to tell whether the controller is in sync."""
    identity = ctrl.identity
    with ctrl._lock:
        machine = ctrl.machine
        status = _status_text(machine.model, machine.state)
        converged = ctrl.reconciler.converged
    return {
        "rx": ctrl.rx_id,
        "name": ctrl.config.name,
        "serial": identity.serial if identity else "",
        "serial_url": ctrl.config.serial_url,
        "link_up": ctrl.link_up,
        "adopted": ctrl.adopted is not None,
        "server_ok": ctrl.server_ok,
        "reported": ctrl.reported,
        "screen": ctrl.machine.kind.value,
        "status": status,
        "converged": converged,
    }


class OverlayPainter:
    """Renders screen models onto transparent surfaces; one per process, thread-safe."""

    def __init__(self, cache: int = 32) -> None:
        self._lock = threading.Lock()
        self._renderer: Any = None
        self._clear: pygame.Surface | None = None
        self._pngs: OrderedDict[tuple[ScreenModel, tuple[int, int]], bytes] = OrderedDict()
        self._cache = cache

    def surface(self, model: ScreenModel, size: tuple[int, int]) -> pygame.Surface:
        """The overlay plane for ``model``: RGBA, fully transparent where nothing is drawn."""
        import pygame

        from osd.render import Renderer

        with self._lock:
            if self._renderer is None:
                self._renderer = Renderer()
            surface = pygame.Surface(size, pygame.SRCALPHA, 32, masks=RGBA_MASKS)
            if model.kind is not ScreenKind.CLOSED:
                # A fully transparent background: no video under the overlay plane. Kept for
                # the last size only (8 MB at 1080p); blitting a surface onto itself is slow.
                if self._clear is None or self._clear.get_size() != size:
                    self._clear = pygame.Surface(size, pygame.SRCALPHA, 32, masks=RGBA_MASKS)
                self._renderer.draw(model, surface, self._clear)
            return surface

    def png(self, model: ScreenModel, size: tuple[int, int]) -> bytes:
        """The overlay as an RGBA PNG; the same model at the same size is encoded once."""

        key = (model, size)
        try:
            hash(key)
        except TypeError:   # a model that cannot be a key is simply not cached
            return _png_of(self.surface(model, size))
        with self._lock:
            cached = self._pngs.get(key)
            if cached is not None:
                self._pngs.move_to_end(key)
                return cached
        data = _png_of(self.surface(model, size))
        with self._lock:
            self._pngs[key] = data
            while len(self._pngs) > self._cache:
                self._pngs.popitem(last=False)
        return data


def _png_of(surface: pygame.Surface) -> bytes:
    """PNG of an RGBA-ordered surface straight from its pixel buffer (no copy)."""
    import pygame

    size = surface.get_size()
    if surface.get_masks() == RGBA_MASKS and surface.get_pitch() == size[0] * 4:
        buffer: Any = surface.get_buffer()   # locks the surface while the view lives
        with memoryview(buffer) as view:
            return encode_png(view.cast("B"), size)
    return encode_png(pygame.image.tobytes(surface, "RGBA"), size)


def encode_png(rgba: bytes | memoryview, size: tuple[int, int], level: int = 1) -> bytes:
    """A minimal RGBA PNG encoder: fast zlib level, no filters (the overlay is mostly flat)."""
    w, h = size
    stride = w * 4
    packer = zlib.compressobj(level)
    view = memoryview(rgba)
    parts = []
    for y in range(h):   # row by row: no second full-size copy of the picture
        parts.append(packer.compress(b"\x00"))
        parts.append(packer.compress(view[y * stride:(y + 1) * stride]))
    parts.append(packer.flush())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)   # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ControlServer:
    """The local control endpoint of ``kvm-rx --many`` (127.0.0.1 only)."""

    def __init__(self, controllers: Callable[[], Sequence[Controller]],
                 painter: OverlayPainter, port: int = 0) -> None:
        self._controllers = controllers
        self._painter = painter
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="kvm-rx-control", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # --- requests -----------------------------------------------------------------------
    def find(self, rx: str) -> Controller:
        for ctrl in self._controllers():
            identity = ctrl.identity
            if rx in (ctrl.rx_id, ctrl.config.name) or (identity and rx == identity.serial):
                return ctrl
        raise ControlError(404, "NOT_FOUND", f"no controller for rx {rx!r}")

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[str, bytes]:
        if path == "/controllers":
            rows = [controller_summary(c) for c in self._controllers()]
            return "application/json", _json({"controllers": rows})
        if path in ("/osd", "/osd.png"):
            rx = _one(query, "rx")
            if rx is None:
                raise ControlError(400, "VALIDATION", "rx: give the Rx ID, e.g. ?rx=5001")
            ctrl = self.find(rx)
            if path == "/osd":
                return "application/json", _json(ctrl.snapshot())
            size = (_size(query, "w", 1920, 0), _size(query, "h", 1080, 1))
            return "image/png", self._painter.png(ctrl.model(), size)
        raise ControlError(404, "NOT_FOUND", f"no such endpoint {path!r}; "
                           "try /controllers, /osd?rx=ID, /osd.png?rx=ID")


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _size(query: dict[str, list[str]], key: str, default: int, axis: int) -> int:
    raw = _one(query, key)
    if raw is None:
        return default
    lo, hi = MIN_SIZE[axis], MAX_SIZE[axis]
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ControlError(400, "VALIDATION", f"{key}: a whole number {lo}-{hi}, got {raw!r}")
    return int(raw)


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _make_handler(server: ControlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            try:
                ctype, body = server.handle(url.path, parse_qs(url.query))
                status = 200
            except ControlError as exc:
                ctype, status = "application/json", exc.status
                body = _json({"error": {"code": exc.code, "message": exc.message}})
            except Exception:
                log.exception("control request %s failed", self.path)
                ctype, status = "application/json", 500
                body = _json({"error": {"code": "INTERNAL", "message": "internal error"}})
            self.send_response(status)
            self.send_header("Content-Type", ctype + ("; charset=utf-8" if "json" in ctype
                                                      else ""))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("control: " + format, *args)

    return Handler
