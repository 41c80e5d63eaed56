"""The admins' web UI: server-rendered pages (Jinja templates in ``webadmin/templates``,
static files in ``webadmin/static``), one blueprint ``ui`` split per area.

    from webadmin import ui; ui.init_app(app)      # in create_app

Views parse the form at the edge (Flask-WTF), call the domain (``admin_service``,
``routing``, the engine through them) and render; they hold no rules of their own.
"""

from __future__ import annotations

from flask import Flask

from webadmin.ui.common import bp, csrf, init_extensions


def init_app(app: Flask) -> None:
    """Attach Flask-Login and CSRF protection, and register the ``ui`` blueprint."""
    # The area modules add their views to `bp` when imported.
    import webadmin.ui.audit
    import webadmin.ui.auth
    import webadmin.ui.dashboard
    import webadmin.ui.devices
    import webadmin.ui.hotkeys
    import webadmin.ui.settings
    import webadmin.ui.users  # noqa: F401

    init_extensions(app)
    app.register_blueprint(bp)


__all__ = ["bp", "csrf", "init_app"]
