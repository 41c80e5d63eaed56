"""The lab's view of every device: the simulator's state merged with each controller's OSD.

Pure functions over the JSON the simulator (``GET /state``) and the controller hosts
(``GET /osd?rx=``) answer; `kvm-lab state` prints the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kvm_protocol.results import LANGS, ResultCode

Json = dict[str, Any]
OSD_KEYS = ("screen", "mode", "input", "feedback", "status", "user")


def _osd_view(osd: Mapping[str, Any] | None) -> Json | None:
    if osd is None:
        return None
    view: Json = {k: osd.get(k) for k in OSD_KEYS}
    if "rows" in osd:
        view["rows"] = osd["rows"]
    return view


def _osd_head(osd: Mapping[str, Any] | None) -> int:
    head = osd.get("head") if osd is not None else None
    return head if isinstance(head, int) and not isinstance(head, bool) else 1


def merge_state(sim: Mapping[str, Any], osds: Mapping[str, Mapping[str, Any] | None]) -> Json:
    """``{"devices": [...]}`` as documented in docs/LAB.md ("kvm-lab state --json")."""
    devices: list[Json] = []
    for tx in sim.get("tx", []):
        computer = tx.get("computer") or {}
        video = tx.get("video") or []
        devices.append(
            {
                "id": tx.get("id"),
                "kind": "tx",
                "name": tx.get("name"),
                "online": bool(tx.get("online")),
                "power": tx.get("power"),
                "network": tx.get("network"),
                "stream_ok": tx.get("stream_ok"),
                "video": any(bool(v) for v in video),
                "heads": [{"head": i + 1, "video": bool(v)} for i, v in enumerate(video)],
                "received": computer.get("text", ""),
            }
        )
    for rx in sim.get("rx", []):
        rx_id = rx.get("id")
        osd = osds.get(rx_id) if isinstance(rx_id, str) else None
        view = _osd_view(osd)
        osd_head = _osd_head(osd)
        heads = []
        for h in rx.get("heads", []):
            n = h.get("head")
            heads.append(
                {
                    "head": n,
                    "source": h.get("source"),
                    "video": bool(h.get("video")),
                    "osd": view if n == osd_head else None,
                }
            )
        devices.append(
            {
                "id": rx_id,
                "kind": "rx",
                "online": bool(rx.get("online")),
                "power": rx.get("power"),
                "network": rx.get("network"),
                "seat": rx.get("seat"),
                "wall": rx.get("wall"),
                "overlay": rx.get("overlay"),
                "controller": osd is not None,
                "link": rx.get("link"),
                "heads": heads,
                "osd": view,
            }
        )
    return {"devices": devices}


def device(state: Mapping[str, Any], dev_id: str) -> Json:
    """One device of a merged state; KeyError if there is none."""
    for dev in state.get("devices", []):
        if dev.get("id") == dev_id:
            return dict(dev)
    raise KeyError(dev_id)


def _osd_text(osd: Mapping[str, Any] | None) -> str:
    if osd is None:
        return "(no controller)"
    screen = osd.get("screen") or "?"
    if screen == "login":
        return f"login  status={osd.get('status') or ''!s}"
    parts = [str(screen)]
    if osd.get("user"):
        parts.append(f"user={osd['user']}")
    if screen == "menu":
        parts.append(f"mode={osd.get('mode')}")
        parts.append(f"input={osd.get('input') or ''!s}")
    if osd.get("feedback"):
        parts.append(f"feedback={osd['feedback']}")
    return "  ".join(parts)


def format_table(state: Mapping[str, Any]) -> str:
    """A readable table: one line per Tx, one line per Rx head."""
    lines = [f"{'ID':<5} {'KIND':<4} {'ONLINE':<6} {'DETAIL'}"]
    for dev in state.get("devices", []):
        online = "yes" if dev.get("online") else "NO"
        if dev.get("kind") == "tx":
            video = "video" if dev.get("video") else "no video"
            if dev.get("stream_ok") is False:
                video += ", stream fault"
            received = str(dev.get("received") or "")
            shown = received[-40:].replace("\n", "⏎")
            lines.append(f"{dev['id']:<5} {'tx':<4} {online:<6} {video}; received: {shown!r}")
            continue
        heads = dev.get("heads") or []
        for i, head in enumerate(heads):
            ident = dev["id"] if i == 0 else ""
            kind = "rx" if i == 0 else ""
            on = online if i == 0 else ""
            source = head.get("source") or "-"
            extra = f"  OSD: {_osd_text(dev.get('osd'))}" if i == 0 else ""
            lines.append(
                f"{ident:<5} {kind:<4} {on:<6} head {head.get('head')}: {source:<7}{extra}"
            )
    return "\n".join(lines)


def sync_problems(
    sim: Mapping[str, Any],
    osds: Mapping[str, Mapping[str, Any] | None],
    reporting_tx_serials: Iterable[str],
    tx_ids_by_serial: Mapping[str, str],
) -> list[str]:
    """What keeps the lab from being "up and in sync"; empty when nothing does.

    In sync: every reachable Tx has had its state accepted by the server, and the
    controller of every Rx that is on the network answers, has reached the server and has
    had its state accepted there (before that the server counts the Rx offline: a push to
    it right after start was refused with 此设备不在线).
    """
    problems: list[str] = []
    reporting = {tx_ids_by_serial.get(s, s) for s in reporting_tx_serials}
    for tx in sim.get("tx", []):
        if tx.get("online") and tx.get("id") not in reporting:
            problems.append(f"Tx {tx.get('id')} not yet reported to the server")
    ok_texts = {ResultCode.NETWORK_OK.text(lang) for lang in LANGS}
    for rx in sim.get("rx", []):
        rx_id = rx.get("id")
        if not rx.get("power"):
            continue
        osd = osds.get(rx_id) if isinstance(rx_id, str) else None
        if osd is None:
            problems.append(f"controller of Rx {rx_id} does not answer")
            continue
        if not rx.get("network"):
            continue
        # The controller host reports its link, adoption, server and reconcile state.
        for key, what in (
            ("link_up", "serial link down"),
            ("adopted", "not adopted"),
            ("server_ok", "not talking to the server"),
            ("reported", "its state not yet accepted by the server (offline there)"),
            ("converged", "screens not yet equal to the desired routing"),
        ):
            if key in osd and not osd[key]:
                problems.append(f"controller of Rx {rx_id}: {what}")
                break
        else:
            if osd.get("screen") == "login" and osd.get("status") not in ok_texts:
                problems.append(f"Rx {rx_id} login screen says {osd.get('status')!r}")
    return problems
