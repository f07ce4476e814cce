"""kx msr / gdt / idt / tss against QEMU's own monitor (a separate HMP socket,
not gdb), System.map, the kernel's definitions, and gdb's own reads.

The lab guest: 2 vCPUs, -cpu Haswell (Intel), pti=on.  What syscall_init()
writes comes from the kernel's own source (tests/kernel_source.py)."""
import re

import pytest

from tests import kernel_source

# arch/x86/include/asm/segment.h
KERNEL_CS, KERNEL_DS, USER32_CS, USER_DS, USER_CS = 0x10, 0x18, 0x23, 0x2B, 0x33
EXPECTED_STAR = (USER32_CS << 48) | (KERNEL_CS << 32)   # syscall_init()


def msr_map(report):
    return {m["name"]: m for m in report["msrs"]}


def stack_top_expression(kx, cpu):
    """gdb's expression for the task stack top the entry code switches to
    on `cpu`, by what System.map has: pcpu_hot (6.2-6.14), the per-cpu
    variable, or (5.10, before 5.13) the TSS's sp1."""
    off = f"__per_cpu_offset[{cpu}]"
    if "pcpu_hot" in kx.symbols:
        return f"((struct pcpu_hot *)((char *)&pcpu_hot + {off}))->top_of_stack"
    if "cpu_current_top_of_stack" in kx.symbols:
        return f"*(unsigned long *)((char *)&cpu_current_top_of_stack + {off})"
    return f"((struct tss_struct *)((char *)&cpu_tss_rw + {off}))->x86_tss.sp1"


@pytest.fixture
def at_entry(kx):
    """Stopped at the first instruction of entry_SYSCALL_64 (user CR3 under PTI)."""
    kx.run_to("entry_SYSCALL_64")
    return kx


def test_msr_at_entry_matches_ground_truth(at_entry):
    kx = at_entry
    cpu = kx.gdb.eval("$_thread") - 1
    r = kx.json("kx msr")
    assert r["cpu"] == cpu and r["warnings"] == []
    m = msr_map(r)
    monitor = kx.guest.cpu_registers(cpu)
    assert m["IA32_EFER"]["value"] == monitor["efer"]
    assert m["IA32_EFER"]["source"] == "gdbstub"
    assert {"SCE", "LME", "LMA", "NXE"} <= set(m["IA32_EFER"]["fields"]["set"])
    assert m["IA32_LSTAR"]["value"] == kx.symbols["entry_SYSCALL_64"]
    assert m["IA32_LSTAR"]["source"] == "rdmsr"
    assert m["IA32_LSTAR"]["symbol"] == "entry_SYSCALL_64"
    assert m["IA32_STAR"]["value"] == EXPECTED_STAR
    f = m["IA32_STAR"]["fields"]
    assert f["syscall_cs"]["selector"] == KERNEL_CS and f["syscall_ss"]["selector"] == KERNEL_DS
    assert f["sysret_cs32"]["selector"] == USER32_CS and f["sysret_cs64"]["selector"] == USER_CS
    assert m["IA32_SYSENTER_EIP"]["value"] == kx.symbols["entry_SYSENTER_compat"]
    assert m["IA32_SYSENTER_CS"]["value"] == KERNEL_CS
    # Intel model: since 5.18 the kernel skips CSTAR there (0 from reset);
    # 5.10 writes entry_SYSCALL_compat anyway.  Its source says which.
    skips_cstar_on_intel, sfmask = kernel_source.syscall_init_msrs(kx.config.kernel)
    assert m["IA32_CSTAR"]["value"] == (0 if skips_cstar_on_intel else kx.symbols["entry_SYSCALL_compat"])
    assert m["IA32_FMASK"]["value"] == sfmask and m["IA32_FMASK"]["source"] == "rdmsr"
    assert m["IA32_FMASK"]["fields"]["if_cleared"] and m["IA32_FMASK"]["fields"]["matches_linux"]
    # Before swapgs: GS_BASE still holds the user value, KERNEL_GS_BASE the kernel's.
    assert m["IA32_GS_BASE"]["fields"]["holds"] == "user value"
    assert m["IA32_KERNEL_GS_BASE"]["fields"]["holds"] == "kernel per-cpu base"
    assert m["IA32_GS_BASE"]["value"] == monitor["gs_seg"]["base"]


def test_msr_injection_leaves_guest_untouched(at_entry):
    kx = at_entry
    regs = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss")
    cpu = kx.gdb.eval("$_thread") - 1
    before = {r: kx.reg(r) for r in regs}
    code_before = kx.cmd("x/4bx $pc")
    lock_before = kx.cmd("show scheduler-locking")
    monitor_before = kx.guest.cpu_registers(cpu)
    out = kx.cmd("kx msr star lstar cstar fmask sysenter_esp tsc_aux")
    assert "Traceback" not in out and "0x" in out
    assert {r: kx.reg(r) for r in regs} == before
    assert kx.cmd("x/4bx $pc") == code_before
    assert kx.cmd("show scheduler-locking") == lock_before
    monitor_after = kx.guest.cpu_registers(cpu)
    for r in ("rax", "rcx", "rdx", "rip", "rfl", "rsp"):
        assert monitor_after[r] == monitor_before[r], r
    assert kx.heartbeat_continues()


def test_tables_match_monitor_on_every_cpu(kx):
    kx.run_to("do_syscall_64")  # the kernel page table: gdb itself can read per-cpu data
    for cpu in (0, 1):
        monitor = kx.guest.cpu_registers(cpu)
        gdt = kx.json(f"kx gdt --cpu {cpu}")
        assert (gdt["base"], gdt["limit"]) == (monitor["gdt"]["base"], monitor["gdt"]["limit"])
        names = {e["selector"]: e["name"] for e in gdt["entries"]}
        assert names[KERNEL_CS] == "KERNEL_CS" and names[USER_CS & ~3] == "USER_CS"
        kinds = {e["selector"]: e for e in gdt["entries"]}
        assert kinds[KERNEL_CS]["long"] is True and kinds[USER32_CS & ~3]["long"] is False
        assert kinds[0x40]["kind"] == "tss-busy"
        assert kinds[0x40]["base"] == monitor["tr_seg"]["base"]
        idt = kx.json(f"kx idt --cpu {cpu}")
        assert (idt["base"], idt["limit"]) == (monitor["idt"]["base"], monitor["idt"]["limit"])
        tss = kx.json(f"kx tss --cpu {cpu}")
        assert tss["selector"] == monitor["tr_seg"]["selector"] == 0x40
        assert tss["base"] == monitor["tr_seg"]["base"] and tss["busy"] is True
        # RSP0 is what the kernel keeps in its per-cpu TSS, read by gdb's own DWARF.
        sp0 = kx.gdb.eval(f"((struct tss_struct *)((char *)&cpu_tss_rw + __per_cpu_offset[{cpu}]))->x86_tss.sp0")
        ist0 = kx.gdb.eval(f"((struct tss_struct *)((char *)&cpu_tss_rw + __per_cpu_offset[{cpu}]))->x86_tss.ist[0]")
        assert tss["rsp"][0] == sp0 and tss["ist"][0] == ist0
        assert tss["ist_slots"][0]["stack"] == "DF"
        assert tss["current_top_of_stack"] == kx.gdb.eval(stack_top_expression(kx, cpu))
    assert kx.json("kx gdt --cpu 0")["base"] != kx.json("kx gdt --cpu 1")["base"]


def test_int80_gate(kx):
    r = kx.json("kx idt 0x80")
    (gate,) = r["gates"]
    entry = kx.symbols.get("asm_int80_emulation") or kx.symbols["entry_INT80_compat"]
    assert gate["handler"] == entry
    assert gate["dpl"] == 3 and gate["ok"] is True and r["warnings"] == []
    divide = kx.json("kx idt 0")["gates"][0]
    assert divide["handler"] == kx.symbols["asm_exc_divide_error"]
    assert divide["name"].startswith("#DE")


def test_kernel_read_through_page_walk_under_pti(at_entry):
    """At entry_SYSCALL_64 under PTI gdb cannot read sys_call_table; kx can."""
    kx = at_entry
    addr = kx.symbols["sys_call_table"]
    with pytest.raises(Exception, match="Cannot access memory"):
        kx.cmd(f"x/gx {addr:#x}")
    out = kx.cmd(f"python from gdbext import machine; print(machine.read_kernel({addr:#x}, 16).hex())")
    via_walk = bytes.fromhex(out.strip())
    kx.run_to("do_syscall_64")
    direct = kx.cmd(f"x/2gx {addr:#x}")
    words = [int(w, 16) for w in re.findall(r"0x[0-9a-f]{16}", direct.split(":", 1)[1])]
    assert int.from_bytes(via_walk[:8], "little") == words[0] == kx.symbols["__x64_sys_read"]
    assert int.from_bytes(via_walk[8:], "little") == words[1] == kx.symbols["__x64_sys_write"]


def test_how_the_cpu_enters_the_kernel_fred_or_idt(at_entry):
    """CONFIG_X86_FRED (7.2's config) is told by asm_fred_entrypoint_user in
    System.map; whether FRED is on, by CR4 bit 32 in QEMU's monitor.  TCG has
    no FRED: entry stays LSTAR's (still checked), and the FRED MSRs, asked
    for by name, come with the warning that they are not in use (TCG's
    rdmsr gives 0 for an MSR it does not implement, target/i386/tcg)."""
    kx = at_entry
    cpu = kx.gdb.eval("$_thread") - 1
    r = kx.json("kx msr")
    fred_on = bool(kx.guest.cpu_registers(cpu)["cr4"] >> 32 & 1)
    assert r["entry"]["fred_built_in"] == ("asm_fred_entrypoint_user" in kx.symbols)
    assert r["entry"]["fred_enabled"] is fred_on
    assert ("IA32_FRED_CONFIG" in msr_map(r)) is fred_on
    if not fred_on:
        assert msr_map(r)["IA32_LSTAR"]["ok"] is True
        assert ("built in but off" in r["entry"]["mechanism"]) == r["entry"]["fred_built_in"]
        one = kx.json("kx msr fred_config")
        assert msr_map(one)["IA32_FRED_CONFIG"]["value"] in (0, None)
        assert any(w.startswith("FRED is off on this CPU (CR4.FRED=0)") for w in one["warnings"])
        assert kx.guest.cpu_registers(cpu)["rip"] == kx.symbols["entry_SYSCALL_64"]


def test_bad_input_is_one_clear_line(kx):
    for command, needle in [("kx msr bogus", "unknown MSR"), ("kx msr --cpu 7", "no CPU 7"),
                            ("kx idt 300", "vector must be 0-255"), ("kx gdt --cpu -1", "must be >= 0"),
                            ("kx tss --cpu x", "not a number")]:
        r = kx.gdb.cmd_full(command)
        assert r["error"] and needle in r["error"], (command, r)
        assert "\n" not in r["error"].strip() and "Traceback" not in r["error"]
        j = kx.json(command)
        assert needle in j["error"]


def test_msr_in_user_mode_falls_back_to_expected(kx):
    from kxlab import initramfs
    from elftools.elf.elffile import ELFFile
    with open(initramfs.binaries_dir() / "hello64", "rb") as f:
        start = ELFFile(f).header["e_entry"]
    kx.run_to(f"{start:#x}")
    assert kx.reg("cs") & 3 == 3
    r = kx.json("kx msr lstar efer")
    m = msr_map(r)
    assert m["IA32_LSTAR"]["source"] == "expected"
    assert m["IA32_LSTAR"]["value"] == kx.symbols["entry_SYSCALL_64"]
    assert m["IA32_EFER"]["source"] == "gdbstub"
    assert any("user mode" in w for w in r["warnings"])


def test_other_architecture_is_refused_in_one_line(kx):
    """On another architecture's target (here a stand-in Arch named aarch64,
    as gdb.arch would detect one) the x86 commands refuse, each in one line."""
    kx.cmd("python import gdbext.arch as A; from gdbext.arch.base import Arch; "
           "A.use(type('Aarch64', (Arch,), {'name': 'aarch64'})())")
    try:
        for command in ("kx msr", "kx gdt", "kx idt 0x80", "kx tss --cpu 1"):
            r = kx.gdb.cmd_full(command)
            name = " ".join(command.split()[:2])
            assert r["error"] and f"{name}: x86_64 or i386 only; this target is aarch64" in r["error"], (command, r)
            assert "\n" not in r["error"].strip() and "Traceback" not in r["error"]
            assert kx.json(command) == {"error": "x86_64 or i386 only; this target is aarch64"}
    finally:
        kx.cmd("python A.use(None)")
    assert kx.json("kx idt 0x80")["gates"][0]["ok"] is True


@pytest.mark.parametrize("fault", ["gdb.error('simulated stub failure')", "KeyboardInterrupt()"])
def test_injection_restores_on_error_and_interrupt(at_entry, fault):
    """A gdb error or a Ctrl-C in the middle of the injection (after the
    rdmsr bytes are written) still restores the bytes and registers."""
    kx = at_entry
    regs = ("rax", "rcx", "rdx", "rip", "eflags", "rsp")
    before = {r: kx.reg(r) for r in regs}
    code_before = kx.cmd("x/4bx $pc")
    kx.cmd("python import gdb, gdbext.arch.x86_64.msr_inject as M; M._saved_step = M._raw_step")
    kx.cmd(f"python M._raw_step = lambda cpu: (_ for _ in ()).throw({fault})")
    try:
        r = kx.gdb.cmd_full("kx msr lstar")
    finally:
        kx.cmd("python M._raw_step = M._saved_step")
    assert r["error"] and "Traceback" not in r["error"]
    assert ("interrupted" in r["error"]) if "Keyboard" in fault else ("simulated" in r["error"])
    assert {r_: kx.reg(r_) for r_ in regs} == before
    assert kx.cmd("x/4bx $pc") == code_before
    assert kx.json("kx msr lstar")["msrs"][0]["value"] == kx.symbols["entry_SYSCALL_64"]


def test_hooked_entry_point_is_flagged(at_entry):
    """The verdict path: if what the CPU holds is not what syscall_init()
    programs, kx says so loudly.  Real hardware can't be hooked from here
    without writing an MSR, so the test moves the kernel's expectation
    instead (to entry_SYSCALL_compat) and checks that the real, unchanged
    LSTAR is reported as a mismatch."""
    kx = at_entry
    fake = kx.symbols["entry_SYSCALL_compat"]
    kx.cmd("python import gdbext.arch.x86_64.cpu_setup as C; C._saved_expected = C.expected_msr")
    kx.cmd(f"python C.expected_msr = lambda cpu, i: {fake:#x} if i == 0xC0000082 else C._saved_expected(cpu, i)")
    try:
        r = kx.json("kx msr lstar")
        text = kx.cmd("kx msr lstar")
    finally:
        kx.cmd("python C.expected_msr = C._saved_expected")
    (lstar,) = r["msrs"]
    assert lstar["value"] == kx.symbols["entry_SYSCALL_64"] and lstar["ok"] is False
    assert any("hooked" in w and "entry_SYSCALL_compat" in w for w in r["warnings"])
    assert "MISMATCH" in text and "WARNING" in text
    assert kx.json("kx msr lstar")["msrs"][0]["ok"] is True
