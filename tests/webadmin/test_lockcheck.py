"""``webadmin.lockcheck``: a greenlet that yields holding the write lock is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import json, logging, sys, gevent
from sqlalchemy import text
from webadmin import lockcheck
from webadmin.db import IMMEDIATE, Database

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.stack)
logging.getLogger("webadmin.lockcheck").addHandler(Keep())

db = Database(sys.argv[1])
lockcheck.install(db.engine, IMMEDIATE)
with db.begin() as s:
    s.execute(text("CREATE TABLE t (n INTEGER)"))

def sleeps_in_a_write_transaction():
    with db.begin() as s:
        gevent.sleep(0.01)
        s.execute(text("INSERT INTO t VALUES (1)"))

def sleeps_after_a_deferred_write():
    with db.session() as s:
        s.execute(text("SELECT count(*) FROM t")).scalar()
        gevent.sleep(0.01)                      # a reader may yield: nothing to report
        s.execute(text("INSERT INTO t VALUES (2)"))
        gevent.sleep(0.01)
        s.commit()

def sleeps_after_its_commit():
    with db.begin() as s:
        s.execute(text("INSERT INTO t VALUES (3)"))
    gevent.sleep(0.01)

for _ in range(2):   # each place is reported once
    for f in (sleeps_in_a_write_transaction, sleeps_after_a_deferred_write,
              sleeps_after_its_commit):
        gevent.spawn(f).get()
print(json.dumps(records))
"""


def test_yields_inside_write_transactions_are_reported_once_per_place(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, f"sqlite:///{tmp_path / 'room.db'}"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    stacks = json.loads(out.stdout)
    assert len(stacks) == 2, stacks
    assert "sleeps_in_a_write_transaction" in stacks[0]
    assert "sleeps_after_a_deferred_write" in stacks[1]
    assert "line 29, in sleeps_after_a_deferred_write" in stacks[1]  # the second sleep
