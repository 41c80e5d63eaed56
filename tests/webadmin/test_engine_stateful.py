"""The permission engine against a small, naive, independent model of the control room.

The model below shares no code with ``webadmin.engine``: it keeps the room in plain sets,
dicts and lists and re-states SPEC 1.3-1.5 / 2.1-2.3 (and docs/PERMISSIONS.md) in the
most direct way. Each rule drives the engine (on a ``Snapshot`` built from the harness's
world) and the model, stores the engine's route changes as the server does, and compares.

Normal run: 200 examples x 40 steps. ``KVM_HYPOTHESIS_PROFILE=long`` runs many more.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from kvm_protocol.results import ResultCode
from webadmin.admin_service import as_push
from webadmin.engine import (
    Device,
    Hotkey,
    Outcome,
    Route,
    Scopes,
    Seat,
    Snapshot,
    User,
    Wall,
    can_login,
    connect,
    device_rows,
    disconnect,
    enforce_scopes,
    fetch,
    keys_allowed,
    push,
)

TX_HEADS = {"0001": 1, "0002": 2, "0003": 1}
RX_HEADS = {"5001": 1, "5002": 2, "5003": 1, "5004": 1, "5005": 1, "5006": 1, "5007": 1}
TXS = sorted(TX_HEADS)
RXS = sorted(RX_HEADS)
WALL = ["5004", "5005"]          # a 1x2 video wall
SEAT = ["5006", "5007"]          # a cross-screen seat
OPERATORS = ["ann", "bob", "cat"]
ADMIN = "root"
HOTKEY_NAMES = ["hk", "Mon", "w-1", "x_2"]

# --- the model ---------------------------------------------------------------------------

Shown = tuple[str, int, str, bool]     # tx, tx head, set by, pushed


class Model:
    """Plain bookkeeping of what the manual says should happen."""

    def __init__(self) -> None:
        self.tx = {t: {"online": True, "video": True, "stream": True} for t in TXS}
        self.rx = {r: {"online": True, "net": True} for r in RXS}
        self.splice = True
        self.users: dict[str, dict[str, Any]] = {
            name: {"admin": name == ADMIN, "enabled": True, "view": set(), "view_only": set(),
                   "push": set(), "fetch": set(), "login": None}
            for name in [*OPERATORS, ADMIN]
        }
        self.users["cat"]["login"] = {"5001", "5006"}
        self.hotkeys: dict[str, list[str]] = {}
        self.screens: dict[str, list[Shown | None]] = {r: [None] * RX_HEADS[r] for r in RXS}
        self.logged: dict[str, str] = {}     # seat name ("S" or the Rx ID) -> user

    # who, where
    @staticmethod
    def seat(rx: str) -> str:
        return "S" if rx in SEAT else rx

    @staticmethod
    def screens_of(rx: str) -> list[str]:
        return list(SEAT) if rx in SEAT else [rx]

    def sees(self, user: str | None, tx: str) -> bool:
        if user is None or user not in self.users:
            return False
        u = self.users[user]
        return u["enabled"] and (u["admin"] or tx in u["view"])

    def has(self, user: str, scope: str, rx: str) -> bool:
        u = self.users[user]
        return u["admin"] or rx in u[scope]

    def up(self, rx: str) -> bool:
        return self.rx[rx]["online"] and self.rx[rx]["net"]

    def picture(self, rx: str) -> list[tuple[str, int]]:
        return [(s[0], s[1]) for s in self.screens[rx] if s is not None]

    def plain(self, rx: str) -> list[tuple[str, int] | None]:
        return [None if s is None else (s[0], s[1]) for s in self.screens[rx]]

    @staticmethod
    def lay(picture: list[tuple[str, int]], heads: int) -> list[tuple[str, int] | None]:
        out: list[tuple[str, int] | None] = list(picture[:heads])
        while len(out) < heads:
            out.append(None)
        return out

    def wall_of(self, rx: str) -> list[str]:
        return list(WALL) if self.splice and rx in WALL else [rx]

    def fetchable(self, rx: str) -> list[tuple[str, int]]:
        if self.splice and rx in WALL:
            for tile in WALL:
                if self.picture(tile):
                    return self.picture(tile)
            return []
        return self.picture(rx)

    # typed input
    def parse(self, text: str, kind: str, several: bool) -> list[str] | None:
        if len(text) > 200:
            return None
        pieces = [p.strip() for p in text.split(",")]
        if len(pieces) > 1 and not several:
            return None
        found: list[str] = []
        for p in pieces:
            if p == "" or p.lower() == "all":
                return None
            if all(c in "0123456789" for c in p):
                if len(p) > 4:
                    return None
                if kind == "tx":
                    ids = [str(int(p)).rjust(4, "0")]
                elif len(p) == 4:
                    ids = [p]
                else:
                    ids = [str(5000 + int(p))]
            elif len(p) <= 16 and all(c.isascii() and (c.isalnum() or c in "-_") for c in p):
                ids = list(self.hotkeys.get(p.lower(), []))
                if not ids:
                    return None
            else:
                return None
            for i in ids:
                if i not in (TX_HEADS if kind == "tx" else RX_HEADS):
                    return None
            found += ids
        if len(found) != len(set(found)):
            return None
        return found

    # actions
    def connect(self, user: str, rx: str, text: str) -> str:
        if not self.users[user]["enabled"]:
            return "ACCOUNT_DISABLED"
        got = self.parse(text, "tx", False)
        if got is None:
            return "UNKNOWN_TARGET"
        n = RX_HEADS[rx]
        if len(got) == 1:
            using = got
            want = self.lay([(got[0], h + 1) for h in range(TX_HEADS[got[0]])], n)
        else:
            using = got[:n]
            want = self.lay([(t, 1) for t in using], n)
        if any(not self.sees(user, t) for t in using):
            return "OUT_OF_SCOPE"
        if any(not self.tx[t]["online"] for t in using):
            return "OFFLINE"
        if any(not self.tx[t]["video"] for t in using):
            return "NO_VIDEO"
        if any(not self.tx[t]["stream"] for t in using):
            return "CONNECT_FAILED"
        if self.plain(rx) == want:
            return "SAME_SOURCE"
        self.screens[rx] = [None if w is None else (w[0], w[1], user, False) for w in want]
        return "CONNECTED"

    def push(self, user: str, rx: str, text: str) -> tuple[str, list[tuple[str, str]]]:
        if not self.users[user]["enabled"]:
            return "ACCOUNT_DISABLED", []
        if len(text) <= 200 and text.strip().lower() == "all":
            targets = [r for r in RXS if self.has(user, "push", r)
                       and self.seat(r) != self.seat(rx)]
            if not targets:
                return "OUT_OF_SCOPE", []
        else:
            parsed = self.parse(text, "rx", True)
            if parsed is None:
                return "UNKNOWN_TARGET", []
            targets = parsed
        picture = self.picture(rx)
        if not picture:
            return "NOT_CONNECTED", []
        if not all(self.sees(user, tx) for tx, _ in picture):
            return "OUT_OF_SCOPE", []
        results: list[tuple[str, str]] = []
        writes: list[tuple[str, list[Shown | None]]] = []
        for target in targets:
            if not self.has(user, "push", target):
                results.append((target, "OUT_OF_SCOPE"))
                continue
            if not self.up(target):
                results.append((target, "OFFLINE"))
                continue
            tiles = self.wall_of(target)
            if all(self.plain(t) == self.lay(picture, RX_HEADS[t]) for t in tiles):
                results.append((target, "SAME_SOURCE"))
                continue
            results.append((target, "PUSHED"))
            for t in tiles:
                viewer = self.logged.get(self.seat(t))
                new: list[Shown | None] = []
                for w in self.lay(picture, RX_HEADS[t]):
                    new.append(None if w is None
                               else (w[0], w[1], user, not self.sees(viewer, w[0])))
                writes.append((t, new))
        for t, new in writes:
            self.screens[t] = new
        codes = [c for _, c in results]
        if all(c == "PUSHED" for c in codes):
            return "PUSHED", results
        if len(codes) == 1:
            return codes[0], results
        return "PUSH_PARTIAL", results

    def fetch(self, user: str, rx: str, text: str) -> str:
        if not self.users[user]["enabled"]:
            return "ACCOUNT_DISABLED"
        got = self.parse(text, "rx", False)
        if got is None or len(got) != 1:
            return "UNKNOWN_TARGET"
        there = got[0]
        if not self.has(user, "fetch", there):
            return "OUT_OF_SCOPE"
        if not self.up(there):
            return "OFFLINE"
        picture = self.fetchable(there)
        if not picture:
            return "NOT_CONNECTED"
        if not all(self.sees(user, tx) for tx, _ in picture):
            return "OUT_OF_SCOPE"
        want = self.lay(picture, RX_HEADS[rx])
        if self.plain(rx) == want:
            return "SAME_SOURCE"
        self.screens[rx] = [None if w is None else (w[0], w[1], user, False) for w in want]
        return "FETCHED"

    def login(self, user: str, rx: str) -> str:
        if user not in self.users:
            return "BAD_CREDENTIALS"
        u = self.users[user]
        if not u["enabled"]:
            return "ACCOUNT_DISABLED"
        if u["admin"] or u["login"] is None:
            return "NETWORK_OK"
        if any(s in u["login"] for s in self.screens_of(rx)):
            return "NETWORK_OK"
        return "LOGIN_NOT_ALLOWED"

    def logout(self, rx: str) -> None:
        for s in self.screens_of(rx):
            self.screens[s] = [None] * RX_HEADS[s]
        self.logged.pop(self.seat(rx), None)

    def tidy(self) -> None:
        """What may no longer be seen goes: the seat's user lost the Tx and it is no push."""
        for rx in RXS:
            user = self.logged.get(self.seat(rx))
            if user is None:
                continue
            for i, s in enumerate(self.screens[rx]):
                if s is not None and not s[3] and not self.sees(user, s[0]):
                    self.screens[rx][i] = None

    # what the OSD shows
    def keys(self, user: str, rx: str) -> bool:
        u = self.users[user]
        if not u["enabled"]:
            return False
        picture = self.picture(rx)
        if not picture:
            return True
        tx = picture[0][0]
        return u["admin"] or (tx in u["view"] and tx not in u["view_only"])

    def rows(self, user: str, rx: str, mode: str) -> list[tuple[str, str]]:
        u = self.users[user]
        if not u["enabled"]:
            return []
        out = []
        if mode == "connect":
            mine = {tx for tx, _ in self.picture(rx)}
            for tx in TXS:
                if u["admin"] or tx in u["view"] or tx in mine:
                    colour = ("red" if not self.tx[tx]["online"]
                              else "yellow" if tx in mine else "grey")
                    out.append((tx, colour))
            return out
        picture = self.picture(rx)
        for other in RXS:
            if other == rx or not self.has(user, mode, other):
                continue
            if mode == "push":
                same = bool(picture) and all(
                    self.plain(t) == self.lay(picture, RX_HEADS[t]) for t in self.wall_of(other))
            else:
                theirs = self.fetchable(other)
                same = bool(theirs) and self.lay(theirs, RX_HEADS[rx]) == self.plain(rx)
            colour = "red" if not self.up(other) else "yellow" if same else "grey"
            out.append((other, colour))
        return out


# --- the harness ---------------------------------------------------------------------------

VALID_IDS = {"tx": ["1", "01", "2", "0002", "3"], "rx": ["1", "2", "3", "4", "5", "6", "7", "5002"]}
BAD_IDS = {"tx": ["4", "0", "5000", "5001", "12345"], "rx": ["8", "0", "0001", "10000", "4999"]}
NAMES = [*HOTKEY_NAMES, "HK", "mon", "W-1", "X_2", "nokey"]
JUNK = ["", " ", "all", "ALL", "a b", "１", "1;2", "x" * 17, "é"]


def _pad(token: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    spaces = st.sampled_from(["", "", "", " ", "\t"])
    return st.tuples(spaces, token, spaces).map("".join)


def _text(kind: str) -> st.SearchStrategy[str]:
    """Mostly one plausible target; also hotkeys, lists, `all`, junk and over-long input."""
    valid = _pad(st.sampled_from(VALID_IDS[kind]))
    name = _pad(st.sampled_from(NAMES))
    bad = _pad(st.sampled_from(BAD_IDS[kind] + JUNK))
    listed = st.lists(st.one_of(valid, valid, valid, name, bad), min_size=2, max_size=3)
    special = st.sampled_from(["all", " ALL", "all,1", "1" + " " * 200, ",".join(["1"] * 101)])
    # Repeating a branch weights it: a valid target 10 times out of 17.
    return st.one_of([valid] * 10 + [name] * 3 + [listed.map(",".join)] * 2 + [bad, special])


TEXT = {"tx": _text("tx"), "rx": _text("rx")}


def _hotkey_targets() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        st.lists(st.sampled_from(TXS), min_size=1, max_size=3, unique=True),
        st.lists(st.sampled_from(RXS), min_size=1, max_size=3, unique=True),
        st.lists(st.sampled_from([*TXS, *RXS, "0999"]), min_size=0, max_size=3, unique=True),
    )


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.devices = {t: Device(t, "tx", f"PC {t}", heads=h) for t, h in TX_HEADS.items()}
        self.devices |= {r: Device(r, "rx", f"Rx {r}", heads=h) for r, h in RX_HEADS.items()}
        self.users = {u: User(u) for u in OPERATORS}
        self.users["cat"] = User("cat", scopes=Scopes(login=frozenset({"5001", "5006"})))
        self.users[ADMIN] = User(ADMIN, role="admin")
        self.hotkeys: dict[str, Hotkey] = {}
        self.splice = True
        self.routing: dict[str, tuple[Route | None, ...]] = {}
        self.sessions: dict[str, str] = {}

    # world <-> engine
    def snap(self) -> Snapshot:
        return Snapshot(
            devices=dict(self.devices),
            users=dict(self.users),
            hotkeys=dict(self.hotkeys),
            walls=(Wall("wall", 1, 2, tuple(WALL), splice=self.splice),),
            seats=(Seat("S", tuple(SEAT)),),
            routing=dict(self.routing),
            sessions=dict(self.sessions),
        )

    def store(self, outcome: Outcome) -> None:
        for change in outcome.changes:
            heads = list(self.routing.get(change.rx_id, ()))
            heads += [None] * (change.head - len(heads))
            heads[change.head - 1] = change.route
            self.routing[change.rx_id] = tuple(heads)

    def session_of(self, rx: str) -> str | None:
        for screen in SEAT if rx in SEAT else [rx]:
            if screen in self.sessions:
                return self.sessions[screen]
        return None

    def logged_in(self) -> list[tuple[str, str]]:
        return [(rx, u) for rx in RXS if (u := self.session_of(rx)) is not None]

    def tidy(self) -> None:
        self.store(Outcome(ResultCode.DISCONNECTED, enforce_scopes(self.snap())))
        self.model.tidy()

    def scopes(self, user: str, **changes: frozenset[str]) -> None:
        old = self.users[user]
        self.users[user] = dataclasses.replace(
            old, scopes=dataclasses.replace(old.scopes, **changes)
        )

    def device(self, device_id: str, **changes: Any) -> None:
        old = self.devices[device_id]
        fields = {"heads": old.heads, "online": old.online, "video": old.video,
                  "stream_ok": old.stream_ok, "network_up": old.network_up, **changes}
        self.devices[device_id] = Device(device_id, old.kind, old.name, **fields)

    def check_changes_only_on_success(self, outcome: Outcome) -> None:
        if outcome.code.ok:
            return
        if outcome.code is ResultCode.PUSH_PARTIAL:
            pushed = {t.target for t in outcome.targets if t.code is ResultCode.PUSHED}
            reach = {tile for t in pushed for tile in (WALL if self.splice and t in WALL else [t])}
            assert {c.rx_id for c in outcome.changes} <= reach
        else:
            assert outcome.changes == ()

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Operators start with random scopes, and a few seats with someone logged in."""
        for user in OPERATORS:
            view = data.draw(st.sets(st.sampled_from(TXS)), label=f"{user} view")
            scopes = {
                "view": view,
                "view_only": data.draw(st.sets(st.sampled_from(TXS)), label="view_only") & view,
                "push": data.draw(st.sets(st.sampled_from(RXS)), label=f"{user} push"),
                "fetch": data.draw(st.sets(st.sampled_from(RXS)), label=f"{user} fetch"),
            }
            self.scopes(user, **{k: frozenset(v) for k, v in scopes.items()})
            for scope, ids in scopes.items():
                self.model.users[user][scope] = set(ids)
        for key in HOTKEY_NAMES:
            if data.draw(st.booleans(), label=f"hotkey {key}"):
                self.edit_hotkey(key, data.draw(_hotkey_targets(), label="names"))
        for rx in RXS:
            if data.draw(st.booleans(), label=f"{rx} shows"):
                self.admin_routes_an_unattended_rx(rx, data.draw(st.sampled_from(TXS)))
        for _ in range(data.draw(st.integers(1, 4), label="logins")):
            self.login(data.draw(st.sampled_from([*OPERATORS, ADMIN]), label="user"),
                       data.draw(st.sampled_from(RXS), label="rx"))

    @rule(rx=st.sampled_from(RXS), tx=st.sampled_from(TXS))
    def admin_routes_an_unattended_rx(self, rx: str, tx: str) -> None:
        """The web UI's routing action on an Rx where nobody is logged in: a push by the
        admin (docs/PERMISSIONS.md "Admin routing"), picture only for whoever logs in."""
        if self.session_of(rx) is not None:
            return
        self.routing[rx] = (Route(tx, 1, ADMIN, pushed=True),) + (None,) * (RX_HEADS[rx] - 1)
        self.model.screens[rx] = [(tx, 1, ADMIN, True)] + [None] * (RX_HEADS[rx] - 1)

    @rule(data=st.data(), rx=st.sampled_from(RXS))
    def admin_switches_a_screen(self, data: st.DataObject, rx: str) -> None:
        """The admin API's / web UI's connect at any Rx (``admin_service.admin_route``): the
        engine decides as for the admin, and the routes are a push by the admin, which no
        later scope enforcement takes away."""
        text = data.draw(TEXT["tx"], label="typed")
        outcome = as_push(self.snap(), connect(self.snap(), ADMIN, rx, text))
        expected = self.model.connect(ADMIN, rx, text)
        assert outcome.code.value == expected, text
        if expected == "CONNECTED":
            viewer = self.model.logged.get(self.model.seat(rx))
            self.model.screens[rx] = [
                None if s is None else (s[0], s[1], ADMIN, not self.model.sees(viewer, s[0]))
                for s in self.model.screens[rx]]
        self.store(outcome)

    # sessions
    @rule(user=st.sampled_from([*OPERATORS, ADMIN, "eve"]), rx=st.sampled_from(RXS))
    def login(self, user: str, rx: str) -> None:
        if self.session_of(rx) is not None:
            return
        code = can_login(self.snap(), user, rx)
        assert code.value == self.model.login(user, rx)
        if code is ResultCode.NETWORK_OK:
            self.sessions[rx] = user
            self.model.logged[self.model.seat(rx)] = user
            self.tidy()

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), user=st.sampled_from([*OPERATORS, ADMIN]))
    def login_over_a_live_session(self, data: st.DataObject, user: str) -> None:
        """A login where another user is still logged in (their controller never logged
        out): the server logs that user out first, exactly as a logout (routing.login)."""
        rx, previous = data.draw(st.sampled_from(self.logged_in()), label="seat")
        code = can_login(self.snap(), user, rx)
        assert code.value == self.model.login(user, rx)
        if code is not ResultCode.NETWORK_OK or user == previous:
            return
        self.store(disconnect(self.snap(), previous, rx))
        self.model.logout(rx)
        for screen in SEAT if rx in SEAT else [rx]:
            self.sessions[screen] = user
        self.model.logged[self.model.seat(rx)] = user
        self.tidy()

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def logout(self, data: st.DataObject) -> None:
        rx, user = data.draw(st.sampled_from(self.logged_in()))
        outcome = disconnect(self.snap(), user, rx)
        assert outcome.code is ResultCode.DISCONNECTED
        self.store(outcome)
        for screen in SEAT if rx in SEAT else [rx]:
            self.sessions.pop(screen, None)
        self.model.logout(rx)

    # operator actions
    def act(self, data: st.DataObject, action: str) -> None:
        rx, user = data.draw(st.sampled_from(self.logged_in()), label="seat")
        text = data.draw(TEXT["tx" if action == "connect" else "rx"], label="typed")
        snap = self.snap()
        targets: list[tuple[str, str]] = []
        if action == "connect":
            outcome = connect(snap, user, rx, text)
            expected = self.model.connect(user, rx, text)
        elif action == "push":
            outcome = push(snap, user, rx, text)
            expected, targets = self.model.push(user, rx, text)
        else:
            outcome = fetch(snap, user, rx, text)
            expected = self.model.fetch(user, rx, text)
        event(f"{action} {outcome.code.value}")
        assert outcome.code.value == expected, (action, text)
        assert [(t.target, t.code.value) for t in outcome.targets] == targets, (action, text)
        self.check_changes_only_on_success(outcome)
        self.store(outcome)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        self.act(data, "connect")

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def push(self, data: st.DataObject) -> None:
        self.act(data, "push")

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def fetch(self, data: st.DataObject) -> None:
        self.act(data, "fetch")

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), source=st.sampled_from(RXS))
    def admin_pushes_to_a_seat(self, data: st.DataObject, source: str) -> None:
        """A supervisor (admin) pushes what `source` shows to a seat: the way operators get
        pictures outside their own scope, which they must not pass on."""
        rx, _ = data.draw(st.sampled_from(self.logged_in()), label="to")
        outcome = push(self.snap(), ADMIN, source, rx)
        code, targets = self.model.push(ADMIN, source, rx)
        event(f"admin push {code}")
        assert (outcome.code.value, [(t.target, t.code.value) for t in outcome.targets]) == (
            code, targets)
        self.store(outcome)

    # Operators act more often than admins edit: two more rules that pick any action.
    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), action=st.sampled_from(["connect", "push", "fetch"]))
    def operator_acts(self, data: st.DataObject, action: str) -> None:
        self.act(data, action)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), action=st.sampled_from(["connect", "push", "fetch"]))
    def operator_acts_again(self, data: st.DataObject, action: str) -> None:
        self.act(data, action)

    # admin edits
    @rule(user=st.sampled_from(OPERATORS), data=st.data(), grant=st.booleans())
    def grant_or_revoke(self, user: str, data: st.DataObject, grant: bool) -> None:
        scope = data.draw(st.sampled_from(["view", "view_only", "push", "fetch"]), label="scope")
        device = data.draw(st.sampled_from(TXS if scope.startswith("view") else RXS))
        old: frozenset[str] = getattr(self.users[user].scopes, scope)
        self.scopes(user, **{scope: old | {device} if grant else old - {device}})
        model_scope: set[str] = self.model.users[user][scope]
        if grant:
            model_scope.add(device)
        else:
            model_scope.discard(device)
        self.tidy()

    @rule(user=st.sampled_from([*OPERATORS, ADMIN]), enabled=st.sampled_from([True, True, False]))
    def enable(self, user: str, enabled: bool) -> None:
        old = self.users[user]
        self.users[user] = User(user, old.role, enabled, old.scopes)
        self.model.users[user]["enabled"] = enabled
        self.tidy()

    @rule(key=st.sampled_from(HOTKEY_NAMES), names=_hotkey_targets())
    def edit_hotkey(self, key: str, names: list[str]) -> None:
        if names:
            self.hotkeys[key.lower()] = Hotkey(key, tuple(names))
            self.model.hotkeys[key.lower()] = list(names)
        else:
            self.hotkeys.pop(key.lower(), None)
            self.model.hotkeys.pop(key.lower(), None)

    @rule(splice=st.booleans())
    def set_splice(self, splice: bool) -> None:
        self.splice = splice
        self.model.splice = splice

    # device faults
    @rule(tx=st.sampled_from(TXS), what=st.sampled_from(["online", "video", "stream"]),
          value=st.booleans())
    def tx_fault(self, tx: str, what: str, value: bool) -> None:
        self.model.tx[tx][what] = value
        if what == "online":
            self.device(tx, online=value)
        elif what == "video":
            self.device(tx, video=() if value else (False,) + (True,) * (TX_HEADS[tx] - 1))
        else:
            self.device(tx, stream_ok=value)

    @rule(rx=st.sampled_from(RXS), what=st.sampled_from(["online", "net"]), value=st.booleans())
    def rx_fault(self, rx: str, what: str, value: bool) -> None:
        self.model.rx[rx][what] = value
        self.device(rx, **({"online": value} if what == "online" else {"network_up": value}))

    # after every step
    @invariant()
    def routing_matches_the_model(self) -> None:
        for rx in RXS:
            routes = list(self.routing.get(rx, ()))
            routes += [None] * (RX_HEADS[rx] - len(routes))
            got = [None if r is None else (r.tx_id, r.tx_head, r.set_by, r.pushed)
                   for r in routes[:RX_HEADS[rx]]]
            assert got == self.model.screens[rx], rx
            assert all(r is None for r in routes[RX_HEADS[rx]:])

    @invariant()
    def nobody_sees_beyond_their_scope_but_a_live_push(self) -> None:
        for rx, name in self.logged_in():
            user = self.users[name]
            for route in self.routing.get(rx, ()):
                if route is None or route.pushed or (user.role == "admin" and user.enabled):
                    continue
                assert user.enabled and route.tx_id in user.scopes.view, (rx, name, route)

    @invariant()
    def osd_lists_and_keys_match_the_model(self) -> None:
        snap = self.snap()
        for rx, user in self.logged_in():
            assert keys_allowed(snap, user, rx) == self.model.keys(user, rx)
            for mode in ("connect", "push", "fetch"):
                rows = device_rows(snap, user, rx, mode)
                assert [(r.id, r.colour) for r in rows] == self.model.rows(user, rx, mode)


_LONG = os.environ.get("KVM_HYPOTHESIS_PROFILE") == "long"
# The long run takes tens of minutes on a busy 2-core machine: lift the 300 s limit there.
pytestmark = pytest.mark.timeout(7200 if _LONG else 300)

EngineMachine.TestCase.settings = settings(
    max_examples=3000 if _LONG else 200,
    stateful_step_count=80 if _LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineAgainstModel = EngineMachine.TestCase
