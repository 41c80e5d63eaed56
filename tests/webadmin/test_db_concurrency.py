"""Two writers on one SQLite file queue up instead of failing with "database is locked"."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import text

from webadmin.db import Database


def test_a_writer_that_read_first_is_not_refused_when_another_commits_meanwhile(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'room.db'}"
    first, second = Database(url), Database(url)
    try:
        assert first.engine is not None
        with first.engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
            c.exec_driver_sql("INSERT INTO counter VALUES (0)")
        inside = threading.Event()
        errors: list[BaseException] = []

        def other_writer() -> None:
            inside.wait(5)
            try:
                with second.begin() as s:
                    s.execute(text("UPDATE counter SET n = n + 10"))
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other_writer)
        t.start()
        with first.begin() as s:
            n = s.execute(text("SELECT n FROM counter")).scalar_one()
            inside.set()
            t.join(0.5)  # the other writer waits for us rather than slipping in between
            s.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        t.join(10)
        assert not t.is_alive()
        assert errors == []
        with first.begin() as s:
            assert s.execute(text("SELECT n FROM counter")).scalar_one() == 11
    finally:
        first.dispose()
        second.dispose()


# Under gevent (kvm-server) every request is a greenlet of one thread.
_GREENLETS = """
from gevent import monkey; monkey.patch_all()
import json, sys, gevent
from sqlalchemy import text
from webadmin.db import Database

db = Database(sys.argv[1])
with db.begin() as s:
    s.execute(text("CREATE TABLE counter (n INTEGER)"))
    s.execute(text("INSERT INTO counter VALUES (0)"))
seen = []

def holder():
    with db.begin() as s:
        s.execute(text("UPDATE counter SET n = n + 1"))
        gevent.sleep(0.3)          # pauses inside its write transaction
        seen.append("holder commits")

def writer():
    gevent.sleep(0.05)             # starts while the holder has the write lock
    try:
        with db.begin() as s:
            s.execute(text("UPDATE counter SET n = n + 10"))
        seen.append("writer committed")
    except Exception as exc:
        seen.append("writer failed: " + exc.__class__.__name__)

def other():
    gevent.sleep(0.1)
    seen.append("another request ran")

gevent.joinall([gevent.spawn(holder), gevent.spawn(writer), gevent.spawn(other)])
with db.begin() as s:
    n = s.execute(text("SELECT n FROM counter")).scalar_one()
print(json.dumps({"seen": seen, "n": n}))
"""


def test_under_gevent_a_writer_waiting_for_the_lock_lets_the_holder_and_others_run(
    tmp_path: Path,
) -> None:
    # SQLite's own wait for the lock is a sleep inside the library: it would stop the whole
    # process, the holder included, and fail after its timeout.
    out = subprocess.run(
        [sys.executable, "-c", _GREENLETS, f"sqlite:///{tmp_path / 'room.db'}"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["seen"] == ["another request ran", "holder commits", "writer committed"]
    assert result["n"] == 11
