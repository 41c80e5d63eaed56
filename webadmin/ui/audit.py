"""The audit log: every switch (who, at which seat, what, result) and every change,
filterable by user, device, kind and time; CSV export of the same selection."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from flask import Response, request
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.sql import Select

from kvm_protocol.results import ResultCode
from webadmin import models as m
from webadmin import routing
from webadmin.api_common import db_session
from webadmin.ui import model
from webadmin.ui.common import (
    actor,
    bp,
    local_time,
    parse_local_time,
    render,
    result_text,
    t,
    tz_label,
)
from webadmin.ui.i18n import has

PAGE = 100
CSV_LIMIT = 100_000
SWITCHES = ("connect", "push", "fetch", "admin_connect", "admin_push", "admin_fetch",
            "admin_disconnect", "enforce_scopes")
SESSIONS = ("login", "logout", "web_login", "web_logout", "token", "announce")
KINDS = ("all", "switch", "session", "config")
OK_RESULTS = frozenset({"OK", "PENDING", "BOUND"} | {c.value for c in ResultCode if c.ok})


@dataclass(frozen=True)
class Filters:
    user: str = ""
    device: str = ""
    kind: str = "all"
    since: str = ""
    until: str = ""
    refused: bool = False

    def args(self) -> dict[str, str]:
        out = {k: v for k, v in (("user", self.user), ("device", self.device),
                                 ("kind", self.kind), ("since", self.since),
                                 ("until", self.until)) if v and v != "all"}
        if self.refused:
            out["refused"] = "1"
        return out


def _filters() -> tuple[Filters, dict[str, str]]:
    a = request.args
    f = Filters(user=a.get("user", "").strip()[:64], device=a.get("device", "").strip()[:64],
                kind=a.get("kind", "all") if a.get("kind") in KINDS else "all",
                since=a.get("since", "").strip()[:32], until=a.get("until", "").strip()[:32],
                refused=a.get("refused") == "1")
    errors = {}
    for name in ("since", "until"):
        value = getattr(f, name)
        if value:
            try:
                parse_local_time(value)
            except ValueError:
                errors[name] = t("audit.bad_time")
    return f, errors


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _query(f: Filters) -> Select[Any]:
    e = m.AuditEntry
    q = select(e)
    if f.user:
        q = q.where(or_(e.actor == f.user, e.actor.ilike(_like(f.user), escape="\\")))
    if f.device:
        q = q.where(or_(e.device == f.device, e.device.ilike(_like(f.device), escape="\\"),
                        e.target.ilike(_like(f.device), escape="\\"),
                        cast(e.detail, String).like(_like(f.device), escape="\\")))
    if f.kind == "switch":
        q = q.where(e.action.in_(SWITCHES))
    elif f.kind == "session":
        q = q.where(e.action.in_(SESSIONS))
    elif f.kind == "config":
        q = q.where(e.action.not_in(SWITCHES + SESSIONS))
    if f.refused:
        q = q.where(e.result.not_in(sorted(OK_RESULTS)))
    if f.since:
        with contextlib.suppress(ValueError):
            q = q.where(e.at >= parse_local_time(f.since))
    if f.until:
        with contextlib.suppress(ValueError):
            q = q.where(e.at <= parse_local_time(f.until) + dt.timedelta(seconds=59))
    return q


def summary(entry: m.AuditEntry) -> str:
    """A short line of what the entry's detail says."""
    d = entry.detail or {}
    parts: list[str] = []
    for ch in d.get("changes", []) if isinstance(d.get("changes"), list) else []:
        if isinstance(ch, dict):
            src = ch.get("source") or "—"
            parts.append(f"{ch.get('rx')}:{ch.get('head')}←{src}" +
                         (" (push)" if ch.get("pushed") else ""))
    for tg in d.get("targets", []) if isinstance(d.get("targets"), list) else []:
        if isinstance(tg, dict) and tg.get("result") not in ("PUSHED",):
            parts.append(f"{tg.get('id')}: {result_text(str(tg.get('result')))}")
    if parts:
        return " ".join(parts)
    rest = {k: v for k, v in d.items() if k not in ("changes", "targets") and v not in
            (None, [], {}, "")}
    return json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else ""


def action_label(action: str) -> str:
    return t(f"action.{action}") if has(f"action.{action}") else action


def result_class(result: str) -> str:
    if result in OK_RESULTS:
        return "ok"
    return "bad" if result else ""


@bp.get("/audit")
def audit() -> tuple[str, int]:
    f, errors = _filters()
    s = db_session()
    q = _query(f)
    total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    page_no = request.args.get("page", "1")
    page = model.paginate(range(total), int(page_no) if page_no.isdigit() else 1, PAGE)
    entries = list(s.scalars(q.order_by(m.AuditEntry.at.desc(), m.AuditEntry.pk.desc())
                             .limit(PAGE).offset((page.page - 1) * PAGE)))
    users = sorted(s.scalars(select(m.User.name)))
    return render("audit.html", 400 if errors else 200, f=f, errors=errors, entries=entries,
                  page=page, kinds=KINDS, summary=summary, action_label=action_label,
                  result_class=result_class, users=users)


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text and never runs as a formula."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/audit.csv")
def audit_csv() -> Response:
    f, _errors = _filters()
    s = db_session()
    rows = s.scalars(_query(f).order_by(m.AuditEntry.at.desc(), m.AuditEntry.pk.desc())
                     .limit(CSV_LIMIT))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["id", f"time ({tz_label()})", "actor", "seat", "device", "action", "target",
                "result", "result_text", "detail"])
    for e in rows:
        w.writerow([_cell(x) for x in (
            e.pk, local_time(e.at), e.actor, e.seat, e.device, e.action, e.target, e.result,
            result_text(e.result), json.dumps(e.detail, ensure_ascii=False, sort_keys=True))])
    routing.audit(s, actor=actor(), action="audit_export", result="OK",
                  detail=dict(f.args()))
    s.commit()
    stamp = m.utcnow().strftime("%Y%m%d-%H%M%S")
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f"attachment; filename=kvm-audit-{stamp}.csv"})
