"""arm64: kx event, regs, task and ps on the svc path, against ground truth.

Ground truth: what the workload put in its registers (scripts/guest/arm64/:
hello64 does write(1, msg, 23) with x8 = 64, hello32 the same with r7 = 4),
the ELF symbols of those binaries (the return address is
hello64_after_write), the strings they print on the console, System.map,
QEMU's own `info registers`, and gdb's own reads of the kernel's variables.
"""
import re

import pytest
from elftools.elf.elffile import ELFFile

from tests.guestlib import binary_string_at

pytestmark = pytest.mark.guest

HELLO64_LEN = len("Hello from svc (arm64)\n")
HELLO32_LEN = len("Hello from svc (arm32)\n")
SVC64_AT_ENTRY = f"$x8 == 64 && $x2 == {HELLO64_LEN}"
# el0_svc(regs): pt_regs->regs[8] and regs[2] (8-byte slots from offset 0).
SVC64_IN_C = f"((unsigned long *)$x0)[8] == 64 && ((unsigned long *)$x0)[2] == {HELLO64_LEN}"


def elf_symbols(directory, binary) -> dict:
    with open(directory / binary, "rb") as f:
        return {s.name: s["st_value"] for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}


def check_write(a64, d, binaries, abi="64"):
    hello = "hello64" if abi == "64" else "hello32"
    text = "Hello from svc (arm64)\n" if abi == "64" else "Hello from svc (arm32)\n"
    assert text.strip() in a64.guest.serial()        # the workload printed it itself
    assert (d["abi"], d["nr"], d["name"], d["comm"]) == (abi, 64 if abi == "64" else 4, "write", hello)
    assert [a["reg"] for a in d["args"]] == (["x0", "x1", "x2"] if abi == "64" else ["r0", "r1", "r2"])
    assert d["args"][0]["value"] == 1 and d["args"][2]["value"] == len(text)
    assert d["args"][1]["decoded"] == '"' + text.replace("\n", "\\n") + '"'
    assert d["return_ip"] == elf_symbols(binaries, hello)[f"{hello}_after_write"]
    assert d["handler"]["symbol"] == "__arm64_sys_write"
    assert d["handler"]["address"] == a64.symbols["__arm64_sys_write"]
    assert d["dispatch"] == "sys_call_table"
    assert d["dispatch_detail"]["function"] == ("sys_call_table" if abi == "64" else "compat_sys_call_table")


def test_event_at_el0t_64_sync_live_registers(a64, arm64_binaries):
    cpu = a64.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    d = a64.json("kx event")
    assert d["source"] == "registers" and d["entry"] == "el0t_64_sync" and d["cpu"] == cpu
    check_write(a64, d, arm64_binaries)
    mon = a64.monitor_registers(cpu)
    assert mon["pc"] == a64.symbols["el0t_64_sync"] and mon["mode"] == "EL1h"
    assert (mon["x8"], mon["x0"], mon["x2"]) == (64, 1, HELLO64_LEN)
    assert mon["x1"] == d["args"][1]["value"]


def test_event_and_regs_from_pt_regs_at_el0_svc(a64, arm64_binaries):
    cpu = a64.stop_at("el0_svc", SVC64_IN_C)
    d = a64.json("kx event")
    assert d["source"] == "pt_regs" and d["cpu"] == cpu
    check_write(a64, d, arm64_binaries)
    r = a64.json("kx regs")
    regs = r["regs"]
    # pt_regs at el0_svc's argument (AAPCS64: x0), as gdb reads them.
    assert r["address"] == a64.reg("x0")
    assert (regs["x8"], regs["x0"], regs["x2"]) == (64, 1, HELLO64_LEN)
    assert regs["pc"] == d["return_ip"] and regs["syscallno"] == -1   # el0_svc_common stores it later
    assert r["syscall"]["nr"] == 64 and r["syscall"]["name"] == "write"   # from regs[8] until then
    assert r["mode"] == "64" and r["task"]["comm"] == "hello64"


def test_event_at_invoke_syscall_and_the_table_entry(a64, arm64_binaries):
    cpu = a64.stop_at("invoke_syscall", f"$x1 == 64 && ((unsigned long *)$x0)[2] == {HELLO64_LEN}")
    d = a64.json("kx event")
    check_write(a64, d, arm64_binaries)
    assert d["notes"] == []                                # syscallno is stored now
    regs = a64.json("kx regs")["regs"]
    assert regs["syscallno"] == 64 and regs["orig_x0"] == 1
    # sys_call_table[64] as gdb reads it is the handler kx names.
    assert a64.gdb.eval("((unsigned long *)&sys_call_table)[64]") == d["handler"]["address"]
    assert a64.monitor_registers(cpu)["x1"] == 64         # invoke_syscall(regs, scno, ...)


def test_compat_event_at_el0t_32_sync(a64, arm64_binaries):
    cpu = a64.stop_at("el0t_32_sync", f"$x7 == 4 && $x2 == {HELLO32_LEN}")
    d = a64.json("kx event")
    check_write(a64, d, arm64_binaries, abi="32")
    mon = a64.monitor_registers(cpu)
    assert (mon["x7"], mon["x0"], mon["x2"]) == (4, 1, HELLO32_LEN)
    assert d["args"][1]["value"] == mon["x1"]


def test_current_task_and_ps(a64):
    a64.stop_at("el0_svc", SVC64_IN_C)
    cpu = int(a64.gdb.eval("$_thread")) - 1
    t = a64.json("kx task")
    # current is SP_EL0 at EL1 (asm/current.h); per-cpu __entry_task agrees.
    assert t["address"] == a64.reg("SP_EL0")
    entry_task = a64.gdb.eval(f"*(unsigned long *)((char *)&__entry_task + __per_cpu_offset[{cpu}])")
    assert t["address"] == entry_task
    assert t["comm"] == "hello64" and t["running_on"] == cpu
    ps = a64.json("kx ps")
    pids = {p["pid"]: p for p in ps["tasks"]}
    work = a64.workload_pid()
    assert pids[work]["comm"] == "kxwork" and pids[1]["comm"] == "init"
    assert pids[t["pid"]]["address"] == t["address"]


def test_bt_ends_in_the_user_frame(a64, arm64_binaries):
    a64.stop_at("el0_svc", SVC64_IN_C)
    out = a64.cmd("bt")
    after = elf_symbols(arm64_binaries, "hello64")["hello64_after_write"]
    last = [l for l in out.splitlines() if l.startswith("#")][-1]
    assert f"{after:#018x}" in last and "user mode, 64-bit" in last, out
    a64.stop_at("el0t_64_sync", SVC64_AT_ENTRY)
    last = [l for l in a64.cmd("bt").splitlines() if l.startswith("#")][-1]
    assert f"{after:#018x}" in last and "live registers" in last


def test_bt_through_pac_signed_frames(a64, arm64_binaries):
    """From ksys_write past the PAC-signed return addresses (invoke_syscall
    .. el0t_64_sync) to the user frame: gdb strips them with the masks
    QEMU 10's gdbstub gives (org.gnu.gdb.aarch64.pauth, pauth_cmask_high for
    kernel addresses).  gdb 13.1 applies only the low mask and stops at the
    first signed address; 16.3 and 18.1 go through (measured)."""
    major = int(a64.gdb.eval("$_gdb_major"))
    if major < 16:
        pytest.skip(f"gdb {major} does not strip PAC from kernel return addresses (gdb 16+ does: "
                    "KX_GDB=trixie|sid, the toolchain tier)")
    if "void" in a64.cmd("output $pauth_cmask_high"):
        pytest.skip("this QEMU's gdbstub gives gdb no pointer-authentication masks (QEMU 7.2; 10.0 does)")
    a64.stop_at("ksys_write", f"$x0 == 1 && $x2 == {HELLO64_LEN}")
    frames = [l for l in a64.cmd("bt").splitlines() if l.startswith("#")]
    after = elf_symbols(arm64_binaries, "hello64")["hello64_after_write"]
    names = " ".join(frames)
    for caller in ("invoke_syscall", "el0_svc", "el0t_64_sync"):
        assert f"in {caller} " in names or f" {caller} (" in names, frames
    assert f"{after:#018x}" in frames[-1] and "user mode, 64-bit" in frames[-1], frames


def test_execve_path_of_a_forked_child(a64, arm64_binaries):
    """kxwork's forked child passes execve (nr 221) a path in the parent's
    .rodata, which fork() did not map in the child; kx reads it from the
    page cache when the page has no PTE.  (QEMU's monitor cannot tell here:
    its gva2gpa honours PAN at EL1 and says Unmapped for any user page.)"""
    a64.stop_at("el0t_64_sync", "$x8 == 221")
    d = a64.json("kx event")
    assert (d["name"], d["comm"]) == ("execve", "kxwork"), d
    want = binary_string_at(arm64_binaries / "kxwork", d["args"][0]["value"])
    assert want.startswith("/bin/") and d["args"][0]["decoded"] == f'"{want}"', d


def test_x86_commands_say_so_in_one_line(a64):
    for cmd in ("kx msr", "kx gdt", "kx idt", "kx tss", "kx cr"):
        with pytest.raises(Exception) as exc:
            a64.cmd(cmd)
        text = str(exc.value)
        assert re.search(r"\bx86_64( or i386)? only\b", text) and "arm64" in text and "\n" not in text.strip(), text


def test_heartbeat_goes_on(a64):
    assert re.search(r"KX-HEARTBEAT .*hello64=0 hello32=0", a64.guest.serial())
    assert a64.heartbeat_continues()


def test_event_in_the_vector_entry_from_live_registers(a64, arm64_binaries):
    """VBAR_EL1 + 0x400: the lower-EL AArch64 synchronous entry (Arm ARM
    D1.10.2), before kernel_ventry branches to el0t_64_sync: ESR_EL1 says
    SVC64 and the call is still in the user's registers."""
    cpu = a64.stop_at("vectors+0x400", SVC64_AT_ENTRY)
    assert a64.reg("pc") == a64.symbols["vectors"] + 0x400
    d = a64.json("kx event")
    assert d["source"] == "registers" and d["cpu"] == cpu, d
    check_write(a64, d, arm64_binaries)
    mon = a64.monitor_registers(cpu)
    assert (mon["x8"], mon["x0"], mon["x2"]) == (64, 1, HELLO64_LEN) and mon["x1"] == d["args"][1]["value"]