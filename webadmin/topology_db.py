"""Store a control-room configuration in the database, and read it back (import / export).

``import_config`` checks everything first (references against the file, or the file plus
the database when merging; serial conflicts; passwords of new users; at least one enabled
admin) and raises ``ConfigError`` before it changes anything; then it applies the file in
the caller's session without committing. ``export_config`` gives a document that
``topology.parse`` accepts and that imports back to the same configuration (users keep their
password hashes, devices their bound credentials; nothing in it is a plain password).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kvm_protocol.yamlconf import ConfigError, Problem
from webadmin import models as m
from webadmin import routing
from webadmin.auth import hash_password
from webadmin.db import bump_versions
from webadmin.snapshot import SnapshotCache
from webadmin.topology import (
    SCOPE_KIND,
    SETTINGS_KEYS,
    DeviceConf,
    Kind,
    Known,
    RoomConfig,
    check_references,
    compress,
    expand,
    inner_problems,
    kind_of,
)

SCOPE_ORDER = {scope: i for i, scope in enumerate(SCOPE_KIND)}


@dataclass
class ImportSummary:
    """What an import did; ``notify`` are the device IDs whose watch must wake after commit."""

    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    notify: set[str] = field(default_factory=set)


def settings_defaults() -> dict[str, Any]:
    """The OSD settings a fresh server has (the model's column defaults)."""
    columns = m.Settings.__table__.c
    return {key: columns[key].default.arg for key in SETTINGS_KEYS}


def known_in_db(s: Session) -> Known:
    devices: dict[str, Kind] = {}
    for did, kind in s.execute(select(m.Device.id, m.Device.kind)):
        if did is not None:
            devices[did] = "tx" if kind == "tx" else "rx"
    return Known(
        devices=devices,
        users=frozenset(s.scalars(select(m.User.name))),
        user_groups=frozenset(s.scalars(select(m.UserGroup.name))),
        device_groups=frozenset(s.scalars(select(m.DeviceGroup.name))),
    )


# --- checks before any change ------------------------------------------------------------


def _serial_problems(s: Session, cfg: RoomConfig, replace: bool) -> list[Problem]:
    problems: list[Problem] = []
    file_serial = {d.id: d.serial for d in cfg.devices}
    holders = {d.serial: d for d in s.scalars(select(m.Device).where(m.Device.serial.is_not(None)))}
    for section, devices in (("tx", cfg.tx), ("rx", cfg.rx)):
        for i, d in enumerate(devices):
            holder = holders.get(d.serial) if d.serial else None
            if holder is None or holder.id == d.id:
                continue
            if holder.adoption == "pending" or holder.id is None:
                if holder.kind != d.kind:
                    problems.append(Problem(f"{section}[{i}].serial",
                                            f"{d.serial!r} announced itself as an {holder.kind}"))
                continue
            moves = holder.id in file_serial and file_serial[holder.id] != d.serial
            if not moves and not (replace and holder.id not in file_serial):
                problems.append(Problem(f"{section}[{i}].serial",
                                        f"{d.serial!r} is the serial of device {holder.id}"))
    return problems


def _user_problems(s: Session, cfg: RoomConfig, replace: bool) -> list[Problem]:
    problems: list[Problem] = []
    existing = {u.name: u for u in s.scalars(select(m.User))}
    admins = set() if replace else {u.name for u in existing.values()
                                    if u.role == "admin" and u.enabled}
    for i, u in enumerate(cfg.users):
        if u.name not in existing and u.password is None and u.password_hash is None:
            problems.append(Problem(f"users[{i}].password",
                                    f"new user {u.name!r} needs a password or password_hash"))
        if u.role == "admin" and u.enabled:
            admins.add(u.name)
        else:
            admins.discard(u.name)
    if not admins:
        problems.append(Problem("users", "no enabled admin would remain; keep at least one"))
    return problems


def check_import(s: Session, cfg: RoomConfig, *, replace: bool) -> None:
    """Everything `import_config` checks before it changes anything; raises ConfigError."""
    known = Known.of(cfg) if replace else Known.of(cfg).merged(known_in_db(s))
    problems = inner_problems(cfg) + check_references(cfg, known)
    problems += _serial_problems(s, cfg, replace)
    problems += _user_problems(s, cfg, replace)
    if problems:
        raise ConfigError(problems)


# --- applying ----------------------------------------------------------------------------


def _clear_configuration(
    s: Session, keep_devices: Iterable[str], keep_users: Iterable[str]
) -> None:
    """Replace mode: drop everything the file defines anew (pending devices stay)."""
    for table in (m.Grant, m.HotkeyTarget, m.Hotkey, m.SeatScreen, m.Seat, m.WallTile, m.Wall):
        s.execute(delete(table))
    s.execute(delete(m.user_group_members))
    s.execute(delete(m.device_group_members))
    s.execute(delete(m.UserGroup))
    s.execute(delete(m.DeviceGroup))
    s.execute(delete(m.Device).where(m.Device.adoption == "adopted",
                                     m.Device.id.not_in(list(keep_devices))))
    s.execute(delete(m.User).where(m.User.name.not_in(list(keep_users))))
    s.expire_all()


def _apply_devices(s: Session, devices: tuple[DeviceConf, ...]) -> dict[str, m.Device]:
    rows = list(s.scalars(select(m.Device)))
    by_id = {d.id: d for d in rows if d.id is not None}
    by_serial = {d.serial: d for d in rows if d.serial is not None}
    old_serial = {did: row.serial for did, row in by_id.items()}
    credentials: dict[str, str | None] = {}
    # Free every serial that moves first: serials are unique at every statement.
    for conf in devices:
        holder = by_serial.get(conf.serial) if conf.serial else None
        if holder is not None and holder.id != conf.id:
            credentials[conf.id] = holder.credential_hash
            if holder.adoption == "pending":
                s.delete(holder)
            else:
                holder.serial = None
        row = by_id.get(conf.id)
        if row is not None and row.serial != conf.serial:
            row.serial = None
    s.flush()
    for conf in devices:
        row = by_id.get(conf.id)
        if row is None:
            row = by_id[conf.id] = m.Device(id=conf.id, kind=conf.kind, adoption="adopted")
            s.add(row)
        elif old_serial[conf.id] != conf.serial:
            row.credential_hash = None      # another physical device: it binds on announce
        if conf.id in credentials:
            row.credential_hash = credentials[conf.id]
        if conf.credential_hash is not None:
            row.credential_hash = conf.credential_hash
        row.kind, row.name, row.heads, row.serial = conf.kind, conf.name, conf.heads, conf.serial
        if row.pk is not None:
            s.execute(delete(m.Route).where(m.Route.rx_pk == row.pk, m.Route.head > conf.heads))
    s.flush()
    return by_id


def _by_name(s: Session, model: Any, names: Iterable[str]) -> dict[str, Any]:
    rows = {r.name: r for r in s.scalars(select(model))}
    for name in names:
        if name not in rows:
            rows[name] = model(name=name)
            s.add(rows[name])
    return rows


def _members(specs: Iterable[str], devices: dict[str, m.Device]) -> list[m.Device]:
    ids: list[str] = []
    for spec in specs:
        ids += [i for i in expand(spec, devices) if i not in ids]
    return [devices[i] for i in ids]


def _apply_grants(s: Session, cfg: RoomConfig, devices: dict[str, m.Device],
                  users: dict[str, m.User], ugroups: dict[str, m.UserGroup],
                  dgroups: dict[str, m.DeviceGroup]) -> int:
    s.flush()
    have = {(g.scope, g.access, g.user_pk, g.user_group_pk, g.device_pk, g.device_group_pk)
            for g in s.scalars(select(m.Grant))}
    added = 0
    for gr in cfg.grants:
        user = users[gr.user].pk if gr.user is not None else None
        group = ugroups[gr.group].pk if gr.group is not None else None
        kind = SCOPE_KIND[gr.scope]
        objects: list[tuple[int | None, int | None]] = [
            (d.pk, None) for d in _members(gr.devices, devices) if d.kind == kind]
        objects += [(None, dgroups[name].pk) for name in gr.device_groups]
        for device_pk, dgroup_pk in objects:
            key = (gr.scope, gr.access, user, group, device_pk, dgroup_pk)
            if key not in have:
                have.add(key)
                s.add(m.Grant(scope=gr.scope, access=gr.access, user_pk=user, user_group_pk=group,
                              device_pk=device_pk, device_group_pk=dgroup_pk))
                added += 1
    return added


def _apply_layouts(s: Session, cfg: RoomConfig, devices: dict[str, m.Device]) -> None:
    """Seats, walls, hotkeys: members are cleared and flushed before the new ones go in,
    because (owner, position) and each Rx's membership are unique at every statement."""
    seats = _by_name(s, m.Seat, (x.name for x in cfg.seats))
    walls = _by_name(s, m.Wall, (x.name for x in cfg.walls))
    for wall in cfg.walls:
        w = walls[wall.name]
        w.rows, w.cols, w.splice = wall.rows, wall.cols, wall.splice
    hotkeys = {h.key_lower: h for h in s.scalars(select(m.Hotkey))}
    s.flush()
    # An Rx named here leaves the seat or wall it was in (merging imports move it).
    screens = [devices[rx].pk for x in cfg.seats for rx in x.screens]
    tiles = [devices[rx].pk for x in cfg.walls for rx in x.tiles]
    s.execute(delete(m.SeatScreen).where(m.SeatScreen.device_pk.in_(screens)))
    s.execute(delete(m.WallTile).where(m.WallTile.device_pk.in_(tiles)))
    for seat in cfg.seats:
        seats[seat.name].screens.clear()
    for wall in cfg.walls:
        walls[wall.name].tiles.clear()
    for hk in cfg.hotkeys:
        row = hotkeys.get(hk.key.lower())
        if row is None:
            row = hotkeys[hk.key.lower()] = m.Hotkey(key_lower=hk.key.lower())
            s.add(row)
        row.key = hk.key
        row.targets.clear()
    s.flush()
    for seat in cfg.seats:
        seats[seat.name].screens = [m.SeatScreen(position=i + 1, device=devices[rx])
                                    for i, rx in enumerate(seat.screens)]
    for wall in cfg.walls:
        walls[wall.name].tiles = [m.WallTile(position=i, device=devices[rx])
                                  for i, rx in enumerate(wall.tiles)]
    for hk in cfg.hotkeys:
        hotkeys[hk.key.lower()].targets = [m.HotkeyTarget(position=i, device=devices[d])
                                           for i, d in enumerate(hk.targets)]


def import_config(s: Session, cfg: RoomConfig, *, replace: bool, actor: str = "system",
                  audit_action: str | None = "import") -> ImportSummary:
    """Store `cfg`. ``replace``: the database's configuration becomes exactly the file's;
    otherwise the file is merged in (what it names is created or updated, nothing else is
    touched). Raises ConfigError, changing nothing, when the file cannot be applied.
    Writes an audit entry (unless `audit_action` is None: the caller audits). Does not
    commit."""
    check_import(s, cfg, replace=replace)
    if replace:
        _clear_configuration(s, (d.id for d in cfg.devices), (u.name for u in cfg.users))
    devices = _apply_devices(s, cfg.devices)

    # References are checked: what the file names but does not define is in the database.
    ugroups = _by_name(s, m.UserGroup, cfg.user_groups)
    users: dict[str, m.User] = {u.name: u for u in s.scalars(select(m.User))}
    for uc in cfg.users:
        user = users.get(uc.name)
        if user is None:
            user = users[uc.name] = m.User(name=uc.name)
            s.add(user)
        if uc.password is not None:
            user.password_hash = hash_password(uc.password)
        elif uc.password_hash is not None:
            user.password_hash = uc.password_hash
        user.role, user.enabled, user.lang = uc.role, uc.enabled, uc.lang
        user.groups = [ugroups[g] for g in uc.groups]

    dgroups = _by_name(s, m.DeviceGroup, (g.name for g in cfg.device_groups))
    for dg in cfg.device_groups:
        dgroups[dg.name].members = _members(dg.devices, devices)
    grants = _apply_grants(s, cfg, devices, users, ugroups, dgroups)
    _apply_layouts(s, cfg, devices)

    row = s.get(m.Settings, 1)
    if row is None:
        row = m.Settings(pk=1)
        s.add(row)
    values = (settings_defaults() if replace else {}) | cfg.settings.given()
    for key, value in values.items():
        setattr(row, key, value)
    s.flush()
    bump_versions(s, "config_version", "routing_version")

    notify = routing.enforce_scopes(s, SnapshotCache(device_timeout_s=10).build(s), actor)
    notify |= routing.touch_all(s)
    summary = ImportSummary(
        mode="replace" if replace else "merge",
        counts={"tx": len(cfg.tx), "rx": len(cfg.rx), "seats": len(cfg.seats),
                "walls": len(cfg.walls), "users": len(cfg.users),
                "user_groups": len(cfg.user_groups), "device_groups": len(cfg.device_groups),
                "grants_added": grants, "hotkeys": len(cfg.hotkeys)},
        notify=notify,
    )
    if audit_action is not None:
        routing.audit(s, actor=actor, action=audit_action, result="OK", target=summary.mode,
                      detail=summary.counts)
    return summary


# --- export ------------------------------------------------------------------------------


def export_config(s: Session) -> dict[str, Any]:
    """The whole configuration as a control-room document (adopted devices only)."""
    devices = s.scalars(select(m.Device).where(m.Device.adoption == "adopted",
                                               m.Device.id.is_not(None)).order_by(m.Device.id))
    doc: dict[str, Any] = {"tx": [], "rx": []}
    id_of: dict[int, str] = {}
    for d in devices:
        assert d.id is not None
        id_of[d.pk] = d.id
        entry: dict[str, Any] = {"id": d.id, "name": d.name, "heads": d.heads}
        if d.serial:
            entry["serial"] = d.serial
        if d.credential_hash:
            entry["credential_hash"] = d.credential_hash
        doc[d.kind].append(entry)

    doc["seats"] = []
    for seat in s.scalars(select(m.Seat).order_by(m.Seat.name)):
        screens = [id_of[x.device_pk] for x in seat.screens if x.device_pk in id_of]
        if screens:
            doc["seats"].append({"name": seat.name, "screens": screens})
    doc["walls"] = [
        {"name": w.name, "rows": w.rows, "cols": w.cols,
         "tiles": [id_of[t.device_pk] for t in w.tiles if t.device_pk in id_of],
         "splice": bool(w.splice)}
        for w in s.scalars(select(m.Wall).order_by(m.Wall.name))
    ]
    doc["user_groups"] = sorted(s.scalars(select(m.UserGroup.name)))
    doc["device_groups"] = [
        {"name": g.name, "devices": compress(id_of[d.pk] for d in g.members if d.pk in id_of)}
        for g in s.scalars(select(m.DeviceGroup).order_by(m.DeviceGroup.name))
    ]
    doc["users"] = [
        {"name": u.name, "role": u.role, "password_hash": u.password_hash,
         "enabled": bool(u.enabled), "lang": u.lang, "groups": sorted(g.name for g in u.groups)}
        for u in s.scalars(select(m.User).order_by(m.User.name))
    ]
    doc["grants"] = _export_grants(s, id_of)
    doc["hotkeys"] = {}
    for hk in s.scalars(select(m.Hotkey).order_by(m.Hotkey.key_lower)):
        targets = [id_of[t.device_pk] for t in hk.targets if t.device_pk in id_of]
        if targets:
            doc["hotkeys"][hk.key] = targets
    doc["settings"] = export_settings(s)
    return doc


def export_settings(s: Session) -> dict[str, Any]:
    """The OSD settings in force."""
    row = s.get(m.Settings, 1)
    return {k: getattr(row, k) for k in SETTINGS_KEYS} if row is not None else settings_defaults()


def _export_grants(s: Session, id_of: dict[int, str]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], tuple[set[str], set[str]]] = defaultdict(
        lambda: (set(), set()))
    for g in s.scalars(select(m.Grant)):
        subject = ("user", g.user.name) if g.user is not None else (
            "group", g.user_group.name if g.user_group is not None else "")
        devs, dgroups = groups[(*subject, g.scope, g.access)]
        if g.device_pk in id_of:
            devs.add(id_of[g.device_pk])
        elif g.device_group is not None:
            dgroups.add(g.device_group.name)
    out = []
    for (who, name, scope, access), (devs, dgroups) in sorted(
        groups.items(), key=lambda kv: (kv[0][0] != "user", kv[0][1], SCOPE_ORDER[kv[0][2]],
                                        kv[0][3])
    ):
        devs = {d for d in devs if kind_of(d) == SCOPE_KIND[scope]}
        if not devs and not dgroups:
            continue
        entry: dict[str, Any] = {who: name, "scope": scope}
        if scope == "view":
            entry["access"] = access
        if devs:
            entry["devices"] = compress(devs)
        if dgroups:
            entry["device_groups"] = sorted(dgroups)
        out.append(entry)
    return out


HEADER = """\
# kvm-seat control-room configuration (docs/CONFIG_FORMAT.md), written by kvm-admin export.
# Restore with: kvm-admin import --data DIR --replace FILE
# It holds password hashes and device credential hashes: keep it as safe as the database.
"""


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (``screens: ['5002', '5003']``), the rest as blocks."""


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = all(not isinstance(i, list | dict) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(doc: dict[str, Any]) -> str:
    """A document as YAML text with a header (IDs stay quoted strings)."""
    return HEADER + yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                              width=100)
