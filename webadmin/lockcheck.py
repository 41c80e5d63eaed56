"""Development aid: report a greenlet that lets the others run while it holds the database's
write lock (server setting ``check_lock_holds``; the lab's tests turn it on).

Under ``kvm-server`` every request is a greenlet of one thread. A greenlet that yields —
reads a socket, sleeps, waits for a thread — inside a write transaction keeps SQLite's
single write lock while the others run, and every other writer then waits for it (see
``webadmin.bodies`` for the one that froze a lab for 30 s). With the check on, each such
yield is logged as an error with the yielding greenlet's stack, at most once per place.

A connection counts as a writer from ``BEGIN IMMEDIATE`` or its first ``INSERT``/``UPDATE``/
``DELETE`` until its commit, rollback or return to the pool. The check costs a call on every
greenlet switch: it is for tests and for finding a culprit, not for production.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger("webadmin.lockcheck")

MESSAGE = "a greenlet yielded while holding the database write lock"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def install(engine: Engine, immediate_option: str) -> None:
    """Watch `engine`'s write transactions and every greenlet switch of the process."""
    import greenlet

    writers: dict[int, Any] = {}   # id(DBAPI connection) -> greenlet of its write transaction
    reported: set[str] = set()

    def _key(conn: Any) -> int:
        return id(conn.connection.dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(immediate_option, False):
            writers[_key(conn)] = greenlet.getcurrent()

    @event.listens_for(engine, "before_cursor_execute")
    def _execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip()[:7].upper().startswith(_WRITES):
            writers.setdefault(_key(conn), greenlet.getcurrent())

    def _done(conn: Any) -> None:
        writers.pop(_key(conn), None)

    event.listen(engine, "commit", _done)
    event.listen(engine, "rollback", _done)

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn: Any, _record: Any) -> None:
        writers.pop(id(dbapi_conn), None)

    previous = greenlet.gettrace()

    def trace(what: str, args: Any) -> None:
        if what in ("switch", "throw") and writers:
            origin = args[0]
            if origin in writers.values():
                frame = origin.gr_frame
                stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
                if stack not in reported:
                    reported.add(stack)
                    log.error(MESSAGE, extra={"stack": stack})
        if previous is not None:
            previous(what, args)

    greenlet.settrace(trace)
