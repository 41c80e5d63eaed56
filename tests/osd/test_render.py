"""The pygame renderer: every screen draws, Chinese has real glyphs, pixels match references.

Screenshots go to test-artifacts/osd/. To regenerate the reference PNGs after an
intended change of the look: ``KVM_OSD_REGEN_REFERENCE=1 .venv/bin/pytest tests/osd/test_render.py``
(then look at them and commit them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pygame
import pytest

from kvm_protocol.results import TEXTS, ResultCode
from osd import events as ev
from osd.fonts import FontCache, cjk_font_path
from osd.model import Mode, ScreenModel
from osd.render import PALETTE, Renderer, render_to_png
from osd.view import LABELS
from tests.osd.seat import Seat

pytestmark = pytest.mark.usefixtures("sdl_dummy")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "osd"
REFERENCE = Path(__file__).with_name("reference")
REF_SIZE = (960, 540)
REGEN = os.environ.get("KVM_OSD_REGEN_REFERENCE") == "1"

ROWS = (
    ev.DeviceRow("0001", "调度大厅主屏", "grey"),
    ev.DeviceRow("0002", "Control PC 2", "yellow"),
    ev.DeviceRow("0003", "监控工作站-03", "red"),
    ev.DeviceRow("0004", "GIS 服务器", "grey"),
    ev.DeviceRow("0005", "视频会议终端", "grey"),
    ev.DeviceRow(
        "0006",
        "Engineering workstation 6 with a name far too long to fit in its column, cut short",
        "grey",
    ),
    ev.DeviceRow("0007", "备用机", "red"),
    ev.DeviceRow("0008", "8号机", "grey"),
    ev.DeviceRow("0009", "9号机", "grey"),
    ev.DeviceRow("0010", "10号机", "grey"),
)


def fake_video(size: tuple[int, int]) -> pygame.Surface:
    """A deterministic stand-in for the video picture: a desktop with windows."""
    w, h = size
    video = pygame.Surface(size)
    video.fill((36, 92, 140))
    pygame.draw.rect(video, (230, 230, 226), (w // 12, h // 10, w // 2, h // 2))
    pygame.draw.rect(video, (40, 40, 48), (w // 12, h // 10, w // 2, h // 24))
    pygame.draw.rect(video, (250, 250, 250), (w // 2, h // 3, w // 3, h // 2))
    pygame.draw.circle(video, (240, 170, 40), (w * 5 // 6, h // 6), h // 10)
    pygame.draw.rect(video, (20, 24, 30), (0, h - h // 20, w, h // 20))
    return video


def screens() -> dict[str, ScreenModel]:
    """The screens worth looking at, driven through the real state machine."""
    out: dict[str, ScreenModel] = {}
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("123456")
    out["login"] = seat.model
    seat.keys("Tab")
    out["login_button_focused"] = seat.model
    seat.keys("Enter")
    seat.event(ev.LoginResult(ResultCode.BAD_CREDENTIALS))
    out["login_bad_password"] = seat.model
    seat.type("123456")
    seat.keys("Enter")
    seat.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"))
    out["menu_loading"] = seat.model
    seat.event(ev.DeviceList(Mode.CONNECT, ROWS))
    seat.type("2")
    out["menu_connect_typing"] = seat.model
    seat.keys("Enter")
    seat.event(ev.ActionResult(Mode.CONNECT, ResultCode.CONNECTED))
    out["menu_connected"] = seat.model
    seat.keys("F2")
    seat.event(ev.DeviceList(Mode.PUSH, tuple(
        ev.DeviceRow(f"50{i:02d}", f"坐席 {i}", "red" if i == 3 else "grey") for i in range(2, 14)
    )))
    seat.keys("PageDown")
    seat.type("2,3,wall-east")
    seat.keys("Enter")
    failures = (("5003", ResultCode.OFFLINE), ("5011", ResultCode.OUT_OF_SCOPE),
                ("5012", ResultCode.SAME_SOURCE), ("5013", ResultCode.OUT_OF_SCOPE))
    seat.event(ev.ActionResult(Mode.PUSH, ResultCode.PUSH_PARTIAL, failures))
    seat.event(ev.SessionInfo("hxfj", keys_allowed=False))
    seat.event(ev.ServerStatus(False))
    out["menu_push_partial_view_only"] = seat.model
    en = Seat(ev.Settings(lang="en"))
    en.event(ev.NetworkStatus(False))
    out["login_en_network_down"] = en.model
    en.event(ev.NetworkStatus(True))
    en.login()
    en.keys("F3")
    en.event(ev.DeviceList(Mode.FETCH, (ev.DeviceRow("5002", "Seat B"),)))
    en.type("7")
    en.keys("Enter")
    en.event(ev.ActionResult(Mode.FETCH, ResultCode.OUT_OF_SCOPE))
    out["menu_en_fetch"] = en.model
    return out


SCREENS = screens()
REFERENCES = ["login", "menu_connected", "menu_push_partial_view_only", "menu_en_fetch"]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Renderer()


@pytest.mark.parametrize("name", list(SCREENS))
def test_every_screen_renders_at_full_hd(name: str, renderer: Renderer) -> None:
    path = ARTIFACTS / f"{name}.png"
    render_to_png(SCREENS[name], path, (1920, 1080), fake_video((1920, 1080)), renderer)
    shot = pygame.image.load(str(path))
    assert shot.get_size() == (1920, 1080)
    # The panel darkens the middle of the picture; the corners stay video.
    assert shot.get_at((960, 540))[:3] != fake_video((1920, 1080)).get_at((960, 540))[:3]
    assert shot.get_at((5, 5)) == fake_video((1920, 1080)).get_at((5, 5))


@pytest.mark.parametrize("size", [(1280, 720), (800, 600), (3840, 2160)])
def test_the_layout_scales_to_the_surface(size: tuple[int, int], renderer: Renderer) -> None:
    surface = pygame.Surface(size)
    renderer.draw(SCREENS["menu_connected"], surface, fake_video((1920, 1080)))
    pygame.image.save(surface, str(ARTIFACTS / f"menu_connected_{size[0]}x{size[1]}.png"))
    brown = PALETTE[SCREENS["menu_connected"].menu.title.colour]  # type: ignore[union-attr]
    found = _count_near(surface, brown)
    assert found > 0, "the brown title is drawn at every size"


def test_a_closed_model_draws_only_the_video(renderer: Renderer) -> None:
    closed = Seat()
    closed.login()
    closed.keys("Esc")
    surface = pygame.Surface((640, 360))
    video = fake_video((640, 360))
    renderer.draw(closed.model, surface, video)
    assert _mean_abs_diff(surface, video) == 0.0


def test_cjk_glyphs_are_real() -> None:
    font = FontCache().get(64)

    def bitmap(ch: str) -> bytes:
        surf, _ = font.render(ch, (255, 255, 255), (0, 0, 0))
        return pygame.image.tobytes(surf, "RGB")

    notdef = bitmap("\ue000")  # a private-use codepoint: the font's missing-glyph box
    glyphs = [bitmap(ch) for ch in "网络正常"]
    assert len(set(glyphs)) == 4, "four different characters, four different glyphs"
    assert notdef not in glyphs
    assert all(any(g) for g in glyphs), "each glyph has ink"
    assert cjk_font_path().suffix.lower() in (".otf", ".ttf", ".ttc")


def test_every_osd_text_has_glyphs_in_the_font() -> None:
    font = FontCache().get(32)
    texts = [t for pair in LABELS.values() for t in pair]
    texts += [t for per_lang in TEXTS.values() for t in per_lang.values()]
    texts += ["●…【】", "0123456789 abc ABC -_,"]
    missing = {ch for text in texts for ch, m in zip(text, font.get_metrics(text), strict=True)
               if m is None and not ch.isspace()}
    assert not missing, f"no glyph for {sorted(missing)}"


def test_many_renderers_share_nothing(renderer: Renderer) -> None:
    other = Renderer()
    a, b = pygame.Surface((480, 270)), pygame.Surface((480, 270))
    renderer.draw(SCREENS["login"], a)
    other.draw(SCREENS["login"], b)
    assert other.fonts is not renderer.fonts
    assert _mean_abs_diff(a, b) == 0.0


@pytest.mark.parametrize("name", REFERENCES)
def test_pixels_match_the_reference(name: str, renderer: Renderer) -> None:
    surface = pygame.Surface(REF_SIZE)
    renderer.draw(SCREENS[name], surface, fake_video(REF_SIZE))
    ref_path = REFERENCE / f"{name}.png"
    if REGEN:
        REFERENCE.mkdir(exist_ok=True)
        pygame.image.save(surface, str(ref_path))
    pygame.image.save(surface, str(ARTIFACTS / f"ref_{name}.png"))
    reference = pygame.image.load(str(ref_path))
    assert reference.get_size() == REF_SIZE
    assert _mean_abs_diff(surface, reference) < 1.0
    assert _strongly_different(surface, reference) < REF_SIZE[0] * REF_SIZE[1] // 2000


def test_the_comparison_notices_a_missing_line(renderer: Renderer) -> None:
    """The tolerance is not so loose that a lost status line would pass."""
    seat = Seat(network=False)
    without = pygame.Surface(REF_SIZE)
    renderer.draw(seat.model, without, fake_video(REF_SIZE))
    seat.event(ev.NetworkStatus(True))
    with_status = pygame.Surface(REF_SIZE)
    renderer.draw(seat.model, with_status, fake_video(REF_SIZE))
    assert _strongly_different(with_status, without) >= REF_SIZE[0] * REF_SIZE[1] // 2000


# --- pixel helpers (pygame only; numpy is not a dependency) ------------------------------

def _abs_diff(a: pygame.Surface, b: pygame.Surface) -> pygame.Surface:
    a, b = _rgb(a), _rgb(b)
    ab = a.copy()
    ab.blit(b, (0, 0), special_flags=pygame.BLEND_RGB_SUB)
    ba = b.copy()
    ba.blit(a, (0, 0), special_flags=pygame.BLEND_RGB_SUB)
    ab.blit(ba, (0, 0), special_flags=pygame.BLEND_RGB_ADD)
    return ab


def _rgb(surface: pygame.Surface) -> pygame.Surface:
    """The same picture in one 32-bit format, so that blends and thresholds compare alike."""
    out = pygame.Surface(surface.get_size(), 0, 32)
    out.blit(surface, (0, 0))
    return out


def _mean_abs_diff(a: pygame.Surface, b: pygame.Surface) -> float:
    r, g, bl, *_ = pygame.transform.average_color(_abs_diff(a, b))
    return (r + g + bl) / 3


def _strongly_different(a: pygame.Surface, b: pygame.Surface, level: int = 48) -> int:
    """Pixels where some channel differs by `level` or more."""
    diff = _abs_diff(a, b)
    w, h = diff.get_size()
    alike = pygame.transform.threshold(
        None, diff, (0, 0, 0), (level, level, level), set_behavior=0
    )
    return w * h - alike


def _count_near(surface: pygame.Surface, rgb: tuple[int, int, int], level: int = 24) -> int:
    return pygame.transform.threshold(
        None, _rgb(surface), rgb, (level, level, level), set_behavior=0
    )
