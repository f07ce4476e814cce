"""The i386 decoders: 32-bit pt_regs, the PAE walk, 32-bit step-over, the
ELFCLASS32 symbol table (byte fixtures and hypothesis)."""
import struct

from hypothesis import given, strategies as st

from gdbext.arch.x86_64 import stepover
from gdbext.decoders import paging, paging_pae
from gdbext.decoders.ptregs32 import (PT_REGS32_FIELDS, PT_REGS32_SIZE, decode_pt_regs32, encode_pt_regs32,
                                      selector32_name)
import pytest


def test_pt_regs32_layout_is_the_kernels():
    # arch/x86/include/asm/ptrace.h (CONFIG_X86_32): 17 slots of 4 bytes.
    assert PT_REGS32_SIZE == 68
    assert PT_REGS32_FIELDS[0] == "bx" and PT_REGS32_FIELDS[11] == "orig_ax" and PT_REGS32_FIELDS[-1] == "ss"


def test_pt_regs32_of_an_int80_write():
    # What SAVE_ALL leaves for hello32's write(1, msg, 30) from user mode.
    raw = struct.pack("<17I", 1, 0x8049020, 30, 0, 0, 0, 0xFFFFFFDA, 0x7B, 0x7B, 0xD8, 0,
                      4, 0x804900F, 0x73, 0x202, 0xBFFFF000, 0x7B)
    pt = decode_pt_regs32(raw)
    assert (pt.bx, pt.cx, pt.dx, pt.orig_ax, pt.ax_signed) == (1, 0x8049020, 30, 4, -38)
    assert pt.mode == "32" and pt.is_syscall
    assert selector32_name(pt.cs) == "USER_CS" and selector32_name(pt.fs) == "KERNEL_PERCPU"


@given(st.dictionaries(st.sampled_from(PT_REGS32_FIELDS), st.integers(0, 0xFFFF)))
def test_pt_regs32_round_trip(values):
    pt = decode_pt_regs32(encode_pt_regs32(**values))
    for name in PT_REGS32_FIELDS:
        assert getattr(pt, name) == values.get(name, 0)


def _pae_tables(pde):
    """PDPT at 0x1000 (entry 3 -> PD at 0x2000), PD entry for 0xc1000000
    (index 8) = `pde`, PT at 0x3000 mapping index 0 to 0x1000000."""
    mem = {0x1000 + 8 * 3: 0x2001, 0x2000 + 8 * 8: pde, 0x3000: 0x1000000 | 0x163}
    return lambda a: mem.get(a, 0)


def test_pae_walk_2m_page():
    read = _pae_tables(0x1000000 | 0x1E3)          # P RW A D PS G
    tr = paging_pae.translate(0xC1012345, 0x1000, read)
    assert tr.page_size == paging.PAGE_SIZE_2M and tr.phys == 0x1012345
    assert [s.level for s in tr.levels] == ["PDPT", "PD"]
    d = paging_pae.describe_walk(0xC1012345, tr.levels, tr)
    assert [lv["linux"] for lv in d["levels"]] == ["pgd", "pmd"] and d["page_size"] == 2 << 20


def test_pae_walk_4k_page_and_fault():
    read = _pae_tables(0x3000 | 0x63)
    tr = paging_pae.translate(0xC1000123, 0x1000, read)
    assert tr.page_size == 4096 and tr.phys == 0x1000123 and len(tr.levels) == 3
    with pytest.raises(paging.PageFault) as exc:
        paging_pae.translate(0x08048000, 0x1000, read)
    assert exc.value.level == "PDPT"


def test_stepover_32bit_push_and_inc_is_not_rex():
    plan = stepover.plan_resume(0xC1922D10, bytes([0x55, 0x89, 0xE5]), bits=32)
    assert plan.kind == "emulate" and plan.op == ("push", "ebp") and plan.target == 0xC1922D11
    regs, mem = stepover.emulate(plan, {"ebp": 0xC2E9BF00, "esp": 0xC2E9BFA0}, bits=32)
    assert regs == [("esp", 0xC2E9BF9C)] and mem == [(0xC2E9BF9C, (0xC2E9BF00).to_bytes(4, "little"))]
    # 0x41 is `inc %ecx` in 32-bit code, not a REX prefix: single-stepped.
    assert stepover.plan_resume(0xC1000000, bytes([0x41, 0x55]), bits=32).kind == "step"
    mov = stepover.plan_resume(0xC1000000, bytes([0x89, 0xE5]), bits=32)
    assert mov.op == ("mov", "ebp", "esp", 32)


def test_stepover_mov_imm32_both_modes():
    # entry_INT80_32's return path: b9 44 00 00 00 = mov $0x44, %ecx.
    plan = stepover.plan_resume(0xC193238C, bytes.fromhex("b944000000"), bits=32)
    assert plan.kind == "emulate" and plan.target == 0xC1932391
    assert stepover.emulate(plan, {"ecx": 7}, bits=32) == ([("ecx", 0x44)], [])
    plan = stepover.plan_resume(0xFFFFFFFF81000000, bytes.fromhex("41b8ffffffff"))
    assert stepover.emulate(plan, {"r8": 1 << 63}) == ([("r8", 0xFFFFFFFF)], [])
    assert stepover.plan_resume(0, bytes.fromhex("48b8")).kind == "step"   # imm64 form, cut short


def test_gate32_int80_and_idt_of_8_byte_gates():
    from gdbext.decoders import descriptors
    # idt.c SYSG(IA32_SYSCALL_VECTOR, entry_INT80_32): 32-bit interrupt gate, DPL 3, __KERNEL_CS.
    offset, sel = 0xC193229C, 0x60
    raw = (offset & 0xFFFF) | (sel << 16) | (0xEE << 40) | ((offset >> 16) << 48)
    g = descriptors.decode_gate32(raw, {0x60: "KERNEL_CS"})
    assert (g.offset, g.selector_name, g.kind, g.dpl, g.present, g.ist) == (offset, "KERNEL_CS", "interrupt", 3, True, 0)
    table = bytes(8 * 0x80) + raw.to_bytes(8, "little")
    entries = descriptors.decode_idt(table, (6, 1), gate_size=8)
    assert len(entries) == 0x81 and entries[0x80].gate.offset == offset
    with pytest.raises(Exception):
        descriptors.decode_idt(bytes(12), gate_size=8)


def test_switch32_fixture():
    from gdbext.decoders import x86_switch
    start, handler, default = 0xC10017B0, 0xC12E2710, 0xC1004050
    code = bytearray(bytes.fromhex("3e8d742600" "55" "89e5" "83fa04" "7407"))   # nop5; push; mov; cmp $4,%edx; je +7
    at = start + len(code)
    code += b"\xe8" + ((default - (at + 5)) & 0xFFFFFFFF).to_bytes(4, "little") + b"\x5d\xc3"
    at = start + len(code)
    code += b"\xe8" + ((handler - (at + 5)) & 0xFFFFFFFF).to_bytes(4, "little") + b"\x5d\xc3"
    m = x86_switch.decode_switch(bytes(code), start)
    assert m.target(4) == handler and m.target(3) == m.target(5) == m.default == default
    assert m.nr_syscalls == 5


def test_i386_vmlinux_switch_agrees_with_sys_call_table():
    """ia32_sys_call() of the cached 686-pae vmlinux, decoded, against its
    own sys_call_table (both from the file; ./scripts/lab fetch --arch i386)."""
    from kxlab import kernels
    from gdbext.decoders import x86_switch
    from gdbext.kernel import vmlinux
    k = kernels.cached("6.1", "i386")
    if k is None:
        pytest.skip("no cached i386 kernel")
    img = vmlinux.image(str(k.vmlinux))
    syms = {name: (value, size) for value, size, name in img.symbols()}
    start, size = syms["ia32_sys_call"]
    m = x86_switch.decode_switch(img.read(start, size), start)
    table, tsize = syms["sys_call_table"]
    handlers = vmlinux.read_u64s(img.read, table, tsize // 4, 4)
    assert m.nr_syscalls <= len(handlers) == 451
    assert [m.target(nr) for nr in range(len(handlers))] == handlers


def test_arch_registry_names_i386_and_x86_64():
    from gdbext import arch
    reg = arch.registry()
    assert {"x86_64", "i386"} <= set(reg)
    # gdb's names: "i386" both for a real i386 target (and an i386 vmlinux)
    # and, with no target and no file, for its default; current() answers
    # x86-64 in the latter case (_gdb_arch_name gives None there).
    assert arch.for_gdb_name("i386").name == "i386"
    assert arch.for_gdb_name("i386:x86-64").name == "x86_64"
    i386 = reg["i386"]
    assert i386.pointer_size == 4 and i386.pt_regs_size == 68 and i386.default_thread_size == 8192
    assert [a.name for a in i386.abis] == ["32"] and i386.abi("ia32").arg_regs == ("ebx", "ecx", "edx",
                                                                                   "esi", "edi", "ebp")
