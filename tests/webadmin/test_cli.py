"""kvm-admin: init, import/export round trip, passwd, devices/adopt, and clear refusals."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from webadmin import models as m
from webadmin.auth import hash_secret, verify_password
from webadmin.cli import main
from webadmin.db import Database, sqlite_url

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory initialised once for the module, with the example room imported."""
    data = tmp_path_factory.mktemp("cli") / "data"
    code, out, err = run("init", "--data", str(data), "--admin-password", "first-pass",
                         "--import", str(EXAMPLES / "control-room.yaml"))
    assert (code, err) == (0, ""), err
    assert "imported" in out and "(merge): 12 tx, 12 rx" in out
    return data


@pytest.fixture
def data(initialised: Path, tmp_path: Path) -> Path:
    """A private copy of the initialised data directory."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(initialised, copy)
    return copy


def db_of(data: Path) -> Database:
    return Database(sqlite_url(data))


def test_init_prints_a_generated_password_once_and_it_works(tmp_path: Path) -> None:
    data = tmp_path / "new"
    code, out, err = run("init", "--data", str(data))
    assert (code, err) == (0, "")
    lines = [line for line in out.splitlines() if line.startswith("admin password:")]
    assert len(lines) == 1
    password = lines[0].split(":", 1)[1].strip()
    assert len(password) >= 12
    assert "shown once" in out
    key = data / "secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    db = db_of(data)
    try:
        with db.session() as s:
            admin = s.scalars(select(m.User)).one()
            assert (admin.name, admin.role) == ("admin", "admin")
            assert verify_password(admin.password_hash, password)
            assert password not in admin.password_hash
    finally:
        db.dispose()
    # A second init refuses and says why; the password is not printed again.
    code, out, err = run("init", "--data", str(data))
    assert code == 1 and out == ""
    assert "already initialised" in err and "Traceback" not in err


def test_two_inits_generate_different_passwords(tmp_path: Path) -> None:
    passwords = set()
    for name in ("a", "b"):
        _, out, _ = run("init", "--data", str(tmp_path / name))
        passwords.add(out.split("admin password:")[1].split()[0])
    assert len(passwords) == 2


def test_init_with_a_given_password_does_not_echo_it(tmp_path: Path) -> None:
    code, out, _ = run("init", "--data", str(tmp_path / "d"), "--admin-password", "s3cret-pw")
    assert code == 0 and "s3cret-pw" not in out and "admin password" not in out
    code, _, err = run("init", "--data", str(tmp_path / "e"), "--admin-password", "123")
    assert code == 1 and "at least 6 characters" in err


def test_init_with_a_bad_import_file_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tx: [{id: '0001', heads: 7}]\n")
    code, out, err = run("init", "--data", str(tmp_path / "d"), "--import", str(bad))
    assert code == 1 and out == ""
    assert err == f"kvm-admin: {bad}: 1 problem(s):\n  tx[0].heads: 7 is not in 1..4\n"
    assert not (tmp_path / "d").exists()


def test_export_import_round_trip(data: Path, tmp_path: Path) -> None:
    code, exported, err = run("export", "--data", str(data))
    assert (code, err) == (0, "")
    assert exported.startswith("# kvm-seat control-room configuration")
    assert "123456" not in exported and "$argon2id$" in exported
    out_file = tmp_path / "backup.yaml"
    assert run("export", "--data", str(data), str(out_file))[0] == 0
    assert out_file.read_text() == exported
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    # Restore into a fresh server: the same configuration, the same passwords.
    fresh = tmp_path / "fresh"
    assert run("init", "--data", str(fresh), "--admin-password", "other-pass")[0] == 0
    code, out, err = run("import", "--data", str(fresh), "--replace", str(out_file))
    assert (code, err) == (0, ""), err
    assert "(replace)" in out
    assert run("export", "--data", str(fresh))[1] == exported
    db = db_of(fresh)
    try:
        with db.session() as s:
            users = {u.name: u for u in s.scalars(select(m.User))}
            assert verify_password(users["hxfj"].password_hash, "123456")
            assert verify_password(users["admin"].password_hash, "first-pass")
    finally:
        db.dispose()


def test_import_from_stdin(data: Path) -> None:
    code, out, err = run("import", "--data", str(data), "-",
                         stdin="hotkeys: {B2: ['0002']}\n")
    assert (code, err) == (0, "")
    assert out.startswith("imported - (merge): 0 tx")
    assert "B2: ['0002']" in run("export", "--data", str(data))[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tx: [{id: '0001'\n", "{f}: line 2, column 1: while parsing a flow mapping, expected "
                               "',' or '}}', but got '<stream end>'"),
        ("tx: [{id: '0001', heads: 7}]\nfoo: 1\n",
         "{f}: 2 problem(s):\n  foo: unknown key (known: tx, rx, seats, walls, user_groups, "
         "device_groups, users, grants, hotkeys, settings)\n  tx[0].heads: 7 is not in 1..4"),
        ("hotkeys: {Z9: ['0099']}\n", "{f}: 1 problem(s):\n  hotkeys.Z9[0]: no device 0099"),
        ("users: [{name: admin, role: operator}]\n",
         "{f}: 1 problem(s):\n  users: no enabled admin would remain; keep at least one"),
        (b"name: caf\xe9\n", "{f}: not UTF-8 text (byte 9)"),
    ],
)
def test_bad_files_are_refused_with_the_reason(
    data: Path, tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    before = run("export", "--data", str(data))[1]
    code, out, err = run("import", "--data", str(data), str(path))
    assert (code, out) == (1, "")
    assert err == "kvm-admin: " + message.format(f=path) + "\n"
    assert run("export", "--data", str(data))[1] == before


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["import", "--data", "{tmp}/none", "{room}"], 1,
         "kvm-admin: {tmp}/none is not an initialised data directory: "
         "run `kvm-admin init --data {tmp}/none` first\n"),
        (["import", "--data", "{data}", "{tmp}/missing.yaml"], 1,
         "kvm-admin: {tmp}/missing.yaml: cannot read: No such file or directory\n"),
        (["export", "--data", "{data}", "{tmp}/no/such/dir/out.yaml"], 1,
         "kvm-admin: cannot write {tmp}/no/such/dir/out.yaml: No such file or directory\n"),
        (["passwd", "--data", "{data}", "nobody", "--password", "abcdefgh"], 1,
         "kvm-admin: no user 'nobody'\n"),
        (["passwd", "--data", "{data}", "hxfj", "--password", "abc"], 1,
         "kvm-admin: password: a password has 6-128 characters and no control characters "
         "(this one has 3)\n"),
        (["adopt", "--data", "{data}", "NOPE", "5001"], 1,
         "kvm-admin: no device with serial 'NOPE'\n"),
        (["reset-device", "--data", "{data}", "0099"], 1, "kvm-admin: no device 0099\n"),
        (["devices", "--data", "{data}", "--config", "{tmp}/server.yaml"], 2,
         "kvm-admin: bad server configuration:\nport: 99999 is not in 0..65535\n"),
    ],
)
def test_refusals_are_one_clear_line_and_an_exit_code(
    data: Path, tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    (tmp_path / "server.yaml").write_text("port: 99999\n")
    fill = {"tmp": tmp_path, "data": data, "room": EXAMPLES / "control-room.yaml"}
    got = run(*(a.format(**fill) for a in argv))
    assert got == (code, "", message.format(**fill))


def test_usage_errors_exit_2() -> None:
    assert run()[0] == 2
    assert run("bogus")[0] == 2
    assert run("import", "--data", "x")[0] == 2          # FILE missing


def test_passwd_from_stdin_changes_the_password_and_ends_admin_tokens(data: Path) -> None:
    db = db_of(data)
    try:
        with db.begin() as s:
            admin = s.scalars(select(m.User).where(m.User.name == "admin")).one()
            s.add(m.AdminToken(token_hash="0" * 64, user=admin, expires_at=m.utcnow()))
        code, out, err = run("passwd", "--data", str(data), "admin", stdin="brand-new-pw\n")
        assert (code, out, err) == (0, "password of admin changed\n", "")
        with db.session() as s:
            admin = s.scalars(select(m.User).where(m.User.name == "admin")).one()
            assert verify_password(admin.password_hash, "brand-new-pw")
            assert s.scalars(select(m.AdminToken)).all() == []
            assert s.scalars(select(m.AuditEntry.action).where(
                m.AuditEntry.action == "set_password")).all() == ["set_password"]
    finally:
        db.dispose()


def test_devices_and_adopt(data: Path) -> None:
    db = db_of(data)
    try:
        with db.begin() as s:
            for serial in ("HW-RX-77", "HW-RX-78"):
                s.add(m.Device(kind="rx", serial=serial, adoption="pending", heads=2,
                               credential_hash=hash_secret("ab" * 32)))
        code, out, _ = run("devices", "--data", str(data), "--pending")
        assert code == 0
        assert [line.split() for line in out.splitlines()[1:]] == [
            ["-", "rx", "2", "pending", "yes", "HW-RX-77"],
            ["-", "rx", "2", "pending", "yes", "HW-RX-78"]]
        code, _, err = run("adopt", "--data", str(data), "HW-RX-77", "0077")
        assert (code, err) == (1, "kvm-admin: id: 0077 is not an Rx ID (5001-9999); "
                                  "this device is a rx\n")
        # 5001 is configured (imported) but no device has bound it yet: HW-RX-77 takes it.
        code, out, err = run("adopt", "--data", str(data), "HW-RX-77", "5001")
        assert (code, out, err) == (0, "adopted HW-RX-77 as 5001\n", "")
        code, _, err = run("adopt", "--data", str(data), "HW-RX-78", "5001")
        assert (code, err) == (1, "kvm-admin: id: 5001 belongs to the device with serial "
                                  "'HW-RX-77'\n")
        code, out, err = run("adopt", "--data", str(data), "HW-RX-78", "5077", "--name", "Desk 77")
        assert (code, out, err) == (0, "adopted HW-RX-78 as 5077\n", "")
        assert run("devices", "--data", str(data), "--pending")[1] == "no pending devices\n"
        with db.session() as s:
            devs = {d.serial: d for d in s.scalars(select(m.Device).where(
                m.Device.serial.in_(["HW-RX-77", "HW-RX-78"])))}
            assert [(d.id, d.name, d.adoption, d.heads, d.credential_hash is not None)
                    for d in devs.values()] == [
                ("5001", "Seat A", "adopted", 2, True), ("5077", "Desk 77", "adopted", 2, True)]
            assert s.scalar(select(m.Device).where(m.Device.serial == "SIM-RX-5001")) is None
    finally:
        db.dispose()


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("kvm-admin")
    proc = subprocess.run([str(exe), "import", "--data", str(tmp_path / "x"), "nope.yaml"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "error"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("kvm-admin: nope.yaml: cannot read")
    assert "Traceback" not in proc.stderr
