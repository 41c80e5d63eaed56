"""Two writers on one SQLite file queue up instead of failing with "database is locked"."""

from __future__ import annotations

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
