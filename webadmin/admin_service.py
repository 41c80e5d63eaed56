"""Admin operations shared by ``kvm-admin`` and the admin REST API (no Flask).

Each function takes the caller's session, checks its input, changes the database, writes an
audit entry, and does not commit. Refusals raise ``AdminError`` with a stable code
(``VALIDATION``, ``NOT_FOUND``, ``CONFLICT``) and a message that names the field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kvm_protocol.results import ResultCode
from kvm_protocol.yamlconf import ConfigError, Invalid, Validator, format_path, load_yaml
from webadmin import engine, routing, topology, topology_db
from webadmin import engine_facts as facts
from webadmin import models as m
from webadmin.auth import hash_password, hash_passwords_first
from webadmin.engine import valid_hotkey_key
from webadmin.snapshot import Built, SnapshotCache
from webadmin.topology import NAME, PASSWORD, DeviceId, Kind, kind_of

T = TypeVar("T")


class AdminError(Exception):
    """A refused admin operation: ``code`` is an API error code, ``message`` names the field.

    ``fields`` maps each refused input field to what is wrong with it (``""`` = the request
    as a whole), so that a form can show each message next to its field.
    """

    def __init__(self, code: str, message: str, *,
                 fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})


def check(validator: Validator[T], field: str, value: object) -> T:
    """Validate one value with a topology validator; AdminError names `field`."""
    try:
        return validator.convert(value)
    except Invalid as e:
        raise AdminError("VALIDATION", f"{field}: {e.message}",
                         fields={field: e.message}) from None


def device_by_id(s: Session, device_id: str) -> m.Device:
    dev = s.scalar(select(m.Device).where(m.Device.id == device_id))
    if dev is None:
        raise AdminError("NOT_FOUND", f"no device {device_id}")
    return dev


def device_by_serial(s: Session, serial: str) -> m.Device:
    dev = s.scalar(select(m.Device).where(m.Device.serial == serial))
    if dev is None:
        raise AdminError("NOT_FOUND", f"no device with serial {serial!r}")
    return dev


def user_by_name(s: Session, name: str) -> m.User:
    user = s.scalar(select(m.User).where(m.User.name == name))
    if user is None:
        raise AdminError("NOT_FOUND", f"no user {name!r}")
    return user


@dataclass(frozen=True)
class Adopted:
    device: m.Device
    notify: frozenset[str]


def adopt(s: Session, serial: str, device_id: str, name: str | None, *, actor: str) -> Adopted:
    """Give a pending device its ID and name (SPEC: devices authenticate, admins adopt them).

    The ID may be a configured slot that no device has bound yet (e.g. from an imported
    topology with other serials): the pending device then takes that slot's place.
    """
    dev = device_by_serial(s, serial)
    if dev.adoption != "pending":
        raise AdminError("CONFLICT", f"device {serial!r} is already adopted as {dev.id}")
    kind = kind_of(device_id)
    if kind is None:
        raise AdminError("VALIDATION", f"id: {device_id!r} is not a device ID "
                                       "(Tx 0001-4999, Rx 5001-9999)",
                         fields={"id": f"{device_id!r} is not a device ID "
                                       "(Tx 0001-4999, Rx 5001-9999)"})
    if kind != dev.kind:
        want = "0001-4999" if dev.kind == "tx" else "5001-9999"
        why = (f"{device_id} is not a{'n' if dev.kind == 'rx' else ''} "
               f"{dev.kind.capitalize()} ID ({want}); this device is a {dev.kind}")
        raise AdminError("VALIDATION", f"id: {why}", fields={"id": why})
    if name is not None:
        check(NAME, "name", name)
    slot = s.scalar(select(m.Device).where(m.Device.id == device_id))
    if slot is not None:
        if slot.credential_hash is not None or slot.kind != dev.kind:
            why = f"{device_id} belongs to the device with serial {slot.serial!r}"
            raise AdminError("CONFLICT", f"id: {why}", fields={"id": why})
        credential, heads, firmware = dev.credential_hash, dev.heads, dev.firmware
        s.delete(dev)
        s.flush()
        slot.serial, slot.credential_hash, slot.heads, slot.firmware = (
            serial, credential, heads, firmware)
        dev = slot
    else:
        dev.id = device_id
    dev.adoption = "adopted"
    if name is not None:
        dev.name = name
    s.flush()
    routing.audit(s, actor=actor, action="adopt", result="OK", device=device_id,
                  target=serial, detail={"name": dev.name})
    return Adopted(dev, frozenset(routing.touch_devices(s, [device_id])))


def reset_credential(s: Session, dev: m.Device, *, actor: str) -> None:
    """Forget a device's bound secret: the next announce with its serial binds a new one."""
    dev.credential_hash = None
    routing.audit(s, actor=actor, action="reset_device", result="OK", device=dev.id or "",
                  target=dev.serial or "")


def set_password(s: Session, user: m.User, password: str, *, actor: str) -> None:
    """Store a new password hash and end the user's admin API tokens."""
    check(PASSWORD, "password", password)
    hash_passwords_first(s, [password])
    user.password_hash = hash_password(password)
    s.execute(delete(m.AdminToken).where(m.AdminToken.user_pk == user.pk))
    routing.audit(s, actor=actor, action="set_password", result="OK", target=user.name)


def device_row(dev: m.Device, *, online: bool | None = None) -> dict[str, Any]:
    """A device as the admin API and ``kvm-admin devices`` show it."""
    return {
        "id": dev.id,
        "kind": dev.kind,
        "name": dev.name,
        "heads": dev.heads,
        "serial": dev.serial,
        "adoption": dev.adoption,
        "bound": dev.credential_hash is not None,
        "firmware": dev.firmware,
        "online": bool(dev.online) if online is None else online,
        "last_seen": dev.last_seen.isoformat() if dev.last_seen else None,
    }


# --- changes through the control-room rules ----------------------------------------------
#
# The web UI (and any caller) changes the configuration through the same rules as the
# control-room file: a one-item ``RoomConfig`` is parsed (``topology.parse``) and merged
# (``topology_db.import_config``), so a field is refused here for exactly the reasons the
# file would be. Problems come back as ``AdminError.fields``, keyed by the form's field.

_FIELD = re.compile(r"[A-Za-z_]+")


def _field_of(path: str, strip: str) -> str:
    """``seats[0].screens[1]`` less ``seats[0]`` → ``screens``; outside `strip` → ``""``."""
    if not strip or not path.startswith(strip):
        return ""
    rest = path[len(strip):].lstrip(".")
    found = _FIELD.match(rest)
    return found.group(0) if found else ""


def _refused(e: ConfigError, strip: str, *, whole: str | None = None) -> AdminError:
    """Problems of a one-item document as an AdminError keyed by field (`whole`: every
    problem at the item itself belongs to that field)."""
    fields: dict[str, str] = {}
    lines = []
    for p in e.problems:
        field = _field_of(p.path, strip)
        if not field and whole is not None and p.path.startswith(strip):
            field = whole
        fields[field] = f"{fields[field]}; {p.message}" if field in fields else p.message
        # The message keeps the position inside the field: ``screens[1]``, ``targets[0]``.
        rest = p.path[len(strip):].lstrip(".") if strip and p.path.startswith(strip) else ""
        where = rest if field and rest.startswith(field) else field + rest if field else ""
        lines.append(f"{where}: {p.message}" if where else p.message)
    code = "CONFLICT" if any("no enabled admin" in p.message for p in e.problems) else (
        "VALIDATION")
    return AdminError(code, "; ".join(lines), fields=fields)


def _parse(doc: dict[str, Any], strip: str, *, whole: str | None = None) -> topology.RoomConfig:
    try:
        return topology.parse(doc)
    except ConfigError as e:
        raise _refused(e, strip, whole=whole) from None


def _merge(s: Session, cfg: topology.RoomConfig, strip: str, actor: str, *,
           whole: str | None = None) -> set[str]:
    """Merge a one-item configuration (the caller audits); returns the IDs to notify."""
    try:
        summary = topology_db.import_config(s, cfg, replace=False, actor=actor,
                                            audit_action=None)
    except ConfigError as e:
        raise _refused(e, strip, whole=whole) from None
    return summary.notify


def settle(s: Session, actor: str) -> set[str]:
    """After a direct change of users, groups, grants or layouts: drop routes that logged-in
    users may no longer see, and wake every watch. Returns the IDs to notify."""
    s.flush()
    built = SnapshotCache(device_timeout_s=10).build(s)
    return routing.enforce_scopes(s, built, actor) | routing.touch_all(s)


def _exists(s: Session, model: Any, **where: Any) -> bool:
    return s.scalar(select(model.pk).filter_by(**where).limit(1)) is not None


def _taken(what: str, name: str, field: str = "name") -> AdminError:
    why = f"{what} {name!r} exists already"
    return AdminError("CONFLICT", why, fields={field: why})


def _audit(s: Session, actor: str, action: str, target: str,
           detail: Mapping[str, Any] | None = None, device: str = "") -> None:
    routing.audit(s, actor=actor, action=action, result="OK", target=target, device=device,
                  detail=detail)


def id_list(text: str) -> list[str]:
    """Device IDs (or ranges) typed in one field, separated by commas or spaces."""
    return [token for token in re.split(r"[\s,，]+", text.strip()) if token]


# --- devices -----------------------------------------------------------------------------


def _device_doc(device_id: str, name: str, heads: object, serial: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": device_id, "name": name, "heads": heads}
    if serial:
        doc["serial"] = serial
    return doc


def create_device(s: Session, *, device_id: str, name: str, heads: object, serial: str | None,
                  actor: str) -> set[str]:
    """Provision a device by ID (with a serial: the device with that serial binds on its first
    announce; a pending one with that serial is adopted)."""
    device_id = check(DeviceId(), "id", device_id.strip())
    kind = kind_of(device_id) or "tx"
    if _exists(s, m.Device, id=device_id):
        raise _taken("device", device_id, "id")
    cfg = _parse({kind: [_device_doc(device_id, name, heads, serial or None)]}, f"{kind}[0]")
    notify = _merge(s, cfg, f"{kind}[0]", actor)
    _audit(s, actor, "device.create", device_id, {"name": name, "heads": heads,
                                                  "serial": serial or None}, device=device_id)
    return notify


def update_device(s: Session, dev: m.Device, *, device_id: str, name: str, heads: object,
                  actor: str) -> set[str]:
    """Change a device's ID (same kind, unused), name and number of heads."""
    old = dev.id or ""
    kind: Kind = "rx" if dev.kind == "rx" else "tx"
    new = check(DeviceId(kind), "id", device_id.strip())
    doc = _device_doc(new, name, heads, dev.serial)
    cfg = _parse({kind: [doc]}, f"{kind}[0]")   # every field checked before any change
    if new != old:
        if _exists(s, m.Device, id=new):
            raise _taken("device", new, "id")
        dev.id = new
        s.flush()
    notify = _merge(s, cfg, f"{kind}[0]", actor)
    _audit(s, actor, "device.update", old, {"id": new, "name": name, "heads": heads},
           device=new)
    return notify | {old}   # a watch waiting under the old ID wakes and learns the new one


def delete_device(s: Session, dev: m.Device, *, actor: str) -> set[str]:
    """Forget an adopted device (not a wall tile: change the wall first). Rx showing a
    deleted Tx go dark; hotkeys and seats left empty go too."""
    device_id = dev.id or ""
    wall = s.scalar(select(m.Wall.name).join(m.WallTile).where(m.WallTile.device_pk == dev.pk))
    if wall is not None:
        why = f"{device_id} is a tile of wall {wall!r}: change the wall first"
        raise AdminError("CONFLICT", why, fields={"": why})
    showing = set(s.scalars(select(m.Device.id).join(m.Route, m.Route.rx_pk == m.Device.pk)
                            .where(m.Route.tx_pk == dev.pk)))
    hotkeys = list(s.scalars(select(m.Hotkey).join(m.HotkeyTarget)
                             .where(m.HotkeyTarget.device_pk == dev.pk)))
    seats = list(s.scalars(select(m.Seat).join(m.SeatScreen)
                           .where(m.SeatScreen.device_pk == dev.pk)))
    s.delete(dev)
    s.flush()
    gone: list[str] = []
    for hk in hotkeys:
        s.refresh(hk)
        if not hk.targets:
            gone.append(f"hotkey {hk.key}")
            s.delete(hk)
    for seat in seats:
        s.refresh(seat)
        if not seat.screens:
            gone.append(f"seat {seat.name}")
            s.delete(seat)
    notify = settle(s, actor) | {d for d in showing if d}
    _audit(s, actor, "device.delete", device_id, {"emptied": gone}, device=device_id)
    return notify


def forget_pending(s: Session, dev: m.Device, *, actor: str) -> None:
    """Drop a device waiting for adoption (if it announces again it waits again)."""
    if dev.adoption != "pending":
        raise AdminError("CONFLICT", f"device {dev.serial!r} is adopted, not pending")
    serial = dev.serial or ""
    s.delete(dev)
    _audit(s, actor, "device.reject", serial)


# --- seats and walls ---------------------------------------------------------------------


def _rename(s: Session, row: Any, model: Any, what: str, name: str) -> None:
    if row is not None and name != row.name:
        if _exists(s, model, name=name):
            raise _taken(what, name)
        row.name = name
        s.flush()


def save_seat(s: Session, *, name: str, screens: list[str], actor: str,
              seat: m.Seat | None = None) -> set[str]:
    """Create (`seat` None) or change a seat: 1-8 Rx behind one keyboard and mouse, screen n
    is F7+n. An Rx listed here leaves the seat it was in."""
    cfg = _parse({"seats": [{"name": name, "screens": screens}]}, "seats[0]")
    if seat is None and _exists(s, m.Seat, name=name):
        raise _taken("seat", name)
    _rename(s, seat, m.Seat, "seat", name)
    notify = _merge(s, cfg, "seats[0]", actor)
    _audit(s, actor, "seat.update" if seat is not None else "seat.create", name,
           {"screens": list(cfg.seats[0].screens)})
    return notify


def _delete_named(s: Session, row: m.Seat | m.Wall | m.UserGroup | m.DeviceGroup,
                  action: str, actor: str) -> set[str]:
    """Delete a row known by its name, settle what depended on it, audit ``action``."""
    name = row.name
    s.delete(row)
    notify = settle(s, actor)
    _audit(s, actor, action, name)
    return notify


def delete_seat(s: Session, seat: m.Seat, *, actor: str) -> set[str]:
    return _delete_named(s, seat, "seat.delete", actor)


def save_wall(s: Session, *, name: str, rows: object, cols: object, tiles: list[str],
              splice: bool, actor: str, wall: m.Wall | None = None) -> set[str]:
    """Create or change a video wall: rows × cols Rx tiles, row by row."""
    doc = {"name": name, "rows": rows, "cols": cols, "tiles": tiles, "splice": splice}
    cfg = _parse({"walls": [doc]}, "walls[0]")
    if wall is None and _exists(s, m.Wall, name=name):
        raise _taken("wall", name)
    _rename(s, wall, m.Wall, "wall", name)
    notify = _merge(s, cfg, "walls[0]", actor)
    _audit(s, actor, "wall.update" if wall is not None else "wall.create", name,
           {"rows": rows, "cols": cols, "tiles": list(cfg.walls[0].tiles), "splice": splice})
    return notify


def set_splice(s: Session, wall: m.Wall, splice: bool, *, actor: str) -> set[str]:
    """Switch a wall's splice (all tiles show one Tx) on or off."""
    tiles = [t.device.id for t in wall.tiles if t.device.id is not None]
    cfg = _parse({"walls": [{"name": wall.name, "rows": wall.rows, "cols": wall.cols,
                             "tiles": tiles, "splice": splice}]}, "walls[0]")
    notify = _merge(s, cfg, "walls[0]", actor)
    _audit(s, actor, "wall.update", wall.name, {"splice": splice})
    return notify


def delete_wall(s: Session, wall: m.Wall, *, actor: str) -> set[str]:
    return _delete_named(s, wall, "wall.delete", actor)


# --- users and groups --------------------------------------------------------------------


def _sessions_of(s: Session, user: m.User) -> list[str]:
    return sorted(str(rx) for rx in s.scalars(
        select(m.Device.id).join(m.SeatSession, m.SeatSession.rx_pk == m.Device.pk)
        .where(m.SeatSession.user_pk == user.pk)) if rx is not None)


def log_out_everywhere(s: Session, user: m.User) -> set[str]:
    """End every seat session of `user` (routing.logout: their screens go dark)."""
    s.flush()
    built = SnapshotCache(device_timeout_s=10).build(s)
    notify: set[str] = set()
    done: set[str] = set()
    for rx in _sessions_of(s, user):
        if rx not in done:
            notify |= routing.logout(s, built, rx_id=rx).notify
            done |= set(built.seat(rx).screens)
    return notify


def _enabled_admins(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(m.User).where(
        m.User.role == "admin", m.User.enabled.is_(True))) or 0)


def create_user(s: Session, *, name: str, password: str, role: str, enabled: bool, lang: str,
                groups: list[str], actor: str) -> set[str]:
    doc = {"name": name, "password": password, "role": role, "enabled": enabled, "lang": lang,
           "groups": groups}
    cfg = _parse({"users": [doc]}, "users[0]")
    hash_passwords_first(s, [password])
    if _exists(s, m.User, name=name):
        raise _taken("user", name)
    notify = _merge(s, cfg, "users[0]", actor)
    _audit(s, actor, "user.create", name, {"role": role, "enabled": enabled, "lang": lang,
                                           "groups": groups})
    return notify


def update_user(s: Session, user: m.User, *, role: str, enabled: bool, lang: str,
                groups: list[str], actor: str) -> set[str]:
    """Role, enabled (disabling ends the user's seat sessions), language, groups. An admin
    cannot demote or disable themselves, and one enabled admin always remains."""
    if user.name == actor and role != "admin":
        raise AdminError("VALIDATION", "you cannot take the admin role from yourself",
                         fields={"role": "you cannot take the admin role from yourself"})
    if user.name == actor and not enabled:
        raise AdminError("VALIDATION", "you cannot disable yourself",
                         fields={"enabled": "you cannot disable yourself"})
    doc = {"name": user.name, "role": role, "enabled": enabled, "lang": lang, "groups": groups}
    cfg = _parse({"users": [doc]}, "users[0]")
    notify = _merge(s, cfg, "users[0]", actor)
    if not user.enabled:
        notify |= log_out_everywhere(s, user)
    _audit(s, actor, "user.update", user.name, {"role": role, "enabled": enabled, "lang": lang,
                                                "groups": groups})
    return notify


def delete_user(s: Session, user: m.User, *, actor: str) -> set[str]:
    if user.name == actor:
        raise AdminError("VALIDATION", "you cannot delete yourself",
                         fields={"": "you cannot delete yourself"})
    if user.role == "admin" and user.enabled and _enabled_admins(s) <= 1:
        why = "no enabled admin would remain; keep at least one"
        raise AdminError("CONFLICT", why, fields={"": why})
    name = user.name
    notify = log_out_everywhere(s, user)
    s.delete(user)
    notify |= settle(s, actor)
    _audit(s, actor, "user.delete", name)
    return notify


def reset_password(s: Session, user: m.User, password: str, *, actor: str) -> None:
    """``set_password`` with the refusal keyed by the form's field."""
    try:
        set_password(s, user, password, actor=actor)
    except AdminError as e:
        raise AdminError(e.code, e.message, fields={"password": e.fields.get("password",
                                                                             e.message)}) from None


def save_user_group(s: Session, *, name: str, members: list[str], actor: str,
                    group: m.UserGroup | None = None) -> set[str]:
    check(NAME, "name", name)
    users = []
    for member in members:
        user = s.scalar(select(m.User).where(m.User.name == member))
        if user is None:
            raise AdminError("VALIDATION", f"members: no user {member!r}",
                             fields={"members": f"no user {member!r}"})
        users.append(user)
    if group is None:
        if _exists(s, m.UserGroup, name=name):
            raise _taken("user group", name)
        group = m.UserGroup(name=name)
        s.add(group)
        action = "group.create"
    else:
        _rename(s, group, m.UserGroup, "user group", name)
        action = "group.update"
    group.members = users
    notify = settle(s, actor)
    _audit(s, actor, action, name, {"members": members})
    return notify


def delete_user_group(s: Session, group: m.UserGroup, *, actor: str) -> set[str]:
    return _delete_named(s, group, "group.delete", actor)


def save_device_group(s: Session, *, name: str, devices: list[str], actor: str,
                      group: m.DeviceGroup | None = None) -> set[str]:
    """A named set of devices (IDs and ranges such as 0001-0010) for grants."""
    cfg = _parse({"device_groups": [{"name": name, "devices": devices}]}, "device_groups[0]")
    if group is None and _exists(s, m.DeviceGroup, name=name):
        raise _taken("device group", name)
    _rename(s, group, m.DeviceGroup, "device group", name)
    notify = _merge(s, cfg, "device_groups[0]", actor)
    _audit(s, actor, "device_group.update" if group is not None else "device_group.create",
           name, {"devices": list(cfg.device_groups[0].devices)})
    return notify


def delete_device_group(s: Session, group: m.DeviceGroup, *, actor: str) -> set[str]:
    return _delete_named(s, group, "device_group.delete", actor)


# --- grants ------------------------------------------------------------------------------


def _grant_pks(s: Session) -> set[int]:
    return set(s.scalars(select(m.Grant.pk)))


def add_grants(s: Session, *, scope: str, access: str, user: str | None = None,
               group: str | None = None, devices: list[str], device_groups: list[str],
               actor: str) -> tuple[int, set[str]]:
    """Grant `scope` to a user or a user group over devices (IDs, ranges) and device groups,
    one row per object as in the file. Returns (grants added, IDs to notify)."""
    doc: dict[str, Any] = {"scope": scope, "devices": devices, "device_groups": device_groups}
    if scope == "view":
        doc["access"] = access
    if user is not None:
        doc["user"] = user
    if group is not None:
        doc["group"] = group
    cfg = _parse({"grants": [doc]}, "grants[0]", whole="devices")
    before = _grant_pks(s)
    notify = _merge(s, cfg, "grants[0]", actor, whole="devices")
    added = len(_grant_pks(s) - before)
    if not added:
        why = "already granted: nothing new"
        raise AdminError("CONFLICT", why, fields={"devices": why})
    _audit(s, actor, "grant.create", user or group or "",
           {"scope": scope, "access": access if scope == "view" else "control",
            "devices": devices, "device_groups": device_groups, "added": added})
    return added, notify


def delete_grant(s: Session, grant: m.Grant, *, actor: str) -> set[str]:
    subject = grant.user.name if grant.user is not None else (
        grant.user_group.name if grant.user_group is not None else "")
    detail = {"scope": grant.scope, "access": grant.access,
              "device": grant.device.id if grant.device is not None else None,
              "device_group": grant.device_group.name if grant.device_group else None}
    s.delete(grant)
    notify = settle(s, actor)
    _audit(s, actor, "grant.delete", subject, detail)
    return notify


# --- hotkeys -----------------------------------------------------------------------------

_HOTKEY_CHARS = re.compile(r"[A-Za-z0-9_-]*")


def hotkey_key_problem(key: str) -> str | None:
    """Why `key` cannot name a hotkey (SPEC 2.1), in words; None if it can."""
    if not key:
        return "enter a key of 1-16 characters"
    if len(key) > 16:
        return f"{key!r} is longer than 16 characters"
    if not _HOTKEY_CHARS.fullmatch(key):
        bad = "".join(sorted({c for c in key if not _HOTKEY_CHARS.fullmatch(c)}))
        return f"{key!r} has characters other than A-Z a-z 0-9 - _: {bad!r}"
    if key.isdigit():
        return f"{key!r} is all digits: the OSD reads it as a device ID; add a letter"
    if key.lower() == "all":
        return "'all' is reserved: it pushes to every Rx"
    if not valid_hotkey_key(key):     # the rule itself is the engine's
        return f"{key!r} is not a hotkey"
    return None


def save_hotkey(s: Session, *, key: str, targets: list[str], actor: str,
                hotkey: m.Hotkey | None = None) -> set[str]:
    """Create or change a hotkey: key (not case-sensitive) → ordered Tx or Rx."""
    key = key.strip()
    problem = hotkey_key_problem(key)
    if problem is not None:
        raise AdminError("VALIDATION", f"key: {problem}", fields={"key": problem})
    same = s.scalar(select(m.Hotkey).where(m.Hotkey.key_lower == key.lower()))
    if same is not None and (hotkey is None or same.pk != hotkey.pk):
        why = f"hotkey {same.key!r} exists already (case does not count)"
        raise AdminError("CONFLICT", why, fields={"key": why})
    strip = format_path(("hotkeys", key))
    cfg = _parse({"hotkeys": {key: targets}}, strip, whole="targets")
    old = hotkey.key if hotkey is not None else None
    if hotkey is not None and hotkey.key_lower != key.lower():
        s.delete(hotkey)                 # renamed: the merge creates it under its new key
        s.flush()
    notify = _merge(s, cfg, strip, actor, whole="targets")
    _audit(s, actor, "hotkey.save", key, {"targets": list(cfg.hotkeys[0].targets),
                                          "was": old})
    return notify


def delete_hotkey(s: Session, hotkey: m.Hotkey, *, actor: str) -> None:
    key = hotkey.key
    s.delete(hotkey)
    _audit(s, actor, "hotkey.delete", key)


# --- settings, routing, backup -----------------------------------------------------------


def update_settings(s: Session, values: Mapping[str, Any], *, actor: str) -> set[str]:
    """OSD settings (chord, chord_window_ms, lang, auto_close_ms, idle_close_s,
    idle_logout_s), checked as the file's ``settings`` section; every Rx is told."""
    cfg = _parse({"settings": dict(values)}, "settings")
    notify = _merge(s, cfg, "settings", actor)
    _audit(s, actor, "settings.update", "", cfg.settings.given())
    return notify


ROUTING_ACTIONS = ("connect", "push", "fetch", "disconnect")


def as_push(snap: engine.Snapshot, outcome: engine.Outcome) -> engine.Outcome:
    """An admin's connect or fetch at a seat's Rx is a push by the admin (docs/PERMISSIONS.md
    "Admin routing"): each route is marked ``pushed`` unless the user logged in at that seat
    may view its Tx (with nobody logged in it is marked too), exactly as ``engine.push``
    marks its routes. So ``enforce_scopes`` never takes it away; it lasts until the seat
    switches to something else or its user logs out."""
    changes = []
    for ch in outcome.changes:
        route = ch.route
        if route is not None:
            viewer = facts.active_user(snap, facts.session_user(snap, ch.rx_id))
            route = dataclasses.replace(route, pushed=not facts.may_view(viewer, route.tx_id))
        changes.append(dataclasses.replace(ch, route=route))
    return dataclasses.replace(outcome, changes=tuple(changes))


def admin_route(s: Session, built: Built, *, actor: str, rx_id: str, action: str,
                text: str = "") -> tuple[engine.Outcome, set[str]]:
    """Connect / push / fetch at `rx_id` as admin `actor` (the engine decides, as at a seat),
    or disconnect every head of that Rx. Stored and audited as ``admin_<action>``."""
    device = built.snap.devices.get(rx_id)
    if device is None or device.kind != "rx":
        raise AdminError("NOT_FOUND", f"rx: no Rx {rx_id!r}", fields={"rx": f"no Rx {rx_id!r}"})
    if action == "disconnect":
        text = ""
        outcome = engine.Outcome(ResultCode.DISCONNECTED, tuple(
            engine.RouteChange(rx_id, head, None) for head in range(1, device.heads + 1)))
    elif action == "connect":
        outcome = as_push(built.snap, engine.connect(built.snap, actor, rx_id, text))
    elif action == "push":
        outcome = engine.push(built.snap, actor, rx_id, text)
    elif action == "fetch":
        outcome = as_push(built.snap, engine.fetch(built.snap, actor, rx_id, text))
    else:
        raise AdminError("VALIDATION", f"action: {action!r} is not one of "
                                       f"{', '.join(ROUTING_ACTIONS)}",
                         fields={"action": f"{action!r} is not a routing action"})
    notify = routing.apply_outcome(s, built, outcome, actor=actor, rx_id=rx_id,
                                   action=f"admin_{action}", text=text)
    return outcome, notify


def export_yaml(s: Session, *, actor: str) -> str:
    """The whole configuration as a control-room YAML backup (audited)."""
    text = topology_db.dump_yaml(topology_db.export_config(s))
    _audit(s, actor, "export", "yaml")
    return text


def import_yaml(s: Session, text: str, *, replace: bool,
                actor: str) -> topology_db.ImportSummary:
    """Restore or merge a control-room YAML document; every problem is in ``fields``
    (keyed by its path in the file) and nothing changes."""
    try:
        cfg = topology.parse(load_yaml(text, name="file"))
        hash_passwords_first(s, (u.password for u in cfg.users))
        return topology_db.import_config(s, cfg, replace=replace, actor=actor)
    except ConfigError as e:
        fields: dict[str, str] = {}
        for p in e.problems:
            where = p.path or (f"line {p.line}" if p.line else "")
            fields[where] = f"{fields[where]}; {p.message}" if where in fields else p.message
        raise AdminError("VALIDATION", str(e), fields=fields) from None
