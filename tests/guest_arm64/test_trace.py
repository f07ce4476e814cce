"""arm64: kx trace on the loop engine (A64 breakpoints, step-over by the
arm64 plans) and kx break, against the workload's own order of syscalls
(KX-SEQ), its printed fd, the hellos' registers and ELF symbols, and gdb's
own breakpoint list and QEMU's monitor afterwards (nothing left behind)."""
import json
import re

import pytest

from tests.guest.test_break import console_since
from tests.guest.test_trace import run_trace

from .test_entry import HELLO32_LEN, HELLO64_LEN, elf_symbols

pytestmark = pytest.mark.guest


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def test_trace_loop_follows_the_workload_order(a64):
    pid = a64.workload_pid()
    seq = [int(n) for n in re.findall(r"KX-SEQ ([\d,]+)", a64.guest.serial())[-1].split(",")]
    cycle = [n for n in seq if n not in (172, 64)]        # getpid and write also print
    lines = json_lines(run_trace(a64, f"kx trace {' '.join(map(str, cycle))} --pid {pid} --count 8 "
                                      "--engine loop --json"))
    events, summary = lines[:-1], lines[-1]["summary"]
    assert summary["engine"] == "loop" and summary["events"] == len(events) == 8
    nrs = [e["nr"] for e in events]
    start = cycle.index(nrs[0])
    assert nrs == [cycle[(start + i) % len(cycle)] for i in range(8)]
    fd = int(re.findall(r"fd=(\d+)", a64.guest.serial())[-1])
    for e in events:
        assert e["pid"] == pid and e["abi"] == "64"
        if e["name"] == "openat":
            assert e["args"][0]["decoded"] == "AT_FDCWD" and e["args"][2]["decoded"] == "O_RDONLY"
        if e["name"] == "close":
            assert e["args"][0]["value"] == fd
        if e["nr"] == 1000:
            assert e["ret"] == -38 and [a["value"] for a in e["args"]] == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66]
    assert "No breakpoints" in a64.cmd("info breakpoints")
    # The guest goes on: a breakpoint left behind would stop it with SIGTRAP.
    assert a64.heartbeat_continues()


def test_trace_compat_write_with_return(a64, arm64_binaries):
    sym = elf_symbols(arm64_binaries, "hello32")
    lines = json_lines(run_trace(a64, "kx trace write --abi 32 --comm hello32 --return --count 1 --json"))
    (e,), summary = lines[:-1], lines[-1]["summary"]
    assert (e["abi"], e["nr"], e["name"], e["comm"]) == ("32", 4, "write", "hello32")
    assert [(a["reg"], a["value"]) for a in e["args"]] == [("r0", 1), ("r1", sym["msg"]), ("r2", HELLO32_LEN)]
    assert e["ret"] == HELLO32_LEN and e["return_ip"] == sym["hello32_after_write"]
    assert e["handler"]["symbol"] == "__arm64_sys_write" and not summary["interrupted"]


def test_break_write_with_return(a64, arm64_binaries):
    out = a64.json("kx break write --comm hello64 --return")
    entry = next(l for l in out["locations"] if l["kind"] == "entry")
    assert entry["address"] == a64.symbols["el0t_64_sync"]
    mark = len(a64.gdb.transcript)
    a64.cont()
    a64.wait_stopped()
    assert a64.reg("pc") == a64.symbols["el0t_64_sync"] and a64.reg("x8") == 64
    assert (a64.reg("x0"), a64.reg("x2")) == (1, HELLO64_LEN)
    assert "kx break #" in console_since(a64, mark)
    pid = a64.json("kx task")["pid"]
    a64.cont()
    a64.wait_stopped()
    # The same task returning (a console write may sleep and wake on the other vCPU).
    assert a64.json("kx task")["pid"] == pid
    regs = a64.json("kx regs")["regs"]
    assert regs["x0"] == HELLO64_LEN                         # write's return value, in pt_regs->regs[0]
    assert regs["pc"] == elf_symbols(arm64_binaries, "hello64")["hello64_after_write"]
    a64.cmd("kx break delete")
    assert "No breakpoints" in a64.cmd("info breakpoints")
    assert a64.heartbeat_continues()
