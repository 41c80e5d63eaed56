"""Shared fixtures: a small control room as a config dict, and its fabric."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from firmware_sim.config import build_fabric, parse_config
from firmware_sim.fabric import Fabric


def room_config(**overrides: Any) -> dict[str, Any]:
    """Three Tx, five Rx: a two-screen seat, a lone Rx, a 1x2 wall."""
    cfg: dict[str, Any] = {
        "latency_ms": 0,
        "tx": [
            {"id": "0001", "name": "Radar", "heads": 2},
            {"id": "0002", "name": "Weather", "heads": 1},
            {"id": "0003", "name": "CCTV", "heads": 4, "video": [True, False, True, True]},
        ],
        "rx": [
            {"id": "5001", "heads": 2},
            {"id": "5002"},
            {"id": "5003"},
            {"id": "5011"},
            {"id": "5012"},
        ],
        "seats": [{"name": "seat-A", "screens": ["5001", "5002"]}],
        "walls": [{"name": "wall-1", "rows": 1, "cols": 2, "tiles": ["5011", "5012"],
                   "splice": True}],
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def fabric() -> Fabric:
    return build_fabric(parse_config(room_config()))
