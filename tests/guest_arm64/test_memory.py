"""arm64: the page walk, the vDSO, the $kx_* functions and KASLR, against
QEMU's monitor (physical memory through `xp`), System.map slid by VBAR_EL1
minus `vectors`, the workload's own AT_SYSINFO_EHDR and gdb's own reads."""
import re

import pytest

from .test_entry import SVC64_IN_C

pytestmark = pytest.mark.guest


def monitor_bytes(session, phys: int, n: int) -> bytes:
    text = session.guest.hmp(f"xp /{n}xb {phys:#x}")
    return bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})\b", text.split(":", 1)[1]))[:n] \
        if ":" in text else b""


def check_walk_of_banner(session):
    d = session.json("kx pagewalk linux_banner")
    view = d["views"][0]
    assert d["address"] == session.gdb.eval("(unsigned long)&linux_banner")
    assert view["mapped"] and not view["user"] and not view["executable"]
    assert [lv["level"] for lv in view["levels"]][0] == "L0"
    # The physical bytes QEMU itself reads there are the banner.
    assert monitor_bytes(session, view["phys"], 14) == b"Linux version "
    assert view["root"] == session.reg("TTBR1_EL1") & 0x0000FFFFFFFFF000


def test_pagewalk_kernel_and_user(a64):
    check_walk_of_banner(a64)
    a64.stop_at("el0_svc", SVC64_IN_C)
    pc = a64.json("kx regs")["regs"]["pc"]             # in hello64's text
    d = a64.json(f"kx pagewalk {pc:#x}")
    view = d["views"][0]
    assert view["mapped"] and view["user"] and view["executable"] and not view["writable"]
    assert view["active"] and view["root"] == a64.reg("TTBR0_EL1")      # the CPU's own, as it holds it
    # svc #0 is the word before the return address (A64: 0xd4000001).
    assert monitor_bytes(a64, view["phys"] - 4, 4) == (0xD4000001).to_bytes(4, "little")


def test_vdso_of_the_workload(a64):
    work = a64.workload_pid()
    d = a64.json(f"kx vdso {work}")
    printed = int(re.findall(r"KX-WORK pid=\d+ vdso=(0x[0-9a-f]+)", a64.guest.serial())[-1], 16)
    assert d["base"] == printed and d["abi"] == "64"
    assert d["elf"]["machine"] == "EM_AARCH64" and d["image_matches_kernel"]
    names = {s["name"] for s in d["symbols"]}
    assert {"__kernel_clock_gettime", "__kernel_gettimeofday"} <= names
    assert d["vmas"]["vdso"]["special"] == "[vdso]" and d["vmas"]["vvar"]["special"] == "[vvar]"
    assert d["kernel_image"]["data"] == a64.gdb.eval("(unsigned long)vdso_info[0].vdso_code_start")


def test_convenience_functions(a64):
    cpu = a64.stop_at("el0_svc", SVC64_IN_C)
    assert a64.gdb.eval(f"(unsigned long)$kx_current({cpu})") == a64.reg("SP_EL0")
    assert "hello64" in a64.cmd("output $kx_current().comm")
    assert a64.gdb.eval("$kx_ptregs()->regs[8]") == 64
    assert a64.gdb.eval("(unsigned long)$kx_ptregs()") == a64.reg("x0")
    assert a64.gdb.eval(f'(unsigned long)$kx_per_cpu("__entry_task", {cpu})') == a64.reg("SP_EL0")


def test_kaslr_slide_from_vbar(a64_kaslr):
    s = a64_kaslr
    s.ensure_stopped()
    d = s.json("kx kaslr")
    vbar = s.reg("VBAR")
    slide = vbar - s.symbols["vectors"]
    assert slide != 0 and d.get("text_slide") == slide and d.get("match") is True, (d, s.gdb.attach_output)
    assert d["sources"]["vbar"] == d["sources"]["banner"] == slide
    # lpa2=off: 48 bits in use, whatever CONFIG_ARM64_VA_BITS (52 on 6.12).
    va_bits = int(re.search(r"^CONFIG_ARM64_VA_BITS=(\d+)$", s.kernel.config.read_text(), re.M).group(1))
    assert d["vabits_actual"] == 48 and d["vmcoreinfo"]["va_bits"] == va_bits and d["warnings"] == []
    assert d["page_offset"] == -(1 << va_bits) & (2**64 - 1) and d["vmcoreinfo"]["kernel_offset"] == slide
    assert s.gdb.eval("(unsigned long)&sys_call_table") == s.symbols["sys_call_table"] + slide
    check = s.json("kx syscalls --check")
    assert check["check"]["problems"] == [] and check["table"] == s.symbols["sys_call_table"] + slide
    vec = s.json("kx vectors")
    assert vec["table"] == "vectors" and all(
        e["branches_to"] == s.symbols[e["handler"]] + slide for e in vec["entries"])
    check_walk_of_banner(s)
