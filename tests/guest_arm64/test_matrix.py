"""The reliability matrix on the arm64 guest: every kx subcommand that
`help kx` lists, with its typical arguments, in text and --json, plus the
$kx_* functions and `bt`, in each of these states; after each subcommand
the guest must be exactly as it was (tests/guest_arm64/snapshot.py: every
vCPU's `info registers` from QEMU's monitor, its system registers from
the stub, the code at its pc, the kernel text's SHA-1, gdb's breakpoints,
scheduler-locking, PhyMemMode and selected thread), and nothing may print
a traceback.  The x86 matrix's runner (tests/guest/test_matrix.py) does the
work; this file says where to stop and what the monitor must show there.

States (the monitor's PC, EL and the workload's registers confirm each):
- user:            EL0, hello64's `svc #0` (x8 = 64, x2 = 23);
- vector-entry:    VBAR_EL1 + 0x400, the lower-EL AArch64 synchronous entry
                   (Arm ARM D1.10.2), before its branch to el0t_64_sync;
- el0t_64_sync:    the first instruction of the entry (live user registers);
- el0_svc:         pt_regs saved, syscallno not yet stored;
- invoke_syscall:  the number in x1, before sys_call_table[nr];
- ksys_write:      inside the handler (__arm64_sys_write -> ksys_write);
- compat-entry:    el0t_32_sync from hello32's AArch32 `svc 0` (r7 = 4);
- idle:            a vCPU halted in cpu_do_idle (QEMU's thread info: halted);
- smp-other:       the other vCPU selected while one is at el0t_64_sync.
Once per state, `kx trace --count 1` resumes the guest and must end
stopped with nothing left behind; then the guest runs on to a heartbeat
and stops only when we interrupt it.
"""
import re

import pytest

from tests import reliability as R
from tests.guest.conftest import heartbeat_without_trap
from tests.guest.test_matrix import FUNCTIONS, TYPICAL, Matrix, help_subcommands, run_state, symbol_at

from .snapshot import Arm64Snapshotter
from .test_entry import HELLO32_LEN, HELLO64_LEN, SVC64_AT_ENTRY, SVC64_IN_C, elf_symbols

pytestmark = pytest.mark.guest

X86_ONLY = ("msr", "gdt", "idt", "tss", "cr", "drgn")   # each refuses in one line on arm64
ARM64 = Matrix(
    typical={**TYPICAL, **{sub: [""] for sub in X86_ONLY},
             "pagewalk": ["sys_call_table", "$sp --cpu {other}", "0x400000 --pid 1"]},
    functions=FUNCTIONS,
    snapshot_per_subcommand=True)   # 9 states x 2 kernels: one snapshot per subcommand keeps it short

SVC_A64 = 0xD4000001    # svc #0 (Arm ARM C6.2.365)


def user_svc(binaries) -> int:
    """hello64's `svc #0`: the instruction before hello64_after_write."""
    return elf_symbols(binaries, "hello64")["hello64_after_write"] - 4


# state -> (where to stop, condition, {what the monitor must show}).  The
# kernel locations are System.map's addresses: gdb's own `*ksys_write` lies
# past the two patchable-entry NOPs (-fpatchable-function-entry, ftrace).
def where(state, symbols, binaries):
    svc = user_svc(binaries)
    at = {name: symbols[name] for name in ("el0t_64_sync", "el0_svc", "invoke_syscall", "ksys_write", "el0t_32_sync")}
    at["vector-entry"] = symbols["vectors"] + 0x400
    return {
        "user": (svc, SVC64_AT_ENTRY, {"pc": svc, "mode": "EL0t", "x8": 64}),
        "vector-entry": (at["vector-entry"], SVC64_AT_ENTRY,
                         {"pc": at["vector-entry"], "mode": "EL1h", "x8": 64, "x2": HELLO64_LEN}),
        "el0t_64_sync": (at["el0t_64_sync"], SVC64_AT_ENTRY, {"pc": at["el0t_64_sync"], "mode": "EL1h", "x8": 64}),
        "el0_svc": (at["el0_svc"], SVC64_IN_C, {"pc": at["el0_svc"], "mode": "EL1h"}),
        "invoke_syscall": (at["invoke_syscall"], f"$x1 == 64 && ((unsigned long *)$x0)[2] == {HELLO64_LEN}",
                           {"pc": at["invoke_syscall"], "mode": "EL1h", "x1": 64}),
        "ksys_write": (at["ksys_write"], f"$x0 == 1 && $x2 == {HELLO64_LEN}",
                       {"pc": at["ksys_write"], "mode": "EL1h", "x0": 1, "x2": HELLO64_LEN}),
        "compat-entry": (at["el0t_32_sync"], f"$x7 == 4 && $x2 == {HELLO32_LEN}",
                         {"pc": at["el0t_32_sync"], "mode": "EL1h", "x7": 4}),
        "smp-other": (at["el0t_64_sync"], SVC64_AT_ENTRY, {"pc": at["el0t_64_sync"], "mode": "EL1h"}),
    }[state]


STATES = ["user", "vector-entry", "el0t_64_sync", "el0_svc", "invoke_syscall", "ksys_write", "compat-entry",
          "idle", "smp-other"]


def selected_cpu(a64) -> int:
    return a64.gdb.eval("$_thread") - 1


def halted_cpus(a64) -> set:
    """The vCPUs QEMU's stub calls halted (its thread info, qThreadExtraInfo)."""
    return {int(n) - 1 for n in re.findall(r"^\*?\s+(\d+)\s+Thread \S+ \(CPU#\d+ \[halted ?\]\)",
                                           a64.cmd("info threads"), re.M)}


def reach_idle(a64) -> str:
    for _ in range(40):
        a64.cont()
        a64.gdb.cmd("python import time; time.sleep(0.1)")
        a64.ensure_stopped()
        halted = halted_cpus(a64)
        for cpu in (0, 1):
            pc = a64.monitor_registers(cpu)["pc"]
            if cpu in halted and symbol_at(a64, pc) == "cpu_do_idle":
                a64.select_cpu(cpu)
                return f"CPU {cpu} halted at cpu_do_idle+{pc - a64.symbols['cpu_do_idle']:#x}"
    raise AssertionError("no vCPU ever halted in cpu_do_idle")


def reach(a64, state, binaries) -> str:
    """Stop the guest in `state`; a description the monitor confirmed."""
    a64.ensure_stopped()
    if state == "idle":
        return reach_idle(a64)
    location, condition, expected = where(state, a64.symbols, binaries)
    for _ in range(5):
        cpu = a64.stop_at(f"{location:#x}", condition)
        mon = a64.monitor_registers(cpu)
        assert {k: mon[k] for k in expected} == expected, (state, mon)
        other = a64.monitor_registers(1 - cpu)
        if state != "smp-other" or other["pc"] != mon["pc"]:
            break
    if state == "user":
        a64.guest.hmp(f"cpu {cpu}")   # `x` reads through the monitor's current vCPU
        assert a64.guest.hmp(f"x /1wx {mon['pc']:#x}").split()[-1] == f"{SVC_A64:#010x}"
    if state == "smp-other":
        assert other["pc"] != mon["pc"], "both vCPUs at el0t_64_sync, five stops in a row"
        a64.select_cpu(1 - cpu)
        return (f"CPU {1 - cpu} selected ({symbol_at(a64, other['pc'])}, {other['mode']})"
                f" while CPU {cpu} is at el0t_64_sync")
    return f"CPU {cpu} at {symbol_at(a64, location) if state != 'user' else hex(location)} ({mon['mode']})"


@pytest.fixture(scope="module")
def snapper(arm64_lab):
    arm64_lab.ensure_stopped()
    return Arm64Snapshotter(arm64_lab)


def test_every_subcommand_is_in_the_matrix(a64):
    subs = help_subcommands(a64)
    assert {"sysregs", "vectors", "task", "regs", "event", "syscalls", "break", "trace"} <= set(subs)
    missing = [s for s in subs if s not in ARM64.typical]
    assert not missing, f"`help kx` lists {missing}: give them typical arguments in TYPICAL"


def test_the_snapshot_sees_what_it_must(a64, snapper):
    """A changed general register on the other vCPU, a kernel text byte
    written and put back only after the snapshot, a breakpoint: each shows."""
    a64.stop_at(f"{a64.symbols['el0t_64_sync']:#x}", SVC64_AT_ENTRY)
    other = 1 - selected_cpu(a64)
    before = snapper.take()
    a64.cmd(f"thread {other + 1}")
    x3 = a64.reg("x3")
    a64.cmd(f"set $x3 = {x3 ^ 1:#x}")
    changed = snapper.take()
    a64.cmd(f"set $x3 = {x3:#x}")
    a64.cmd(f"thread {2 - other}")
    assert any(k == f"cpu{other} registers" for k, v in changed.items() if before[k] != v), "x3 unseen"
    target = f"(unsigned char *){a64.symbols['ksys_write']:#x}"
    byte = a64.gdb.eval(f"*{target}")
    a64.cmd(f"set var *{target} = {byte ^ 0xff}")
    changed = snapper.take()
    a64.cmd(f"set var *{target} = {byte}")
    assert changed["kernel text sha1"] != before["kernel text sha1"]
    a64.cmd("break ksys_write")
    changed = snapper.take()
    a64.cmd("delete")
    assert changed["gdb breakpoints"] != before["gdb breakpoints"]
    assert not R.diff(before, snapper.take())


@pytest.mark.parametrize("state", STATES)
def test_state(a64, arm64_series, arm64_binaries, snapper, state):
    kernel = f"arm64-{arm64_series}"
    described = reach(a64, state, arm64_binaries)
    findings = run_state(a64, kernel, state, snapper, help_subcommands(a64), matrix=ARM64)
    problem = heartbeat_without_trap(a64)
    if problem:
        R.record_disturbance(f"{kernel}/{state}: continue", problem)
        findings.append(f"{state}: after the commands, {problem}")
    assert not findings, f"{kernel} {state} ({described}):\n" + "\n".join(findings)
