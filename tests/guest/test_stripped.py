"""A kernel missing what we hoped for: gdb attached to the 6.12
guest through a symbol-only ELF (`objcopy --strip-debug` on a copy of the
vmlinux: .symtab stays, every .debug_* section goes).

Commands that need only symbols and the CPU still answer, checked against
System.map and QEMU's monitor: kx msr, gdt, idt, tss, syscalls (+ --check),
kaslr, break.  Commands that need struct layouts say, in one line (and as
{"error"} with --json), which type is missing.  Nothing is disturbed.
"""
import re
import shutil
import subprocess

import pytest

from tests import reliability as R

from .conftest import OwnSession, heartbeat_without_trap

SERIES = "6.12"
pytestmark = pytest.mark.only_kernels(SERIES)     # the other series are deselected
NEEDS_TYPES = ["kx task", "kx ps", "kx regs", "kx event", "kx vdso", "kx task 1", "kx regs 1",
               "print $kx_current()", "print $kx_ptregs()", 'print $kx_per_cpu("runqueues")']
# What each must name: a missing type, member or variable, in backquotes.
MISSING = re.compile(r"(no type|no member|no variable) `[^`]+`")


@pytest.fixture(scope="module")
def stripped_lab(kernel_series, tmp_path_factory):
    from kxlab import kernels
    vmlinux = kernels.fetch(SERIES, quiet=True).vmlinux
    out = tmp_path_factory.mktemp("stripped") / "vmlinux-nodebug"
    subprocess.run([shutil.which("objcopy") or "objcopy", "--strip-debug", str(vmlinux), str(out)], check=True)
    sections = subprocess.run(["readelf", "-S", "-W", str(out)], capture_output=True, text=True, check=True).stdout
    assert ".symtab" in sections and ".debug_info" not in sections
    session = OwnSession(SERIES, smp=2, vmlinux=out)
    yield session
    session.close()


class _Session:
    """Commands run on the symbol-only guest, their problems collected."""

    def __init__(self, kx, kernel_series):
        self.kx, self.series, self.findings = kx, kernel_series, []

    def run(self, command):
        R.record_run(self.series, "symbol-only vmlinux", command)
        r = R.run_checked(self.kx, command, f"{self.series}/symbol-only: {command}")
        self.findings.extend(f"`{command}`: {p}" for p in r["problems"])
        return r

    def answer(self, command):
        r = self.run(command + " --json")
        j = r["json"] or {}
        if "error" in j or r["error"]:
            self.findings.append(f"`{command}` needs only symbols but said {j.get('error') or r['error']!r}")
            return None
        return j


def _check_cpu_state(t, s, monitor):
    j = t.answer("kx msr lstar cstar star")
    if j:
        m = {x["name"]: x for x in j["msrs"]}
        assert m["IA32_LSTAR"]["value"] == s["entry_SYSCALL_64"] and m["IA32_LSTAR"]["source"] == "rdmsr"
        assert m["IA32_LSTAR"]["symbol"] == "entry_SYSCALL_64"
        assert m["IA32_STAR"]["value"] == (0x23 << 48) | (0x10 << 32)
        # Intel model: CSTAR is 0.  Without struct cpuinfo_x86 kx cannot
        # know the vendor, so it must not claim a mismatch.
        assert m["IA32_CSTAR"]["value"] == 0 and m["IA32_CSTAR"].get("ok") is not False, m["IA32_CSTAR"]
    j = t.answer("kx idt 0x80")
    if j:
        assert j["gates"][0]["handler"] == s["asm_int80_emulation"]
        assert j["gates"][0]["symbol"] == "asm_int80_emulation"
        assert (j["base"], j["limit"]) == (monitor["idt"]["base"], monitor["idt"]["limit"])
    j = t.answer("kx gdt")
    if j:
        assert (j["base"], j["limit"]) == (monitor["gdt"]["base"], monitor["gdt"]["limit"])
    j = t.answer("kx tss")
    if j:
        assert j["base"] == monitor["tr_seg"]["base"] and j["selector"] == monitor["tr_seg"]["selector"]


def _check_syscalls(t, s):
    j = t.answer("kx syscalls openat")
    if j:
        (e,) = j["entries"]
        assert e["nr"] == 257 and e["handler"] == s["__x64_sys_openat"]
    j = t.answer("kx syscalls --check")
    if j:
        assert len(j["entries"]) > 300 and all(e["ok"] is not False for e in j["entries"])
        # Each handler is the one System.map gives its symbol (not kx's word).
        assert all(e["handler"] == s[e["symbol"]] for e in j["entries"] if e["symbol"] in s)
        assert sum(e["symbol"] in s for e in j["entries"]) > 300
    j = t.answer("kx kaslr")
    if j:
        assert j["text_slide"] == 0 and j["match"] is True
    j = t.answer("kx break openat")
    if j:
        assert j["locations"][0]["address"] == s["entry_SYSCALL_64"]
    t.answer("kx break delete")


def test_symbol_only_vmlinux(stripped_lab, kernel_series):
    kx = stripped_lab
    s = kx.symbols
    kx.run_to("entry_SYSCALL_64")                 # a symbol is all `tbreak *` needs
    cpu = kx.gdb.eval("$_thread") - 1
    snapper = R.Snapshotter(kx)
    before = snapper.take()
    t = _Session(kx, kernel_series)
    _check_cpu_state(t, s, kx.guest.cpu_registers(cpu))
    _check_syscalls(t, s)
    # Commands that need struct layouts name what is missing, in one line.
    for command in NEEDS_TYPES:
        for suffix in ("", " --json") if command.startswith("kx") else ("",):
            r = t.run(command + suffix)
            said = (r["json"] or {}).get("error") if suffix else r["error"]
            if not said or not MISSING.search(said):
                t.findings.append(f"`{command}{suffix}` should name the missing type, said "
                                  f"{said or r['output'][:200]!r}")
    r = t.run("kx trace --count 1 --json")
    if not (r["json"] and MISSING.search(r["json"].get("error", ""))):
        t.findings.append(f"`kx trace --count 1 --json` should name the missing type: {r['output'][:200]!r}")
    for d in R.diff(before, snapper.take()):
        R.record_disturbance(f"{kernel_series}/symbol-only", d)
        t.findings.append(f"disturbed the guest: {d}")
    problem = heartbeat_without_trap(kx)
    if problem:
        t.findings.append(problem)
    assert not t.findings, "\n".join(t.findings)
