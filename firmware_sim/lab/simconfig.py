"""The control-room topology (docs/CONFIG_FORMAT.md) translated into the simulator's config.

The topology is parsed and validated by `webadmin.topology` (one definition); this
module only picks what the simulated hardware needs: devices with their serials and
heads, seats, walls, and the `sim:` hints (no video, powered off, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TopologyError(ValueError):
    """The topology file cannot be used; the message names the file's problem."""


@dataclass(frozen=True, slots=True)
class DeviceRef:
    id: str
    serial: str
    heads: int


@dataclass(frozen=True)
class LabTopology:
    """What the lab needs from a topology: its devices and the simulator's config."""

    tx: list[DeviceRef]
    rx: list[DeviceRef]
    sim_config: dict[str, Any] = field(default_factory=dict)


def load_topology(path: Path) -> LabTopology:
    """Parse `path` with `webadmin.topology` and translate it; TopologyError on any problem."""
    raise TopologyError(f"cannot read {path}: webadmin.topology is not available yet")
