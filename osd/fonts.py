"""The OSD's font: Noto Sans CJK from the ``cvttf-notosanscjk-regular`` package.

Found through importlib.resources, so it works wherever the package is installed, with
no system fonts: Chinese renders with real glyphs on a fresh machine (SPEC 2.5).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner on stdout

import pygame.freetype

FONT_PACKAGE = "cvttf_NotoSansCJK_Regular"
_FONT_SUFFIXES = (".otf", ".ttf", ".ttc")


class FontMissingError(RuntimeError):
    """The CJK font package is not installed (or has no font file)."""


def cjk_font_path() -> Path:
    """Path of the CJK font file shipped by the font package."""
    try:
        root = importlib.resources.files(FONT_PACKAGE)
    except ModuleNotFoundError:
        raise FontMissingError(
            f"the font package {FONT_PACKAGE!r} is not installed; run ./dev setup"
        ) from None
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.lower().endswith(_FONT_SUFFIXES):
            return Path(str(entry))
    raise FontMissingError(f"no font file in the package {FONT_PACKAGE!r}; reinstall it")


class FontCache:
    """One ``pygame.freetype.Font`` per pixel size, positioned by baseline (``origin``)."""

    def __init__(self, path: Path | None = None) -> None:
        if not pygame.freetype.get_init():
            pygame.freetype.init()
        self.path = path or cjk_font_path()
        self._fonts: dict[int, pygame.freetype.Font] = {}

    def get(self, size: int) -> pygame.freetype.Font:
        font = self._fonts.get(size)
        if font is None:
            font = pygame.freetype.Font(str(self.path), size)
            font.origin = True
            font.pad = False
            font.antialiased = True
            self._fonts[size] = font
        return font
