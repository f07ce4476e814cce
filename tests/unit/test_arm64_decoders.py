"""arm64 decoders on byte fixtures from the lab's 6.1.0-57-cloud-arm64
(instruction words read with gdb-multiarch from its vmlinux, register
values from a stopped guest) and hypothesis round trips."""
import struct

from hypothesis import given, strategies as st

from gdbext.arch.arm64 import ARCH, stepover
from gdbext.arch.base import ResumePlan
from gdbext.decoders import arm64_insn as insn
from gdbext.decoders import arm64_paging as paging
from gdbext.decoders import arm64_ptregs as ptregs
from gdbext.decoders import arm64_sysregs as sysregs
from gdbext.decoders import relocations
from gdbext.decoders.qemu_monitor import parse_info_registers_aarch64

EL0T_64_SYNC = 0xFFFF8000080113BC
# stp x0,x1,[sp]; stp x2,x3,[sp,#16]; stp x4,x5,[sp,#32]; stp x6,x7,[sp,#48]
EL0T_64_SYNC_CODE = struct.pack("<4I", 0xA90007E0, 0xA9010FE2, 0xA90217E4, 0xA9031FE6)
# paciasp; stp x29,x30,[sp,#-32]!; mov x29,sp; str x19,[sp,#16]
EL0_SVC_CODE = struct.pack("<4I", 0xD503233F, 0xA9BE7BFD, 0x910003FD, 0xF9000BF3)
BL_AT, BL_WORD, BL_TARGET = 0xFFFF800008BAD6B4, 0x97D1EB30, 0xFFFF800008028374   # bl do_el0_svc


def test_bl_from_el0_svc():
    assert insn.branch_target(BL_WORD, BL_AT) == ("bl", BL_TARGET)
    assert insn.direct_calls(struct.pack("<I", BL_WORD), BL_AT) == [(BL_AT, BL_TARGET, BL_AT + 4)]


@given(st.integers(-(1 << 25), (1 << 25) - 1), st.booleans())
def test_branch_roundtrip(words, link):
    pc = 0xFFFF800008000000
    word = (0x94000000 if link else 0x14000000) | (words & 0x03FFFFFF)
    kind, target = insn.branch_target(word, pc)
    assert kind == ("bl" if link else "b") and target == (pc + 4 * words) & (2**64 - 1)


def test_kernel_entry_stores_and_pending():
    assert insn.leading_stores(EL0T_64_SYNC_CODE) == 16
    assert insn.leading_stores(EL0_SVC_CODE) == 0


def test_stepover_plans():
    assert stepover.plan_resume(EL0T_64_SYNC, EL0T_64_SYNC_CODE).kind == "emulate"
    assert stepover.plan_resume(0x1000, EL0_SVC_CODE).kind == "step"          # paciasp needs the keys
    nop = stepover.plan_resume(0x1000, struct.pack("<I", insn.NOP))
    assert nop == ResumePlan("skip", 4, 0x1004, (), "nop")
    b = stepover.plan_resume(0x1000, struct.pack("<I", 0x14000010))
    assert (b.kind, b.target) == ("skip", 0x1040)


def test_emulated_stp_and_mov():
    regs = {"x29": 0x29, "x30": 0x30, "sp": 0x8000, "x0": 0xA, "x1": 0xB}
    pre = stepover.plan_resume(0x1000, EL0_SVC_CODE[4:])          # stp x29, x30, [sp, #-32]!
    assert stepover.emulate(pre, regs) == ([("sp", 0x7FE0)], [(0x7FE0, struct.pack("<QQ", 0x29, 0x30))])
    save = stepover.plan_resume(EL0T_64_SYNC, EL0T_64_SYNC_CODE)   # stp x0, x1, [sp]
    assert stepover.emulate(save, regs) == ([], [(0x8000, struct.pack("<QQ", 0xA, 0xB))])
    mov = stepover.plan_resume(0x1000, EL0_SVC_CODE[8:])           # mov x29, sp
    assert stepover.emulate(mov, regs) == ([("x29", 0x8000)], [])


@given(st.lists(st.integers(0, 2**64 - 1), min_size=35, max_size=35), st.integers(-(2**31), 2**31 - 1))
def test_pt_regs_roundtrip(words, syscallno):
    values = dict(zip(ptregs.PT_REGS_FIELDS[:35], words), syscallno=syscallno)
    pt = ptregs.decode_pt_regs(ptregs.encode_pt_regs(values))
    assert pt.to_dict() == values


def test_pt_regs_offsets_and_modes():
    assert ptregs.PT_REGS_OFFSETS["orig_x0"] == 0x110 and ptregs.PT_REGS_OFFSETS["syscallno"] == 0x118
    assert ptregs.pstate_mode(0x1000) == "64" and ptregs.pstate_mode(0x10) == "32"
    assert ptregs.pstate_mode(0x3C5) == "kernel"


def test_sysregs_from_a_stopped_guest():
    esr = sysregs.decode_esr(0x56000000)
    assert (esr["ec"], esr["il"], esr["imm16"]) == (0x15, 1, 0) and esr["ec_name"].startswith("SVC64")
    assert sysregs.decode_esr(0x46000000)["ec"] == 0x11
    tcr = sysregs.decode_tcr(0x015001F5B5503510)
    assert (tcr["t0sz"], tcr["t1sz"], tcr["tg0"], tcr["tg1"], tcr["ips_bits"], tcr["a1"]) == (16, 16, "4K", "4K", 48, 1)
    assert tcr["checks"] == []
    mair = sysregs.decode_mair(0x40044FFFF)
    assert [m["meaning"] for m in mair[:5]] == ["Normal write-back", "Normal write-back", "Normal non-cacheable",
                                              "Device-nGnRnE", "Device-nGnRE"]
    sctlr = sysregs.decode_sctlr(0x02000018B474591D)
    assert {"M", "C", "I", "SA"} <= set(sctlr["set"]) and sctlr["checks"] == []
    ttbr = sysregs.decode_ttbr(0xFD9600004158F001)
    assert (ttbr["asid"], ttbr["baddr"], ttbr["cnp"]) == (0xFD96, 0x4158F000, 1)
    assert sysregs.decode_pstate(0x404000C5)["mode"] == "EL1h"
    assert sysregs.strip_pac(0xFA89800008011548) == 0xFFFF800008011548
    assert sysregs.strip_pac(0x0012000000400000, kernel=False) == 0x400000


def _tables(entries):
    mem = {}
    for address, value in entries.items():
        mem[address] = value
    return lambda a: mem.get(a, 0)


def test_page_walk_4k_and_block():
    va = 0xFFFF800008011548
    l0, l1, l2, l3 = 0x1000, 0x2000, 0x3000, 0x4000
    idx = {lv: paging.index(va, lv) for lv in ("L0", "L1", "L2", "L3")}
    read = _tables({l0 + 8 * idx["L0"]: l1 | 3, l1 + 8 * idx["L1"]: l2 | 3, l2 + 8 * idx["L2"]: l3 | 3,
                    l3 + 8 * idx["L3"]: 0x40211000 | (1 << 10) | 3 | (2 << 6)})
    t = paging.translate(va, l0 | 1, read)
    assert t.phys == 0x40211548 and t.page_size == 4096 and not t.writable
    block = _tables({l0 + 8 * idx["L0"]: l1 | 3, l1 + 8 * idx["L1"]: l2 | 3,
                     l2 + 8 * idx["L2"]: 0x40000000 | (1 << 10) | 1 | (1 << 54)})
    t = paging.translate(va, l0, block)
    assert t.page_size == 2 << 20 and t.phys == 0x40000000 | (va & 0x1FFFFF)
    try:
        paging.translate(va, l0, _tables({}))
    except paging.PageFault as fault:
        d = paging.describe_walk(va, fault.steps, fault=fault)
        assert d["fault"]["level"] == "L0" and d["fault"]["reason"] == "not valid"
    else:
        raise AssertionError("no fault")
    assert paging.levels_for(48) == ["L0", "L1", "L2", "L3"] and paging.levels_for(39) == ["L1", "L2", "L3"]


def test_relative_relocations():
    raw = struct.pack("<QQq", 0x1008, relocations.R_AARCH64_RELATIVE, -0x10) + struct.pack("<QQq", 0x1020, 2, 5)
    relocs = relocations.RelativeRelocations.parse_rela(raw, relocations.R_AARCH64_RELATIVE)
    assert len(relocs) == 1
    data = relocations.apply(relocs, 0x1000, bytes(24))
    assert struct.unpack("<3Q", data) == (0, 2**64 - 0x10, 0)
    assert relocations.apply(relocs, 0x100C, bytes(8))[:4] == b"\xff" * 4      # the entry's upper half


@given(st.integers(0, 2**32 - 1))
def test_nr_is_an_int(raw):
    nr = ARCH.nr_from_raw(ARCH.abi("64"), raw | (0xDEAD << 32))
    assert nr == (raw - 2**32 if raw >> 31 else raw)


MONITOR = """CPU#0
 PC=ffff800008baf4fc X00=000000000002a7ac X01=ffff00001feab558
X08=ffff800009829c68 X09=ffff8000080f734c X10=d3d239364dbfe0a3
X29=ffff800009813d50 X30=84a4800008baf514  SP=ffff800009813d50
PSTATE=404000c5 -Z-- EL1h  SVCR=00000000 --  BTYPE=0     FPCR=00000000 FPSR=00000000
P00=0000000000000001 P01=0000000000000000
"""


def test_monitor_info_registers_aarch64():
    r = parse_info_registers_aarch64(MONITOR)
    assert r["pc"] == 0xFFFF800008BAF4FC and r["x1"] == 0xFFFF00001FEAB558 and r["x30"] == 0x84A4800008BAF514
    assert r["sp"] == 0xFFFF800009813D50 and r["pstate"] == 0x404000C5 and r["mode"] == "EL1h"
    assert "p0" not in r


# The 6.1 cloud vmlinux's tramp_vectors (KPTI slot, lower-EL AArch64 sync
# entry + 0x38): tramp_data_read_var's `ldr x30, .L__tramp_data_vectors`,
# whose literal (relocated) is `vectors` 0xffff800008010800.
LDR_TRAMP_AT, LDR_TRAMP_WORD, LDR_TRAMP_LITERAL = 0xFFFF800009389C38, 0x58009E5E, 0xFFFF80000938B000


def test_ldr_literal_in_the_kpti_trampoline():
    assert insn.ldr_literal(LDR_TRAMP_WORD, LDR_TRAMP_AT) == (30, LDR_TRAMP_LITERAL)
    assert insn.ldr_literal(BL_WORD, BL_AT) is None


@given(st.integers(-(1 << 18), (1 << 18) - 1), st.integers(0, 30), st.integers(0, (1 << 62) - 1))
def test_ldr_literal_roundtrip(words, rt, pc):
    pc &= ~3
    word = 0x58000000 | (words & 0x7FFFF) << 5 | rt
    assert insn.ldr_literal(word, pc) == (rt, (pc + 4 * words) % (1 << 64))


def test_kpti_kernel_root_from_tramp_pg_dir(monkeypatch):
    """TTBR1_EL1 on tramp_pg_dir (maps nothing of the kernel): the root is
    TTBR1 + (swapper_pg_dir - tramp_pg_dir) when that table maps
    swapper_pg_dir onto itself; on swapper_pg_dir it is TTBR1 itself."""
    from gdbext.arch.arm64 import kpti
    from gdbext.kernel import symbols
    link = {"tramp_pg_dir": 0xFFFF80000938D000, "swapper_pg_dir": 0xFFFF80000938F000}   # 6.1's System.map
    monkeypatch.setattr(symbols, "lookup", link.get)
    tramp, swapper = 0x4158D000, 0x4158F000
    va = link["swapper_pg_dir"]
    l1, l2, l3 = 0x50000000, 0x50001000, 0x50002000
    read = _tables({swapper + 8 * paging.index(va, "L0"): l1 | 3, l1 + 8 * paging.index(va, "L1"): l2 | 3,
                    l2 + 8 * paging.index(va, "L2"): l3 | 3,
                    l3 + 8 * paging.index(va, "L3"): swapper | (1 << 10) | 3})
    user_asid = (0x16B << 48) | tramp                     # the user ASID (odd) on tramp_pg_dir
    assert kpti.kernel_root({"TTBR1_EL1": user_asid}, read, 48) == swapper
    assert kpti.kernel_root({"TTBR1_EL1": (0x16A << 48) | swapper}, read, 48) == (0x16A << 48) | swapper
    # Tables that map neither: TTBR1_EL1 as it is.
    assert kpti.kernel_root({"TTBR1_EL1": user_asid}, _tables({}), 48) == user_asid


def test_kernel_ventry_x0_window():
    """kernel_ventry (entry.S, CONFIG_VMAP_STACK): b; mrs x30, tpidrro_el0;
    msr tpidrro_el0, xzr; sub sp, sp, #PT_REGS_SIZE; add sp, sp, x0;
    sub x0, sp, x0; tbnz x0, #14, 0f; sub x0, sp, x0; sub sp, sp, x0; b ..."""
    words = [0x14000003, 0xD53BD07E, 0xD51BD07F, 0xD10543FF, 0x8B2063FF,
             0xCB2063E0, 0x37700080, 0xCB2063E0, 0xCB2063FF, 0x14000000]
    code = b"".join(w.to_bytes(4, "little") for w in words)
    assert insn.x0_clobbered_window(code) == (6 * 4, 7 * 4)
    assert insn.x0_clobbered_window(code[:6 * 4]) is None
