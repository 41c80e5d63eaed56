"""The simulator's configuration: schema, validation with key-path errors, and building the fabric.

    cfg = load_config(Path("sim.yaml"))       # or parse_config({...}) for a dict
    fabric = build_fabric(cfg)

Every problem names its key path (``tx[2].heads: 7 is not in 1..4``); all problems are
reported together in one ``kvm_protocol.yamlconf.ConfigError``. The schema is in
docs/SIMULATOR.md, "Configuration".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_sim.fabric import Fabric
from firmware_sim.model import Head, Rx, Tx, Wall
from firmware_sim.seat import MAX_SCREENS, Seat
from kvm_protocol.messages import MAX_HEADS
from kvm_protocol.yamlconf import (
    Bool,
    Check,
    ConfigError,
    Int,
    Invalid,
    ListOf,
    Maybe,
    Option,
    Problem,
    Section,
    Str,
    Validator,
    load_yaml,
    validate,
)

TX_FIRMWARE = "TX-FW 2.4.1-sim"
RX_FIRMWARE = "RX-FW 2.4.1-sim"
MAX_WALL_TILES = 64
# A Unix socket's path is at most 107 bytes (sun_path); the device's ID and a "/" follow.
UNIX_DIR_MAX = 100
DEFAULT_LATENCY_MS = (0.0, 20.0)

__all__ = ["ConfigError", "SimConfig", "build_fabric", "load_config", "parse_config"]

_SERIAL = Str(r"[\x21-\x7e]{1,32}", what="1-32 printable ASCII characters without spaces")
_FIRMWARE = Str(r"[\x20-\x7e]{0,32}", what="0-32 printable ASCII characters")


def _tx_id(value: str) -> str:
    if not (len(value) == 4 and value.isdigit() and "0001" <= value <= "4999"):
        raise Invalid(f"{value!r} is not a Tx ID (4 digits, 0001-4999)")
    return value


def _rx_id(value: str) -> str:
    if not (len(value) == 4 and value.isdigit() and "5001" <= value <= "9999"):
        raise Invalid(f"{value!r} is not an Rx ID (4 digits, 5001-9999)")
    return value


class _Id(Validator[str]):
    """A device ID written as a string ("0001") or, unambiguously, as an integer (5001)."""

    def convert(self, value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
            return str(value)
        if not isinstance(value, str):
            raise Invalid(f"expected a 4-digit ID in quotes, e.g. \"0001\", got {value!r}")
        return value.strip()


def _power(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise Invalid(f"expected true/false or on/off, got {value!r}")


class _OnOff(Validator[bool]):
    def convert(self, value: object) -> bool:
        return _power(value)


class _Stream(Validator[str]):
    """``ok`` (or true) / ``fault`` (or false): whether the Tx can stream at all."""

    def convert(self, value: object) -> str:
        if isinstance(value, bool):
            return "ok" if value else "fault"
        if value in ("ok", "fault"):
            return str(value)
        raise Invalid(f"expected ok or fault, got {value!r}")


class _Video(Validator[bool | tuple[bool, ...]]):
    """``true``/``false`` for every head, or a list with one boolean per head."""

    def convert(self, value: object) -> bool | tuple[bool, ...]:
        if isinstance(value, bool):
            return value
        if isinstance(value, list) and value and all(isinstance(v, bool) for v in value):
            return tuple(value)
        raise Invalid(f"expected true, false or a list of true/false per head, got {value!r}")


class _Latency(Validator[tuple[float, float]]):
    """Milliseconds: a number, or ``[low, high]`` for a uniform random delay."""

    def convert(self, value: object) -> tuple[float, float]:
        def ms(v: object) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 60000:
                raise Invalid(f"expected milliseconds 0..60000, got {v!r}")
            return float(v)

        if isinstance(value, list):
            if len(value) != 2:
                raise Invalid(f"expected [low, high], got {value!r}")
            lo, hi = ms(value[0]), ms(value[1])
            if lo > hi:
                raise Invalid(f"low {lo:g} is above high {hi:g}")
            return (lo, hi)
        v = ms(value)
        return (v, v)


@dataclass(frozen=True, slots=True)
class TxConf:
    id: str
    name: str
    heads: int
    video: bool | tuple[bool, ...]
    power: bool
    network: bool
    stream: str
    serial: str | None
    firmware: str


@dataclass(frozen=True, slots=True)
class RxConf:
    id: str
    heads: int
    power: bool
    network: bool
    serial: str | None
    firmware: str


@dataclass(frozen=True, slots=True)
class SeatConf:
    name: str
    screens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WallConf:
    name: str
    rows: int
    cols: int
    tiles: tuple[str, ...]
    splice: bool


@dataclass(frozen=True, slots=True)
class SimConfig:
    tx: tuple[TxConf, ...]
    rx: tuple[RxConf, ...]
    seats: tuple[SeatConf, ...]
    walls: tuple[WallConf, ...]
    latency_ms: tuple[float, float]
    seed: int
    base_port: int
    pty: bool
    unix_dir: str | None
    frame_size: tuple[int, int]


def _make_tx(**kw: Any) -> TxConf:
    conf = TxConf(**kw)
    if isinstance(conf.video, tuple) and len(conf.video) != conf.heads:
        raise Invalid(f"has {len(conf.video)} entries for {conf.heads} head(s)", "video")
    return conf


def _make_wall(**kw: Any) -> WallConf:
    conf = WallConf(**kw)
    if conf.rows * conf.cols > MAX_WALL_TILES:
        raise Invalid(f"{conf.rows}x{conf.cols} is more than {MAX_WALL_TILES} tiles", "rows")
    if len(conf.tiles) != conf.rows * conf.cols:
        raise Invalid(
            f"needs rows x cols = {conf.rows * conf.cols} Rx IDs, got {len(conf.tiles)}", "tiles"
        )
    return conf


def _frame_size(value: tuple[int, ...]) -> tuple[int, int]:
    if len(value) != 2:
        raise Invalid(f"expected [width, height], got {list(value)}")
    return (value[0], value[1])


_NAME = Str(r"[^\x00-\x1f]{1,64}", what="a name of 1-64 characters")

SCHEMA: Section[dict[str, Any]] = Section({
    "tx": Option(ListOf(Section({
        "id": Check(_Id(), _tx_id),
        "name": Option(Maybe(_NAME), default=None),
        "heads": Option(Int(1, MAX_HEADS), default=1),
        "video": Option(_Video(), default=True),
        "power": Option(_OnOff(), default=True),
        "network": Option(_OnOff(), default=True),
        "stream": Option(_Stream(), default="ok"),
        "serial": Option(Maybe(_SERIAL), default=None),
        "firmware": Option(_FIRMWARE, default=TX_FIRMWARE),
    }, into=_make_tx)), default=()),
    "rx": Option(ListOf(Section({
        "id": Check(_Id(), _rx_id),
        "heads": Option(Int(1, MAX_HEADS), default=1),
        "power": Option(_OnOff(), default=True),
        "network": Option(_OnOff(), default=True),
        "serial": Option(Maybe(_SERIAL), default=None),
        "firmware": Option(_FIRMWARE, default=RX_FIRMWARE),
    }, into=RxConf)), default=()),
    "seats": Option(ListOf(Section({
        "name": _NAME,
        "screens": ListOf(Check(_Id(), _rx_id), min_len=1, max_len=MAX_SCREENS, unique=True),
    }, into=SeatConf)), default=()),
    "walls": Option(ListOf(Section({
        "name": _NAME,
        "rows": Int(1, MAX_WALL_TILES),
        "cols": Int(1, MAX_WALL_TILES),
        "tiles": ListOf(Check(_Id(), _rx_id), min_len=1, unique=True),
        "splice": Option(Bool(), default=False),
    }, into=_make_wall)), default=()),
    "latency_ms": Option(_Latency(), default=DEFAULT_LATENCY_MS),
    "seed": Option(Int(0, 2**32 - 1), default=0),
    "base_port": Option(Int(0, 65535 - 9999), default=0),
    "pty": Option(Bool(), default=False),
    "unix_dir": Option(Maybe(Str(r"/[^\x00]*", what="an absolute directory path",
                                 max_len=UNIX_DIR_MAX)), default=None),
    "frame_size": Option(Check(ListOf(Int(64, 3840)), _frame_size), default=(960, 540)),
})


def _cross_checks(data: dict[str, Any]) -> list[Problem]:
    """Checks across sections: unique IDs and names, seats and walls naming known Rx."""
    problems: list[Problem] = []
    if data["unix_dir"] is not None and (data["pty"] or data["base_port"]):
        problems.append(Problem("unix_dir", "give either unix_dir, pty or base_port, not two"))
    for section in ("tx", "rx"):
        seen: set[str] = set()
        for i, dev in enumerate(data[section]):
            if dev.id in seen:
                problems.append(Problem(f"{section}[{i}].id", f"{dev.id} is listed twice"))
            seen.add(dev.id)
    serials: dict[str, str] = {}
    for section in ("tx", "rx"):
        for i, dev in enumerate(data[section]):
            serial = dev.serial or default_serial(section, dev.id)
            if serial in serials:
                problems.append(Problem(
                    f"{section}[{i}].serial", f"{serial} is also the serial of {serials[serial]}"
                ))
            serials[serial] = dev.id
    rx_ids = {r.id for r in data["rx"]}
    for section, attr in (("seats", "screens"), ("walls", "tiles")):
        names: set[str] = set()
        owner: dict[str, str] = {}
        for i, item in enumerate(data[section]):
            if item.name in names:
                problems.append(Problem(f"{section}[{i}].name", f"{item.name!r} is used twice"))
            names.add(item.name)
            if section == "seats" and item.name in rx_ids:
                problems.append(Problem(
                    f"seats[{i}].name", f"{item.name!r} is an Rx ID; name seats otherwise"
                ))
            for j, rx_id in enumerate(getattr(item, attr)):
                if rx_id not in rx_ids:
                    problems.append(Problem(f"{section}[{i}].{attr}[{j}]", f"no Rx {rx_id}"))
                elif rx_id in owner:
                    problems.append(Problem(
                        f"{section}[{i}].{attr}[{j}]", f"Rx {rx_id} is already in {owner[rx_id]!r}"
                    ))
                owner[rx_id] = item.name
    return problems


def default_serial(kind: str, dev_id: str) -> str:
    """``SIM-TX-0001`` / ``SIM-RX-5001``."""
    return f"SIM-{kind.upper()}-{dev_id}"


def parse_config(data: object) -> SimConfig:
    """Validate a config as loaded from YAML (or built as a dict); raises ``ConfigError``."""
    if data is None:
        data = {}
    checked = validate(SCHEMA, data)
    problems = _cross_checks(checked)
    if problems:
        raise ConfigError(problems)
    return SimConfig(**checked)


def load_config(path: Path) -> SimConfig:
    """Read and validate a YAML config file; raises ``ConfigError`` naming the file or key path."""
    return parse_config(load_yaml(path))


def build_fabric(cfg: SimConfig) -> Fabric:
    """A fresh fabric holding the devices, seats and walls of `cfg`."""
    txs = [
        Tx(
            id=t.id,
            serial=t.serial or default_serial("tx", t.id),
            name=t.name or f"TX-{t.id}",
            heads=t.heads,
            video=list(t.video) if isinstance(t.video, tuple) else [t.video] * t.heads,
            firmware=t.firmware,
            power=t.power,
            network=t.network,
            stream_ok=t.stream == "ok",
        )
        for t in cfg.tx
    ]
    rxs = [
        Rx(
            id=r.id,
            serial=r.serial or default_serial("rx", r.id),
            heads=[Head() for _ in range(r.heads)],
            firmware=r.firmware,
            power=r.power,
            network=r.network,
        )
        for r in cfg.rx
    ]
    seats = [Seat(s.name, list(s.screens)) for s in cfg.seats]
    walls = [Wall(w.name, w.rows, w.cols, list(w.tiles), w.splice) for w in cfg.walls]
    return Fabric(txs, rxs, seats, walls, latency_ms=cfg.latency_ms, seed=cfg.seed)
