"""The dashboard: counts, the live routing view (polled as JSON every 2 s), and the admins'
routing actions (connect / push / fetch / disconnect through the engine, audited)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, flash, jsonify, redirect, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import StringField

from kvm_protocol.results import push_summary
from webadmin import admin_service
from webadmin import models as m
from webadmin.admin_service import ROUTING_ACTIONS, AdminError
from webadmin.api_common import db_session, services
from webadmin.snapshot import Built
from webadmin.ui import model
from webadmin.ui.common import Form, actor, bp, commit, lang, refuse, render, result_text, t

PAGE_SIZES = (25, 50, 100, 200)


class RouteForm(Form):
    rx = StringField()
    action = StringField(default="connect")
    text = StringField()


def _built() -> Built:
    return services().cache.build(db_session())


def _pending() -> int:
    return int(db_session().scalar(select(func.count()).select_from(m.Device).where(
        m.Device.adoption == "pending")) or 0)


def _query() -> tuple[str, str, int, int]:
    q = request.args.get("q", "")[:100]
    state = request.args.get("state", "all")
    if state not in model.STATES:
        state = "all"
    page = request.args.get("page", "1")
    size = request.args.get("size", "50")
    return (q, state, int(page) if page.isdigit() and len(page) < 7 else 1,
            int(size) if size in {str(x) for x in PAGE_SIZES} else 50)


def _view(built: Built) -> dict[str, Any]:
    q, state, page, size = _query()
    rows = model.filter_rows(model.route_rows(built), q, state)
    return {"counts": model.counts(built, _pending()), "page": model.paginate(rows, page, size),
            "q": q, "state": state, "size": size}


@bp.get("/")
def dashboard() -> tuple[str, int]:
    built = _built()
    form = RouteForm(formdata=None)
    rx = request.args.get("rx", "")
    if rx.isdigit():
        form.rx.data = rx
    return render("dashboard.html", form=form, states=model.STATES, sizes=PAGE_SIZES,
                  **_view(built))


@bp.get("/dashboard/live.json")
def live() -> Response:
    """Counts and one page of the routing view, for the page's 2 s poll."""
    view = _view(_built())
    page = view["page"]
    return jsonify({
        "counts": asdict(view["counts"]),
        "page": page.page, "pages": page.pages, "total": page.total,
        "first": page.first, "last": page.last,
        "rows": [asdict(r) for r in page.items],
    })


@bp.post("/routing")
def route() -> BaseResponse | tuple[str, int]:
    """An admin's switch from the web: the engine decides, as at a seat."""
    form = RouteForm()
    s = db_session()
    built = _built()
    rx = (form.rx.data or "").strip()
    try:
        if not form.validate():
            raise AdminError("VALIDATION", "csrf")
        if form.action.data not in ROUTING_ACTIONS:
            raise AdminError("VALIDATION", "action", fields={"action": t("route.bad_action")})
        outcome, notify = admin_service.admin_route(
            s, built, actor=actor(), rx_id=rx, action=form.action.data,
            text=(form.text.data or "").strip()[:200])
    except AdminError as e:
        refuse(form, e)
        return render("dashboard.html", 400, form=form, states=model.STATES, sizes=PAGE_SIZES,
                      **_view(built))
    commit(notify)
    message = f"{rx} · {t('route.' + form.action.data)}: {result_text(outcome.code.value)}"
    failures = [(x.target, x.code) for x in outcome.targets if not x.code.ok]
    if failures and len(outcome.targets) > 1:
        message += " — " + push_summary(failures, lang())  # type: ignore[arg-type]
    flash(message, "ok" if outcome.code.ok else "error")
    return redirect(url_for("ui.dashboard", rx=rx))
