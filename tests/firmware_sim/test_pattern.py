"""Test pictures: identify their Tx at a glance, a clear no-signal picture, wall splicing."""

from __future__ import annotations

import io
from pathlib import Path

import pygame

from firmware_sim.pattern import (
    FrameView,
    frame_png,
    id_hue,
    render_frame,
    render_no_signal,
    render_pattern,
)
from firmware_sim.simulator import Simulator
from kvm_protocol.messages import SwitchHead, SwitchResult
from kvm_protocol.session import LinkUp
from tests.firmware_sim.conftest import Host, room_config

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "sim"
SIZE = (480, 270)


def mean(surface: pygame.Surface, rect: pygame.Rect | None = None) -> tuple[float, float, float]:
    area = surface.subsurface(rect) if rect else surface
    c = pygame.transform.average_color(area)
    return (c[0], c[1], c[2])


def test_patterns_differ_by_id_and_head() -> None:
    a = render_pattern("0001", "Radar", 1, SIZE)
    b = render_pattern("0002", "Radar", 1, SIZE)
    a2 = render_pattern("0001", "Radar", 2, SIZE)
    bar = pygame.Rect(0, 0, SIZE[0] // 8, SIZE[1] // 5)      # the first colour bar
    assert max(abs(x - y) for x, y in zip(mean(a, bar), mean(b, bar), strict=True)) > 60
    assert pygame.image.tobytes(a, "RGB") != pygame.image.tobytes(a2, "RGB")
    assert render_pattern("0001", "Radar", 1, SIZE) is a              # cached
    assert abs(id_hue("0001") - id_hue("0002")) > 0.2


def test_pattern_is_bright_and_colourful_no_signal_is_dark() -> None:
    pattern = render_pattern("0007", "调度台", 1, SIZE)
    bars = mean(pattern, pygame.Rect(0, 0, SIZE[0], SIZE[1] // 5))
    assert sum(bars) / 3 > 120
    dark = render_no_signal(SIZE, "NO SIGNAL", "x")
    assert sum(mean(dark)) / 3 < 40
    off = render_frame(FrameView("5001", 1, False, None, 0, "", False), SIZE)
    assert sum(mean(off)) / 3 < 5


def test_splicing_wall_tiles_are_parts_of_one_picture() -> None:
    left = render_frame(FrameView("5011", 1, True, "0001", 1, "Radar", True, tile=(0, 0, 1, 2)),
                        SIZE)
    right = render_frame(FrameView("5012", 1, True, "0001", 1, "Radar", True, tile=(0, 1, 1, 2)),
                         SIZE)
    whole = render_pattern("0001", "Radar", 1, (SIZE[0] * 2, SIZE[1]))
    assert pygame.image.tobytes(left, "RGB") == pygame.image.tobytes(
        whole.subsurface(pygame.Rect(0, 0, *SIZE)), "RGB")
    assert pygame.image.tobytes(right, "RGB") == pygame.image.tobytes(
        whole.subsurface(pygame.Rect(SIZE[0], 0, *SIZE)), "RGB")


def test_simulator_frames_follow_the_routing_and_are_saved_for_a_look() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Simulator(room_config()) as sim:
        no_signal = sim.frame_png("5003", 1)
        for rx, tx in (("5003", "0001"), ("5011", "0002"), ("5012", "0002")):
            host = Host(sim.ports()[rx]["url"])
            host.wait_for(lambda e: isinstance(e, LinkUp))
            host.send(SwitchHead(1, tx, 1))
            host.received(SwitchResult)
        shown = sim.frame_png("5003", 1)
        tiles = [sim.frame_png(t, 1, (480, 270)) for t in ("5011", "5012")]
        sim.fault("0001", "stream-fault")
        lost = sim.frame_png("5003", 1)
    for name, data in (("no-signal.png", no_signal), ("pattern-0001.png", shown),
                       ("wall-tile-1.png", tiles[0]), ("wall-tile-2.png", tiles[1]),
                       ("stream-fault.png", lost)):
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        (ARTIFACTS / name).write_bytes(data)
    img = pygame.image.load(io.BytesIO(shown), "f.png")
    assert img.get_size() == (960, 540)                       # the configured default size
    assert shown != no_signal and lost != shown
    assert frame_png(FrameView("5003", 1, True, None, 0, "", False), SIZE)[:4] == b"\x89PNG"
