"""The performance report: the benchmarks' JSON → one results file → docs/PERFORMANCE.md.

    python bench/report.py machine                            # this machine now, as JSON
    python bench/report.py collect RAW_DIR -o RESULTS.json    # gather one run of bench/run
    python bench/report.py render RESULTS.json -o docs/PERFORMANCE.md

``collect`` reads what ``bench/run`` left in RAW_DIR: ``machine-before.json``,
``machine-after.json`` and per benchmark NAME ``NAME.meta`` (command, exit status,
seconds, timeout), ``NAME.json`` (its stdout) and ``NAME.log`` (its stderr). A benchmark
that crashed, timed out or printed no JSON is recorded as such, with its error.

``render`` turns a results file into the report: one row per figure with its goal, the
measured p50/p99 (or value) and whether the goal is met. A hand-written block between
``<!-- notes -->`` and ``<!-- /notes -->`` in the existing output file is kept.
Malformed input is refused with a message naming the problem (exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]
SCHEMA = 1
NOTES_START, NOTES_END = "<!-- notes -->", "<!-- /notes -->"
MET, NOT_MET, NO_GOAL, NOT_MEASURED = "met", "**not met**", "—", "not measured"


class ReportError(ValueError):
    """Input the report cannot use; the message says which file/key and why."""


class Missing(LookupError):
    """A figure's key is not in a benchmark's output."""


# --- the machine -------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _code() -> Json:
    """The commit measured and how many tracked files differed from it (None: no git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True, timeout=10,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "changed_files": None}
    return {"commit": head, "changed_files": len(dirty)}


def machine() -> Json:
    """What the report says about the machine (and the code measured), now."""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": _cpu_model(),
            "cores": os.cpu_count(), "ram_gib": _ram_gib(),
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg": [round(x, 2) for x in os.getloadavg()], **_code()}


# --- collect -----------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ReportError(f"{path} is not JSON: {exc}") from None


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])[-800:]


def collect_one(raw: Path, name: str) -> Json:
    """One benchmark's run: status ok / failed / timed out, its error, its JSON."""
    meta = _read_json(raw / f"{name}.meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("exit"), int):
        raise ReportError(f"{raw / f'{name}.meta'}: expected an object with an integer 'exit'")
    entry: Json = {"command": meta.get("command", ""), "exit": meta["exit"],
                   "seconds": meta.get("seconds"), "timeout_s": meta.get("timeout_s"),
                   "status": "ok", "error": None, "result": None}
    out = raw / f"{name}.json"
    text = out.read_text(encoding="utf-8", errors="replace").strip() if out.exists() else ""
    try:
        # A benchmark may print progress before its JSON: take the outermost object.
        entry["result"] = json.loads(text[text.index("{"):]) if "{" in text else None
    except ValueError as exc:
        entry["error"] = f"its output is not JSON ({exc})"
    if entry["result"] is not None and not isinstance(entry["result"], dict):
        entry["result"], entry["error"] = None, "its output is JSON but not an object"
    if meta["exit"] in (124, 137):  # GNU timeout: 124 after the signal, 137 after KILL
        entry["status"] = "timed out"
        entry["error"] = f"timed out after {meta.get('timeout_s')} s"
    elif meta["exit"] != 0:
        entry["status"] = "failed"
        inner = (entry["result"] or {}).get("error")
        entry["error"] = str(inner) if inner else (
            f"exit status {meta['exit']}: " + (_tail(raw / f"{name}.log") or "no output"))
    elif entry["result"] is None:
        entry["status"] = "failed"
        entry["error"] = entry["error"] or "it printed no JSON"
    return entry


def collect(raw: Path) -> Json:
    if not raw.is_dir():
        raise ReportError(f"{raw} is not a directory")
    before = _read_json(raw / "machine-before.json")
    after = _read_json(raw / "machine-after.json") if (raw / "machine-after.json").exists() \
        else {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        raise ReportError(f"{raw}: the machine files must hold JSON objects")
    names = sorted(p.stem for p in raw.glob("*.meta"))
    mach = {k: v for k, v in before.items() if k != "loadavg"}
    mach["loadavg_before"] = before.get("loadavg")
    mach["loadavg_after"] = after.get("loadavg")
    mach["date_end"] = after.get("date")
    return {"schema": SCHEMA, "machine": mach,
            "benchmarks": {name: collect_one(raw, name) for name in names}}


# --- validation --------------------------------------------------------------------------

def validate(doc: Any, source: str = "results") -> Json:
    """The results document, checked; ReportError naming the first problem."""
    if not isinstance(doc, dict):
        raise ReportError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA:
        raise ReportError(f"{source}: 'schema' must be {SCHEMA}, got {doc.get('schema')!r}")
    if not isinstance(doc.get("machine"), dict):
        raise ReportError(f"{source}: 'machine' must be an object")
    benches = doc.get("benchmarks")
    if not isinstance(benches, dict):
        raise ReportError(f"{source}: 'benchmarks' must be an object (name → run)")
    for name, run in benches.items():
        where = f"{source}: benchmarks.{name}"
        if not isinstance(run, dict):
            raise ReportError(f"{where} must be an object")
        if run.get("status") not in ("ok", "failed", "timed out"):
            raise ReportError(f"{where}.status must be ok, failed or timed out, "
                              f"got {run.get('status')!r}")
        if run.get("result") is not None and not isinstance(run["result"], dict):
            raise ReportError(f"{where}.result must be an object or null")
        if run["status"] == "ok" and run.get("result") is None:
            raise ReportError(f"{where}: status ok but no result")
    return doc


def load(path: Path) -> Json:
    return validate(_read_json(path), str(path))


# --- figures -----------------------------------------------------------------------------

def get(result: Json, dotted: str) -> Any:
    """`result["a"]["b"]` for "a.b"; Missing if absent; numbers must be finite numbers."""
    value: Any = result
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise Missing(dotted)
        value = value[key]
    return value


def num(result: Json, dotted: str) -> float:
    value = get(result, dotted)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Missing(f"{dotted} (not a number: {value!r})")
    return float(value)


def fmt(x: float, unit: str = "") -> str:
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return f"{text} {unit}".strip()


@dataclass(frozen=True)
class Row:
    """One figure as measured: p50/p99 or a value, the verdict, a note."""

    p50: str = ""
    p99: str = ""
    value: str = ""
    verdict: str = NO_GOAL
    note: str = ""


@dataclass(frozen=True)
class Figure:
    label: str
    goal: str
    bench: str
    measure: Callable[[Json], Row]


def verdict(ok: bool) -> str:
    return MET if ok else NOT_MET


def _codec(r: Json) -> Row:
    rate = num(r, "codec_frames_per_s")
    return Row(value=f"{fmt(rate)} frames/s", verdict=verdict(rate >= 50_000),
               note=f"CPU time: {fmt(num(r, 'codec_frames_per_cpu_s'))} frames/s; "
                    f"{int(num(r, 'frames_per_run')):,} frames × {int(num(r, 'runs'))} runs")


def _link(kind: str) -> Callable[[Json], Row]:
    def measure(r: Json) -> Row:
        return Row(p50=fmt(num(r, f"{kind}.p50_ms"), "ms"), p99=fmt(num(r, f"{kind}.p99_ms"), "ms"),
                   note=f"{int(num(r, f'{kind}.round_trips'))} round trips, "
                        f"{int(num(r, f'{kind}.failures'))} failures")
    return measure


def _connect(r: Json) -> Row:
    p99 = num(r, "connect.p99_ms")
    results = get(r, "connect.results")
    return Row(p50=fmt(num(r, "connect.p50_ms"), "ms"), p99=fmt(p99, "ms"),
               verdict=verdict(p99 < 10),
               note=f"{int(num(r, 'connect.requests'))} requests: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(results.items()))
                    + f"; server CPU {fmt(num(r, 'connect.server_cpu_ms_per_request'), 'ms')}"
                      "/request")


def _push_release(r: Json) -> Row:
    p99 = num(r, "push_all.release_since_request_p99_ms")
    watches, released = int(num(r, "push_all.watches")), int(num(r, "push_all.released"))
    errors = int(num(r, "push_all.errors"))
    ok = p99 < 100 and errors == 0 and released == watches
    return Row(p50=fmt(num(r, "push_all.release_since_request_p50_ms"), "ms"), p99=fmt(p99, "ms"),
               verdict=verdict(ok),
               note=f"from the push request; {released}/{watches} watches released, "
                    f"{errors} errors; "
                    f"push answered in {fmt(num(r, 'push_all.push_request_ms'), 'ms')}")


def _soak(r: Json) -> Row:
    errors = int(num(r, "soak.errors"))
    watches, ops = int(num(r, "soak.watches")), int(num(r, "soak.operators"))
    logged = int(num(r, "soak.operators_logged_in"))
    peak = fmt(num(r, "soak.server_rss_mib_peak"))
    return Row(value=f"{errors} errors; server RSS peak {peak} MiB",
               verdict=verdict(errors == 0 and logged == ops),
               note=f"{watches} watches, {logged}/{ops} operators logged in, "
                    f"{int(num(r, 'soak.switches'))} switches "
                    f"(p99 {fmt(num(r, 'soak.connect_under_load_p99_ms'), 'ms')}), "
                    f"{int(num(r, 'soak.watch_returns'))} watch returns "
                    f"in {fmt(num(r, 'soak.seconds'))} s")


def _p(path: str, goal: float, what: str = "") -> Callable[[Json], Row]:
    """p50/p99 under `path` (keys p50_ms/p99_ms or p50/p99), goal p99 < `goal` ms."""
    def measure(r: Json) -> Row:
        node = get(r, path)
        suffix = "_ms" if isinstance(node, dict) and "p99_ms" in node else ""
        p99 = num(r, f"{path}.p99{suffix}")
        n = node.get("n") if isinstance(node, dict) else None
        return Row(p50=fmt(num(r, f"{path}.p50{suffix}"), "ms"), p99=fmt(p99, "ms"),
                   verdict=verdict(p99 < goal),
                   note=(f"{n} samples" if n else "") + (f"; {what}" if what else ""))
    return measure


def _rss(path: str, peak: str, what: str) -> Callable[[Json], Row]:
    def measure(r: Json) -> Row:
        rss, high = num(r, path), num(r, peak)
        return Row(value=f"{fmt(rss)} MB (peak {fmt(high)} MB)", verdict=verdict(high < 80),
                   note=what)
    return measure


def _per_push(r: Json) -> str:
    """Each push's own p99 (the first on a room that never switched), when there are several."""
    runs = (r.get("push") or {}).get("per_push")
    if not isinstance(runs, list) or len(runs) < 2:
        return ""
    p99s = ", ".join(fmt(float(run["p99_ms"])) for run in runs
                     if isinstance(run, dict) and isinstance(run.get("p99_ms"), int | float))
    return f"{len(runs)} pushes (p99 each: {p99s} ms); "


def _lab_push(r: Json) -> Row:
    p99 = num(r, "push.arrival_ms.p99_ms")
    targets, missing = int(num(r, "push.targets")), int(num(r, "push.missing"))
    return Row(p50=fmt(num(r, "push.arrival_ms.p50_ms"), "ms"), p99=fmt(p99, "ms"),
               verdict=verdict(p99 < 250 and missing == 0),
               note=f"{_per_push(r)}{targets - missing}/{targets} Rx arrivals; last "
                    f"{fmt(num(r, 'push.last_ms'), 'ms')}; "
                    f"poll of the simulator p50 {fmt(num(r, 'push.poll_ms.p50_ms'), 'ms')}; "
                    f"{int(num(r, 'sizes.tx'))} Tx, {int(num(r, 'sizes.rx'))} Rx")


def _lab_restart(r: Json) -> Row:
    after_up = get(r, "restart.in_sync_after_up_s")
    changed = int(num(r, "restart.screens_changed_count")) + len(
        get(r, "restart.screens_changed_after"))
    start_s = fmt(num(r, "restart.server_start_s"), "s")
    if after_up is None:
        return Row(value="not in sync", verdict=NOT_MET,
                   note=f"not all controllers back within the bound; server start {start_s}")
    secs = num(r, "restart.in_sync_after_up_s")
    each = fmt(num(r, "restart.back_after_up_ms.p50_ms"), "ms")
    return Row(value=f"{fmt(secs, 's')} after the server answers", verdict=verdict(
        secs < 2 and changed == 0),
        note=f"{fmt(num(r, 'restart.in_sync_after_kill_s'), 's')} after the kill (server start "
             f"{start_s}); per controller p50 {each}; {changed} screens changed; "
             f"{int(num(r, 'restart.converged_after'))}/{int(num(r, 'restart.controllers'))} "
             "converged after")


FIGURES: tuple[Figure, ...] = (
    Figure("Serial codec throughput (encode + decode)", "≥ 50,000 frames/s", "codec", _codec),
    Figure("Link round trip over a pty", "—", "link", _link("pty")),
    Figure("Link round trip over socket://", "—", "link", _link("socket")),
    Figure("Server connect decision over HTTP", "p99 < 10 ms", "server", _connect),
    Figure("Push `all` to every Rx → watches released", "p99 < 100 ms", "server", _push_release),
    Figure("Every device watching + operators switching (soak)", "no errors", "server", _soak),
    Figure("Chord → OSD frame drawn (1920×1080)", "p99 < 16 ms", "osd",
           _p("chord_to_frame_1080p", 16, "wall clock")),
    Figure("Enter on F1 → `SwitchHead` written", "p99 < 20 ms", "rx",
           _p("switch_latency_ms.enter_to_switchhead", 20, "real kvm-server on loopback")),
    Figure("Controller RSS with pygame (one `kvm-rx`)", "< 80 MB", "rx",
           _rss("one_process.after_render.vmrss_mb", "one_process.after_render.vmhwm_mb",
                "after rendering the overlay (pygame + CJK font); verdict on the peak")),
    Figure("RSS of pygame + one renderer (bare process)", "< 80 MB", "osd",
           _rss("process.rss_mb", "process.peak_rss_mb", "verdict on the peak")),
    Figure("Key forwarding added latency (OSD closed)", "p99 < 1 ms", "osd",
           _p("forward_key_closed", 1, "chord detector + gates per key event")),
    Figure("Lab: push `all` → every Rx head shows the source", "p99 < 250 ms", "lab", _lab_push),
    Figure("Lab: server SIGKILL + restart → controllers in sync", "< 2 s", "lab", _lab_restart),
)


def _extras(benches: Json) -> list[tuple[str, str]]:
    """Other figures without a goal, when present."""
    out: list[tuple[str, str]] = []

    def add(label: str, bench: str, fn: Callable[[Json], str]) -> None:
        run = benches.get(bench)
        if not run or run.get("result") is None:
            return
        with contextlib.suppress(Missing):
            out.append((label, fn(run["result"])))

    def lab_rss(r: Json) -> str:
        parts = []
        for name, mem in sorted(get(r, "rss").items()):
            if isinstance(mem, dict) and "vmrss_mb" in mem:
                parts.append(f"{name} {fmt(mem['vmrss_mb'])} MB (peak {fmt(mem['vmhwm_mb'])}, "
                             f"{mem.get('threads')} threads)")
        return "; ".join(parts)

    def lab_cpu(r: Json) -> str:
        cpu = get(r, "idle_cpu")
        return ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items()) if k != "total_cores") \
            + f"; total {num(r, 'idle_cpu.total_cores'):.2f} cores"

    for bench in sorted(b for b in benches if b.startswith("lab")):
        run = benches[bench]
        res = run.get("result") or {}
        sizes = res.get("sizes")
        where = (f"Lab ({bench}, {sizes['rx']} Rx)" if isinstance(sizes, dict) and "rx" in sizes
                 else f"Lab ({bench})")
        if bench != "lab":  # the goal rows show these for the goal-size lab
            if run["status"] != "ok":
                out.append((f"{where}: push and restart",
                            f"{run['status']}: {str(run.get('error'))[:300]}"))
                continue
            add(f"{where}: push `all` → every Rx head shows the source", bench, lambda r: (
                f"p50 {fmt(num(r, 'push.arrival_ms.p50_ms'), 'ms')}, p99 "
                f"{fmt(num(r, 'push.arrival_ms.p99_ms'), 'ms')}, last "
                f"{fmt(num(r, 'push.last_ms'), 'ms')} "
                f"({_per_push(r)}{int(num(r, 'push.targets') - num(r, 'push.missing'))}/"
                f"{int(num(r, 'push.targets'))} Rx arrivals)"))
            add(f"{where}: server SIGKILL + restart → in sync", bench, lambda r: (
                _lab_restart(r).value + "; " + _lab_restart(r).note))
        add(f"{where}: start (import, processes, all in sync)", bench,
            lambda r: f"{fmt(num(r, 'lab_start_s'), 's')}, {int(num(r, 'hosts'))} controller "
                      f"host(s), {int(num(r, 'link_downs_logged'))} firmware link-downs logged")
        add(f"{where}: RSS after the push", bench, lab_rss)
        add(f"{where}: CPU while idle (share of one core)", bench, lab_cpu)

    add("`kvm-rx --many` host", "rx", lambda r: (
        f"{int(num(r, 'many_process.controllers'))} controllers: "
        f"{fmt(num(r, 'many_process.vmrss_mb'))} MB, "
        f"{fmt(num(r, 'many_process.rss_per_controller_kb'))} KB and "
        f"{num(r, 'many_process.threads_per_controller'):g} threads per controller, "
        f"all adopted in {fmt(num(r, 'many_process.all_adopted_s'), 's')}"))
    add("Enter → SwitchHead, server share", "rx", lambda r: (
        "POST sent → watch answer p50 "
        f"{fmt(num(r, 'switch_latency_ms.server_post_to_watch_answer.p50'), 'ms')}, p99 "
        f"{fmt(num(r, 'switch_latency_ms.server_post_to_watch_answer.p99'), 'ms')}"))
    add("OSD menu on a 1920×1080 overlay", "rx", lambda r: (
        f"p50 {fmt(num(r, 'render_ms.menu_1920x1080_ms.p50'), 'ms')}, p99 "
        f"{fmt(num(r, 'render_ms.menu_1920x1080_ms.p99'), 'ms')}; PNG encode p50 "
        f"{fmt(num(r, 'render_ms.png_encode_1920x1080_ms.p50'), 'ms')}"))
    add("Chord → frame, CPU time only", "osd", lambda r: (
        f"p50 {fmt(num(r, 'chord_to_frame_1080p_cpu_time.p50_ms'), 'ms')}, p99 "
        f"{fmt(num(r, 'chord_to_frame_1080p_cpu_time.p99_ms'), 'ms')}"))
    add("Server RSS", "server", lambda r: (
        f"idle {fmt(num(r, 'rss_mib_idle'))} MiB, end {fmt(num(r, 'rss_mib_end'))} MiB"))
    add("Snapshot build (in-process)", "server", lambda r: (
        f"cold {fmt(num(r, 'snapshot.cold_build_ms'), 'ms')}, warm p50 "
        f"{fmt(num(r, 'snapshot.warm_build_p50_ms'), 'ms')}, p99 "
        f"{fmt(num(r, 'snapshot.warm_build_p99_ms'), 'ms')}"))
    add("fsync of a 4 KiB write (server's disk)", "server", lambda r: (
        f"p50 {fmt(num(r, 'machine.fsync_ms.p50'), 'ms')}, p99 "
        f"{fmt(num(r, 'machine.fsync_ms.p99'), 'ms')}"))
    return out


# --- render ------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def figure_rows(doc: Json) -> list[tuple[Figure, Row]]:
    rows = []
    for fig in FIGURES:
        run = doc["benchmarks"].get(fig.bench)
        if run is None:
            rows.append((fig, Row(value="not run", verdict=NOT_MEASURED)))
        elif run["status"] != "ok":
            err = str(run.get("error") or run["status"])[:300]
            rows.append((fig, Row(value=f"{run['status']}: {err}", verdict=NOT_MEASURED)))
        else:
            try:
                rows.append((fig, fig.measure(run["result"])))
            except Missing as exc:
                rows.append((fig, Row(value=f"no `{exc.args[0]}` in the output of {fig.bench}",
                                      verdict=NOT_MEASURED)))
    return rows


def _load_text(mach: Json) -> str:
    def la(v: Any) -> str:
        return " / ".join(f"{x:.2f}" for x in v) if isinstance(v, list) and v else "?"
    return f"{la(mach.get('loadavg_before'))} before, {la(mach.get('loadavg_after'))} after"


def _shared_text(mach: Json) -> str:
    """What the reader must know about the machine: a shared VM, and whether the load average
    before the run already said that other jobs were running."""
    text = ("- **Shared machine**: a VM on a shared host; its speed "
            "varies from run to run, so compare figures within one run. The numbers are "
            "reported as measured, not tuned or repeated until they look good.")
    before, cores = mach.get("loadavg_before"), mach.get("cores")
    if isinstance(before, list) and before and isinstance(cores, int) and before[0] > cores:
        text += (" The load average before the run was above the core count: other jobs ran "
                 "during it, and wall-clock p99s mostly measure waiting for a CPU.")
    return text


def render(doc: Json, notes: str = "", results_path: str = "bench/results/latest.json") -> str:
    """The Markdown report of a validated results document."""
    mach = doc["machine"]
    rows = figure_rows(doc)
    raw = (f"[`{results_path}`](../{results_path})" if not results_path.startswith(("/", ".."))
           else f"`{results_path}`")
    lines = [
        "# Performance",
        "",
        f"Generated by `bench/run` → `bench/report.py` on {mach.get('date', '?')}; raw results: "
        f"{raw}. Re-run with `bench/run` (one command).",
        "",
        "## Machine",
        "",
        f"- CPU: {mach.get('cpu', '?')}, {mach.get('cores', '?')} cores; "
        f"RAM {mach.get('ram_gib', '?')} GiB; Python {mach.get('python', '?')}; "
        f"kernel {mach.get('kernel', '?')}",
        f"- Load average (1 / 5 / 15 min): {_load_text(mach)}",
        f"- Run: {mach.get('date', '?')} → {mach.get('date_end') or '?'}",
        *([f"- Code: commit {mach['commit']}"
           + (f" with {mach['changed_files']} tracked file(s) changed in the working tree"
              if mach.get("changed_files") else "")] if mach.get("commit") else []),
        _shared_text(mach),
        "",
        "## Goals",
        "",
        "| figure | goal | p50 | p99 / value | verdict | notes |",
        "|---|---|---|---|---|---|",
    ]
    for fig, row in rows:
        value = row.p99 or row.value
        lines.append("| " + " | ".join(_cell(c) for c in (
            fig.label, fig.goal, row.p50 or "", value, row.verdict, row.note)) + " |")
    missed = [fig.label for fig, row in rows if row.verdict == NOT_MET]
    unmeasured = [fig.label for fig, row in rows if row.verdict == NOT_MEASURED]
    lines += ["", f"**Not met ({len(missed)}):** " + ("; ".join(missed) if missed else "none")]
    if unmeasured:
        lines.append(f"\n**Not measured ({len(unmeasured)}):** " + "; ".join(unmeasured))
    extras = _extras(doc["benchmarks"])
    if extras:
        lines += ["", "## Other figures (no goal)", "", "| figure | measured |", "|---|---|"]
        lines += [f"| {_cell(a)} | {_cell(b)} |" for a, b in extras]
    lines += ["", "## Benchmark runs", "", "| benchmark | command | status | time |",
              "|---|---|---|---|"]
    for name, run in sorted(doc["benchmarks"].items()):
        secs = run.get("seconds")
        status = run["status"] + (f": {run['error']}" if run.get("error") else "")
        lines.append(f"| {name} | `{_cell(str(run.get('command', '')))}` | "
                     f"{_cell(status[:300])} | {secs if secs is not None else '?'} s |")
    lines += ["", NOTES_START, notes.strip("\n") if notes.strip() else
              "(hand-written notes go here; bench/report.py keeps this block)", NOTES_END, ""]
    return "\n".join(lines)


def existing_notes(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    found = re.search(re.escape(NOTES_START) + r"\n?(.*?)" + re.escape(NOTES_END), text, re.S)
    return found.group(1) if found else ""


# --- CLI ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("machine", help="print this machine (CPU, cores, RAM, load) as JSON")
    c = sub.add_parser("collect", help="gather a bench/run raw dir into one results file")
    c.add_argument("raw", type=Path)
    c.add_argument("-o", "--out", type=Path, required=True)
    r = sub.add_parser("render", help="results file → Markdown report")
    r.add_argument("results", type=Path)
    r.add_argument("-o", "--out", type=Path, help="write here (default: stdout)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "machine":
            print(json.dumps(machine()))
        elif args.cmd == "collect":
            doc = validate(collect(args.raw), str(args.raw))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                                encoding="utf-8")
        else:
            doc = load(args.results)
            notes = existing_notes(args.out) if args.out else ""
            shown = os.path.relpath(args.results.resolve(), Path(__file__).resolve().parents[1])
            if shown.startswith(".."):
                shown = str(args.results.resolve())
            text = render(doc, notes, shown)
            if args.out:
                args.out.write_text(text, encoding="utf-8")
            else:
                print(text)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
