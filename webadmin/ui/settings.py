"""OSD settings (call-up chord, language, auto-close, idle close, idle logout) and backup /
restore of the whole configuration as control-room YAML (the format of ``kvm-admin``)."""

from __future__ import annotations

from flask import Response, redirect, request, url_for
from flask_wtf.file import FileField
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, StringField

from kvm_protocol.yamlconf import MAX_BYTES
from webadmin import admin_service
from webadmin import models as m
from webadmin.admin_service import AdminError
from webadmin.api_common import db_session
from webadmin.bodies import takes_body
from webadmin.ui.common import (
    Form,
    actor,
    add_error,
    bp,
    commit,
    lang,
    number,
    ok,
    refuse,
    render,
    t,
)
from webadmin.ui.i18n import translate_problem

KEYS = ("chord", "chord_window_ms", "lang", "auto_close_ms", "idle_close_s", "idle_logout_s")
UPLOAD_LIMIT = MAX_BYTES + 64 * 1024   # bytes of the uploaded file read (4 MiB are taken)
POST_LIMIT = 5 * 1024 * 1024           # bytes of the whole posted restore form


class SettingsForm(Form):
    chord = StringField()
    chord_window_ms = StringField()
    lang = StringField()
    auto_close_ms = StringField()
    idle_close_s = StringField()
    idle_logout_s = StringField()


class RestoreForm(Form):
    file = FileField()
    mode = StringField(default="merge")
    confirm = BooleanField()


def _current() -> SettingsForm:
    row = db_session().get(m.Settings, 1) or m.Settings()
    return SettingsForm(formdata=None, **{k: str(getattr(row, k) if getattr(row, k) is not None
                                                 else "") for k in KEYS})


def _page(form: SettingsForm | None = None, restore: RestoreForm | None = None,
          problems: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    return render("settings.html", status, form=form or _current(),
                  restore=restore or RestoreForm(formdata=None), problems=problems or {})


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return _page()
    form = SettingsForm()
    if not form.validate():
        return _page(form=form, status=400)
    values = {k: number(getattr(form, k).data) for k in KEYS}
    values["chord"] = (form.chord.data or "").strip()
    values["lang"] = (form.lang.data or "").strip()
    try:
        notify = admin_service.update_settings(db_session(), values, actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _page(form=form, status=400)
    commit(notify)
    ok(t("settings.saved"))
    return redirect(url_for("ui.settings"))


@bp.get("/settings/backup.yaml")
def settings_export() -> Response:
    s = db_session()
    text = admin_service.export_yaml(s, actor=actor())
    s.commit()
    stamp = m.utcnow().strftime("%Y%m%d-%H%M%S")
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition":
                             f"attachment; filename=kvm-config-{stamp}.yaml"})


@bp.post("/settings/restore")
@takes_body(POST_LIMIT)
def settings_import() -> BaseResponse | tuple[str, int]:
    restore = RestoreForm()
    if not restore.validate():
        return _page(restore=restore, status=400)
    mode = restore.mode.data if restore.mode.data in ("merge", "replace") else ""
    upload = request.files.get("file")
    if not mode:
        add_error(restore, "mode", t("settings.bad_mode"))
    if upload is None or not upload.filename:
        add_error(restore, "file", t("settings.need_file"))
    if mode == "replace" and not restore.confirm.data:
        add_error(restore, "confirm", t("settings.confirm_replace"))
    if restore.file.errors or restore.mode.errors or restore.confirm.errors or upload is None:
        return _page(restore=restore, status=400)
    raw = upload.read(UPLOAD_LIMIT + 1)
    if len(raw) > MAX_BYTES:
        add_error(restore, "file", t("settings.too_large", mib=MAX_BYTES // (1024 * 1024)))
        return _page(restore=restore, status=400)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        add_error(restore, "file", t("settings.not_utf8"))
        return _page(restore=restore, status=400)
    try:
        summary = admin_service.import_yaml(db_session(), text, replace=mode == "replace",
                                            actor=actor())
    except AdminError as e:
        refuse(restore, AdminError(e.code, e.message))   # the list goes below the form
        problems = {k: translate_problem(v, lang()) for k, v in e.fields.items()}
        return _page(restore=restore, problems=problems, status=400)
    commit(summary.notify)
    counts = ", ".join(f"{t('settings.count_' + k)} {v}" for k, v in summary.counts.items())
    ok(t("settings.restored_" + summary.mode, counts=counts))
    return redirect(url_for("ui.settings"))
