"""Devices (pending adoption, Tx, Rx), seats and video walls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, redirect, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, HiddenField, StringField

from webadmin import admin_service
from webadmin import models as m
from webadmin.admin_service import AdminError, id_list
from webadmin.api_common import db_session, services
from webadmin.snapshot import Built
from webadmin.topology import kind_of
from webadmin.ui import model
from webadmin.ui.common import Form, actor, bp, commit, number, ok, refuse, render, t

PAGE = 50
KINDS = ("tx", "rx", "pending")


class AdoptForm(Form):
    serial = HiddenField()
    id = StringField()
    name = StringField()


class DeviceForm(Form):
    id = StringField()
    name = StringField()
    heads = StringField(default="1")


class NewDeviceForm(DeviceForm):
    serial = StringField()


class SeatForm(Form):
    name = StringField()
    screens = StringField()


class WallForm(Form):
    name = StringField()
    rows = StringField(default="2")
    cols = StringField(default="2")
    tiles = StringField()
    splice = BooleanField(default=False)


def _built() -> Built:
    return services().cache.build(db_session())


def _device(device_id: str) -> m.Device:
    dev = db_session().scalar(select(m.Device).where(m.Device.id == device_id))
    if dev is None:
        abort(404)
    return dev


# --- lists -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    dev: m.Device
    colour: str
    seat: str
    wall: str
    shows: list[str]        # Rx: the sources of its heads; Tx: the Rx that show it


def _rows(built: Built, devices: list[m.Device]) -> list[DeviceRow]:
    shown = model.shown_by(built)
    walls = model.wall_of(built)
    rows = []
    for dev in devices:
        did = dev.id or ""
        if dev.kind == "rx":
            shows = [f"{r.tx_id}:{r.tx_head}" if r else "—"
                     for r in built.snap.routing.get(did, ())]
            if not any(r is not None for r in built.snap.routing.get(did, ())):
                shows = []
        else:
            shows = shown.get(did, [])
        seat = built.config.seat_of.get(did)
        rows.append(DeviceRow(dev, model.colour(built, did, shown), seat.name if seat else "",
                              walls.get(did, ""), shows))
    return rows


def free_ids(s: Any, kind: str, n: int) -> list[str]:
    """The `n` lowest IDs of `kind` that no device has."""
    used = set(s.scalars(select(m.Device.id).where(m.Device.id.is_not(None))))
    lo, hi = (1, 4999) if kind == "tx" else (5001, 9999)
    out: list[str] = []
    for i in range(lo, hi + 1):
        if len(out) >= n:
            break
        if f"{i:04d}" not in used:
            out.append(f"{i:04d}")
    return out


def _pending_forms(failed: AdoptForm | None) -> list[tuple[m.Device, AdoptForm]]:
    s = db_session()
    pending = list(s.scalars(select(m.Device).where(m.Device.adoption == "pending")
                             .order_by(m.Device.created_at, m.Device.serial)))
    suggest = {kind: iter(free_ids(s, kind, sum(1 for d in pending if d.kind == kind)))
               for kind in ("tx", "rx")}
    out = []
    for dev in pending:
        if failed is not None and failed.serial.data == dev.serial:
            out.append((dev, failed))
            continue
        form = AdoptForm(formdata=None, serial=dev.serial, id=next(suggest[dev.kind], ""))
        out.append((dev, form))
    return out


def _list(kind: str, failed: AdoptForm | None = None, status: int = 200) -> tuple[str, int]:
    s = db_session()
    built = _built()
    q = request.args.get("q", "")[:100].strip()
    page_no = request.args.get("page", "1")
    counts = {k: 0 for k in KINDS}
    for dev_kind, adoption in s.execute(select(m.Device.kind, m.Device.adoption)):
        counts["pending" if adoption == "pending" else dev_kind] += 1
    if kind == "pending":
        return render("devices.html", status, kind=kind, counts=counts, q=q,
                      pending=_pending_forms(failed), page=None)
    query = select(m.Device).where(m.Device.kind == kind, m.Device.adoption == "adopted",
                                   m.Device.id.is_not(None)).order_by(m.Device.id)
    devices = list(s.scalars(query))
    if q:
        words = q.lower().split()
        devices = [d for d in devices if all(
            w in f"{d.id} {d.name} {d.serial or ''} {d.firmware}".lower() for w in words)]
    page = model.paginate(devices, int(page_no) if page_no.isdigit() else 1, PAGE)
    return render("devices.html", status, kind=kind, counts=counts, q=q, pending=[],
                  page=page, rows=_rows(built, list(page.items)))


@bp.get("/devices")
def devices() -> tuple[str, int]:
    kind = request.args.get("kind", "tx")
    return _list(kind if kind in KINDS else "tx")


@bp.post("/devices/adopt")
def device_adopt() -> BaseResponse | tuple[str, int]:
    form = AdoptForm()
    s = db_session()
    name = (form.name.data or "").strip()
    try:
        done = admin_service.adopt(s, form.serial.data or "", (form.id.data or "").strip(),
                                   name or None, actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _list("pending", failed=form, status=400)
    commit(done.notify)
    ok(t("devices.adopted", serial=form.serial.data, id=done.device.id))
    return redirect(url_for("ui.devices", kind="pending"))


@bp.post("/devices/forget")
def device_forget() -> BaseResponse:
    s = db_session()
    dev = s.scalar(select(m.Device).where(m.Device.serial == request.form.get("serial", ""),
                                          m.Device.adoption == "pending"))
    if dev is None:
        abort(404)
    admin_service.forget_pending(s, dev, actor=actor())
    commit()
    ok(t("devices.forgotten", serial=dev.serial))
    return redirect(url_for("ui.devices", kind="pending"))


@bp.route("/devices/new", methods=["GET", "POST"])
def device_new() -> BaseResponse | tuple[str, int]:
    form = NewDeviceForm()
    if request.method == "GET":
        kind = request.args.get("kind", "tx")
        form.id.data = (free_ids(db_session(), kind if kind in ("tx", "rx") else "tx", 1)
                        or [""])[0]
        return render("device_new.html", form=form)
    if not form.validate():
        return render("device_new.html", 400, form=form)
    s = db_session()
    device_id = (form.id.data or "").strip()
    try:
        notify = admin_service.create_device(
            s, device_id=device_id, name=(form.name.data or "").strip(),
            heads=number(form.heads.data), serial=(form.serial.data or "").strip() or None,
            actor=actor())
    except AdminError as e:
        refuse(form, e)
        return render("device_new.html", 400, form=form)
    commit(notify)
    ok(t("devices.created", id=device_id))
    return redirect(url_for("ui.devices", kind=kind_of(device_id) or "tx"))


def _device_page(dev: m.Device, form: DeviceForm, status: int = 200) -> tuple[str, int]:
    built = _built()
    row = _rows(built, [dev])[0]
    s = db_session()
    groups = sorted(g.name for g in s.scalars(select(m.DeviceGroup)) if dev in g.members)
    hotkeys = sorted(h.key for h in s.scalars(select(m.Hotkey))
                     if any(x.device_pk == dev.pk for x in h.targets))
    return render("device.html", status, dev=dev, row=row, form=form, groups=groups,
                  hotkeys=hotkeys, user=built.session_user(dev.id or "")
                  if dev.kind == "rx" else None)


@bp.route("/devices/<device_id>", methods=["GET", "POST"])
def device(device_id: str) -> BaseResponse | tuple[str, int]:
    dev = _device(device_id)
    if request.method == "GET":
        form = DeviceForm(formdata=None, id=dev.id, name=dev.name, heads=str(dev.heads))
        return _device_page(dev, form)
    form = DeviceForm()
    if not form.validate():
        return _device_page(dev, form, 400)
    s = db_session()
    try:
        notify = admin_service.update_device(
            s, dev, device_id=form.id.data or "", name=(form.name.data or "").strip(),
            heads=number(form.heads.data), actor=actor())
    except AdminError as e:
        refuse(form, e)
        return _device_page(_device(device_id), form, 400)
    commit(notify)
    ok(t("devices.saved", id=dev.id))
    return redirect(url_for("ui.device", device_id=dev.id))


@bp.post("/devices/<device_id>/reset")
def device_reset(device_id: str) -> BaseResponse:
    dev = _device(device_id)
    admin_service.reset_credential(db_session(), dev, actor=actor())
    commit()
    ok(t("devices.reset_done", id=device_id))
    return redirect(url_for("ui.device", device_id=device_id))


@bp.post("/devices/<device_id>/delete")
def device_delete(device_id: str) -> BaseResponse | tuple[str, int]:
    dev = _device(device_id)
    kind = dev.kind
    s = db_session()
    try:
        notify = admin_service.delete_device(s, dev, actor=actor())
    except AdminError as e:
        form = DeviceForm(formdata=None, id=dev.id, name=dev.name, heads=str(dev.heads))
        refuse(form, e)
        return _device_page(_device(device_id), form, 409)
    commit(notify)
    ok(t("devices.deleted", id=device_id))
    return redirect(url_for("ui.devices", kind=kind))


# --- seats -------------------------------------------------------------------------------


def _seat(name: str) -> m.Seat:
    seat = db_session().scalar(select(m.Seat).where(m.Seat.name == name))
    if seat is None:
        abort(404)
    return seat


def _ids(members: list[Any]) -> list[str]:
    return [x.device.id for x in members if x.device.id is not None]


def _seats_page(form: SeatForm, status: int = 200, editing: m.Seat | None = None
                ) -> tuple[str, int]:
    built = _built()
    seats = list(db_session().scalars(select(m.Seat).order_by(m.Seat.name)))
    in_seat = {rx for st in built.snap.seats for rx in st.screens}
    tiles = set(model.wall_of(built))
    free = [rx for rx in model.rx_ids(built) if rx not in in_seat and rx not in tiles]
    return render("seats.html", status, seats=seats, form=form, built=built, ids=_ids,
                  colour=lambda d: model.colour(built, d), editing=editing, free=free)


@bp.route("/seats", methods=["GET", "POST"])
def seats() -> BaseResponse | tuple[str, int]:
    form = SeatForm()
    if request.method == "GET":
        return _seats_page(SeatForm(formdata=None))
    return _save_seat(form, None)


def _save_seat(form: SeatForm, seat: m.Seat | None) -> BaseResponse | tuple[str, int]:
    if not form.validate():
        return _seats_page(form, 400, seat)
    name = (form.name.data or "").strip()
    try:
        notify = admin_service.save_seat(db_session(), name=name,
                                         screens=id_list(form.screens.data or ""),
                                         actor=actor(), seat=seat)
    except AdminError as e:
        refuse(form, e)
        return _seats_page(form, 400, _seat(seat.name) if seat is not None else None)
    commit(notify)
    ok(t("seats.saved", name=name))
    return redirect(url_for("ui.seats"))


@bp.route("/seats/<name>", methods=["GET", "POST"])
def seat_edit(name: str) -> BaseResponse | tuple[str, int]:
    seat = _seat(name)
    if request.method == "GET":
        form = SeatForm(formdata=None, name=seat.name, screens=", ".join(_ids(seat.screens)))
        return _seats_page(form, editing=seat)
    return _save_seat(SeatForm(), seat)


@bp.post("/seats/<name>/delete")
def seat_delete(name: str) -> BaseResponse:
    notify = admin_service.delete_seat(db_session(), _seat(name), actor=actor())
    commit(notify)
    ok(t("seats.deleted", name=name))
    return redirect(url_for("ui.seats"))


# --- walls -------------------------------------------------------------------------------


def _wall(name: str) -> m.Wall:
    wall = db_session().scalar(select(m.Wall).where(m.Wall.name == name))
    if wall is None:
        abort(404)
    return wall


def _walls_page(form: WallForm | None, status: int = 200, editing: m.Wall | None = None,
                template: str = "walls.html") -> tuple[str, int]:
    built = _built()
    walls = list(db_session().scalars(select(m.Wall).order_by(m.Wall.name)))
    routes = built.snap.routing

    def shows(rx: str) -> str:
        heads = routes.get(rx, ())
        return heads[0].tx_id if heads and heads[0] is not None else ""

    return render(template, status, walls=walls, form=form, ids=_ids, editing=editing,
                  colour=lambda d: model.colour(built, d), shows=shows,
                  name_of=lambda d: built.config.names.get(d, ""))


@bp.get("/walls")
def walls() -> tuple[str, int]:
    return _walls_page(None)


def _save_wall(form: WallForm, wall: m.Wall | None) -> BaseResponse | tuple[str, int]:
    template = "wall_form.html"
    if not form.validate():
        return _walls_page(form, 400, wall, template)
    name = (form.name.data or "").strip()
    try:
        notify = admin_service.save_wall(
            db_session(), name=name, rows=number(form.rows.data), cols=number(form.cols.data),
            tiles=id_list(form.tiles.data or ""), splice=bool(form.splice.data), actor=actor(),
            wall=wall)
    except AdminError as e:
        refuse(form, e)
        return _walls_page(form, 400, _wall(wall.name) if wall is not None else None, template)
    commit(notify)
    ok(t("walls.saved", name=name))
    return redirect(url_for("ui.walls"))


@bp.route("/walls/new", methods=["GET", "POST"])
def wall_new() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return _walls_page(WallForm(formdata=None), template="wall_form.html")
    return _save_wall(WallForm(), None)


@bp.route("/walls/<name>", methods=["GET", "POST"])
def wall_edit(name: str) -> BaseResponse | tuple[str, int]:
    wall = _wall(name)
    if request.method == "GET":
        form = WallForm(formdata=None, name=wall.name, rows=str(wall.rows), cols=str(wall.cols),
                        tiles=", ".join(_ids(wall.tiles)), splice=wall.splice)
        return _walls_page(form, editing=wall, template="wall_form.html")
    return _save_wall(WallForm(), wall)


@bp.post("/walls/<name>/splice")
def wall_splice(name: str) -> BaseResponse:
    wall = _wall(name)
    on = request.form.get("splice") == "on"
    notify = admin_service.set_splice(db_session(), wall, on, actor=actor())
    commit(notify)
    ok(t("walls.splice_on" if on else "walls.splice_off", name=name))
    return redirect(url_for("ui.walls"))


@bp.post("/walls/<name>/delete")
def wall_delete(name: str) -> BaseResponse:
    notify = admin_service.delete_wall(db_session(), _wall(name), actor=actor())
    commit(notify)
    ok(t("walls.deleted", name=name))
    return redirect(url_for("ui.walls"))
