"""Hotkeys: a key of 1-16 characters naming an ordered list of Tx or of Rx (SPEC 2.1)."""

from __future__ import annotations

from flask import abort, redirect, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import StringField

from webadmin import admin_service
from webadmin import models as m
from webadmin.admin_service import AdminError, id_list
from webadmin.api_common import db_session, services
from webadmin.ui import model
from webadmin.ui.common import Form, actor, bp, commit, ok, refuse, render, t


class HotkeyForm(Form):
    key = StringField()
    targets = StringField()


def _hotkey(key: str) -> m.Hotkey:
    hk = db_session().scalar(select(m.Hotkey).where(m.Hotkey.key_lower == key.lower()))
    if hk is None:
        abort(404)
    return hk


def _page(form: HotkeyForm, status: int = 200, editing: m.Hotkey | None = None
          ) -> tuple[str, int]:
    built = services().cache.build(db_session())
    hotkeys = list(db_session().scalars(select(m.Hotkey).order_by(m.Hotkey.key_lower)))
    return render("hotkeys.html", status, hotkeys=hotkeys, form=form, editing=editing,
                  names=built.config.names, colour=lambda d: model.colour(built, d))


def _save(form: HotkeyForm, hotkey: m.Hotkey | None) -> BaseResponse | tuple[str, int]:
    if not form.validate():
        return _page(form, 400, hotkey)
    key = (form.key.data or "").strip()
    try:
        notify = admin_service.save_hotkey(db_session(), key=key,
                                           targets=id_list(form.targets.data or ""),
                                           actor=actor(), hotkey=hotkey)
    except AdminError as e:
        refuse(form, e)
        return _page(form, 400, _hotkey(hotkey.key) if hotkey is not None else None)
    commit(notify)
    ok(t("hotkeys.saved", key=key))
    return redirect(url_for("ui.hotkeys"))


@bp.route("/hotkeys", methods=["GET", "POST"])
def hotkeys() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return _page(HotkeyForm(formdata=None))
    return _save(HotkeyForm(), None)


@bp.route("/hotkeys/<key>", methods=["GET", "POST"])
def hotkey_edit(key: str) -> BaseResponse | tuple[str, int]:
    hk = _hotkey(key)
    if request.method == "GET":
        targets = ", ".join(x.device.id for x in hk.targets if x.device.id)
        return _page(HotkeyForm(formdata=None, key=hk.key, targets=targets), editing=hk)
    return _save(HotkeyForm(), hk)


@bp.post("/hotkeys/<key>/delete")
def hotkey_delete(key: str) -> BaseResponse:
    hk = _hotkey(key)
    admin_service.delete_hotkey(db_session(), hk, actor=actor())
    commit()
    ok(t("hotkeys.deleted", key=hk.key))
    return redirect(url_for("ui.hotkeys"))
