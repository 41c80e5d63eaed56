"""Topology → simulator config: every example runs in the simulator; bad hints are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.config import parse_config
from firmware_sim.lab.simconfig import TopologyError, load_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["control-room.yaml", "small-room.yaml"])
def test_examples_translate_to_a_valid_simulator_config(name: str) -> None:
    topo = load_topology(EXAMPLES / name)
    cfg = parse_config(topo.sim_config)
    assert [d.id for d in topo.tx] == [t.id for t in cfg.tx]
    assert [d.id for d in topo.rx] == [r.id for r in cfg.rx]
    assert all(d.serial for d in (*topo.tx, *topo.rx))


def test_control_room_hints_reach_the_simulator() -> None:
    topo = load_topology(EXAMPLES / "control-room.yaml")
    tx = {t["id"]: t for t in topo.sim_config["tx"]}
    assert tx["0003"]["video"] is False
    assert tx["0012"]["power"] in (False, "off")
    assert tx["0004"]["heads"] == 2
    assert {w["name"]: w["splice"] for w in topo.sim_config["walls"]} == {"main-wall": True}
    assert ["5002", "5003"] in [s["screens"] for s in topo.sim_config["seats"]]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tx: [{id: '0001', sim: {colour: red}}]\nrx: [{id: '5001'}]", "colour"),
        ("tx: [{id: '0001', sim: {video: [true, false]}}]\nrx: [{id: '5001'}]", "video"),
        ("tx: [{id: '0001'}]", "no Rx"),
        ("tx: [{id: 'abc'}]", "abc"),
        ("tx: [", "line 1"),
    ],
)
def test_bad_topologies_are_named(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "room.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=words):
        load_topology(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError):
        load_topology(tmp_path / "nope.yaml")
