"""The control-room file: parsing/validation tables (every error's key path), reference
checks, and import/export against a real database (round trip, replace, merge, refusals)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from kvm_protocol.yamlconf import ConfigError, load_yaml
from webadmin import models as m
from webadmin import topology_db
from webadmin.auth import hash_password, hash_secret, verify_password
from webadmin.db import Database
from webadmin.snapshot import SnapshotCache
from webadmin.topology import (
    Known,
    RoomConfig,
    check_references,
    compress,
    expand,
    kind_of,
    load,
    parse,
    sim_document,
)
from webadmin.topology_db import dump_yaml, export_config, import_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROOM = EXAMPLES / "control-room.yaml"
SMALL = EXAMPLES / "small-room.yaml"


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(load_yaml(text))
    return [str(p) for p in info.value.problems]


def ref_errors(text: str, known: Known | None = None) -> list[str]:
    cfg = parse(load_yaml(text))
    return [str(p) for p in check_references(cfg, known or Known.of(cfg))]


BASE = """
tx: [{id: '0001'}, {id: '0002'}, {id: '0003'}]
rx: [{id: '5001'}, {id: '5002'}, {id: '5003'}, {id: '5004'}]
user_groups: [ops]
users: [{name: root, role: admin, password: rootpass}, {name: op, password: oppass}]
"""


# --- the examples ------------------------------------------------------------------------


def test_control_room_example_is_the_issue_5_room() -> None:
    cfg = load(ROOM)
    assert [d.id for d in cfg.tx] == [f"{i:04d}" for i in range(1, 13)]
    assert [d.id for d in cfg.rx] == [f"{i}" for i in range(5001, 5013)]
    tx = {d.id: d for d in cfg.tx}
    assert tx["0003"].sim == {"video": False}
    assert tx["0004"].heads == 2
    assert tx["0012"].sim == {"power": False}            # YAML's `off`
    assert {s.name: s.screens for s in cfg.seats}["seat-B"] == ("5002", "5003")
    (wall,) = cfg.walls
    assert (wall.rows, wall.cols, wall.tiles, wall.splice) == (
        2, 2, ("5009", "5010", "5011", "5012"), True)
    users = {u.name: u for u in cfg.users}
    assert users["admin"].role == "admin"
    assert users["admin"].password is None and users["admin"].password_hash is None
    assert (users["hxfj"].password, users["guest"].password, users["viewer"].password) == (
        "123456", "guest123", "viewer123")
    assert {h.key: h.targets for h in cfg.hotkeys} == {
        "A1": ("0001",), "wall": ("5009",), "ops": ("5004", "5005", "5006")}


def test_small_room_is_a_different_room_and_the_simulator_accepts_both() -> None:
    from firmware_sim.config import parse_config

    small, room = load(SMALL), load(ROOM)
    assert {d.id for d in small.devices}.isdisjoint({d.id for d in room.devices})
    for cfg in (small, room):
        sim = parse_config(sim_document(cfg))
        assert [t.id for t in sim.tx] == [d.id for d in cfg.tx]
        assert [w.tiles for w in sim.walls] == [w.tiles for w in cfg.walls]
    sim = parse_config(sim_document(room))
    assert {t.id: (t.video, t.power) for t in sim.tx}["0003"] == (False, True)
    assert {t.id: (t.video, t.power) for t in sim.tx}["0012"] == (True, False)


# --- parsing -----------------------------------------------------------------------------


def test_empty_file_is_an_empty_configuration() -> None:
    assert parse(None) == RoomConfig()
    assert parse(load_yaml("{}")) == RoomConfig()


def test_ids_may_be_unquoted_and_ranges_are_normalised() -> None:
    cfg = parse(load_yaml("tx: [{id: 0007}, {id: 1234}]\nrx: [{id: 5001}]\n"
                          "device_groups: [{name: g, devices: ['0001 - 0009', 5001]}]"))
    assert [d.id for d in cfg.devices] == ["0007", "1234", "5001"]
    assert cfg.device_groups[0].devices == ("0001-0009", "5001")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tx: [{id: '5001'}]", ["tx[0].id: '5001' is not a Tx ID (0001-4999)"]),
        ("rx: [{id: '0001'}]", ["rx[0].id: '0001' is not an Rx ID (5001-9999)"]),
        ("rx: [{id: 12}]", ["rx[0].id: 12 is not a device ID (4 digits, e.g. '0001' or '5001')"]),
        ("tx: [{id: '0001', heads: 5}]", ["tx[0].heads: 5 is not in 1..4"]),
        ("tx: [{id: '0001', colour: red}]",
         ["tx[0].colour: unknown key (known: id, name, heads, serial, credential_hash, sim)"]),
        ("tx: [{id: '0001', serial: 'a b'}]",
         ["tx[0].serial: 'a b' is not a serial (1-64 printable ASCII, no spaces)"]),
        ("tx: [{id: '0001'}, {id: '0001'}]", ["tx[1]: ID '0001' is listed twice"]),
        ("tx: [{id: '0001', serial: X}]\nrx: [{id: '5001', serial: X}]",
         ["rx[0].serial: 'X' is also the serial of 0001"]),
        ("seats: [{name: s, screens: []}]", ["seats[0].screens: needs at least 1 item(s), got 0"]),
        ("seats: [{name: s, screens: ['5001', '5001']}]",
         ["seats[0].screens[1]: '5001' is listed twice"]),
        ("seats: [{name: s, screens: [5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008, 5009]}]",
         ["seats[0].screens: takes at most 8 item(s), got 9"]),
        ("seats: [{name: a, screens: ['5001']}, {name: b, screens: ['5001']}]",
         ["seats[1].screens[0]: Rx 5001 is already in 'a'"]),
        ("seats: [{name: a, screens: ['5001']}, {name: a, screens: ['5002']}]",
         ["seats[1]: name 'a' is listed twice"]),
        ("walls: [{name: w, rows: 2, cols: 2, tiles: ['5001']}]",
         ["walls[0].tiles: needs rows × cols = 4 Rx IDs, got 1"]),
        ("walls: [{name: w, rows: 17, cols: 1, tiles: ['5001']}]",
         ["walls[0].rows: 17 is not in 1..16"]),
        ("walls: [{name: w, rows: 9, cols: 8, tiles: ['5001']}]",
         ["walls[0].rows: 9×8 is more than 64 tiles"]),
        ("users: [{name: 'a b'}]",
         ["users[0].name: 'a b' is not a user name (1-64 of A-Z a-z 0-9 _ . @ -)"]),
        ("users: [{name: a, role: root}]",
         ["users[0].role: 'root' is not one of: admin, operator"]),
        ("users: [{name: a, password: '12345'}]",
         ["users[0].password: a password has 6-128 characters and no control characters "
          "(this one has 5)"]),
        ("users: [{name: a, password: 123456}]",
         ["users[0].password: expected a string (quote passwords made of digits: '123456')"]),
        ("users: [{name: a, password: '123456', password_hash: '$argon2id$v=19$m=1,t=1,p=1$x'}]",
         ["users[0].password_hash: give password or password_hash, not both"]),
        ("users: [{name: a, password_hash: 'md5:abc'}]",
         ["users[0].password_hash: 'md5:abc' is not an argon2 hash ($argon2id$...)"]),
        ("users: [{name: a}, {name: a}]", ["users[1]: name 'a' is listed twice"]),
        ("users: [{name: a, lang: fr}]", ["users[0].lang: 'fr' is not one of: zh_CN, en"]),
        ("grants: [{scope: view, devices: ['0001']}]",
         ["grants[0]: give exactly one of user or group"]),
        ("grants: [{user: a, group: g, scope: view, devices: ['0001']}]",
         ["grants[0]: give exactly one of user or group"]),
        ("grants: [{user: a, scope: look, devices: ['0001']}]",
         ["grants[0].scope: 'look' is not one of: view, push, fetch, login"]),
        ("grants: [{user: a, scope: push, access: view-only, devices: ['5001']}]",
         ["grants[0].access: access view-only applies to view grants only"]),
        ("grants: [{user: a, scope: view}]",
         ["grants[0]: names no devices: give devices and/or device_groups"]),
        ("grants: [{user: a, scope: view, devices: ['0001', '5001']}]",
         ["grants[0].devices[1]: 5001 is not a Tx: view grants name Tx"]),
        ("grants: [{user: a, scope: fetch, devices: ['0001-0003']}]",
         ["grants[0].devices[0]: 0001-0003 is not an Rx: fetch grants name Rx"]),
        ("grants: [{user: a, scope: view, devices: ['0010-0001']}]",
         ["grants[0].devices[0]: '0010-0001': the range starts after it ends"]),
        ("grants: [{user: a, scope: view, devices: ['0001-5001']}]",
         ["grants[0].devices[0]: '0001-5001' is not a range of Tx IDs or of Rx IDs"]),
        ("grants: [{user: a, scope: view, devices: ['5000']}]",
         ["grants[0].devices[0]: '5000' is not a device ID (Tx 0001-4999, Rx 5001-9999)"]),
        ("hotkeys: {'12': ['0001']}",
         ["hotkeys.12: '12' is not a hotkey: 1-16 of A-Z a-z 0-9 - _ with at least one "
          "non-digit, not 'all' (quote keys like yes, no, on, off)"]),
        ("hotkeys: {all: ['5001']}",
         ["hotkeys.all: 'all' is not a hotkey: 1-16 of A-Z a-z 0-9 - _ with at least one "
          "non-digit, not 'all' (quote keys like yes, no, on, off)"]),
        ("hotkeys: {abcdefghijklmnopq: ['0001']}",
         ["hotkeys.abcdefghijklmnopq: 'abcdefghijklmnopq' is not a hotkey: 1-16 of A-Z a-z 0-9 "
          "- _ with at least one non-digit, not 'all' (quote keys like yes, no, on, off)"]),
        ("hotkeys: {'a.b': ['0001']}",
         ["hotkeys['a.b']: 'a.b' is not a hotkey: 1-16 of A-Z a-z 0-9 - _ with at least one "
          "non-digit, not 'all' (quote keys like yes, no, on, off)"]),
        ("hotkeys: {on: ['0001']}",
         ["hotkeys.true: true is not a hotkey: 1-16 of A-Z a-z 0-9 - _ with at least one "
          "non-digit, not 'all' (quote keys like yes, no, on, off)"]),
        ("hotkeys: {A1: []}", ["hotkeys.A1: needs at least 1 item(s), got 0"]),
        ("hotkeys: {A1: ['0001', '5001']}",
         ["hotkeys.A1: mixes Tx and Rx; a hotkey names only Tx or only Rx"]),
        ("hotkeys: {A1: ['0001'], a1: ['0002']}",
         ["hotkeys.a1: same hotkey as 'A1' (case does not count)"]),
        ("settings: {chord: 'Shift+Q+'}",
         ["settings.chord: 'Shift+Q+' is not a key sequence like 'Shift+O Shift+O': "
          "bad chord 'Shift+Q+'"]),
        ("settings: {chord_window_ms: 50}", ["settings.chord_window_ms: 50 is not in 100..5000"]),
        ("settings: {colour: red}",
         ["settings.colour: unknown key (known: chord, chord_window_ms, lang, auto_close_ms, "
          "idle_close_s, idle_logout_s)"]),
        ("sites: []", ["sites: unknown key (known: tx, rx, seats, walls, user_groups, "
                       "device_groups, users, grants, hotkeys, settings)"]),
        ("[]", ["expected a mapping, got []"]),
    ],
)
def test_parse_errors_name_the_key_path(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seats: [{name: s, screens: ['5009']}]", ["seats[0].screens[0]: no device 5009"]),
        ("walls: [{name: w, rows: 1, cols: 1, tiles: ['5009']}]",
         ["walls[0].tiles[0]: no device 5009"]),
        ("grants: [{user: ghost, scope: view, devices: ['0001']}]",
         ["grants[0].user: no user 'ghost'"]),
        ("grants: [{group: nope, scope: view, devices: ['0001']}]",
         ["grants[0].group: no user group 'nope'"]),
        ("grants: [{user: op, scope: view, devices: ['0009']}]",
         ["grants[0].devices[0]: no device 0009"]),
        ("grants: [{user: op, scope: view, devices: ['0100-0200']}]",
         ["grants[0].devices[0]: no device in 0100-0200"]),
        ("grants: [{user: op, scope: view, device_groups: [g]}]",
         ["grants[0].device_groups[0]: no device group 'g'"]),
        ("device_groups: [{name: g, devices: ['0009']}]",
         ["device_groups[0].devices[0]: no device 0009"]),
        ("hotkeys: {A1: ['0001', '0009']}", ["hotkeys.A1[1]: no device 0009"]),
    ],
)
def test_references_must_resolve(text: str, expected: list[str]) -> None:
    assert ref_errors(BASE + text) == expected


def test_user_groups_must_be_declared() -> None:
    assert ref_errors("users: [{name: x, password: xxxxxx, groups: [ops, nope]}]\n"
                      "user_groups: [ops]") == ["users[0].groups[1]: no user group 'nope'"]


def test_references_may_resolve_against_what_the_database_knows() -> None:
    text = "grants: [{user: op, scope: view, devices: ['0001-0009']}]\nhotkeys: {X: ['0002']}"
    assert ref_errors(text) == ["grants[0].user: no user 'op'",
                                "grants[0].devices[0]: no device in 0001-0009",
                                "hotkeys.X[0]: no device 0002"]
    db = Known(devices={"0002": "tx", "5001": "rx"}, users=frozenset({"op"}))
    assert ref_errors(text, Known.of(parse(load_yaml(text))).merged(db)) == []


@pytest.mark.parametrize(
    ("device_id", "kind"),
    [("0001", "tx"), ("4999", "tx"), ("5001", "rx"), ("9999", "rx"), ("5000", None),
     ("0000", None), ("001", None), ("00001", None), ("abcd", None)],
)
def test_kind_of(device_id: str, kind: str | None) -> None:
    assert kind_of(device_id) == kind


def test_ranges_expand_to_existing_devices_and_compress_back() -> None:
    existing = ["0001", "0002", "0004", "0005", "0006", "0011", "5001"]
    assert expand("0002-0010", existing) == ["0002", "0004", "0005", "0006"]
    assert expand("0004", existing) == ["0004"]
    assert compress(["0006", "0001", "0002", "0004", "0005", "0011", "0003"]) == [
        "0001-0006", "0011"]
    assert compress(["5001", "5002", "5004"]) == ["5001", "5002", "5004"]


# --- import and export -------------------------------------------------------------------

_HASHES: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _hash_each_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 is slow on purpose; the imports here hash the same few passwords many times."""

    def cached(password: str) -> str:
        if password not in _HASHES:
            _HASHES[password] = hash_password(password)
        return _HASHES[password]

    monkeypatch.setattr(topology_db, "hash_password", cached)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def export(db: Database) -> dict[str, Any]:
    with db.begin() as s:
        return export_config(s)


def import_file(db: Database, source: Path | str, *, replace: bool = True) -> None:
    cfg = parse(load_yaml(source))
    with db.begin() as s:
        import_config(s, cfg, replace=replace)


def test_import_builds_the_room_the_engine_sees(db: Database) -> None:
    import_file(db, ROOM)
    with db.session() as s:
        built = SnapshotCache(10).build(s)
    snap = built.snap
    hxfj = snap.users["hxfj"]
    assert hxfj.scopes.view == frozenset(f"{i:04d}" for i in range(1, 11))
    assert hxfj.scopes.push == hxfj.scopes.fetch == frozenset(str(i) for i in range(5001, 5013))
    guest = snap.users["guest"]
    assert (guest.scopes.view, guest.scopes.push) == (frozenset({"0001", "0002"}), frozenset())
    assert guest.scopes.fetch == frozenset({"5001", "5002", "5003", "5004"})
    viewer = snap.users["viewer"]
    assert viewer.scopes.view_only == viewer.scopes.view == frozenset(
        f"{i:04d}" for i in range(1, 6))
    assert snap.users["admin"].role == "admin"
    assert snap.hotkeys["ops"].targets == ("5004", "5005", "5006")
    assert [(w.name, w.tiles, w.splice) for w in snap.walls] == [
        ("main-wall", ("5009", "5010", "5011", "5012"), True)]
    assert ("seat-B", ("5002", "5003")) in [(x.name, x.screens) for x in snap.seats]
    assert snap.devices["0004"].heads == 2
    with db.session() as s:
        users = {u.name: u for u in s.scalars(select(m.User))}
        assert verify_password(users["hxfj"].password_hash, "123456")
        assert not verify_password(users["hxfj"].password_hash, "1234567")
        audit = s.scalars(select(m.AuditEntry).where(m.AuditEntry.action == "import")).one()
        assert (audit.target, audit.detail["tx"]) == ("replace", 12)


def test_the_admin_of_init_keeps_its_password_when_the_file_names_no_password(
    db: Database,
) -> None:
    import_file(db, ROOM)
    with db.session() as s:
        admin = s.scalars(select(m.User).where(m.User.name == "admin")).one()
        assert verify_password(admin.password_hash, "admin123")    # set by init_data_dir


@pytest.mark.parametrize("source", [ROOM, SMALL])
def test_export_then_import_reproduces_the_configuration(
    db: Database, tmp_path: Path, source: Path
) -> None:
    import_file(db, source)
    first = export(db)
    text = dump_yaml(first)
    assert "password:" not in text and "123456" not in text
    assert "$argon2id$" in text
    # Into a database that holds something else entirely: replace makes it equal.
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        other.upgrade()
        with other.begin() as s:
            from webadmin.db import ensure_singletons

            ensure_singletons(s)
            s.add(m.User(name="admin", role="admin", password_hash="$argon2id$x"))
        import_file(other, SMALL if source == ROOM else ROOM)
        import_file(other, text)
        assert export(other) == first
    finally:
        other.dispose()
    # Importing the export again over itself, merging or replacing, changes nothing.
    import_file(db, text, replace=False)
    assert export(db) == first
    import_file(db, text, replace=True)
    assert export(db) == first


def test_replace_drops_what_the_file_does_not_name_but_keeps_pending_devices(
    db: Database,
) -> None:
    import_file(db, ROOM)
    with db.begin() as s:
        s.add(m.Device(kind="rx", serial="NEW-RX", adoption="pending", heads=1))
    import_file(db, SMALL)
    doc = export(db)
    assert [d["id"] for d in doc["tx"]] == ["0101", "0102", "0250", "4999"]
    assert [(u["name"], u["lang"]) for u in doc["users"]] == [
        ("admin", "en"), ("ext", "zh_CN"), ("lead", "en"), ("ops1", "zh_CN")]
    assert list(doc["hotkeys"]) == ["hmi", "P-2", "strip"]
    assert doc["settings"]["auto_close_ms"] == 1000           # back to the default
    with db.session() as s:
        pending = s.scalars(select(m.Device).where(m.Device.adoption == "pending")).one()
        assert pending.serial == "NEW-RX"


def test_merge_updates_what_the_file_names_and_leaves_the_rest(db: Database) -> None:
    import_file(db, ROOM)
    import_file(db, """
rx: [{id: '5013', name: New desk, serial: SIM-RX-5013}]
seats: [{name: seat-A, screens: ['5001', '5004']}]
hotkeys: {a1: ['0002']}
settings: {lang: en}
grants: [{user: guest, scope: push, devices: ['5013']}]
""", replace=False)
    doc = export(db)
    seats = {x["name"]: x["screens"] for x in doc["seats"]}
    assert seats["seat-A"] == ["5001", "5004"]
    assert "seat-C" not in seats                      # 5004 moved; the empty seat is not exported
    assert doc["hotkeys"]["a1"] == ["0002"]           # same hotkey (case does not count)
    assert "A1" not in doc["hotkeys"]
    assert doc["settings"]["lang"] == "en" and doc["settings"]["chord_window_ms"] == 600
    assert {"user": "guest", "scope": "push", "devices": ["5013"]} in doc["grants"]
    assert len(doc["rx"]) == 13 and len(doc["users"]) == 4


def test_a_pending_device_with_a_configured_serial_is_adopted_with_its_credential(
    db: Database,
) -> None:
    secret = hash_secret("ab" * 32)
    with db.begin() as s:
        s.add(m.Device(kind="tx", serial="SIM-TX-0001", adoption="pending", heads=1,
                       credential_hash=secret))
    import_file(db, ROOM)
    with db.session() as s:
        dev = s.scalars(select(m.Device).where(m.Device.serial == "SIM-TX-0001")).one()
        assert (dev.id, dev.adoption, dev.credential_hash) == ("0001", "adopted", secret)
        assert s.scalar(select(func.count()).where(m.Device.adoption == "pending")) == 0


def test_a_device_given_another_serial_must_bind_again(db: Database) -> None:
    import_file(db, ROOM)
    with db.begin() as s:
        dev = s.scalars(select(m.Device).where(m.Device.id == "0001")).one()
        dev.credential_hash = hash_secret("cd" * 32)
    import_file(db, "tx: [{id: '0001', name: Swapped, serial: OTHER-1}]", replace=False)
    with db.session() as s:
        dev = s.scalars(select(m.Device).where(m.Device.id == "0001")).one()
        assert (dev.serial, dev.credential_hash) == ("OTHER-1", None)


def test_serials_can_swap_between_devices(db: Database) -> None:
    import_file(db, ROOM)
    import_file(db, "tx: [{id: '0001', serial: SIM-TX-0002}, {id: '0002', serial: SIM-TX-0001}]",
                replace=False)
    tx = {d["id"]: d["serial"] for d in export(db)["tx"]}
    assert (tx["0001"], tx["0002"]) == ("SIM-TX-0002", "SIM-TX-0001")


@pytest.mark.parametrize(
    ("text", "replace", "expected"),
    [
        ("tx: [{id: '0001', serial: SIM-TX-0002}]", False,
         ["tx[0].serial: 'SIM-TX-0002' is the serial of device 0002"]),
        ("users: [{name: newbie}]", False,
         ["users[0].password: new user 'newbie' needs a password or password_hash"]),
        ("users: [{name: admin, role: operator}]", False,
         ["users: no enabled admin would remain; keep at least one"]),
        ("users: [{name: admin, enabled: false}]", False,
         ["users: no enabled admin would remain; keep at least one"]),
        ("tx: [{id: '0001'}]", True, ["users: no enabled admin would remain; keep at least one"]),
        ("hotkeys: {Z: ['0099']}", False, ["hotkeys.Z[0]: no device 0099"]),
        ("hotkeys: {Z: ['0002']}", True,
         ["hotkeys.Z[0]: no device 0002",
          "users: no enabled admin would remain; keep at least one"]),
        ("rx: [{id: '5020', serial: PENDING-TX}]", False,
         ["rx[0].serial: 'PENDING-TX' announced itself as an tx"]),
    ],
)
def test_refused_imports_change_nothing(
    db: Database, text: str, replace: bool, expected: list[str]
) -> None:
    import_file(db, ROOM)
    with db.begin() as s:
        s.add(m.Device(kind="tx", serial="PENDING-TX", adoption="pending", heads=1))
    before = export(db)
    cfg = parse(load_yaml(text))
    with pytest.raises(ConfigError) as info, db.begin() as s:
        import_config(s, cfg, replace=replace)
    assert [str(p) for p in info.value.problems] == expected
    assert export(db) == before


def test_export_is_valid_yaml_with_quoted_ids(db: Database) -> None:
    import_file(db, ROOM)
    text = dump_yaml(export(db))
    raw = yaml.safe_load(text)           # plain PyYAML reads it the same way
    assert raw["tx"][0]["id"] == "0001" and raw["rx"][0]["id"] == "5001"
    assert parse(load_yaml(text)).hotkeys[0].targets == ("0001",)


def test_a_tx_without_a_name_is_named_by_the_simulator() -> None:
    """The topology may leave a Tx unnamed; the simulator's document then has no name for
    it (an empty one is not a name the simulator accepts) and the simulator names it."""
    from firmware_sim.config import build_fabric, parse_config

    cfg = parse(load_yaml("tx: [{id: '0001'}, {id: '0002', name: Kiosk}]\nrx: [{id: '5001'}]"))
    doc = sim_document(cfg)
    assert "name" not in doc["tx"][0] and doc["tx"][1]["name"] == "Kiosk"
    fabric = build_fabric(parse_config(doc))
    assert [t.name for t in fabric.tx.values()] == ["TX-0001", "Kiosk"]
