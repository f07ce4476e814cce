"""kx trace (the loop engine) and kx break on the i386 guest: the step-over
is emulated for 32-bit code (push %ebp at the C entries, mov $imm32 on the
return path), and the events are the workload's own writes."""
import json

from tests.guest_i386.conftest import HELLO32_LEN, SYSENTER32_LEN, elf_symbols


def _trace(kx, command):
    out = kx.gdb.cmd(command + " --json")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    records = [json.loads(l) for l in lines]
    return [r for r in records if "summary" not in r], next(r["summary"] for r in records if "summary" in r)


def test_trace_loop_int80_and_returns_without_single_steps(kx):
    sym = elf_symbols("hello32")
    events, summary = _trace(kx, "kx trace write --comm hello32 --count 2 --return")
    assert summary["engine"] == "loop" and summary["events"] == 2
    assert summary["single_steps"] == 0 and summary["undecodable"] == 0
    for e in events:
        assert (e["abi"], e["nr"], e["entry"], e["comm"]) == ("32", 4, "entry_INT80_32", "hello32")
        assert [a["value"] for a in e["args"]] == [1, sym["msg"], HELLO32_LEN]
        assert e["ret"] == HELLO32_LEN and e["return_ip"] == sym["hello32_after_write"]
    assert kx.heartbeat_continues()


def test_trace_sysenter_is_one_event_per_call(kx):
    """One sysenter passes through do_SYSENTER_32 and do_fast_syscall_32:
    traced once, named after entry_SYSENTER_32."""
    sym = elf_symbols("sysenter32")
    events, summary = _trace(kx, "kx trace write --comm sysenter32 --count 2 --return")
    assert summary["events"] == 2 and summary["single_steps"] == 0
    pids = [e["pid"] for e in events]
    assert len(set(pids)) == 2                   # two runs of sysenter32, one write each
    for e in events:
        assert e["entry"] == "entry_SYSENTER_32" and e["ret"] == SYSENTER32_LEN
        assert [a["value"] for a in e["args"]] == [1, sym["msg"], SYSENTER32_LEN]


def test_break_stops_at_the_stub_with_the_call(kx):
    sym = elf_symbols("hello32")
    out = kx.cmd("kx break write --comm hello32")
    assert "entry_INT80_32" in out and "entry_SYSENTER_32" in out
    kx.cont()
    kx.wait_stopped(60)
    d = kx.json("kx event")
    assert (d["nr"], d["comm"], d["entry"]) == (4, "hello32", "entry_INT80_32")
    assert [a["value"] for a in d["args"]] == [1, sym["msg"], HELLO32_LEN]
    assert kx.gdb.eval("$pc") & 0xFFFFFFFF == kx.symbols["entry_INT80_32"]
