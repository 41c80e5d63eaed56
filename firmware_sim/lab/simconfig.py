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


TX_HINTS = ("video", "power", "network", "stream", "firmware")
RX_HINTS = ("power", "network", "firmware")


def _device(dev: Any, hints: tuple[str, ...], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": dev.id, "heads": dev.heads}
    if dev.kind == "tx" and dev.name:
        out["name"] = dev.name
    out["serial"] = dev.serial or default_serial(dev.kind, dev.id)
    for key, value in (dev.sim or {}).items():
        if key not in hints:
            raise TopologyError(
                f"{path}.sim.{key}: not a simulator hint for a {dev.kind}; "
                f"known: {', '.join(hints)}"
            )
        out[key] = value
    return out


def translate(room: Any) -> LabTopology:
    """The simulator config (firmware_sim.config) for a parsed `webadmin.topology.RoomConfig`."""
    sim: dict[str, Any] = {
        "tx": [_device(d, TX_HINTS, f"tx[{i}]") for i, d in enumerate(room.tx)],
        "rx": [_device(d, RX_HINTS, f"rx[{i}]") for i, d in enumerate(room.rx)],
        "seats": [{"name": s.name, "screens": list(s.screens)} for s in room.seats],
        "walls": [
            {
                "name": w.name,
                "rows": w.rows,
                "cols": w.cols,
                "tiles": list(w.tiles),
                "splice": w.splice,
            }
            for w in room.walls
        ],
    }
    try:
        parse_config(sim)
    except ConfigError as exc:
        raise TopologyError(f"the simulator cannot run this topology: {exc}") from None
    return LabTopology(
        tx=[DeviceRef(d["id"], d["serial"], d["heads"]) for d in sim["tx"]],
        rx=[DeviceRef(d["id"], d["serial"], d["heads"]) for d in sim["rx"]],
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
