"""bench/report.py: benchmark JSON → the table of docs/PERFORMANCE.md, with verdicts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import report

Json = dict[str, Any]


def sample_results() -> Json:
    """A results document as `report.py collect` writes it, every benchmark ok."""
    p = {"n": 300, "p50_ms": 5.0, "p99_ms": 9.0, "max_ms": 12.0}
    results: dict[str, Json] = {
        "codec": {"codec_frames_per_s": 80_000, "codec_frames_per_cpu_s": 90_000,
                  "frames_per_run": 20_000, "runs": 7},
        "link": {"pty": {"p50_ms": 0.2, "p99_ms": 0.9, "round_trips": 1000, "failures": 0},
                 "socket": {"p50_ms": 0.3, "p99_ms": 1.1, "round_trips": 1000, "failures": 0}},
        "server": {
            "connect": {"requests": 1000, "results": {"CONNECTED": 1000}, "p50_ms": 8.0,
                        "p99_ms": 12.5, "server_cpu_ms_per_request": 3.0},
            "push_all": {"watches": 999, "released": 999, "errors": 0, "push_request_ms": 300,
                         "release_since_request_p50_ms": 60.0,
                         "release_since_request_p99_ms": 95.0},
            "soak": {"watches": 2000, "operators": 50, "operators_logged_in": 50,
                     "seconds": 30, "switches": 7000, "connect_under_load_p99_ms": 80,
                     "watch_returns": 9000, "errors": 0, "server_rss_mib_peak": 231.0},
            "rss_mib_idle": 76.0, "rss_mib_end": 200.0,
        },
        "osd": {"chord_to_frame_1080p": dict(p, p99_ms=21.0),
                "chord_to_frame_1080p_cpu_time": p,
                "forward_key_closed": {"n": 20000, "p50_ms": 0.01, "p99_ms": 0.05},
                "process": {"rss_mb": 70.0, "peak_rss_mb": 75.0}},
        "rx": {"switch_latency_ms": {"enter_to_switchhead": {"n": 200, "p50": 15.0, "p99": 19.9}},
               "one_process": {"after_render": {"vmrss_mb": 75.0, "vmhwm_mb": 81.0}}},
        "lab": {"sizes": {"tx": 1000, "rx": 1000},
                "push": {"targets": 999, "missing": 0, "last_ms": 240.0,
                         "arrival_ms": {"n": 999, "p50_ms": 120.0, "p99_ms": 230.0},
                         "poll_ms": {"p50_ms": 30.0}},
                "restart": {"controllers": 1000, "in_sync_after_up_s": 1.5,
                            "in_sync_after_kill_s": 4.0, "server_start_s": 2.5,
                            "back_after_up_ms": {"p50_ms": 900.0},
                            "screens_changed_count": 0, "screens_changed_after": [],
                            "converged_after": 1000},
                "rss": {"server": {"vmrss_mb": 100.0, "vmhwm_mb": 150.0, "threads": 2}},
                "lab_start_s": 200.0, "hosts": 4},
    }
    return {"schema": 1,
            "machine": {"cpu": "Test CPU", "cores": 2, "ram_gib": 23.5, "python": "3.11.7",
                        "date": "2026-11-24 10:00:00 +0000", "loadavg_before": [5.0, 4.0, 3.0],
                        "loadavg_after": [6.0, 5.0, 4.0]},
            "benchmarks": {name: {"command": f"bench/bench_{name}.py", "exit": 0,
                                  "seconds": 10, "status": "ok", "error": None, "result": r}
                           for name, r in results.items()}}


def table(markdown: str) -> dict[str, list[str]]:
    """The goals table: figure label → its cells (goal, p50, p99/value, verdict, notes)."""
    rows: dict[str, list[str]] = {}
    section = markdown.split("## Goals", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| figure"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def verdicts(doc: Json) -> dict[str, str]:
    return {label: cells[3] for label, cells in table(report.render(doc)).items()}


def test_every_figure_has_a_row_with_the_right_verdict() -> None:
    got = verdicts(sample_results())
    assert len(got) == len(report.FIGURES) == 13
    expected_not_met = {
        "Server connect decision over HTTP",              # p99 12.5 ms, goal < 10
        "Chord → OSD frame drawn (1920×1080)",            # p99 21 ms, goal < 16
        "Controller RSS with pygame (one `kvm-rx`)",      # peak 81 MB, goal < 80
    }
    for label, verdict in got.items():
        if label.startswith("Link round trip"):
            assert verdict == report.NO_GOAL, label
        elif label in expected_not_met:
            assert verdict == report.NOT_MET, label
        else:
            assert verdict == report.MET, label


def test_the_table_shows_the_measured_numbers_and_the_summary_names_what_is_missed() -> None:
    text = report.render(sample_results())
    rows = table(text)
    assert rows["Server connect decision over HTTP"][1:3] == ["8 ms", "12.5 ms"]
    assert rows["Serial codec throughput (encode + decode)"][2] == "80,000 frames/s"
    assert rows["Lab: server SIGKILL + restart → controllers in sync"][2] == (
        "1.5 s after the server answers")
    assert "**Not met (3):**" in text
    assert "Test CPU, 2 cores" in text and "5.00 / 4.00 / 3.00 before" in text


def test_a_goal_with_errors_is_not_met_even_when_fast() -> None:
    doc = sample_results()
    doc["benchmarks"]["server"]["result"]["push_all"]["released"] = 998
    doc["benchmarks"]["server"]["result"]["soak"]["errors"] = 3
    doc["benchmarks"]["lab"]["result"]["push"]["missing"] = 1
    doc["benchmarks"]["lab"]["result"]["restart"]["screens_changed_count"] = 2
    got = verdicts(doc)
    for label in ("Push `all` to every Rx → watches released",
                  "Every device watching + operators switching (soak)",
                  "Lab: push `all` → every Rx head shows the source",
                  "Lab: server SIGKILL + restart → controllers in sync"):
        assert got[label] == report.NOT_MET, label


def test_a_crashed_or_timed_out_benchmark_is_reported_not_measured_with_its_error() -> None:
    doc = sample_results()
    doc["benchmarks"]["lab"].update(status="timed out", error="timed out after 1700 s",
                                    result=None, exit=124)
    doc["benchmarks"]["osd"].update(status="failed", error="ZeroDivisionError: boom", exit=1)
    text = report.render(doc)
    rows = table(text)
    lab = rows["Lab: push `all` → every Rx head shows the source"]
    assert lab[3] == report.NOT_MEASURED and "timed out after 1700 s" in lab[2]
    osd = rows["Key forwarding added latency (OSD closed)"]
    assert osd[3] == report.NOT_MEASURED and "ZeroDivisionError: boom" in osd[2]
    assert "**Not measured (5):**" in text


def test_a_key_missing_from_a_benchmark_output_is_named() -> None:
    doc = sample_results()
    del doc["benchmarks"]["server"]["result"]["connect"]["p99_ms"]
    row = table(report.render(doc))["Server connect decision over HTTP"]
    assert row[3] == report.NOT_MEASURED and "connect.p99_ms" in row[2]


@settings(max_examples=150, deadline=None)
@given(p99=st.floats(0, 1000, allow_nan=False), rate=st.integers(0, 200_000))
def test_verdicts_follow_the_goals(p99: float, rate: int) -> None:
    doc = sample_results()
    res = doc["benchmarks"]
    res["server"]["result"]["connect"]["p99_ms"] = p99
    res["rx"]["result"]["switch_latency_ms"]["enter_to_switchhead"]["p99"] = p99
    res["lab"]["result"]["push"]["arrival_ms"]["p99_ms"] = p99
    res["codec"]["result"]["codec_frames_per_s"] = rate
    got = verdicts(doc)

    def v(ok: bool) -> str:
        return report.MET if ok else report.NOT_MET

    assert got["Server connect decision over HTTP"] == v(p99 < 10)
    assert got["Enter on F1 → `SwitchHead` written"] == v(p99 < 20)
    assert got["Lab: push `all` → every Rx head shows the source"] == v(p99 < 250)
    assert got["Serial codec throughput (encode + decode)"] == v(rate >= 50_000)


# --- collect (what bench/run leaves behind) ------------------------------------------------

def write_raw(raw: Path, name: str, exit_code: int, stdout: str, log: str = "") -> None:
    (raw / f"{name}.meta").write_text(json.dumps(
        {"command": f"bench/bench_{name}.py", "exit": exit_code, "seconds": 3,
         "timeout_s": 60}))
    (raw / f"{name}.json").write_text(stdout)
    (raw / f"{name}.log").write_text(log)


def test_collect_records_ok_crashed_timed_out_and_garbage_runs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "machine-before.json").write_text(json.dumps(report.machine()))
    (raw / "machine-after.json").write_text(json.dumps(report.machine()))
    codec = sample_results()["benchmarks"]["codec"]["result"]
    write_raw(raw, "codec", 0, "warming up\n" + json.dumps(codec))
    write_raw(raw, "lab", 1, json.dumps({"error": "LabError: the lab did not come up"}))
    write_raw(raw, "link", 124, "", "still measuring")
    write_raw(raw, "osd", 0, "{not json")
    write_raw(raw, "rx", 2, "", "Traceback ...\nValueError: bad size")
    doc = report.validate(report.collect(raw))
    runs = doc["benchmarks"]
    assert runs["codec"]["status"] == "ok" and runs["codec"]["result"] == codec
    assert runs["lab"]["status"] == "failed"
    assert runs["lab"]["error"] == "LabError: the lab did not come up"
    assert runs["link"]["status"] == "timed out" and "60 s" in runs["link"]["error"]
    assert runs["osd"]["status"] == "failed" and "not JSON" in runs["osd"]["error"]
    assert runs["rx"]["status"] == "failed" and "ValueError: bad size" in runs["rx"]["error"]
    assert doc["machine"]["loadavg_before"] and doc["machine"]["cores"]
    got = verdicts(doc)
    assert got["Serial codec throughput (encode + decode)"] == report.MET
    assert got["Link round trip over a pty"] == report.NOT_MEASURED


# --- malformed input ---------------------------------------------------------------------------

def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = report.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_refuses_text_that_is_not_json(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"schema": 1, "machine": {}\n')
    code, out, err = run_cli("render", str(bad), capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"report: {bad} is not JSON: ") and "line 2" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("benchmarks"), "'benchmarks' must be an object (name → run)"),
    (lambda d: d.update(schema=7), "'schema' must be 1, got 7"),
    (lambda d: d.update(machine=[]), "'machine' must be an object"),
    (lambda d: d["benchmarks"]["lab"].update(status="fine"),
     "benchmarks.lab.status must be ok, failed or timed out, got 'fine'"),
    (lambda d: d["benchmarks"]["osd"].update(result=[1, 2]),
     "benchmarks.osd.result must be an object or null"),
    (lambda d: d["benchmarks"]["rx"].update(result=None), "benchmarks.rx: status ok but no result"),
])
def test_render_refuses_json_of_the_wrong_shape(tmp_path: Path, mutate: Any, message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    doc = copy.deepcopy(sample_results())
    mutate(doc)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    code, out, err = run_cli("render", str(path), capsys=capsys)
    assert code == 2 and out == ""
    assert err == f"report: {path}: {message}\n"


def test_render_refuses_a_json_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.json"
    path.write_text("[1, 2]")
    code, _, err = run_cli("render", str(path), capsys=capsys)
    assert code == 2 and err == f"report: {path}: expected a JSON object, got list\n"


def test_render_keeps_the_hand_written_notes_of_the_existing_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, out = tmp_path / "results.json", tmp_path / "PERFORMANCE.md"
    results.write_text(json.dumps(sample_results()))
    out.write_text(f"old\n{report.NOTES_START}\nThe server is CPU-bound.\n{report.NOTES_END}\n")
    assert run_cli("render", str(results), "-o", str(out), capsys=capsys)[0] == 0
    text = out.read_text()
    assert "The server is CPU-bound." in text and "old\n" not in text
    assert table(text)["Server connect decision over HTTP"][3] == report.NOT_MET


def extras(doc: Json) -> dict[str, str]:
    section = report.render(doc).split("## Other figures (no goal)", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| figure"):
            label, _, value = line.strip("|").partition(" | ")
            rows[label.strip()] = value.strip()
    return rows


def test_a_reference_lab_of_another_size_is_listed_without_a_verdict() -> None:
    doc = sample_results()
    small = copy.deepcopy(doc["benchmarks"]["lab"])
    small["result"]["sizes"] = {"tx": 250, "rx": 250}
    small["result"]["push"]["arrival_ms"]["p99_ms"] = 180.0
    doc["benchmarks"]["lab-250"] = small
    got = extras(doc)
    push = got["Lab (lab-250, 250 Rx): push `all` → every Rx head shows the source"]
    assert "p99 180 ms" in push and "999/999 Rx" in push
    assert "1.5 s after the server answers" in got[
        "Lab (lab-250, 250 Rx): server SIGKILL + restart → in sync"]
    assert len(table(report.render(doc))) == len(report.FIGURES)  # no goal row added

    small.update(status="failed", result={"error": "LabError: did not come up"}, exit=1,
                 error="LabError: did not come up")
    got = extras(doc)
    assert got["Lab (lab-250): push and restart"] == "failed: LabError: did not come up"


def test_the_report_names_the_commit_measured() -> None:
    doc = sample_results()
    doc["machine"].update(commit="abc1234", changed_files=2)
    assert "- Code: commit abc1234 with 2 tracked file(s) changed" in report.render(doc)
    here = report.machine()
    assert here["commit"] and isinstance(here["changed_files"], int)


def test_the_lab_push_row_names_each_push() -> None:
    """Several pushes are pooled into one p50/p99; the note gives each push's own p99, so a
    slow first push is not hidden by the others."""
    doc = sample_results()
    push = doc["benchmarks"]["lab"]["result"]["push"]
    push["per_push"] = [{"source": "0001:1", "p50_ms": 200.0, "p99_ms": 480.0},
                        {"source": "0002:1", "p50_ms": 150.0, "p99_ms": 230.0}]
    row = table(report.render(doc))["Lab: push `all` → every Rx head shows the source"]
    assert "2 pushes (p99 each: 480, 230 ms)" in row[4]
    del push["per_push"]   # one push (older results): no per-push part
    row = table(report.render(doc))["Lab: push `all` → every Rx head shows the source"]
    assert "pushes" not in row[4]


def test_the_report_says_other_jobs_ran_only_when_the_load_said_so() -> None:
    doc = sample_results()
    doc["machine"].update(cores=2, loadavg_before=[0.3, 0.5, 0.9])
    quiet = report.render(doc)
    assert "**Shared machine**" in quiet and "other jobs ran" not in quiet
    doc["machine"]["loadavg_before"] = [3.7, 2.0, 1.0]
    assert "other jobs ran during it" in report.render(doc)
