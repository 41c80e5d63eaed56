"""The Flask application factory of the management server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from webadmin import api_admin, api_common, api_device, api_seat, auth, bodies, openapi, ui
from webadmin.api_common import Services
from webadmin.config import ServerConfig, from_mapping
from webadmin.db import IMMEDIATE, Database, ensure_singletons, gevent_patched, read_secret_key
from webadmin.idle import IdleLogout
from webadmin.routing import WatchHub
from webadmin.snapshot import SnapshotCache

log = logging.getLogger("webadmin")


def create_app(config: ServerConfig | Mapping[str, Any] | None = None, *,
               idle_logout: bool | None = None) -> Flask:
    """Build the server app. `config` is a ServerConfig, a mapping of its keys, or None
    (defaults plus ``KVM_SERVER_*`` environment). Applies the database migrations.

    `idle_logout`: run the server's idle-logout loop (``webadmin.idle.IdleLogout``, kept in
    ``app.extensions["kvm_idle"]``; stop it with its ``stop()``, it also stops when the
    watch hub closes at server shutdown). None (default): run it when gevent has patched
    ``threading`` — that is, under ``kvm-server`` — so that test apps start no threads."""
    if config is None:
        from webadmin.config import load_config

        cfg = load_config()
    elif isinstance(config, ServerConfig):
        cfg = config
    else:
        cfg = from_mapping(config)

    app = Flask(__name__)
    app.config.update(
        DATABASE_URL=cfg.db_url(),
        SECRET_KEY=read_secret_key(cfg.data_path),
        JSON_SORT_KEYS=False,
        KVM_CONFIG=cfg,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    db = Database(sqlite_synchronous=cfg.sqlite_synchronous)
    db.init_app(app)
    assert db.engine is not None
    # SQLite only: PostgreSQL's queries yield by design (psycopg waits cooperatively), and
    # its row locks queue writers inside the database, not by freezing this process.
    if cfg.check_lock_holds and gevent_patched() and db.engine.dialect.name == "sqlite":
        from webadmin import lockcheck

        lockcheck.install(db.engine, IMMEDIATE)
    db.upgrade()
    with db.begin() as s:
        ensure_singletons(s)
    app.extensions["kvm"] = Services(
        config=cfg, db=db, cache=SnapshotCache(cfg.device_timeout_s), hub=WatchHub()
    )

    idle = IdleLogout(db, app.extensions["kvm"].cache, app.extensions["kvm"].hub)
    app.extensions["kvm_idle"] = idle
    if idle_logout if idle_logout is not None else gevent_patched():
        idle.start()

    api_common.init_app(app)

    app.register_blueprint(api_device.bp)
    app.register_blueprint(api_seat.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(openapi.bp)
    # --- further blueprints register here (admin CRUD API, web UI) ----------------------
    api_admin.init_app(app)  # /api/v1/admin/... and its OpenAPI paths
    ui.init_app(app)  # the admins' web pages, with Flask-Login and CSRF protection
    bodies.install(app)  # last: its reading of the bodies comes before everything else
    return app
