"""Admin operations shared by ``kvm-admin`` and the admin REST API (no Flask).

Each function takes the caller's session, checks its input, changes the database, writes an
audit entry, and does not commit. Refusals raise ``AdminError`` with a stable code
(``VALIDATION``, ``NOT_FOUND``, ``CONFLICT``) and a message that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kvm_protocol.yamlconf import Invalid, Validator
from webadmin import models as m
from webadmin import routing
from webadmin.auth import hash_password
from webadmin.topology import NAME, PASSWORD, kind_of

T = TypeVar("T")


class AdminError(Exception):
    """A refused admin operation: ``code`` is an API error code, ``message`` names the field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check(validator: Validator[T], field: str, value: object) -> T:
    """Validate one value with a topology validator; AdminError names `field`."""
    try:
        return validator.convert(value)
    except Invalid as e:
        raise AdminError("VALIDATION", f"{field}: {e.message}") from None


def device_by_id(s: Session, device_id: str) -> m.Device:
    dev = s.scalar(select(m.Device).where(m.Device.id == device_id))
    if dev is None:
        raise AdminError("NOT_FOUND", f"no device {device_id}")
    return dev


def device_by_serial(s: Session, serial: str) -> m.Device:
    dev = s.scalar(select(m.Device).where(m.Device.serial == serial))
    if dev is None:
        raise AdminError("NOT_FOUND", f"no device with serial {serial!r}")
    return dev


def user_by_name(s: Session, name: str) -> m.User:
    user = s.scalar(select(m.User).where(m.User.name == name))
    if user is None:
        raise AdminError("NOT_FOUND", f"no user {name!r}")
    return user


@dataclass(frozen=True)
class Adopted:
    device: m.Device
    notify: frozenset[str]


def adopt(s: Session, serial: str, device_id: str, name: str | None, *, actor: str) -> Adopted:
    """Give a pending device its ID and name (SPEC: devices authenticate, admins adopt them).

    The ID may be a configured slot that no device has bound yet (e.g. from an imported
    topology with other serials): the pending device then takes that slot's place.
    """
    dev = device_by_serial(s, serial)
    if dev.adoption != "pending":
        raise AdminError("CONFLICT", f"device {serial!r} is already adopted as {dev.id}")
    kind = kind_of(device_id)
    if kind is None:
        raise AdminError("VALIDATION", f"id: {device_id!r} is not a device ID "
                                       "(Tx 0001-4999, Rx 5001-9999)")
    if kind != dev.kind:
        want = "0001-4999" if dev.kind == "tx" else "5001-9999"
        raise AdminError("VALIDATION", f"id: {device_id} is not a{'n' if dev.kind == 'rx' else ''} "
                                       f"{dev.kind.capitalize()} ID ({want}); this device is a "
                                       f"{dev.kind}")
    if name is not None:
        check(NAME, "name", name)
    slot = s.scalar(select(m.Device).where(m.Device.id == device_id))
    if slot is not None:
        if slot.credential_hash is not None or slot.kind != dev.kind:
            raise AdminError("CONFLICT", f"id: {device_id} belongs to the device with serial "
                                         f"{slot.serial!r}")
        credential, heads, firmware = dev.credential_hash, dev.heads, dev.firmware
        s.delete(dev)
        s.flush()
        slot.serial, slot.credential_hash, slot.heads, slot.firmware = (
            serial, credential, heads, firmware)
        dev = slot
    else:
        dev.id = device_id
    dev.adoption = "adopted"
    if name is not None:
        dev.name = name
    s.flush()
    routing.audit(s, actor=actor, action="adopt", result="OK", device=device_id,
                  target=serial, detail={"name": dev.name})
    return Adopted(dev, frozenset(routing.touch_devices(s, [device_id])))


def reset_credential(s: Session, dev: m.Device, *, actor: str) -> None:
    """Forget a device's bound secret: the next announce with its serial binds a new one."""
    dev.credential_hash = None
    routing.audit(s, actor=actor, action="reset_device", result="OK", device=dev.id or "",
                  target=dev.serial or "")


def set_password(s: Session, user: m.User, password: str, *, actor: str) -> None:
    """Store a new password hash and end the user's admin API tokens."""
    check(PASSWORD, "password", password)
    user.password_hash = hash_password(password)
    s.execute(delete(m.AdminToken).where(m.AdminToken.user_pk == user.pk))
    routing.audit(s, actor=actor, action="set_password", result="OK", target=user.name)


def device_row(dev: m.Device, *, online: bool | None = None) -> dict[str, Any]:
    """A device as the admin API and ``kvm-admin devices`` show it."""
    return {
        "id": dev.id,
        "kind": dev.kind,
        "name": dev.name,
        "heads": dev.heads,
        "serial": dev.serial,
        "adoption": dev.adoption,
        "bound": dev.credential_hash is not None,
        "firmware": dev.firmware,
        "online": bool(dev.online) if online is None else online,
        "last_seen": dev.last_seen.isoformat() if dev.last_seen else None,
    }
