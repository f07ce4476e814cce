"""kx break: filtered stops at the entry stubs, returns, listing and deletion.

Ground truth: System.map (where the CPU stopped), the workload's own
syscalls and the fd it prints for its openat (`fd=` on the heartbeat line),
and gdb's own breakpoint list.
"""
import re

from kxlab.gdbrun import _c_string

from .test_event import serial_field
from .test_tasks import HELLO32_LEN, workload_pid


def console_since(kx, mark):
    """What gdb printed on its console since transcript position `mark`."""
    return "".join(_c_string(l[2:-1]) for l in kx.gdb.transcript[mark:] if l.startswith("~"))


def test_break_openat_with_return(kx):
    out = kx.json("kx break openat --comm kxwork --return")
    assert {l["kind"] for l in out["locations"]} == {"entry", "return"}
    entry = next(l for l in out["locations"] if l["kind"] == "entry")
    assert entry["address"] == kx.symbols["entry_SYSCALL_64"]
    mark = len(kx.gdb.transcript)
    kx.cont()
    kx.wait_stopped()
    assert kx.reg("pc") == kx.symbols["entry_SYSCALL_64"] and kx.reg("rax") == 257
    printed = console_since(kx, mark)
    assert "kx break #" in printed and '"/etc/kx-target"' in printed and "openat" in printed
    ev = kx.json("kx event")
    assert ev["pid"] == workload_pid(kx) and ev["name"] == "openat"

    mark = len(kx.gdb.transcript)
    kx.cont()
    kx.wait_stopped()
    # The return stop: just after entry_SYSCALL_64's call into do_syscall_64,
    # in the same task (on whichever vCPU the scheduler left it), with the
    # fd the workload will print.
    assert kx.json("kx task")["pid"] == workload_pid(kx)
    ret_loc = next(l for l in kx.json("kx break")["breakpoints"][0]["locations"] if l["kind"] == "return")
    assert kx.reg("pc") == ret_loc["address"], console_since(kx, mark)
    assert kx.symbols["entry_SYSCALL_64"] < ret_loc["address"] < kx.symbols["entry_SYSCALL_64"] + 0x200
    regs = kx.json("kx regs")
    fd = regs["regs"]["ax"]
    printed = console_since(kx, mark)
    assert re.search(rf'openat\(AT_FDCWD, "/etc/kx-target", O_RDONLY.*\) = {fd}\b', printed), printed
    kx.cont()
    kx.wait_stopped()
    kx.cmd("kx break delete")
    assert int(serial_field(kx, "fd")) == fd


def test_an_entry_reported_again_is_not_a_second_call(kx):
    """QEMU sometimes answers the single-step gdb takes off a breakpoint
    without executing it (two vCPUs hit at once, and the second one's debug
    request stops the next resume), so gdb reports the same entry again.
    With --return kx knows the task's call is still in flight: the entry's
    stop() asked a second time, in the same state, neither stops nor counts,
    and the return still comes."""
    kx.cmd("kx break openat --comm kxwork --return")
    kx.cont()
    kx.wait_stopped()
    assert kx.reg("pc") == kx.symbols["entry_SYSCALL_64"] and kx.reg("rax") == 257
    again = kx.cmd("python print([b.stop() for b in gdb.breakpoints() if getattr(b, 'kind', ('',))[0] == 'entry'"
                   " and int(b.location.lstrip('*'), 16) == int(gdb.parse_and_eval('$pc')) & (2**64 - 1)])")
    assert again.strip().endswith("[False]"), again
    listed = kx.json("kx break")["breakpoints"][0]
    assert listed["hits"] == 1
    kx.cont()
    kx.wait_stopped()
    ret_loc = next(l for l in listed["locations"] if l["kind"] == "return")
    assert kx.reg("pc") == ret_loc["address"] and kx.json("kx task")["pid"] == workload_pid(kx)
    kx.cmd("kx break delete")


def test_non_matching_syscalls_never_stop(kx):
    kx.cmd("kx break openat getpid --pid 99999")
    start = len(kx.guest.serial())
    kx.cont()
    kx.guest.wait_for(r"KX-HEARTBEAT", timeout=30, after=start)  # the workload ran a full round
    rec = kx.gdb.interrupt()
    kx.running = False
    assert "breakpoint-hit" not in rec
    listed = kx.json("kx break")["breakpoints"]
    assert listed[0]["hits"] == 0


def test_break_int80_write(kx):
    kx.cmd("kx break write --abi 32 --comm hello32")
    kx.cont()
    kx.wait_stopped()
    assert kx.reg("pc") in (kx.symbols.get("asm_int80_emulation"), kx.symbols.get("entry_INT80_compat"))
    ev = kx.json("kx event")
    assert (ev["abi"], ev["nr"], ev["name"], ev["comm"]) == ("32", 4, "write", "hello32")
    assert ev["args"][2]["value"] == HELLO32_LEN


def test_abi_words_are_the_same_for_every_command(kx):
    """`--abi ia32` is `--abi 32` for kx break as for kx syscalls: the
    breakpoints sit on the kernel's compat stubs (System.map)."""
    out = kx.json("kx break getpid --abi ia32")
    stubs = {l["stub"]: l["address"] for l in out["locations"]}
    assert stubs and all(kx.symbols[name] == address for name, address in stubs.items())
    assert "entry_SYSCALL_64" not in stubs and "entry_SYSENTER_compat" in stubs
    assert out["filter"].endswith("abi 32")
    kx.cmd("kx break delete")
    assert kx.json("kx syscalls getpid --abi ia32")["abi"] == kx.json("kx syscalls getpid --abi 32")["abi"]


def test_list_and_delete(kx):
    kx.cmd("kx break openat")
    kx.cmd("kx break getpid --abi all")
    rows = kx.json("kx break")["breakpoints"]
    assert [r["number"] for r in rows] == sorted(r["number"] for r in rows) and len(rows) == 2
    n_gdb = len(re.findall(r"^\d+\s+breakpoint", kx.cmd("info breakpoints"), re.M))
    assert n_gdb == sum(len(r["locations"]) for r in rows)
    kx.cmd(f"kx break delete {rows[0]['number']}")
    assert [r["number"] for r in kx.json("kx break")["breakpoints"]] == [rows[1]["number"]]
    kx.cmd("kx break delete")
    assert kx.json("kx break")["breakpoints"] == []
    assert "No breakpoints" in kx.cmd("info breakpoints")
    assert kx.heartbeat_continues()


def test_bad_input(kx):
    for command, needle in [("kx break nosuchcall", "unknown syscall 'nosuchcall'"),
                            ("kx break openat --abi 16", "--abi must be 64, 32 or all"),
                            ("kx break delete 99", "no kx breakpoint #99"),
                            ("kx break -5", "syscall numbers are >= 0"),
                            ("kx break openat --pid -1", "--pid must be >= 0")]:
        r = kx.gdb.cmd_full(command)
        assert r["error"] and needle in r["error"], (command, r)
        assert "Traceback" not in r["error"] + r["output"] + r["log"]
        assert needle in kx.json(command)["error"]
    assert "No breakpoints" in kx.cmd("info breakpoints")
