"""Every kx command, with its typical arguments (text and --json), in every
target state; after each, the guest must be exactly as it was.

States (each checked against QEMU's monitor, never against kx):
- user:       a vCPU at hello64's first user instruction (CPL 3);
- syscall:    a vCPU in the kernel, at ksys_write (write(2) in progress);
- idle:       a vCPU halted in native_safe_halt (HMP: HLT=1);
- entry-pti:  the first instruction of entry_SYSCALL_64, user CR3 (PTI);
- int80:      the int $0x80 stub (asm_int80_emulation; entry_INT80_compat
              before 6.1.66), entered from hello32's int $0x80;
- smp-other:  the other vCPU selected while one sits at entry_SYSCALL_64
              (each vCPU while the other is in a different state);
- early-boot / early-boot-ap: a guest started with -S, before its first
  instruction (real mode, no paging), the boot vCPU and the AP.

After every command (tests/reliability.py Snapshotter): `info registers -a`
of every vCPU (the monitor's full dump: GPRs, segments with their hidden
bases, tables, CRs, DRs, EFER, FPU/AVX, HLT), the code at every vCPU's rip
(the rdmsr injection writes there), the SHA-1 of the whole kernel text in
guest RAM (pmemsave), gdb's breakpoint list, scheduler-locking, the stub's
PhyMemMode, and gdb's selected thread.  Commands that resume the guest
(`kx trace --count 1`) are checked on everything but the registers.  Once
per state: the guest runs on to a new heartbeat and stops only when we
interrupt it (no SIGTRAP from a breakpoint left behind).
"""
import bisect
import dataclasses
import json
import re

import pytest

from tests import reliability as R
from tests.guestlib import int80_entry

from .conftest import heartbeat_without_trap

# Typical arguments per subcommand.  "{other}" is the vCPU not selected.
# A subcommand that `help kx` lists but that is missing here still runs,
# bare and with --json (test_every_subcommand_is_in_the_matrix keeps this
# table honest).
TYPICAL = {
    "msr": ["", "lstar star", "--cpu {other}"],
    "gdt": ["", "--cpu {other}"],
    "idt": ["0x80", ""],
    "tss": ["", "--cpu {other}"],
    "task": ["", "1", "--cpu {other}"],
    "ps": [""],
    "regs": ["", "1"],
    "syscalls": ["openat", "--check", "4 --abi 32"],
    "event": ["", "--cpu {other}"],
    "vdso": ["", "1"],
    "drgn": ["-c 1+1", ""],
    "kaslr": [""],
    "seccomp": ["", "1 --eval write 1"],
    "cr": ["", "--cpu {other}"],
    "pagewalk": ["sys_call_table", "$rsp --cpu {other}", "0x400000 --pid 1"],
    "dmesg": ["--tail 5", "--level console", "--follow"],
    "modules": [""],
    "kernel": [""],
    # arm64's CPU state (here: the one-line refusal on an x86-64 target).
    "sysregs": ["", "--cpu {other}"],
    "vectors": [""],
    # Groups: run in order, compared as one (a kx breakpoint exists between them).
    "break": [("openat --pid 1", "", "delete")],
    # Resumes the guest: run last in each state (see run_trace).
    "trace": ["--count 1"],
}
FUNCTIONS = ["print $kx_current()", "print $kx_current({other})", 'print $kx_per_cpu("runqueues", {other})',
             "print $kx_ptregs()", "print $kx_task_struct().pid", "bt 6"]

LAB_STATES = ["user", "syscall", "idle", "entry-pti", "int80", "smp-other"]


def help_subcommands(kx):
    text = kx.cmd("help kx")
    return sorted(set(re.findall(r"^kx (\S+) --", text, re.M)))


def symbol_at(kx, address):
    """The System.map symbol containing `address` (ground truth, not kx)."""
    table = getattr(kx, "_sorted_symbols", None)
    if table is None:
        table = sorted((a, n) for n, a in kx.symbols.items())
        kx._sorted_symbols = table
    i = bisect.bisect_right(table, (address, "\uffff")) - 1
    return table[i][1] if i >= 0 else None


def monitor_cpu(kx, cpu):
    text = kx.guest.hmp(f"cpu {cpu}") + kx.guest.hmp("info registers")
    regs = {"text": text}
    regs["rip"] = int(re.search(r"[RE]IP=([0-9a-f]+)", text).group(1), 16)
    regs["cpl"] = int(re.search(r"CPL=(\d)", text).group(1))
    regs["hlt"] = int(re.search(r"HLT=(\d)", text).group(1))
    regs["cr0"] = int(re.search(r"CR0=([0-9a-f]+)", text).group(1), 16)
    regs["cr3"] = int(re.search(r"CR3=([0-9a-f]+)", text).group(1), 16)
    return regs


def selected_cpu(kx):
    return kx.gdb.eval("$_thread") - 1


# -- reaching each state -------------------------------------------------------

def hello64_entry():
    from elftools.elf.elffile import ELFFile
    from kxlab import initramfs
    with open(initramfs.binaries_dir() / "hello64", "rb") as f:
        return ELFFile(f).header["e_entry"]


def reach(kx, state):
    """Stop the lab guest in `state`; return a description checked against
    the monitor.  Raises AssertionError if the monitor disagrees."""
    kx.ensure_stopped()
    s = kx.symbols
    if state == "user":
        entry = hello64_entry()
        kx.run_to(f"{entry:#x}")
        m = monitor_cpu(kx, selected_cpu(kx))
        assert m["cpl"] == 3 and m["rip"] == entry, m["text"]
    elif state == "syscall":
        kx.run_to("ksys_write")
        m = monitor_cpu(kx, selected_cpu(kx))
        assert m["cpl"] == 0 and m["rip"] == s["ksys_write"], m["text"]
    elif state == "idle":
        halts = {n for n in ("native_safe_halt", "pv_native_safe_halt") if n in s}
        for _ in range(40):
            kx.cont()
            kx.gdb.cmd("python import time; time.sleep(0.1)")
            kx.ensure_stopped()
            for cpu in (0, 1):
                m = monitor_cpu(kx, cpu)
                if m["hlt"] and symbol_at(kx, m["rip"]) in halts:
                    kx.select_cpu(cpu)
                    return f"CPU {cpu} halted at {symbol_at(kx, m['rip'])}+{m['rip'] - s[symbol_at(kx, m['rip'])]:#x}"
        raise AssertionError("no vCPU ever halted in native_safe_halt")
    elif state in ("entry-pti", "smp-other"):
        # smp-other wants the other vCPU elsewhere; now and then both hit
        # the breakpoint together, so take another stop.
        for _ in range(5):
            kx.run_to("entry_SYSCALL_64")
            cpu = selected_cpu(kx)
            m = monitor_cpu(kx, cpu)
            assert m["rip"] == s["entry_SYSCALL_64"] and m["cpl"] == 0, m["text"]
            assert m["cr3"] & (1 << 12), f"CR3 {m['cr3']:#x}: not the PTI user page table"
            o = monitor_cpu(kx, 1 - cpu)
            if state != "smp-other" or o["rip"] != m["rip"]:
                break
            kx.gdb.cmd("delete")
        if state == "smp-other":
            other = 1 - cpu
            assert o["rip"] != m["rip"], "both vCPUs at the same instruction, five stops in a row"
            kx.select_cpu(other)
            return (f"CPU {other} selected ({symbol_at(kx, o['rip'])}, CPL {o['cpl']}, HLT={o['hlt']})"
                    f" while CPU {cpu} is at entry_SYSCALL_64")
    elif state == "int80":
        kx.run_to(int80_entry(s))
        m = monitor_cpu(kx, selected_cpu(kx))
        assert m["rip"] == s[int80_entry(s)] and m["cpl"] == 0, m["text"]
    else:
        raise ValueError(state)
    return f"CPU {selected_cpu(kx)} at {symbol_at(kx, m['rip']) if m['cpl'] == 0 else hex(m['rip'])}"


# -- running the matrix in one state -------------------------------------------

@dataclasses.dataclass(frozen=True)
class Matrix:
    """What runs in each state: the typical arguments per subcommand, the
    function calls, and whether the guest is compared after every command
    group or once after all of a subcommand's lines (cheaper; a finding
    then names the subcommand, not the line)."""
    typical: dict
    functions: list
    snapshot_per_subcommand: bool = False


X86_64 = Matrix(TYPICAL, FUNCTIONS)


def command_lines(kx, subcommands, matrix=X86_64):
    """[(group of commands)] for one state: every subcommand's typical
    arguments, text and --json, then the convenience functions."""
    other = 1 - selected_cpu(kx)
    groups = []
    for sub in subcommands:
        if sub == "trace":
            continue
        lines = []
        for args in matrix.typical.get(sub, [""]):
            for json_flag in ("", " --json"):
                if isinstance(args, tuple):
                    lines.append(tuple(f"kx {sub} {a.format(other=other)}".strip() + json_flag for a in args))
                else:
                    lines.append((f"kx {sub} {args.format(other=other)}".strip() + json_flag,))
        groups += [sum(lines, ())] if matrix.snapshot_per_subcommand else lines
    functions = [(f.format(other=other),) for f in matrix.functions]
    groups += [sum(functions, ())] if matrix.snapshot_per_subcommand else functions
    return groups


def run_state(kx, kernel, state, snapper, subcommands, with_trace=True, matrix=X86_64):
    """Run the matrix in the current stop.  Returns the findings (strings)."""
    findings = []
    before = snapper.take()
    for group in command_lines(kx, subcommands, matrix):
        results = []
        for command in group:
            R.record_run(kernel, state, command)
            r = R.run_checked(kx, command, f"{kernel}/{state}: {command}")
            results.append(r)
            findings += [f"{state}: `{command}`: {p}" for p in r["problems"]]
        after = snapper.take()
        for d in R.diff(before, after):
            R.record_disturbance(f"{kernel}/{state}: {' ; '.join(group)}", d)
            findings.append(f"{state}: `{' ; '.join(group)}` disturbed the guest: {d}")
        before = after
    if with_trace and "trace" in subcommands:
        findings += run_trace(kx, kernel, state, snapper, before)
    return findings


def run_trace(kx, kernel, state, snapper, before):
    """kx trace resumes the guest: it must end stopped, with every
    breakpoint gone, the kernel text intact and gdb's settings unchanged."""
    findings = []
    command = "kx trace --count 1 --json"
    R.record_run(kernel, state, command)
    r = kx.gdb.cmd_full(command, timeout=180)
    findings += [f"{state}: `{command}`: {p}" for p in R.output_problems(f"{kernel}/{state}: {command}",
                                                                          r["output"], r["log"], r["error"] or "")]
    lines = [l for l in r["output"].splitlines() if l.strip()]
    if r["error"]:
        findings.append(f"{state}: `{command}` raised a gdb error under --json: {r['error']}")
    for line in lines:
        try:
            obj = json.loads(line)
            assert isinstance(obj, dict)
        except (ValueError, AssertionError):
            findings.append(f"{state}: `{command}` printed a non-JSON line: {line[:200]!r}")
            break
    else:
        if lines and "error" not in json.loads(lines[-1]) and "summary" not in json.loads(lines[-1]):
            findings.append(f"{state}: `{command}` ended without a summary: {lines[-1][:200]}")
        if not lines:
            findings.append(f"{state}: `{command}` printed nothing")
    if kx.gdb.eval("$_thread") == 0:
        findings.append(f"{state}: no thread selected after the trace")
    after = snapper.take()
    keep = [k for k in before if k != "registers" and not k.startswith("cpu") and k != "gdb thread"]
    for d in R.diff(before, after, keys=keep):
        R.record_disturbance(f"{kernel}/{state}: {command}", d)
        findings.append(f"{state}: `{command}` disturbed the guest: {d}")
    return findings


# -- the tests -----------------------------------------------------------------

@pytest.fixture(scope="module")
def lab_snapper(lab):
    return R.Snapshotter(lab)


def test_every_subcommand_is_in_the_matrix(kx):
    subs = help_subcommands(kx)
    assert {"msr", "gdt", "idt", "tss", "task", "ps", "regs", "syscalls", "event", "break", "trace"} <= set(subs)
    missing = [s for s in subs if s not in TYPICAL]
    assert not missing, f"`help kx` lists {missing}: give them typical arguments in TYPICAL"


@pytest.mark.parametrize("state", LAB_STATES)
def test_state(kx, kernel_series, lab_snapper, state):
    where = reach(kx, state)
    findings = run_state(kx, kernel_series, state, lab_snapper, help_subcommands(kx))
    problem = heartbeat_without_trap(kx)
    if problem:
        R.record_disturbance(f"{kernel_series}/{state}: continue", problem)
        findings.append(f"{state}: after the commands, {problem}")
    assert not findings, f"{kernel_series} {state} ({where}):\n" + "\n".join(findings)


def test_early_boot(paused_lab, kernel_series):
    """-S: both vCPUs before their first instruction, paging off.  Commands
    that need the kernel say so in one line; nothing is touched; then the
    guest boots to its workload as if nobody had looked."""
    kx = paused_lab
    for cpu in (0, 1):
        m = monitor_cpu(kx, cpu)
        assert not m["cr0"] & (1 << 31), m["text"]          # paging off
    assert monitor_cpu(kx, 0)["rip"] == 0xFFF0               # the reset vector
    snapper = R.Snapshotter(kx, with_text=False)  # the kernel is not loaded yet: it boots under the trace
    # Commands that read kernel memory say why they cannot, in one line.
    r = R.run_checked(kx, "kx task --json", f"{kernel_series}/early-boot: kx task --json")
    assert "paging off" in r["json"]["error"] and "early boot" in r["json"]["error"], r
    # Real mode: the GDT is not in use; GDTR is the monitor's reset value.
    r = R.run_checked(kx, "kx gdt --json", f"{kernel_series}/early-boot: kx gdt --json")
    gdtr = re.search(r"GDT=\s*([0-9a-f]+) ([0-9a-f]+)", monitor_cpu(kx, 0)["text"])
    assert r["json"]["entries"] == [] and "real mode" in r["json"]["note"], r
    assert (r["json"]["base"], r["json"]["limit"]) == (int(gdtr.group(1), 16), int(gdtr.group(2), 16)), r
    subs = help_subcommands(kx)
    findings = []
    for state, thread in (("early-boot", 1), ("early-boot-ap", 2)):
        kx.cmd(f"thread {thread}")
        # The last one traces: the guest boots under kx trace's loop until
        # its first system call.
        findings += run_state(kx, kernel_series, state, snapper, subs, with_trace=(thread == 2))
    # The boot goes on: the kernel reaches user space and its heartbeat.
    problem = heartbeat_without_trap(kx, timeout=120)
    if problem:
        R.record_disturbance(f"{kernel_series}/early-boot: continue", problem)
        findings.append(f"early boot: after the commands, {problem}")
    assert not findings, f"{kernel_series} early boot:\n" + "\n".join(findings)
