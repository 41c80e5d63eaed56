"""What a person sees on an Rx monitor: the video frame with the OSD plane composed over it."""

from __future__ import annotations

import io
import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame


class PictureError(ValueError):
    """A frame or overlay that is not a readable image."""


def load_png(data: bytes, what: str) -> pygame.Surface:
    try:
        return pygame.image.load(io.BytesIO(data), "x.png")
    except (pygame.error, ValueError) as exc:
        raise PictureError(f"{what} is not a PNG image ({exc})") from None


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, read from its header."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise PictureError("the video frame is not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def compose(frame: pygame.Surface, overlay: pygame.Surface | None) -> pygame.Surface:
    """The overlay (RGBA, alpha-blended) over the frame, scaled to the frame's size."""
    out = pygame.Surface(frame.get_size(), pygame.SRCALPHA, 32)
    out.blit(frame, (0, 0))
    if overlay is not None:
        if overlay.get_size() != frame.get_size():
            try:
                overlay = pygame.transform.smoothscale(overlay, frame.get_size())
            except ValueError:  # smoothscale wants 24/32-bit pixels
                overlay = pygame.transform.scale(overlay, frame.get_size())
        out.blit(overlay, (0, 0))
    return out


def to_png(surface: pygame.Surface) -> bytes:
    buf = io.BytesIO()
    pygame.image.save(surface, buf, "out.png")
    return buf.getvalue()


def compose_png(frame_png: bytes, overlay_png: bytes | None) -> bytes:
    """PNG of the frame with the overlay over it."""
    frame = load_png(frame_png, "the video frame")
    overlay = load_png(overlay_png, "the OSD overlay") if overlay_png else None
    return to_png(compose(frame, overlay))
