"""Test pictures: what a simulated Tx head sends, and what an Rx head shows (pygame only).

``render_pattern`` draws a picture that names its Tx at a glance in a screenshot:
the ID in big digits, the name, the head number, and colour bars whose hues are
derived from the ID (neighbouring IDs get clearly different colours). ``render_no_signal``
is what a head shows without a picture. ``frame_png`` renders a ``FrameView`` (what one
Rx head shows now; a splicing wall tile shows its part of the Tx picture) to PNG.

Only the video plane is drawn: the OSD overlay is the controller's own plane.
Works headless (``SDL_VIDEODRIVER=dummy``); nothing here opens a window.
"""

from __future__ import annotations

import colorsys
import functools
import importlib.util
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame

Size = tuple[int, int]
RGB = tuple[int, int, int]
_LOCK = threading.RLock()       # pygame's font and surface calls are not thread-safe
_CJK_FONT_FILE = "NotoSansCJKtc-Regular.otf"
MAX_WALL_PICTURE = (3840, 2160)


@dataclass(frozen=True, slots=True)
class FrameView:
    """What one Rx head shows, as plain data (the simulator builds it from the fabric)."""

    rx: str
    head: int
    power: bool
    tx_id: str | None           # the Tx head this head is tuned to, if any
    tx_head: int
    tx_name: str
    video: bool                 # the picture is actually there
    overlay: bool = False
    tile: tuple[int, int, int, int] | None = None   # (row, col, rows, cols) of a splicing wall


def id_hue(tx_id: str) -> float:
    """Hue in [0, 1) for a Tx ID: the golden angle apart for consecutive IDs."""
    n = int(tx_id) if tx_id.isdigit() else sum(tx_id.encode())
    return (n * 0.6180339887) % 1.0


def _rgb(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(r * 255), round(g * 255), round(b * 255))


@functools.cache
def _font_path() -> str | None:
    spec = importlib.util.find_spec("cvttf_NotoSansCJK_Regular")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / _CJK_FONT_FILE
    return str(path) if path.is_file() else None


@functools.lru_cache(maxsize=32)
def _font(px: int) -> pygame.font.Font:
    if not pygame.font.get_init():
        pygame.font.init()
    path = _font_path()
    return pygame.font.Font(path, max(6, px))


def _text(
    surface: pygame.Surface, text: str, px: int, colour: RGB, center: tuple[int, int],
    *, max_width: int | None = None, shadow: bool = True,
) -> None:
    """Draw `text` centred, shrunk to `max_width`, with a dark shadow for contrast."""
    font = _font(px)
    img = font.render(text, True, colour)
    if max_width is not None and img.get_width() > max_width:
        px = max(6, int(px * max_width / img.get_width()))
        font = _font(px)
        img = font.render(text, True, colour)
    rect = img.get_rect(center=center)
    if shadow:
        off = max(1, px // 24)
        shade = font.render(text, True, (0, 0, 0))
        surface.blit(shade, rect.move(off, off))
    surface.blit(img, rect)


@functools.lru_cache(maxsize=32)
def render_pattern(tx_id: str, name: str, head: int, size: Size) -> pygame.Surface:
    """The test picture of Tx `tx_id` head `head` (cached: do not draw on the result)."""
    with _LOCK:
        w, h = size
        hue = id_hue(tx_id)
        surf = pygame.Surface(size)
        surf.fill(_rgb(hue, 0.55, 0.30))
        # Colour bars across the top: eight hues starting at the ID's hue.
        bar_h = int(h * 0.24)
        for i in range(8):
            x0, x1 = w * i // 8, w * (i + 1) // 8
            surf.fill(_rgb(hue + i / 8, 0.85, 0.95), pygame.Rect(x0, 0, x1 - x0, bar_h))
        # A grey ramp at the bottom and a geometry circle: splice seams show at once.
        ramp_y = int(h * 0.9)
        for i in range(8):
            x0, x1 = w * i // 8, w * (i + 1) // 8
            grey = 255 * i // 7
            surf.fill((grey, grey, grey), pygame.Rect(x0, ramp_y, x1 - x0, h - ramp_y))
        pygame.draw.circle(surf, (255, 255, 255), (w // 2, h // 2), int(h * 0.44),
                           max(1, h // 180))
        pygame.draw.line(surf, (255, 255, 255), (w // 2, bar_h), (w // 2, ramp_y), 1)
        # The identity: big ID, then name, then head.
        panel = pygame.Rect(int(w * 0.08), int(h * 0.28), int(w * 0.84), int(h * 0.58))
        shade = pygame.Surface(panel.size, pygame.SRCALPHA)
        shade.fill((0, 0, 0, 120))
        surf.blit(shade, panel)
        _text(surf, f"TX {tx_id}", int(h * 0.26), (255, 255, 255),
              (w // 2, int(h * 0.43)), max_width=int(w * 0.8))
        if name:
            _text(surf, name, int(h * 0.09), (255, 236, 140), (w // 2, int(h * 0.64)),
                  max_width=int(w * 0.8))
        _text(surf, f"HEAD {head}", int(h * 0.075), (255, 255, 255),
              (w // 2, int(h * 0.77)), max_width=int(w * 0.8))
        # Head number in the corner too, for tiles that show only part of the picture.
        _text(surf, f"{tx_id}:{head}", max(10, int(h * 0.05)), (255, 255, 255),
              (int(w * 0.1), int(h * 0.27) + int(h * 0.03)), max_width=int(w * 0.18))
        return surf


@functools.lru_cache(maxsize=64)
def render_no_signal(size: Size, line1: str = "NO SIGNAL", line2: str = "") -> pygame.Surface:
    """A head without a picture: dark, with "NO SIGNAL" and what it is tuned to."""
    with _LOCK:
        w, h = size
        surf = pygame.Surface(size)
        surf.fill((16, 16, 24))
        pygame.draw.rect(surf, (90, 90, 110), surf.get_rect(), max(2, h // 120))
        box = pygame.Rect(int(w * 0.25), int(h * 0.36), int(w * 0.5), int(h * 0.22))
        pygame.draw.rect(surf, (200, 200, 210), box, max(2, h // 180))
        _text(surf, line1, int(h * 0.11), (235, 235, 245), box.center,
              max_width=int(w * 0.46), shadow=False)
        if line2:
            _text(surf, line2, int(h * 0.055), (160, 160, 180), (w // 2, int(h * 0.68)),
                  max_width=int(w * 0.9), shadow=False)
        return surf


def render_frame(view: FrameView, size: Size) -> pygame.Surface:
    """What `view`'s head shows, at `size`."""
    with _LOCK:
        label = f"RX {view.rx} HEAD {view.head}"
        if not view.power:
            surf = pygame.Surface(size)
            surf.fill((0, 0, 0))
            _text(surf, f"{label} - POWER OFF", max(10, size[1] // 30), (70, 70, 70),
                  (size[0] // 2, size[1] // 2), max_width=size[0] - 8, shadow=False)
            return surf
        if view.tx_id is None or not view.video:
            tuned = f"{label} - {view.tx_id}:{view.tx_head} has no picture" if view.tx_id \
                else f"{label} - not connected"
            return render_no_signal(size, "NO SIGNAL", tuned)
        if view.tile is None:
            return render_pattern(view.tx_id, view.tx_name, view.tx_head, size)
        row, col, rows, cols = view.tile
        # The whole picture spans the wall; keep it at most 4K so the cache stays small.
        scale = min(1.0, MAX_WALL_PICTURE[0] / (size[0] * cols),
                    MAX_WALL_PICTURE[1] / (size[1] * rows))
        tw, th = max(1, int(size[0] * scale)), max(1, int(size[1] * scale))
        full = render_pattern(view.tx_id, view.tx_name, view.tx_head, (tw * cols, th * rows))
        part = full.subsurface(pygame.Rect(col * tw, row * th, tw, th))
        return part.copy() if (tw, th) == size else pygame.transform.smoothscale(part, size)


def surface_png(surface: pygame.Surface) -> bytes:
    """PNG bytes of a surface."""
    with _LOCK:
        buf = io.BytesIO()
        pygame.image.save(surface, buf, "frame.png")
        return buf.getvalue()


@functools.lru_cache(maxsize=256)
def frame_png(view: FrameView, size: Size) -> bytes:
    """PNG of `view` at `size` (cached by view and size)."""
    return surface_png(render_frame(view, size))
