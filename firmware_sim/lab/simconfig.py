"""The control-room topology (docs/CONFIG_FORMAT.md) translated into the simulator's config.

The topology is parsed and validated by `webadmin.topology` (one definition); this
module only picks what the simulated hardware needs: devices with their serials and
heads, seats, walls, and the `sim:` hints (no video, powered off, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_sim.config import default_serial, parse_config
from kvm_protocol.yamlconf import ConfigError


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


def translate(room: Any) -> LabTopology:
    """The simulator config for a parsed `webadmin.topology.RoomConfig`, checked by the sim."""
    from webadmin.topology import sim_document

    sim = sim_document(room)
    try:
        parsed = parse_config(sim)
    except ConfigError as exc:
        raise TopologyError(f"the simulator cannot run this topology: {exc}") from None
    return LabTopology(
        tx=[DeviceRef(d.id, d.serial or default_serial("tx", d.id), d.heads) for d in parsed.tx],
        rx=[DeviceRef(d.id, d.serial or default_serial("rx", d.id), d.heads) for d in parsed.rx],
        sim_config=sim,
    )


def load_topology(path: Path) -> LabTopology:
    """Parse `path` with `webadmin.topology` and translate it; TopologyError on any problem."""
    from webadmin import topology

    try:
        room = topology.load(path)
    except ConfigError as exc:
        raise TopologyError(str(exc)) from None
    except OSError as exc:
        raise TopologyError(f"cannot read it: {exc}") from None
    if not room.rx:
        raise TopologyError("it has no Rx: the lab needs at least one receiver")
    return translate(room)
