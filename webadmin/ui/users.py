"""Users, user groups, device groups, grants (scopes), and the preview of what a user can
see and do (the engine's answers over the current snapshot)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, redirect, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, PasswordField, StringField

from webadmin import admin_service, topology
from webadmin import models as m
from webadmin.admin_service import AdminError, id_list
from webadmin.api_common import db_session, services
from webadmin.snapshot import Built
from webadmin.ui import model
from webadmin.ui.common import (
    Form,
    actor,
    add_error,
    bp,
    commit,
    ok,
    redirect_back,
    refuse,
    render,
    t,
)

ROLES = ("operator", "admin")
SCOPES = ("view", "push", "fetch", "login")
ACCESS = ("control", "view-only")


class UserForm(Form):
    name = StringField()
    password = PasswordField()
    role = StringField(default="operator")
    lang = StringField(default="zh_CN")
    enabled = BooleanField(default=True)


class UserEditForm(Form):
    role = StringField()
    lang = StringField()
    enabled = BooleanField()


class PasswordForm(Form):
    password = PasswordField()
    again = PasswordField()


class GrantForm(Form):
    scope = StringField(default="view")
    access = StringField(default="control")
    devices = StringField()


class GroupForm(Form):
    name = StringField()
    members = StringField()


class DeviceGroupForm(Form):
    name = StringField()
    devices = StringField()


def _built() -> Built:
    return services().cache.build(db_session())


def _user(name: str) -> m.User:
    user = db_session().scalar(select(m.User).where(m.User.name == name))
    if user is None:
        abort(404)
    return user


def _groups() -> list[m.UserGroup]:
    return list(db_session().scalars(select(m.UserGroup).order_by(m.UserGroup.name)))


def _device_groups() -> list[m.DeviceGroup]:
    return list(db_session().scalars(select(m.DeviceGroup).order_by(m.DeviceGroup.name)))


def _checked(name: str) -> list[str]:
    return [v for v in request.form.getlist(name) if v]


@dataclass(frozen=True)
class GrantRow:
    grant: m.Grant
    via: str          # "" = the user's own grant, else the user group it comes from


def _grant_rows(user: m.User) -> list[GrantRow]:
    s = db_session()
    own = s.scalars(select(m.Grant).where(m.Grant.user_pk == user.pk).order_by(m.Grant.pk))
    rows = [GrantRow(g, "") for g in own]
    for group in sorted(user.groups, key=lambda x: x.name):
        for g in s.scalars(select(m.Grant).where(m.Grant.user_group_pk == group.pk)
                           .order_by(m.Grant.pk)):
            rows.append(GrantRow(g, group.name))
    order = {scope: i for i, scope in enumerate(SCOPES)}
    return sorted(rows, key=lambda r: (order.get(r.grant.scope, 9), r.via, r.grant.pk))


# --- users -------------------------------------------------------------------------------


def _users_page(form: UserForm, status: int = 200) -> tuple[str, int]:
    s = db_session()
    users = list(s.scalars(select(m.User).order_by(m.User.name)))
    sessions: dict[int, list[str]] = {}
    for upk, rx in s.execute(select(m.SeatSession.user_pk, m.Device.id)
                             .join(m.Device, m.Device.pk == m.SeatSession.rx_pk)):
        sessions.setdefault(upk, []).append(str(rx))
    grants: dict[int, int] = {}
    for owner in s.scalars(select(m.Grant.user_pk).where(m.Grant.user_pk.is_not(None))):
        if owner is not None:
            grants[owner] = grants.get(owner, 0) + 1
    return render("users.html", status, users=users, form=form, groups=_groups(),
                  sessions=sessions, grants=grants, chosen=set(_checked("groups")),
                  roles=ROLES)


@bp.route("/users", methods=["GET", "POST"])
def users() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return _users_page(UserForm(formdata=None))
    form = UserForm()
    if not form.validate():
        return _users_page(form, 400)
    name = (form.name.data or "").strip()
    try:
        notify = admin_service.create_user(
            db_session(), name=name, password=form.password.data or "",
            role=form.role.data or "", enabled=bool(form.enabled.data),
            lang=form.lang.data or "", groups=_checked("groups"), actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _users_page(form, 400)
    commit(notify)
    ok(t("users.created", name=name))
    return redirect(url_for("ui.user", name=name))


def _user_page(user: m.User, *, form: UserEditForm | None = None,
               pw: PasswordForm | None = None, grant: GrantForm | None = None,
               status: int = 200) -> tuple[str, int]:
    built = _built()
    at = request.args.get("at", "")
    if not at:
        logged = [rx for rx, who in built.snap.sessions.items() if who == user.name]
        at = min(logged) if logged else ""
    preview = model.preview(built, user.name, at or None)
    return render(
        "user.html", status, user=user, built=built,
        form=form or UserEditForm(formdata=None, role=user.role, lang=user.lang,
                                  enabled=user.enabled),
        pw=pw or PasswordForm(formdata=None),
        grant=grant or GrantForm(formdata=None),
        groups=_groups(), device_groups=_device_groups(), rows=_grant_rows(user),
        chosen={g.name for g in user.groups} if form is None else set(_checked("groups")),
        chosen_dg=set(_checked("device_groups")), preview=preview, at=at,
        rx_ids=model.rx_ids(built), roles=ROLES, scopes=SCOPES,
        names=built.config.names, colour=lambda d: model.colour(built, d))


@bp.route("/users/<name>", methods=["GET", "POST"])
def user(name: str) -> BaseResponse | tuple[str, int]:
    user = _user(name)
    if request.method == "GET":
        return _user_page(user)
    form = UserEditForm()
    if not form.validate():
        return _user_page(user, form=form, status=400)
    try:
        notify = admin_service.update_user(
            db_session(), user, role=form.role.data or "", enabled=bool(form.enabled.data),
            lang=form.lang.data or "", groups=_checked("groups"), actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _user_page(_user(name), form=form, status=400)
    commit(notify)
    ok(t("users.saved", name=name))
    return redirect(url_for("ui.user", name=name))


@bp.post("/users/<name>/password")
def user_password(name: str) -> BaseResponse | tuple[str, int]:
    user = _user(name)
    pw = PasswordForm()
    if not pw.validate():
        return _user_page(user, pw=pw, status=400)
    if (pw.password.data or "") != (pw.again.data or ""):
        add_error(pw, "again", t("users.password_mismatch"))
        return _user_page(user, pw=pw, status=400)
    try:
        admin_service.reset_password(db_session(), user, pw.password.data or "", actor=actor())
    except AdminError as e:
        refuse(pw, e)
        return _user_page(_user(name), pw=pw, status=400)
    commit()
    ok(t("users.password_set", name=name))
    return redirect(url_for("ui.user", name=name))


@bp.post("/users/<name>/delete")
def user_delete(name: str) -> BaseResponse:
    user = _user(name)
    notify = admin_service.delete_user(db_session(), user, actor=actor())
    commit(notify)
    ok(t("users.deleted", name=name))
    return redirect(url_for("ui.users"))


def _add_grant(form: GrantForm, *, user: str | None, group: str | None
               ) -> tuple[int, set[str]] | None:
    scope = form.scope.data or ""
    try:
        return admin_service.add_grants(
            db_session(), scope=scope, access=form.access.data or "control", user=user,
            group=group, devices=id_list(form.devices.data or ""),
            device_groups=_checked("device_groups"), actor=actor())
    except AdminError as e:
        refuse(form, e, aliases={"device_groups": "devices", "scope": "scope",
                                 "user": "", "group": ""})
        return None


@bp.post("/users/<name>/grants")
def user_grant(name: str) -> BaseResponse | tuple[str, int]:
    user = _user(name)
    form = GrantForm()
    if not form.validate():
        return _user_page(user, grant=form, status=400)
    done = _add_grant(form, user=name, group=None)
    if done is None:
        return _user_page(_user(name), grant=form, status=400)
    commit(done[1])
    ok(t("grants.added", n=done[0]))
    return redirect(url_for("ui.user", name=name) + "#grants")


@bp.post("/grants/<int:pk>/delete")
def grant_delete(pk: int) -> BaseResponse:
    s = db_session()
    grant = s.get(m.Grant, pk)
    if grant is None:
        abort(404)
    notify = admin_service.delete_grant(s, grant, actor=actor())
    commit(notify)
    ok(t("grants.deleted"))
    return redirect_back(url_for("ui.users"))


# --- groups ------------------------------------------------------------------------------


def _groups_page(uform: GroupForm | None = None, dform: DeviceGroupForm | None = None,
                 status: int = 200) -> tuple[str, int]:
    s = db_session()
    grants: dict[int, int] = {}
    for gpk in s.scalars(select(m.Grant.user_group_pk)):
        if gpk is not None:
            grants[gpk] = grants.get(gpk, 0) + 1
    return render("groups.html", status, groups=_groups(), device_groups=_device_groups(),
                  uform=uform or GroupForm(formdata=None),
                  dform=dform or DeviceGroupForm(formdata=None), grants=grants,
                  compress=lambda devs: ", ".join(
                      topology.compress(d.id for d in devs if d.id)))


@bp.get("/groups")
def groups() -> tuple[str, int]:
    return _groups_page()


def _group(name: str) -> m.UserGroup:
    group = db_session().scalar(select(m.UserGroup).where(m.UserGroup.name == name))
    if group is None:
        abort(404)
    return group


def _device_group(name: str) -> m.DeviceGroup:
    group = db_session().scalar(select(m.DeviceGroup).where(m.DeviceGroup.name == name))
    if group is None:
        abort(404)
    return group


@bp.post("/groups/users")
def group_user_new() -> BaseResponse | tuple[str, int]:
    form = GroupForm()
    if not form.validate():
        return _groups_page(uform=form, status=400)
    name = (form.name.data or "").strip()
    try:
        notify = admin_service.save_user_group(
            db_session(), name=name, members=id_list(form.members.data or ""), actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _groups_page(uform=form, status=400)
    commit(notify)
    ok(t("groups.saved", name=name))
    return redirect(url_for("ui.group_user", name=name))


def _group_page(group: m.UserGroup, form: GroupForm | None = None,
                grant: GrantForm | None = None, status: int = 200) -> tuple[str, int]:
    s = db_session()
    rows = [GrantRow(g, "") for g in s.scalars(
        select(m.Grant).where(m.Grant.user_group_pk == group.pk).order_by(m.Grant.scope,
                                                                        m.Grant.pk))]
    built = _built()
    return render("group.html", status, group=group, rows=rows, built=built,
                  form=form or GroupForm(formdata=None, name=group.name,
                                         members=", ".join(sorted(u.name for u in
                                                                  group.members))),
                  grant=grant or GrantForm(formdata=None), device_groups=_device_groups(),
                  chosen_dg=set(_checked("device_groups")), scopes=SCOPES,
                  names=built.config.names)


@bp.route("/groups/users/<name>", methods=["GET", "POST"])
def group_user(name: str) -> BaseResponse | tuple[str, int]:
    group = _group(name)
    if request.method == "GET":
        return _group_page(group)
    form = GroupForm()
    if not form.validate():
        return _group_page(group, form=form, status=400)
    new = (form.name.data or "").strip()
    try:
        notify = admin_service.save_user_group(
            db_session(), name=new, members=id_list(form.members.data or ""), actor=actor(),
            group=group)
    except AdminError as e:
        refuse(form, e)
        return _group_page(_group(name), form=form, status=400)
    commit(notify)
    ok(t("groups.saved", name=new))
    return redirect(url_for("ui.group_user", name=new))


@bp.post("/groups/users/<name>/grants")
def group_grant(name: str) -> BaseResponse | tuple[str, int]:
    group = _group(name)
    form = GrantForm()
    if not form.validate():
        return _group_page(group, grant=form, status=400)
    done = _add_grant(form, user=None, group=name)
    if done is None:
        return _group_page(_group(name), grant=form, status=400)
    commit(done[1])
    ok(t("grants.added", n=done[0]))
    return redirect(url_for("ui.group_user", name=name) + "#grants")


@bp.post("/groups/users/<name>/delete")
def group_user_delete(name: str) -> BaseResponse:
    notify = admin_service.delete_user_group(db_session(), _group(name), actor=actor())
    commit(notify)
    ok(t("groups.deleted", name=name))
    return redirect(url_for("ui.groups"))


@bp.post("/groups/devices")
def group_device_new() -> BaseResponse | tuple[str, int]:
    form = DeviceGroupForm()
    if not form.validate():
        return _groups_page(dform=form, status=400)
    name = (form.name.data or "").strip()
    try:
        notify = admin_service.save_device_group(
            db_session(), name=name, devices=id_list(form.devices.data or ""), actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _groups_page(dform=form, status=400)
    commit(notify)
    ok(t("groups.saved", name=name))
    return redirect(url_for("ui.groups"))


@bp.route("/groups/devices/<name>", methods=["GET", "POST"])
def group_device(name: str) -> BaseResponse | tuple[str, int]:
    group = _device_group(name)
    if request.method == "GET":
        form = DeviceGroupForm(formdata=None, name=group.name, devices=", ".join(
            topology.compress(d.id for d in group.members if d.id)))
        return render("device_group.html", group=group, form=form)
    form = DeviceGroupForm()
    if not form.validate():
        return render("device_group.html", 400, group=group, form=form)
    new = (form.name.data or "").strip()
    try:
        notify = admin_service.save_device_group(
            db_session(), name=new, devices=id_list(form.devices.data or ""), actor=actor(),
            group=group)
    except AdminError as e:
        refuse(form, e)
        return render("device_group.html", 400, group=_device_group(name), form=form)
    commit(notify)
    ok(t("groups.saved", name=new))
    return redirect(url_for("ui.groups"))


@bp.post("/groups/devices/<name>/delete")
def group_device_delete(name: str) -> BaseResponse:
    notify = admin_service.delete_device_group(db_session(), _device_group(name), actor=actor())
    commit(notify)
    ok(t("groups.deleted", name=name))
    return redirect(url_for("ui.groups"))
