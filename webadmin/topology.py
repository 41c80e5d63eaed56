"""The control-room file (docs/CONFIG_FORMAT.md): schema, parsing and reference checks. Pure.

One YAML format serves three purposes: the lab's topology (``examples/control-room.yaml``),
``kvm-admin import``, and ``kvm-admin export`` backups. ``parse(data)`` validates a document
as loaded by ``kvm_protocol.yamlconf.load_yaml`` (structure, and everything that can be
checked inside the file); ``check_references(cfg, known)`` checks what it names against the
devices, users and groups that will exist (the file's own for a standalone file, the file's
plus the database's for a merging import). Storing is ``webadmin.topology_db``.

    cfg = load(Path("examples/control-room.yaml"))      # parse + standalone references
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kvm_protocol.keys import KeySyntaxError, sequence_events
from kvm_protocol.yamlconf import (
    Anything,
    Bool,
    Check,
    ConfigError,
    Enum,
    Int,
    Invalid,
    ListOf,
    MapOf,
    Maybe,
    Option,
    Problem,
    Section,
    Str,
    Validator,
    format_path,
    load_yaml,
    show,
    validate,
)
from webadmin.engine import valid_hotkey_key

Kind = Literal["tx", "rx"]
SCOPES = ("view", "push", "fetch", "login")
ACCESS = ("control", "view-only")
ROLES = ("admin", "operator")
LANGS = ("zh_CN", "en")
MAX_HEADS = 4
MAX_SCREENS = 8
MAX_WALL_SIDE = 16
MAX_WALL_TILES = 64
SCOPE_KIND: dict[str, Kind] = {"view": "tx", "push": "rx", "fetch": "rx", "login": "rx"}

_ID = re.compile(r"[0-9]{4}")
_RANGE = re.compile(r"([0-9]{4})\s*-\s*([0-9]{4})")


def kind_of(device_id: str) -> Kind | None:
    """``tx`` for 0001-4999, ``rx`` for 5001-9999, None for anything else."""
    if not _ID.fullmatch(device_id):
        return None
    n = int(device_id)
    return "tx" if 1 <= n <= 4999 else "rx" if 5001 <= n <= 9999 else None


def _id_text(value: object) -> str:
    # An unquoted 5001 is an int; an unquoted 0001 stays a string (yamlconf's loader).
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    if not isinstance(value, str):
        raise Invalid(f"{show(value)} is not a device ID (4 digits, e.g. '0001' or '5001')")
    return value.strip()


class DeviceId(Validator[str]):
    """A 4-digit ID, of `kind` if given: Tx 0001-4999, Rx 5001-9999."""

    def __init__(self, kind: Kind | None = None) -> None:
        self.kind = kind

    def convert(self, value: object) -> str:
        text = _id_text(value)
        kind = kind_of(text)
        if kind is None or (self.kind is not None and kind != self.kind):
            what = {"tx": "a Tx ID (0001-4999)", "rx": "an Rx ID (5001-9999)", None:
                    "a device ID (Tx 0001-4999, Rx 5001-9999)"}[self.kind]
            raise Invalid(f"{show(value)} is not {what}")
        return text


class DeviceSpec(Validator[str]):
    """A device ID or an inclusive range of one kind, ``0001-0010``; normalised."""

    def convert(self, value: object) -> str:
        text = _id_text(value)
        m = _RANGE.fullmatch(text)
        if m is None:
            return DeviceId().convert(text)
        lo, hi = m.group(1), m.group(2)
        kinds = kind_of(lo), kind_of(hi)
        if None in kinds or kinds[0] != kinds[1]:
            raise Invalid(f"{show(value)} is not a range of Tx IDs or of Rx IDs")
        if lo > hi:
            raise Invalid(f"{show(value)}: the range starts after it ends")
        return f"{lo}-{hi}"


def spec_kind(spec: str) -> Kind:
    """The kind of the devices a normalised spec (ID or range) names."""
    kind = kind_of(spec[:4])
    assert kind is not None
    return kind


def spec_bounds(spec: str) -> tuple[str, str]:
    return (spec[:4], spec[5:]) if len(spec) == 9 else (spec, spec)


def expand(spec: str, existing: Iterable[str]) -> list[str]:
    """The existing device IDs a spec names, sorted (a range names the ones inside it)."""
    lo, hi = spec_bounds(spec)
    return sorted(d for d in existing if lo <= d <= hi and len(d) == 4)


def compress(ids: Iterable[str]) -> list[str]:
    """Sorted IDs with runs of 3+ consecutive numbers written as ranges (for exports)."""
    out: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if len(run) >= 3:
            out.append(f"{run[0]:04d}-{run[-1]:04d}")
        else:
            out.extend(f"{n:04d}" for n in run)
        run.clear()

    for n in sorted({int(i) for i in ids}):
        if run and n != run[-1] + 1:
            flush()
        run.append(n)
    flush()
    return out


# --- the configuration, as parsed ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceConf:
    id: str
    name: str
    heads: int
    serial: str | None
    credential_hash: str | None        # backups only: SHA-256 hex of the device's secret
    sim: Mapping[str, Any] | None      # simulator hints; the server ignores them
    kind: Kind = "tx"


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

    def __post_init__(self) -> None:
        if self.rows * self.cols > MAX_WALL_TILES:
            raise Invalid(f"{self.rows}×{self.cols} is more than {MAX_WALL_TILES} tiles", "rows")
        if len(self.tiles) != self.rows * self.cols:
            raise Invalid(
                f"needs rows × cols = {self.rows * self.cols} Rx IDs, got {len(self.tiles)}",
                "tiles",
            )


@dataclass(frozen=True, slots=True)
class DeviceGroupConf:
    name: str
    devices: tuple[str, ...]           # IDs and ranges


@dataclass(frozen=True, slots=True)
class UserConf:
    name: str
    role: str
    password: str | None               # plain: examples and first imports only
    password_hash: str | None          # argon2: backups
    enabled: bool
    lang: str
    groups: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.password is not None and self.password_hash is not None:
            raise Invalid("give password or password_hash, not both", "password_hash")


@dataclass(frozen=True, slots=True)
class GrantConf:
    scope: str
    access: str
    user: str | None
    group: str | None
    devices: tuple[str, ...]           # IDs and ranges
    device_groups: tuple[str, ...]

    def __post_init__(self) -> None:
        if (self.user is None) == (self.group is None):
            raise Invalid("give exactly one of user or group")
        if self.access != "control" and self.scope != "view":
            raise Invalid("access view-only applies to view grants only", "access")
        if not self.devices and not self.device_groups:
            raise Invalid("names no devices: give devices and/or device_groups")
        want = SCOPE_KIND[self.scope]
        for i, spec in enumerate(self.devices):
            if spec_kind(spec) != want:
                raise Invalid(f"{spec} is not {'a Tx' if want == 'tx' else 'an Rx'}: "
                              f"{self.scope} grants name {want.capitalize()}", "devices", i)


@dataclass(frozen=True, slots=True)
class HotkeyConf:
    key: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SettingsConf:
    """OSD settings; None = not given (a merging import leaves it as it is)."""

    chord: str | None = None
    chord_window_ms: int | None = None
    lang: str | None = None
    auto_close_ms: int | None = None
    idle_close_s: int | None = None
    idle_logout_s: int | None = None

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SETTINGS_KEYS if getattr(self, k) is not None}


SETTINGS_KEYS = ("chord", "chord_window_ms", "lang", "auto_close_ms", "idle_close_s",
                 "idle_logout_s")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    tx: tuple[DeviceConf, ...] = ()
    rx: tuple[DeviceConf, ...] = ()
    seats: tuple[SeatConf, ...] = ()
    walls: tuple[WallConf, ...] = ()
    user_groups: tuple[str, ...] = ()
    device_groups: tuple[DeviceGroupConf, ...] = ()
    users: tuple[UserConf, ...] = ()
    grants: tuple[GrantConf, ...] = ()
    hotkeys: tuple[HotkeyConf, ...] = ()
    settings: SettingsConf = field(default_factory=SettingsConf)

    @property
    def devices(self) -> tuple[DeviceConf, ...]:
        return self.tx + self.rx


# --- schema ------------------------------------------------------------------------------


def _chord(value: str) -> str:
    try:
        sequence_events(value)
    except KeySyntaxError as e:
        raise Invalid(f"{show(value)} is not a key sequence like 'Shift+O Shift+O': {e}") from None
    return value


class HotkeyKey(Validator[str]):
    """SPEC 2.1: 1-16 of A-Z a-z 0-9 - _, at least one non-digit (never an ID), not ``all``."""

    def convert(self, value: object) -> str:
        if not isinstance(value, str) or not valid_hotkey_key(value):
            raise Invalid(f"{show(value)} is not a hotkey: 1-16 of A-Z a-z 0-9 - _ with at "
                          "least one non-digit, not 'all' (quote keys like yes, no, on, off)")
        return value


class Password(Validator[str]):
    """6-128 characters, no control characters; errors never quote the value."""

    PATTERN = re.compile(r"[^\x00-\x1f\x7f]{6,128}")

    def convert(self, value: object) -> str:
        if not isinstance(value, str):
            raise Invalid("expected a string (quote passwords made of digits: '123456')")
        if not self.PATTERN.fullmatch(value):
            raise Invalid(f"a password has 6-128 characters and no control characters "
                          f"(this one has {len(value)})")
        return value


PASSWORD = Password()
NAME = Str(r"[^\x00-\x1f\x7f]{1,64}", what="a name of 1-64 characters")
USER_NAME = Str(r"[A-Za-z0-9_.@-]{1,64}", what="a user name (1-64 of A-Z a-z 0-9 _ . @ -)")
SERIAL = Str(r"[\x21-\x7e]{1,64}", what="a serial (1-64 printable ASCII, no spaces)")
PASSWORD_HASH = Str(r"\$argon2(id|i|d)\$[!-~]{10,250}", what="an argon2 hash ($argon2id$...)")
SECRET_HASH = Str(r"[0-9a-f]{64}", what="a SHA-256 hex digest (64 lowercase hex digits)")


def _device(kind: Kind) -> Section[DeviceConf]:
    def make(**kw: Any) -> DeviceConf:
        return DeviceConf(kind=kind, **kw)

    return Section({
        "id": DeviceId(kind),
        "name": Option(NAME, default=""),
        "heads": Option(Int(1, MAX_HEADS), default=1),
        "serial": Option(Maybe(SERIAL), default=None),
        "credential_hash": Option(Maybe(SECRET_HASH), default=None),
        "sim": Option(Maybe(MapOf(Str(), Anything())), default=None),
    }, into=make)


def _room(hotkeys: dict[str, tuple[str, ...]], **kw: Any) -> RoomConfig:
    return RoomConfig(hotkeys=tuple(HotkeyConf(k, t) for k, t in hotkeys.items()), **kw)


_NAMES = ListOf(NAME, unique=True)
SEAT: Section[SeatConf] = Section({
    "name": NAME,
    "screens": ListOf(DeviceId("rx"), min_len=1, max_len=MAX_SCREENS, unique=True),
}, into=SeatConf)
WALL: Section[WallConf] = Section({
    "name": NAME,
    "rows": Int(1, MAX_WALL_SIDE),
    "cols": Int(1, MAX_WALL_SIDE),
    "tiles": ListOf(DeviceId("rx"), min_len=1, unique=True),
    "splice": Option(Bool(), default=False),
}, into=WallConf)
DEVICE_GROUP: Section[DeviceGroupConf] = Section({
    "name": NAME,
    "devices": Option(ListOf(DeviceSpec(), unique=True), default=()),
}, into=DeviceGroupConf)
USER: Section[UserConf] = Section({
    "name": USER_NAME,
    "role": Option(Enum(*ROLES), default="operator"),
    "password": Option(Maybe(PASSWORD), default=None),
    "password_hash": Option(Maybe(PASSWORD_HASH), default=None),
    "enabled": Option(Bool(), default=True),
    "lang": Option(Enum(*LANGS), default="zh_CN"),
    "groups": Option(_NAMES, default=()),
}, into=UserConf)
GRANT: Section[GrantConf] = Section({
    "user": Option(Maybe(USER_NAME), default=None),
    "group": Option(Maybe(NAME), default=None),
    "scope": Enum(*SCOPES),
    "access": Option(Enum(*ACCESS), default="control"),
    "devices": Option(ListOf(DeviceSpec(), unique=True), default=()),
    "device_groups": Option(_NAMES, default=()),
}, into=GrantConf)
HOTKEY_TARGETS = ListOf(DeviceId(), min_len=1, unique=True)
SETTINGS: Section[SettingsConf] = Section({
    "chord": Option(Maybe(Check(Str(max_len=64), _chord)), default=None),
    "chord_window_ms": Option(Maybe(Int(100, 5000)), default=None),
    "lang": Option(Maybe(Enum(*LANGS)), default=None),
    "auto_close_ms": Option(Maybe(Int(0, 60000)), default=None),
    "idle_close_s": Option(Maybe(Int(0, 86400)), default=None),
    "idle_logout_s": Option(Maybe(Int(0, 86400)), default=None),
}, into=SettingsConf)
SCHEMA: Section[RoomConfig] = Section({
    "tx": Option(ListOf(_device("tx")), default=()),
    "rx": Option(ListOf(_device("rx")), default=()),
    "seats": Option(ListOf(SEAT), default=()),
    "walls": Option(ListOf(WALL), default=()),
    "user_groups": Option(_NAMES, default=()),
    "device_groups": Option(ListOf(DEVICE_GROUP), default=()),
    "users": Option(ListOf(USER), default=()),
    "grants": Option(ListOf(GRANT), default=()),
    "hotkeys": Option(MapOf(HotkeyKey(), HOTKEY_TARGETS), default={}),
    "settings": Option(SETTINGS, default=SettingsConf()),
}, into=_room)


# --- checks inside the file --------------------------------------------------------------


def _dupes(problems: list[Problem], section: str, names: Iterable[str], what: str,
           fold: bool = False) -> None:
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        key = name.lower() if fold else name
        if key in seen:
            same = "" if seen[key] == name else f" (same as {seen[key]!r}: case does not count)"
            problems.append(Problem(f"{section}[{i}]", f"{what} {name!r} is listed twice{same}"))
        seen.setdefault(key, name)


def inner_problems(cfg: RoomConfig) -> list[Problem]:
    """Uniqueness and membership rules that need nothing but the file."""
    p: list[Problem] = []
    for section, devices in (("tx", cfg.tx), ("rx", cfg.rx)):
        _dupes(p, section, (d.id for d in devices), "ID")
    serials: dict[str, str] = {}
    for section, devices in (("tx", cfg.tx), ("rx", cfg.rx)):
        for i, d in enumerate(devices):
            if d.serial is None:
                continue
            if d.serial in serials:
                p.append(Problem(f"{section}[{i}].serial",
                                 f"{d.serial!r} is also the serial of {serials[d.serial]}"))
            serials.setdefault(d.serial, d.id)
    for section, items in (("seats", cfg.seats), ("walls", cfg.walls),
                           ("device_groups", cfg.device_groups), ("users", cfg.users)):
        _dupes(p, section, (x.name for x in items), "name")
    for section, attr in (("seats", "screens"), ("walls", "tiles")):
        owner: dict[str, str] = {}
        for i, item in enumerate(getattr(cfg, section)):
            for j, rx in enumerate(getattr(item, attr)):
                if rx in owner:
                    p.append(Problem(f"{section}[{i}].{attr}[{j}]",
                                     f"Rx {rx} is already in {owner[rx]!r}"))
                owner.setdefault(rx, item.name)
    for i, hk in enumerate(cfg.hotkeys):
        kinds = {kind_of(t) for t in hk.targets}
        if len(kinds) > 1:
            p.append(Problem(format_path(("hotkeys", hk.key)),
                             "mixes Tx and Rx; a hotkey names only Tx or only Rx"))
        for prev in cfg.hotkeys[:i]:
            if prev.key.lower() == hk.key.lower():
                p.append(Problem(format_path(("hotkeys", hk.key)),
                                 f"same hotkey as {prev.key!r} (case does not count)"))
    return p


# --- references --------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """What a configuration may name: devices (ID → kind), users, user and device groups."""

    devices: Mapping[str, Kind]
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    device_groups: frozenset[str] = frozenset()

    @staticmethod
    def of(cfg: RoomConfig) -> Known:
        """What a standalone file defines itself."""
        return Known(
            devices={d.id: d.kind for d in cfg.devices},
            users=frozenset(u.name for u in cfg.users),
            user_groups=frozenset(cfg.user_groups),
            device_groups=frozenset(g.name for g in cfg.device_groups),
        )

    def merged(self, other: Known) -> Known:
        return Known(
            devices={**other.devices, **self.devices},
            users=self.users | other.users,
            user_groups=self.user_groups | other.user_groups,
            device_groups=self.device_groups | other.device_groups,
        )


def _spec_problem(spec: str, known: Known, kind: Kind | None) -> str | None:
    lo, hi = spec_bounds(spec)
    if lo == hi:
        have = known.devices.get(spec)
        if have is None:
            return f"no device {spec}"
        if kind is not None and have != kind:
            return f"{spec} is {'a Tx' if have == 'tx' else 'an Rx'}, not {kind.capitalize()}"
        return None
    if not expand(spec, known.devices):
        return f"no device in {spec}"
    return None


def check_references(cfg: RoomConfig, known: Known) -> list[Problem]:
    """Every device, user and group the file names must be in `known`."""
    p: list[Problem] = []

    def need(path: tuple[str | int, ...], spec: str, kind: Kind | None) -> None:
        problem = _spec_problem(spec, known, kind)
        if problem:
            p.append(Problem(format_path(path), problem))

    for section, attr in (("seats", "screens"), ("walls", "tiles")):
        for i, item in enumerate(getattr(cfg, section)):
            for j, rx in enumerate(getattr(item, attr)):
                need((section, i, attr, j), rx, "rx")
    for i, g in enumerate(cfg.device_groups):
        for j, spec in enumerate(g.devices):
            need(("device_groups", i, "devices", j), spec, None)
    for i, u in enumerate(cfg.users):
        for j, group in enumerate(u.groups):
            if group not in known.user_groups:
                p.append(Problem(f"users[{i}].groups[{j}]", f"no user group {group!r}"))
    for i, gr in enumerate(cfg.grants):
        if gr.user is not None and gr.user not in known.users:
            p.append(Problem(f"grants[{i}].user", f"no user {gr.user!r}"))
        if gr.group is not None and gr.group not in known.user_groups:
            p.append(Problem(f"grants[{i}].group", f"no user group {gr.group!r}"))
        for j, spec in enumerate(gr.devices):
            need(("grants", i, "devices", j), spec, SCOPE_KIND[gr.scope])
        for j, name in enumerate(gr.device_groups):
            if name not in known.device_groups:
                p.append(Problem(f"grants[{i}].device_groups[{j}]", f"no device group {name!r}"))
    for hk in cfg.hotkeys:
        for j, target in enumerate(hk.targets):
            need(("hotkeys", hk.key, j), target, None)
    return p


def parse(data: object) -> RoomConfig:
    """Validate a loaded document (``None``, an empty file, is an empty configuration)."""
    cfg = validate(SCHEMA, {} if data is None else data)
    problems = inner_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load(source: Path | str) -> RoomConfig:
    """Read, parse and check a standalone file (every reference resolved inside it)."""
    cfg = parse(load_yaml(source))
    problems = check_references(cfg, Known.of(cfg))
    if problems:
        raise ConfigError(problems)
    return cfg


def sim_document(cfg: RoomConfig) -> dict[str, Any]:
    """The part of the file the simulator needs, in ``firmware_sim.config``'s format:
    devices with their ``sim:`` hints merged in, seats and walls."""

    def device(d: DeviceConf) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": d.id, "heads": d.heads}
        if d.kind == "tx" and d.name:      # no name: the simulator names the Tx itself
            doc["name"] = d.name
        if d.serial is not None:
            doc["serial"] = d.serial
        return doc | dict(d.sim or {})

    return {
        "tx": [device(d) for d in cfg.tx],
        "rx": [device(d) for d in cfg.rx],
        "seats": [{"name": s.name, "screens": list(s.screens)} for s in cfg.seats],
        "walls": [{"name": w.name, "rows": w.rows, "cols": w.cols, "tiles": list(w.tiles),
                   "splice": w.splice} for w in cfg.walls],
    }
