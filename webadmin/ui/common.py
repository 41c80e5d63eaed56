"""What every page of the web UI shares: the blueprint, sign-in state, the guard that runs
before each view (CSRF, idle expiry, admins only), language, time display, and helpers
that turn domain refusals into messages next to form fields."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from kvm_protocol.results import ResultCode
from webadmin import models as m
from webadmin.admin_service import AdminError
from webadmin.api_common import db_session, services
from webadmin.ui.i18n import DEFAULT_LANG, LANGS, translate, translate_problem

log = logging.getLogger("webadmin.ui")

bp = Blueprint("ui", __name__)
csrf = CSRFProtect()
login_manager = LoginManager()

IDLE_TIMEOUT_S = 30 * 60          # default; app.config["UI_IDLE_TIMEOUT_S"] overrides
PUBLIC = frozenset({"ui.login", "ui.set_lang", "ui.cjk_font"})
PASSIVE = frozenset({"ui.live"})  # polling does not count as activity for the idle timeout
TZ_COOKIE = "kvm_tz"              # minutes east of UTC, set by app.js from the browser


class Form(FlaskForm):  # type: ignore[misc]  # Flask-WTF has no type information
    """Base of the UI's forms: Flask-WTF (CSRF token) with WTForms fields."""


# --- the signed-in admin -----------------------------------------------------------------


def password_stamp(password_hash: str) -> str:
    """Part of the session's user ID: a password change ends every other session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class Admin(UserMixin):  # type: ignore[misc]  # Flask-Login has no type information
    """The user of a web session (a plain copy, not an ORM row)."""

    def __init__(self, pk: int, name: str, role: str, stamp: str) -> None:
        self.pk, self.name, self.role, self.stamp = pk, name, role, stamp

    def get_id(self) -> str:
        return f"{self.pk}:{self.stamp}"

    @staticmethod
    def of(user: m.User) -> Admin:
        return Admin(user.pk, user.name, user.role, password_stamp(user.password_hash))


def _load_user(user_id: str) -> Admin | None:
    pk, _, stamp = user_id.partition(":")
    if not pk.isdigit():
        return None
    user = db_session().get(m.User, int(pk))
    if user is None or not user.enabled or password_stamp(user.password_hash) != stamp:
        return None
    return Admin.of(user)


def actor() -> str:
    """The name of the signed-in admin (the actor of audit entries)."""
    return str(current_user.name)


# --- language and time -------------------------------------------------------------------


def lang() -> str:
    value = session.get("lang")
    return value if value in LANGS else DEFAULT_LANG


def t(key: str, /, **params: Any) -> str:
    """The UI text `key` in the session's language."""
    return translate(key, lang(), **params)


def result_text(code: str) -> str:
    """A result code (kvm_protocol.results) in the session's language; other codes as they are."""
    try:
        return ResultCode(code).text(lang())  # type: ignore[arg-type]
    except ValueError:
        return code


def tz_offset() -> int:
    """The browser's offset from UTC in minutes (cookie set by app.js), 0 if unknown."""
    raw = request.cookies.get(TZ_COOKIE, "0")
    try:
        value = int(raw)
    except ValueError:
        return 0
    return value if -14 * 60 <= value <= 14 * 60 else 0


def tz_label() -> str:
    off = tz_offset()
    sign = "+" if off >= 0 else "-"
    return f"UTC{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}"


def local_time(value: dt.datetime | None, *, seconds: bool = True) -> str:
    if value is None:
        return ""
    local = value.astimezone(dt.timezone(dt.timedelta(minutes=tz_offset())))
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def parse_local_time(text: str) -> dt.datetime:
    """A ``datetime-local`` value in the browser's zone → UTC (ValueError if malformed)."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone(dt.timedelta(minutes=tz_offset())))
    return value.astimezone(dt.UTC)


def ago(value: dt.datetime | None) -> str:
    if value is None:
        return t("time.never")
    seconds = max(0, int((m.utcnow() - value).total_seconds()))
    if seconds < 60:
        return t("time.seconds_ago", n=seconds)
    if seconds < 3600:
        return t("time.minutes_ago", n=seconds // 60)
    if seconds < 86400:
        return t("time.hours_ago", n=seconds // 3600)
    return t("time.days_ago", n=seconds // 86400)


# --- forms and domain refusals -----------------------------------------------------------


def form_errors(form: Form) -> list[str]:
    """Errors of the form as a whole (shown above it)."""
    errors: list[str] | None = getattr(form, "_ui_errors", None)
    if errors is None:
        errors = []
        form._ui_errors = errors
    return errors


def add_error(form: Form, field: str, message: str) -> None:
    target = getattr(form, field, None) if field else None
    if target is not None and hasattr(target, "errors") and field != "csrf_token":
        target.errors = [*target.errors, message]
    else:
        form_errors(form).append(message)


def refuse(form: Form, error: AdminError, aliases: Mapping[str, str] | None = None) -> None:
    """Roll back and put each refused field's message next to it (in the UI language)."""
    db_session().rollback()
    fields = error.fields or {"": error.message}
    for field, message in fields.items():
        name = (aliases or {}).get(field, field)
        add_error(form, name, translate_problem(message, lang()))


def commit(notify: Iterable[str] = ()) -> None:
    """Commit the request's changes, then wake the watches of the devices told."""
    db_session().commit()
    ids = set(notify)
    if ids:
        services().hub.notify(ids)


def number(text: str | None) -> object:
    """A typed number as an int, else the text as it is (the domain refuses it by name)."""
    value = (text or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else value


def ok(message: str) -> None:
    flash(message, "ok")


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


def safe_next(target: str | None) -> str | None:
    """Only a path on this server (no scheme, no host, no //) is a place to go back to."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and "\\" not in target else None


# --- the guard before every view ---------------------------------------------------------


def _wants_json() -> bool:
    return request.endpoint in PASSIVE or request.path.endswith(".json")


def _to_login(reason: str | None) -> BaseResponse:
    if _wants_json():
        resp = jsonify({"error": reason or "signed_out"})
        resp.status_code = 401
        return resp
    if reason:
        flash(t(f"auth.{reason}"), "error")
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("ui.login", next=safe_next(target.rstrip("?") if target else None)))


def _guard() -> BaseResponse | tuple[str, int] | None:
    if request.method == "POST":
        csrf.protect()          # every form of the UI; the JSON APIs are not ours to guard
    if request.endpoint in PUBLIC or request.endpoint == "static":
        return None
    if not current_user.is_authenticated:
        return _to_login(None)
    idle = int(current_app.config.get("UI_IDLE_TIMEOUT_S", IDLE_TIMEOUT_S))
    now = int(time.time())
    seen = session.get("seen")
    if not isinstance(seen, int) or now - seen > idle:
        keep = session.get("lang")
        logout_user()
        session.clear()
        if keep:
            session["lang"] = keep
        return _to_login("expired")
    if current_user.role != "admin":
        logout_user()
        return render("refused.html", 403)
    if request.endpoint not in PASSIVE:
        session["seen"] = now
    return None


def _security_headers(resp: Response) -> Response:
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    )
    if request.endpoint not in ("static", "ui.cjk_font"):
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _error_page(exc: Exception) -> Any:
    if isinstance(exc, AdminError):      # a refusal outside a form (e.g. a button)
        db_session().rollback()
        status = {"NOT_FOUND": 404, "CONFLICT": 409}.get(exc.code, 400)
        text = "; ".join(translate_problem(msg, lang()) for msg in
                         (exc.fields or {"": exc.message}).values())
        return render("error.html", status, title=t("error.refused"), text=text)
    if isinstance(exc, CSRFError):
        db_session().rollback()
        if _wants_json():
            return jsonify({"error": "csrf"}), 400
        return render("error.html", 400, title=t("error.csrf_title"), text=t("error.csrf"))
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if _wants_json():
            return jsonify({"error": exc.name}), code
        key = {404: "error.not_found", 405: "error.method", 413: "error.too_large"}.get(
            code, "error.bad_request")
        return render("error.html", code, title=f"{code}", text=t(key))
    if isinstance(exc, OperationalError):
        log.error("database error on %s", request.path, exc_info=exc)
        return render("error.html", 503, title="503", text=t("error.database"))
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return render("error.html", 500, title="500", text=t("error.internal"))


def _context() -> dict[str, Any]:
    return {
        "t": t, "lang": lang(), "langs": LANGS, "result_text": result_text,
        "local_time": local_time, "tz_label": tz_label, "ago": ago,
        "form_errors": form_errors, "me": current_user,
    }


def init_extensions(app: Flask) -> None:
    """Flask-Login, CSRF and session settings of the UI (called from ``ui.init_app``)."""
    cfg = app.config.get("KVM_CONFIG")
    idle = getattr(cfg, "ui_idle_timeout_s", None) or IDLE_TIMEOUT_S
    app.config.setdefault("UI_IDLE_TIMEOUT_S", idle)
    # CSRF is checked by the UI's own guard, so that device and admin JSON APIs are untouched.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)   # the session's idle timeout rules
    # Flask's defaults are there already: these are the UI's choices, set outright.
    app.config.update(
        SESSION_COOKIE_NAME="kvm_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=app.config["UI_IDLE_TIMEOUT_S"]),
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.login_view = "ui.login"
    login_manager.session_protection = "basic"


bp.before_request(_guard)
bp.after_request(_security_headers)
bp.register_error_handler(Exception, _error_page)
bp.context_processor(_context)


def redirect_back(default: str) -> BaseResponse:
    return redirect(safe_next(request.form.get("next")) or default)
