"""A controller host exempts its controllers' objects from full garbage collections once they
have settled (osd.__main__._settle): once, not before, and not after it was told to stop."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from osd import __main__ as rx_main


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    def freeze(*, collect: bool = True) -> None:
        assert not collect                # a full pass now would be the pause it avoids
        calls.append(time.monotonic())

    monkeypatch.setattr(rx_main, "freeze_long_lived", freeze)
    monkeypatch.setattr(rx_main, "SETTLE_POLL_S", 0.01)
    return calls


def controller(**kw: object) -> SimpleNamespace:
    return SimpleNamespace(**({"link_up": True, "adopted": object(), "server_ok": True} | kw))


def run(controllers: list[SimpleNamespace], stop: threading.Event) -> threading.Thread:
    t = threading.Thread(target=rx_main._settle, args=(controllers, stop), daemon=True)
    t.start()
    return t


def test_the_host_freezes_once_every_controller_is_up_adopted_and_online(
        frozen: list[float]) -> None:
    ctrls = [controller(), controller(adopted=None), controller(server_ok=False)]
    stop = threading.Event()
    t = run(ctrls, stop)
    time.sleep(0.1)
    assert frozen == []                   # two have not settled
    ctrls[1].adopted = object()
    time.sleep(0.1)
    assert frozen == []
    ctrls[2].server_ok = True
    t.join(2)
    assert not t.is_alive() and len(frozen) == 1


def test_a_controller_that_never_settles_does_not_hold_it_off_for_ever(
        frozen: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rx_main, "SETTLE_LIMIT_S", 0.1)
    t = run([controller(link_up=False)], threading.Event())
    t.join(2)
    assert not t.is_alive() and len(frozen) == 1


def test_stopping_ends_the_wait_without_freezing(frozen: list[float]) -> None:
    stop = threading.Event()
    t = run([controller(link_up=False)], stop)
    time.sleep(0.05)
    stop.set()
    t.join(2)
    assert not t.is_alive() and frozen == []
