"""Task-state segments.

64-bit: Intel SDM Vol.3 8.7 (Figure 8-11), struct x86_hw_tss in
arch/x86/include/asm/processor.h (same layout in 6.1 and 6.12).  Linux keeps
it in the per-cpu cpu_tss_rw; sp0 points at the cpu entry (trampoline)
stack, and because Linux never uses ring 2, entry_SYSCALL_64 stashes the
user RSP in sp2 (`movq %rsp, PER_CPU_VAR(cpu_tss_rw + TSS_sp2)`).

32-bit: SDM Vol.3 8.2.1 (Figure 8-2).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List

from gdbext.decoders.bits import Record, as_bytes, unpack_from

TSS64_SIZE = 104
TSS32_SIZE = 104

# IST slots (arch/x86/include/asm/page_64_types.h).  The IDT gate's IST field
# is IST_INDEX_* + 1 (ISTG() in arch/x86/kernel/idt.c), so IST_INDEX_DF=0 is
# ist1.  Identical in 6.1 and 6.12; #VC only with CONFIG_AMD_MEM_ENCRYPT.
IST_INDEX_6_1 = {"DF": 0, "NMI": 1, "DB": 2, "MCE": 3, "VC": 4}
IST_INDEX_6_12 = {"DF": 0, "NMI": 1, "DB": 2, "MCE": 3, "VC": 4}


def ist_names_for_version(major: int, minor: int) -> Dict[int, str]:
    """{gate IST number (1..7): exception stack name}."""
    table = IST_INDEX_6_1 if (major, minor) <= (6, 1) else IST_INDEX_6_12
    return {idx + 1: name for name, idx in table.items()}


IST_NAMES = ist_names_for_version(6, 12)


@dataclass
class Tss64(Record):
    rsp: List[int]          # [rsp0, rsp1, rsp2]; Linux: rsp2 = user RSP scratch on SYSCALL
    ist: List[int]          # [ist1 .. ist7]
    io_bitmap_base: int


def decode_tss64(raw: bytes) -> Tss64:
    """Needs at least the 104-byte hardware TSS; trailing bytes (Linux's I/O
    bitmap in struct tss_struct) are ignored."""
    data = as_bytes(raw, TSS64_SIZE, "64-bit TSS")
    rsp = list(unpack_from("<3Q", data, 4, "64-bit TSS"))
    ist = list(unpack_from("<7Q", data, 36, "64-bit TSS"))
    (iomap,) = unpack_from("<H", data, 102, "64-bit TSS")
    return Tss64(rsp=rsp, ist=ist, io_bitmap_base=iomap)


def encode_tss64(rsp=(0, 0, 0), ist=(0,) * 7, io_bitmap_base: int = TSS64_SIZE) -> bytes:
    """Build a 104-byte hardware TSS (for tests and fixtures)."""
    return struct.pack("<I3QQ7QIIHH", 0, *rsp, 0, *ist, 0, 0, 0, io_bitmap_base)


@dataclass
class Tss32(Record):
    prev_task_link: int
    esp0: int
    ss0: int
    esp1: int
    ss1: int
    esp2: int
    ss2: int
    cr3: int
    eip: int
    eflags: int
    eax: int
    ecx: int
    edx: int
    ebx: int
    esp: int
    ebp: int
    esi: int
    edi: int
    es: int
    cs: int
    ss: int
    ds: int
    fs: int
    gs: int
    ldt: int
    t: bool                 # debug trap on task switch
    io_map_base: int


def decode_tss32(raw: bytes) -> Tss32:
    data = as_bytes(raw, TSS32_SIZE, "32-bit TSS")
    u32 = lambda off: unpack_from("<I", data, off, "32-bit TSS")[0]  # noqa: E731
    u16 = lambda off: unpack_from("<H", data, off, "32-bit TSS")[0]  # noqa: E731
    return Tss32(
        prev_task_link=u16(0),
        esp0=u32(4), ss0=u16(8), esp1=u32(12), ss1=u16(16), esp2=u32(20), ss2=u16(24),
        cr3=u32(28), eip=u32(32), eflags=u32(36),
        eax=u32(40), ecx=u32(44), edx=u32(48), ebx=u32(52),
        esp=u32(56), ebp=u32(60), esi=u32(64), edi=u32(68),
        es=u16(72), cs=u16(76), ss=u16(80), ds=u16(84), fs=u16(88), gs=u16(92),
        ldt=u16(96), t=bool(u16(100) & 1), io_map_base=u16(102))
