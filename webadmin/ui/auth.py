"""Sign-in and sign-out of admins, the language switch, and the CJK web font."""

from __future__ import annotations

import importlib.resources
import time
from pathlib import Path

from flask import abort, redirect, request, send_file, session, url_for
from flask_login import login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import HiddenField, PasswordField, StringField

from kvm_protocol.results import ResultCode
from webadmin import models as m
from webadmin import routing
from webadmin.api_common import db_session
from webadmin.auth import verify_password
from webadmin.ui.common import (
    Admin,
    Form,
    actor,
    add_error,
    bp,
    lang,
    render,
    safe_next,
    t,
)
from webadmin.ui.i18n import LANGS

PLACE = "web"                  # rate-limit bucket: 5 failures per user name a minute
IP_PLACE = "web-ip:"           # and 20 per client address a minute, whatever the name
IP_FAILURES = 20
FONT_PACKAGE = "cvttf_NotoSansCJK_Regular"   # the OSD's font package (osd/fonts.py)


class LoginForm(Form):
    user = StringField()
    password = PasswordField()
    next = HiddenField()


def _client() -> str:
    return (request.remote_addr or "unknown")[:60]


def _limited(name: str) -> bool:
    s = db_session()
    now = m.utcnow()
    return routing.rate_limited(s, name, PLACE, now) or routing.recent_failures(
        s, "*", IP_PLACE + _client(), now) >= IP_FAILURES


def _fail(name: str, result: str) -> None:
    s = db_session()
    now = m.utcnow()
    routing.record_failure(s, name, PLACE, now)
    routing.record_failure(s, "*", IP_PLACE + _client(), now)
    routing.audit(s, actor=name, action="web_login", result=result, target=_client())
    s.commit()


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        return render("login.html", form=form)
    if not form.validate():
        return render("login.html", 400, form=form)
    name = (form.user.data or "").strip()[:64]
    password = (form.password.data or "")[:256]
    if not name:
        add_error(form, "user", t("auth.need_user"))
    if not password:
        add_error(form, "password", t("auth.need_password"))
    if not name or not password:
        return render("login.html", 400, form=form)
    s = db_session()
    if _limited(name):
        routing.audit(s, actor=name, action="web_login", result="RATE_LIMITED",
                      target=_client())
        s.commit()
        add_error(form, "", ResultCode.RATE_LIMITED.text(lang()))  # type: ignore[arg-type]
        return render("login.html", 429, form=form)
    user = s.scalar(select(m.User).where(m.User.name == name))
    stored = user.password_hash if user is not None else None
    s.rollback()   # no read transaction across the slow hash (see webadmin.auth)
    if user is None or not verify_password(stored, password):
        _fail(name, "UNAUTHORIZED")
        add_error(form, "", ResultCode.BAD_CREDENTIALS.text(lang()))  # type: ignore[arg-type]
        return render("login.html", 401, form=form)
    if not user.enabled:
        _fail(name, "DISABLED")
        add_error(form, "", ResultCode.ACCOUNT_DISABLED.text(lang()))  # type: ignore[arg-type]
        return render("login.html", 401, form=form)
    if user.role != "admin":
        routing.audit(s, actor=name, action="web_login", result="FORBIDDEN", target=_client())
        s.commit()
        return render("refused.html", 403)
    keep = session.get("lang")
    session.clear()                      # a fresh session: nothing from before sign-in stays
    if keep:
        session["lang"] = keep
    login_user(Admin.of(user))
    session.permanent = True
    session["seen"] = int(time.time())
    routing.audit(s, actor=name, action="web_login", result="OK", target=_client())
    s.commit()
    return redirect(safe_next(form.next.data) or url_for("ui.dashboard"))


@bp.post("/logout")
def logout() -> BaseResponse:
    s = db_session()
    routing.audit(s, actor=actor(), action="web_logout", result="OK", target=_client())
    s.commit()
    keep = session.get("lang")
    logout_user()
    session.clear()
    if keep:
        session["lang"] = keep
    return redirect(url_for("ui.login"))


@bp.post("/lang")
def set_lang() -> BaseResponse:
    choice = request.form.get("lang", "")
    if choice in LANGS:
        session["lang"] = choice
    return redirect(safe_next(request.form.get("next")) or url_for("ui.dashboard"))


def _font_file() -> Path | None:
    try:
        root = importlib.resources.files(FONT_PACKAGE)
    except ModuleNotFoundError:
        return None
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.lower().endswith((".otf", ".ttf")):
            return Path(str(entry))
    return None


@bp.get("/ui-font/cjk.otf")
def cjk_font() -> BaseResponse:
    """Noto Sans CJK for browsers without a CJK font (fetched only for CJK characters)."""
    path = _font_file()
    if path is None:
        abort(404)
    return send_file(path, mimetype="font/otf", max_age=30 * 86400, conditional=True)
