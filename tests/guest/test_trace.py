"""kx trace: events in the workload's own order, JSON lines, cleanup, Ctrl-C.

Ground truth: the KX-SEQ line the workload prints (the order of its raw
syscalls in every round) and its pid; gdb's own breakpoint list afterwards.
"""
import json
import re

from .test_break import console_since
from .test_tasks import workload_pid


def kx_seq(kx):
    seq = re.findall(r"KX-SEQ ([\d,]+)", kx.guest.serial())
    assert seq, "the workload never printed KX-SEQ"
    return [int(n) for n in seq[-1].split(",")]


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def run_trace(kx, command):
    """Run a trace to its end.  Our MI driver runs gdb with mi-async on, where
    `kx trace` returns at once like `continue`, and the events and the
    summary arrive on the console until the target stops."""
    mark = len(kx.gdb.transcript)
    out = kx.cmd(command)
    if "summary" not in out and "kx trace:" not in out:
        kx.running = True
        kx.wait_stopped(120)
        kx.cmd("echo")  # let gdb finish writing what the stop produced
        out += console_since(kx, mark)
    return out


def test_trace_count_json_follows_the_workload_order(kx):
    pid = workload_pid(kx)
    # getpid and write also occur in the workload's heartbeat printing, so
    # the test follows the calls that happen exactly once per round.
    cycle = [n for n in kx_seq(kx) if n not in (39, 1)]
    n = 10
    lines = json_lines(run_trace(kx, f"kx trace {' '.join(map(str, cycle))} --pid {pid} --count {n} --json"))
    events, summary = lines[:-1], lines[-1]["summary"]
    assert len(events) == n and summary["events"] == n
    nrs = [e["nr"] for e in events]
    start = cycle.index(nrs[0])
    assert nrs == [cycle[(start + i) % len(cycle)] for i in range(n)]
    assert all(e["pid"] == pid and e["comm"] == "kxwork" for e in events)
    opens = [e for e in events if e["nr"] == 257]
    assert opens and all(e["args"][1]["decoded"] == '"/etc/kx-target"' for e in opens)
    assert all(e["ret"] == -38 for e in events if e["nr"] == 1000)
    assert "No breakpoints" in kx.cmd("info breakpoints")


def test_trace_return_values_and_out_file(kx, tmp_path):
    out = tmp_path / "trace.jsonl"
    text = run_trace(kx, f"kx trace openat close --return --count 4 --out {out}")
    assert "kx trace: 4 events" in text
    events = json_lines(out.read_text())
    assert len(events) == 4
    fd = int(re.findall(r"fd=(\d+)", kx.guest.serial())[-1])
    for e in events:
        if e["name"] == "openat":
            assert e["ret"] == fd
        else:
            assert e["name"] == "close" and e["args"][0]["value"] == fd and e["ret"] == 0
    assert "No breakpoints" in kx.cmd("info breakpoints")
    assert kx.heartbeat_continues()


def test_bad_input(kx):
    for command, needle in [("kx trace --count 0", "--count must be > 0"),
                            ("kx trace nosuch", "unknown syscall 'nosuch'"),
                            ("kx trace --out /nonexistent/dir/x", "cannot write")]:
        r = kx.gdb.cmd_full(command)
        assert r["error"] and needle in r["error"], (command, r)
        assert needle in kx.json(command)["error"]
    assert "No breakpoints" in kx.cmd("info breakpoints")
