"""Draws a ``ScreenModel`` onto a pygame surface, over the video picture.

The layout is designed for 1920×1080 and scales to the surface (letterboxed to 16:9),
so it reads the same from a seat at any resolution. A renderer keeps only its own font
cache and panel surfaces: no pygame state at module level, many renderers per process.
Works headless (``SDL_VIDEODRIVER=dummy``; no display is opened at all).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # after the banner switch above
import pygame.freetype

from osd.fonts import FontCache
from osd.model import (
    ROWS_PER_PAGE,
    ButtonView,
    Colour,
    FieldView,
    LoginView,
    MenuView,
    ScreenModel,
    Text,
)

RGB = tuple[int, int, int]
BASE_W, BASE_H = 1920, 1080

PALETTE: dict[Colour, RGB] = {
    Colour.BROWN: (206, 154, 100),        # warm tan: readable "brown" on a dark panel
    Colour.WHITE: (238, 240, 244),
    Colour.YELLOW: (222, 184, 62),        # golden
    Colour.BRIGHT_YELLOW: (255, 238, 40),  # saturated, clearly brighter than YELLOW
    Colour.GREY: (156, 162, 172),
    Colour.RED: (242, 86, 74),
}
PANEL_RGBA = (13, 16, 22, 238)
HEADER_RGBA = (30, 35, 46, 255)
BOX_RGB = (28, 33, 43)
BOX_EDGE_RGB = (74, 82, 98)
RULE_RGB = (58, 64, 78)
STRIPE_RGBA = (255, 255, 255, 9)
HILITE_RGBA = (255, 238, 40, 34)
VIDEO_TOP, VIDEO_BOTTOM = (38, 52, 70), (12, 16, 22)

LOGIN_PANEL = (580, 230, 760, 620)
MENU_PANEL = (260, 60, 1400, 960)
ROW_H = 50


class Renderer:
    """Draws screen models; keep one per output surface size for the cached panels."""

    def __init__(self, font_path: Path | None = None) -> None:
        self.fonts = FontCache(font_path)
        self._panels: dict[tuple[int, int, int], pygame.Surface] = {}
        self._layers: dict[tuple[int, ...], pygame.Surface] = {}  # translucent shapes
        self._widths: dict[tuple[str, int], float] = {}
        self._rendered: dict[tuple[str, int, Colour], tuple[pygame.Surface, pygame.Rect]] = {}
        self._surface: pygame.Surface = pygame.Surface((1, 1))
        self._scale = 1.0
        self._ox = self._oy = 0

    # --- entry point -------------------------------------------------------------

    def draw(
        self, model: ScreenModel, surface: pygame.Surface, background: pygame.Surface | None = None
    ) -> None:
        """Draw `model` on `surface` over `background` (scaled to fit; a dark gradient if None)."""
        w, h = surface.get_size()
        self._surface = surface
        # 1.0 at full HD; on other shapes (4:3, 5:4) as large as the menu panel still fits.
        fit = min(0.96 * w / MENU_PANEL[2], 0.96 * h / MENU_PANEL[3])
        self._scale = min(max(w / BASE_W, h / BASE_H), fit)
        self._ox = round(w / 2 - BASE_W / 2 * self._scale)
        self._oy = round(h / 2 - BASE_H / 2 * self._scale)
        if background is None:
            _gradient(surface)
        elif background.get_size() == (w, h):
            surface.blit(background, (0, 0))
        else:
            surface.blit(pygame.transform.smoothscale(background, (w, h)), (0, 0))
        if model.login is not None:
            self._login(model.login)
        elif model.menu is not None:
            self._menu(model.menu)

    # --- screens -----------------------------------------------------------------

    def _login(self, v: LoginView) -> None:
        x, y, w, h = LOGIN_PANEL
        self._panel(LOGIN_PANEL)
        self._fill((x, y, w, 104), HEADER_RGBA, radius=18, top_only=True)
        self._text(v.title, x + w / 2, y + 54, 44, anchor="center")
        fy = y + 150
        for f in (v.user, v.password):
            self._field(f, x + 56, fy, w - 112)
            fy += 124
        bw, gap = 200, 40
        bx = x + (w - 2 * bw - gap) / 2
        for b in v.buttons:
            self._button(b, bx, fy + 8, bw)
            bx += bw + gap
        self._text(v.status, x + w / 2, y + h - 98, 30, anchor="center")
        self._rule(x + 40, y + h - 60, w - 80)
        self._text(v.help, x + w / 2, y + h - 30, 24, anchor="center")

    def _menu(self, v: MenuView) -> None:
        x, y, w, h = MENU_PANEL
        left, right = x + 48, x + w - 48
        self._panel(MENU_PANEL)
        self._fill((x, y, w, 92), HEADER_RGBA, radius=18, top_only=True)
        self._text(v.title, left, y + 46, 40)
        ix: float = right
        for line in reversed(v.info):
            ix = self._text(line.value, ix, y + 46, 28, anchor="right") - 12
            ix = self._text(line.label, ix, y + 46, 24, anchor="right") - 48
        nx: float = left
        for notice in v.notices:
            nx = self._badge(notice, nx, y + 126) + 16
        ly = y + 184
        self._text(v.list_title, left, ly, 30)
        px = self._text(v.page.keys, right, ly, 24, anchor="right")
        self._text(v.page.text, px - (24 if v.page.keys.text else 0), ly, 26, anchor="right")
        self._text(v.columns[0], left + 44, ly + 44, 24)
        self._text(v.columns[1], left + 220, ly + 44, 24)
        self._rule(left, ly + 66, right - left)
        ry = ly + 72
        for i, row in enumerate(v.rows[:ROWS_PER_PAGE]):
            top = ry + i * ROW_H
            cy = top + ROW_H / 2
            if i % 2:
                self._fill((left, top, right - left, ROW_H), STRIPE_RGBA)
            if row.colour is Colour.BRIGHT_YELLOW:
                self._fill((left, top + 2, right - left, ROW_H - 4), HILITE_RGBA, radius=6)
            self._swatch(row.colour, left + 14, cy)
            self._text(Text(row.id, row.colour), left + 44, cy, 30)
            self._text(Text(row.name, row.colour), left + 220, cy, 30, max_w=right - left - 240)
        if v.empty is not None:
            self._text(v.empty, x + w / 2, ry + ROWS_PER_PAGE * ROW_H / 2, 30, anchor="center")
        by = ry + ROWS_PER_PAGE * ROW_H + 16
        self._box((left, by, right - left, 74), BOX_EDGE_RGB if v.input.busy else None)
        cx = self._text(v.input.mode_word, left + 16, by + 37, 36) + 8
        cx = self._text(v.input.text, cx, by + 37, 36, max_w=right - cx - 40)
        if not v.input.busy:
            self._fill((cx + 4, by + 17, 3, 40), (*PALETTE[Colour.WHITE], 255))
        self._text(v.input.prompt, left + 4, by + 98, 24)
        fy = by + 124
        if v.feedback is not None:
            colour = PALETTE[v.feedback.colour]
            self._fill((left, fy, right - left, 60), (*colour, 26), radius=8)
            self._fill((left, fy, 6, 60), (*colour, 255), radius=3)
            self._wrapped(v.feedback, left + 24, fy + 30, 30, right - left - 40)
        self._rule(x + 24, y + h - 76, w - 48)
        self._keys(v, left, right, y + h - 38)

    # --- parts -------------------------------------------------------------------

    def _field(self, f: FieldView, x: float, y: float, w: float) -> None:
        self._text(f.label, x, y, 26)
        top = y + 24
        self._box((x, top, w, 66), PALETTE[Colour.BRIGHT_YELLOW] if f.focused else None)
        if f.masked:
            end = x + 20
            for _ in f.value.text[:40]:
                self._circle(PALETTE[f.value.colour], end + 8, top + 33, 7)
                end += 24
        else:
            end = self._text(f.value, x + 20, top + 33, 32, max_w=w - 44)
        if f.focused:
            self._fill((end + 4, top + 14, 3, 38), (*PALETTE[Colour.WHITE], 255))

    def _button(self, b: ButtonView, x: float, y: float, w: float) -> None:
        edge = PALETTE[Colour.BRIGHT_YELLOW] if b.focused else BOX_EDGE_RGB
        fill = (58, 54, 26, 255) if b.focused else (*BOX_RGB, 255)
        self._fill((x, y, w, 64), fill, radius=10)
        self._outline((x, y, w, 64), edge, 3 if b.focused else 2, radius=10)
        self._text(b.label, x + w / 2, y + 32, 30, anchor="center")

    def _keys(self, v: MenuView, left: float, right: float, cy: float) -> None:
        slot = (right - left) / max(1, len(v.function_keys))
        for i, k in enumerate(v.function_keys):
            kx = left + i * slot
            kw = self._measure(k.key.text, 22) + 24
            self._outline((kx, cy - 19, kw, 38), PALETTE[k.key.colour], 2, radius=7)
            self._text(k.key, kx + kw / 2, cy, 22, anchor="center")
            self._text(k.label, kx + kw + 12, cy, 26)

    def _badge(self, t: Text, x: float, cy: float) -> float:
        tw = self._measure(t.text, 24)
        colour = PALETTE[t.colour]
        self._fill((x, cy - 20, tw + 32, 40), (*colour, 40), radius=20)
        self._outline((x, cy - 20, tw + 32, 40), colour, 2, radius=20)
        self._text(t, x + 16, cy, 24)
        return x + tw + 32

    def _swatch(self, colour: Colour, x: float, cy: float) -> None:
        self._fill((x, cy - 8, 16, 16), (*PALETTE[colour], 255), radius=4)

    def _wrapped(self, t: Text, x: float, cy: float, size: int, max_w: float) -> None:
        """One line, or two smaller ones when the text is long (a push summary)."""
        if self._measure(t.text, size) <= max_w:
            self._text(t, x, cy, size)
            return
        small = size - 6
        cut = len(t.text)
        while cut > 1 and self._measure(t.text[:cut], small) > max_w:
            cut -= 1
        space = t.text.rfind(" ", 0, cut)
        cut = space + 1 if space > 0 else cut
        self._text(Text(t.text[:cut].rstrip(), t.colour), x, cy - 15, small)
        self._text(Text(t.text[cut:], t.colour), x, cy + 17, small, max_w=max_w)

    # --- primitives (base coordinates; scaled here) -----------------------------------

    def _px(self, v: float) -> int:
        return round(v * self._scale)

    def _rect(self, r: Sequence[float]) -> pygame.Rect:
        x, y, w, h = r
        return pygame.Rect(self._ox + self._px(x), self._oy + self._px(y), self._px(w), self._px(h))

    def _panel(self, r: tuple[int, int, int, int]) -> None:
        rect = self._rect(r)
        key = (rect.w, rect.h, 0)
        panel = self._panels.get(key)
        if panel is None:
            panel = pygame.Surface(rect.size, pygame.SRCALPHA)
            radius = self._px(18)
            pygame.draw.rect(panel, PANEL_RGBA, panel.get_rect(), border_radius=radius)
            pygame.draw.rect(panel, (*RULE_RGB, 255), panel.get_rect(), 1, border_radius=radius)
            self._panels[key] = panel
        self._surface.blit(panel, rect)

    def _fill(
        self, r: Sequence[float], rgba: tuple[int, ...], radius: int = 0, top_only: bool = False
    ) -> None:
        rect = self._rect(r)
        if rect.w <= 0 or rect.h <= 0:
            return
        rad = self._px(radius)
        corners = {"border_bottom_left_radius": 0, "border_bottom_right_radius": 0}
        if len(rgba) == 4 and rgba[3] < 255:
            key = (rect.w, rect.h, rad, *rgba)
            layer = self._layers.get(key)
            if layer is None:
                layer = pygame.Surface(rect.size, pygame.SRCALPHA)
                pygame.draw.rect(layer, rgba, layer.get_rect(), border_radius=rad)
                if len(self._layers) > 256:
                    self._layers.clear()
                self._layers[key] = layer
            self._surface.blit(layer, rect)
        elif top_only:
            pygame.draw.rect(self._surface, rgba[:3], rect, border_radius=rad, **corners)
        else:
            pygame.draw.rect(self._surface, rgba[:3], rect, border_radius=rad)

    def _outline(self, r: Sequence[float], rgb: RGB, width: int, radius: int = 0) -> None:
        width = max(1, self._px(width))
        pygame.draw.rect(self._surface, rgb, self._rect(r), width, border_radius=self._px(radius))

    def _box(self, r: Sequence[float], edge: RGB | None) -> None:
        self._fill(r, (*BOX_RGB, 255), radius=8)
        self._outline(r, edge or BOX_EDGE_RGB, 3 if edge else 1, radius=8)

    def _rule(self, x: float, y: float, w: float) -> None:
        self._fill((x, y, w, 1.5), (*RULE_RGB, 255))

    def _circle(self, rgb: RGB, x: float, y: float, r: float) -> None:
        centre = (self._ox + self._px(x), self._oy + self._px(y))
        pygame.draw.circle(self._surface, rgb, centre, max(1, self._px(r)))

    def _font(self, size: int) -> tuple[pygame.freetype.Font, int]:
        px = max(8, self._px(size))
        return self.fonts.get(px), px

    def _measure(self, text: str, size: int) -> float:
        """Advance width in base units (ink boxes would cut fullwidth brackets short)."""
        if not text or not self._scale:
            return 0.0
        font, px = self._font(size)
        key = (text, px)
        width = self._widths.get(key)
        if width is None:
            metrics = font.get_metrics(text)
            width = sum(m[4] for m in metrics if m is not None)
            if len(self._widths) > 4096:
                self._widths.clear()
            self._widths[key] = width
        return width / self._scale

    def _text(
        self, t: Text, x: float, cy: float, size: int, anchor: str = "left",
        max_w: float | None = None,
    ) -> float:
        """Draw `t` vertically centred on `cy`; returns the x (base units) where it ends."""
        text = t.text
        if max_w is not None:
            text = self._fit(text, size, max_w)
        if not text:
            return x
        font, px = self._font(size)
        width = self._measure(text, size)
        left = {"left": x, "center": x - width / 2, "right": x - width}[anchor]
        baseline = self._oy + self._px(cy) + round(px * 0.36)
        glyphs, at = self._glyphs(font, px, text, t.colour)
        self._surface.blit(glyphs, (self._ox + self._px(left) + at.x, baseline - at.y))
        return left + width if anchor != "right" else left

    def _glyphs(
        self, font: pygame.freetype.Font, px: int, text: str, colour: Colour
    ) -> tuple[pygame.Surface, pygame.Rect]:
        """Rendered text, cached: freetype rendering costs far more than blitting the result."""
        key = (text, px, colour)
        hit = self._rendered.get(key)
        if hit is None:
            hit = font.render(text, PALETTE[colour])
            if len(self._rendered) > 1024:
                self._rendered.clear()
            self._rendered[key] = hit
        return hit

    def _fit(self, text: str, size: int, max_w: float) -> str:
        if self._measure(text, size) <= max_w:
            return text
        while text and self._measure(text + "…", size) > max_w:
            text = text[:-1]
        return text + "…" if text else ""


def _gradient(surface: pygame.Surface) -> None:
    """A neutral stand-in for the video picture."""
    strip = pygame.Surface((1, 2))
    strip.set_at((0, 0), VIDEO_TOP)
    strip.set_at((0, 1), VIDEO_BOTTOM)
    surface.blit(pygame.transform.smoothscale(strip, surface.get_size()), (0, 0))


def render_to_png(
    model: ScreenModel,
    path: str | Path,
    size: tuple[int, int] = (BASE_W, BASE_H),
    background: pygame.Surface | None = None,
    renderer: Renderer | None = None,
) -> None:
    """Render `model` at `size` and save it as a PNG (screenshots, docs, tests)."""
    surface = pygame.Surface(size)
    (renderer or Renderer()).draw(model, surface, background)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pygame.image.save(surface, str(path))
