"""Controllers that share one long poll (``kvm-rx --many``): the real kvm-server, the
simulator, keys typed at the seat. Waits are bounded polls, never fixed sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from osd import client as api
from osd.reportgroup import parse_reported
from osd.watchgroup import parse_answers
from tests.osd.test_runtime_env import RxEnv, wait_until
from tests.osd.test_runtime_sim import UNREACHABLE, act, login, osd, ready, source


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RxEnv]:
    environment = RxEnv(tmp_path, grouped=True)
    try:
        yield environment
    finally:
        environment.close()


def test_a_push_reaches_every_controller_of_the_group(env: RxEnv) -> None:
    a, b = ready(env, "5001"), ready(env, "5002")
    login(env, "5001", a)
    act(env, "5001", a, "1 Enter", "连接成功")
    wait_until(lambda: source(env, "5001") == "0001:1", 10, "5001 to show 0001")
    env.sim.press("5001", "Shift+O Shift+O")
    wait_until(lambda: osd(a)["screen"] == "menu", 10, "the OSD to open")
    env.sim.press("5001", "F2")
    wait_until(lambda: osd(a)["mode"] == "push" and osd(a)["input"] == "", 5, "push mode")
    act(env, "5001", a, "2 Enter", "推送成功")
    wait_until(lambda: source(env, "5002") == "0001:1", 10, "5002 to show 0001")
    assert osd(b)["heads"][0]["desired"] == "0001:1"
    # 5002 was online on the server for the push: its heartbeats went in the shared reports.
    assert env.reports is not None and env.reports.posts >= 1
    assert osd(b)["stats"]["reports"] >= 1
    # The seat of 5002 learnt who pushed: its own session is still nobody's.
    assert osd(b)["user"] is None and osd(b)["screen"] == "login"


def test_a_controller_that_joins_later_is_watched_at_once(env: RxEnv) -> None:
    """The group's poll waits up to 25 s: a member that comes up meanwhile must not wait
    for it to end (the poll in flight is ended and the next one carries the newcomer)."""
    a = ready(env, "5001")
    wait_until(lambda: osd(a)["stats"]["watch_answers"] >= 1, 10, "5001 watched")
    b = env.controller("5002")
    wait_until(lambda: osd(b)["stats"]["watch_answers"] >= 1, 8, "5002's first answer")
    assert osd(b)["adopted"] and osd(b)["status"] == "网络正常"
    assert osd(a)["status"] == "网络正常"


def test_a_server_outage_shows_on_every_member_and_nothing_switches(env: RxEnv) -> None:
    a, b = ready(env, "5001"), ready(env, "5002")
    login(env, "5001", a)
    act(env, "5001", a, "1 Enter", "连接成功")
    wait_until(lambda: source(env, "5001") == "0001:1", 10, "5001 to show 0001")

    env.stop_server()
    for ctrl in (a, b):
        wait_until(lambda c=ctrl: osd(c)["status"] == UNREACHABLE, 15,   # type: ignore[misc]
                   "the unreachable status on both")
    wait_until(lambda: osd(b)["stats"]["server_failures"] >= 3, 15, "several failed polls")
    assert (source(env, "5001"), source(env, "5002")) == ("0001:1", None)

    env.start_server()
    for ctrl in (a, b):
        wait_until(lambda c=ctrl: osd(c)["status"] == "网络正常", 20,   # type: ignore[misc]
                   "网络正常 again on both")
    assert (source(env, "5001"), source(env, "5002")) == ("0001:1", None)
    wait_until(lambda: osd(a)["user"] == "hxfj", 10, "the session from the server")


def test_a_reset_device_announces_again_while_the_others_keep_watching(
        env: RxEnv, caplog: pytest.LogCaptureFixture) -> None:
    """An admin resets 5002's credential: the server answers that member of the shared
    poll with an error, 5002 drops its adoption and announces again (which binds its secret
    anew), and 5001's watch goes on undisturbed."""
    a, b = ready(env, "5001"), ready(env, "5002")
    admin = requests.Session()
    token = admin.post(env.url + "/api/v1/admin/token",
                       json={"user": "admin", "password": "admin-pass-1"}, timeout=10)
    admin.headers["Authorization"] = "Bearer " + token.json()["token"]
    answers = osd(a)["stats"]["watch_answers"]
    assert admin.post(env.url + "/api/v1/admin/devices/5002/reset", timeout=10).ok
    wait_until(lambda: "5002: the server no longer accepts this device" in caplog.text, 10,
               "5002 to notice the reset")
    assert "5001: the server no longer accepts" not in caplog.text
    wait_until(lambda: osd(b)["adopted"] and osd(b)["status"] == "网络正常", 10,
               "5002 adopted again")
    login(env, "5001", a)
    act(env, "5001", a, "1 Enter", "连接成功")
    wait_until(lambda: source(env, "5001") == "0001:1", 10, "5001 still switches")
    assert osd(a)["stats"]["watch_answers"] > answers
    assert osd(a)["status"] == "网络正常"


def test_parse_reported() -> None:
    out = parse_reported({"answers": [
        {"serial": "A", "generation": 7},
        {"serial": "B", "error": {"code": "VALIDATION", "message": "heads: too many"}}]})
    assert out == {"A": api.Reported(7), "B": api.Refused(401, "VALIDATION", "heads: too many")}
    with pytest.raises(api.BadAnswer):
        parse_reported({"answers": [{"serial": "A", "generation": True}]})


def test_parse_answers() -> None:
    body = {"answers": [
        {"serial": "A", "watch": {"generation": 3, "routing": [{"head": 1, "source": "0001:1"}],
                                  "session": None, "settings": {}, "seat": None, "id": "5001",
                                  "name": "x"}},
        {"serial": "B", "error": {"code": "UNAUTHORIZED", "message": "wrong secret"}},
        {"serial": "C", "error": {"code": "PENDING", "message": "not adopted"}},
    ]}
    out = parse_answers(body)
    assert isinstance(out["A"], api.Watched) and out["A"].generation == 3
    assert out["A"].routing[0].source == ("0001", 1)
    assert out["B"] == api.Refused(401, "UNAUTHORIZED", "wrong secret")
    assert out["C"] == api.Pending()
    for bad in ({}, {"answers": {}}, {"answers": [{"watch": {}}]},
                {"answers": [{"serial": "A", "watch": {"generation": "x"}}]}):
        with pytest.raises(api.BadAnswer):
            parse_answers(bad)
