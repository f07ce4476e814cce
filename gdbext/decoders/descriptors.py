"""Segment selectors, GDT descriptors and IDT gates (x86-64).

Layouts: Intel SDM Vol.3 3.4.2 (selectors), 3.4.5 (segment descriptors),
7.2.3 (16-byte TSS/LDT descriptors in IA-32e mode), 6.14.1 (64-bit IDT
gates).  Linux's GDT layout and descriptor values are from
arch/x86/include/asm/segment.h and arch/x86/kernel/cpu/common.c; they are
identical in 6.1 and 6.12 (6.12 spells the flags DESC_CODE64 etc. from
arch/x86/include/asm/desc_defs.h, which expand to the same 0xa09b/0xc093/...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple, Union

from gdbext.errors import DecodeError
from gdbext.decoders.bits import MASK32, MASK64, Record, as_bytes, bit, check_uint, field, int_or_bytes

# --- Linux x86-64 GDT layout (arch/x86/include/asm/segment.h, both versions) ---
GDT_ENTRY_KERNEL32_CS = 1
GDT_ENTRY_KERNEL_CS = 2
GDT_ENTRY_KERNEL_DS = 3
GDT_ENTRY_DEFAULT_USER32_CS = 4
GDT_ENTRY_DEFAULT_USER_DS = 5
GDT_ENTRY_DEFAULT_USER_CS = 6
GDT_ENTRY_TSS = 8          # 16 bytes: slots 8 and 9
GDT_ENTRY_LDT = 10         # 16 bytes: slots 10 and 11
GDT_ENTRY_TLS_MIN = 12
GDT_ENTRY_TLS_MAX = 14
GDT_ENTRY_CPUNODE = 15
GDT_ENTRIES = 16

KERNEL32_CS = GDT_ENTRY_KERNEL32_CS * 8          # 0x08
KERNEL_CS = GDT_ENTRY_KERNEL_CS * 8              # 0x10
KERNEL_DS = GDT_ENTRY_KERNEL_DS * 8              # 0x18
USER32_CS = GDT_ENTRY_DEFAULT_USER32_CS * 8 + 3  # 0x23
USER_DS = GDT_ENTRY_DEFAULT_USER_DS * 8 + 3      # 0x2b (6.1 also calls it __USER32_DS)
USER_CS = GDT_ENTRY_DEFAULT_USER_CS * 8 + 3      # 0x33
TSS_SEL = GDT_ENTRY_TSS * 8                      # 0x40, what `ltr` loads
LDT_SEL = GDT_ENTRY_LDT * 8                      # 0x50, what `lldt` loads
CPUNODE_SEG = GDT_ENTRY_CPUNODE * 8 + 3          # 0x7b, read with `lsl` by vdso getcpu

# Names by full selector value: RPL is part of the value the kernel uses, so
# 0x13 is *not* KERNEL_CS.  TLS selectors are loaded by user code (RPL 3).
SELECTOR_NAMES: Dict[int, str] = {
    0x00: "NULL",
    KERNEL32_CS: "KERNEL32_CS",
    KERNEL_CS: "KERNEL_CS",
    KERNEL_DS: "KERNEL_DS",
    USER32_CS: "USER32_CS",
    USER_DS: "USER_DS",
    USER_CS: "USER_CS",
    TSS_SEL: "TSS",
    LDT_SEL: "LDT",
    GDT_ENTRY_TLS_MIN * 8 + 3: "TLS0",
    (GDT_ENTRY_TLS_MIN + 1) * 8 + 3: "TLS1",
    GDT_ENTRY_TLS_MAX * 8 + 3: "TLS2",
    CPUNODE_SEG: "CPUNODE",
}

# Names by GDT slot, regardless of RPL.
GDT_SLOT_NAMES: Dict[int, str] = {
    0: "NULL",
    GDT_ENTRY_KERNEL32_CS: "KERNEL32_CS",
    GDT_ENTRY_KERNEL_CS: "KERNEL_CS",
    GDT_ENTRY_KERNEL_DS: "KERNEL_DS",
    GDT_ENTRY_DEFAULT_USER32_CS: "USER32_CS",
    GDT_ENTRY_DEFAULT_USER_DS: "USER_DS",
    GDT_ENTRY_DEFAULT_USER_CS: "USER_CS",
    GDT_ENTRY_TSS: "TSS",
    GDT_ENTRY_TSS + 1: "TSS (upper half)",
    GDT_ENTRY_LDT: "LDT",
    GDT_ENTRY_LDT + 1: "LDT (upper half)",
    GDT_ENTRY_TLS_MIN: "TLS0",
    GDT_ENTRY_TLS_MIN + 1: "TLS1",
    GDT_ENTRY_TLS_MAX: "TLS2",
    GDT_ENTRY_CPUNODE: "CPUNODE",
}

# vdso getcpu: CPUNODE limit and TSC_AUX hold (node << 12) | cpu
# (arch/x86/include/asm/segment.h: VDSO_CPUNODE_BITS, vdso_encode_cpunode()).
VDSO_CPUNODE_BITS = 12
VDSO_CPUNODE_MASK = 0xFFF


def decode_cpunode(value: int) -> Dict[str, int]:
    value = check_uint(value, 64, "cpunode value")
    return {"cpu": value & VDSO_CPUNODE_MASK, "node": value >> VDSO_CPUNODE_BITS}


# --- selectors (SDM Vol.3 3.4.2) ---

@dataclass
class Selector(Record):
    selector: int
    index: int
    ti: int           # 0 = GDT, 1 = LDT
    rpl: int
    name: Optional[str]   # exact Linux name for this value (RPL included), else None
    entry: Optional[str]  # Linux name of the GDT slot it indexes (ignores RPL)


def decode_selector(v: int) -> Selector:
    v = check_uint(v, 16, "selector")
    index, ti, rpl = v >> 3, (v >> 2) & 1, v & 3
    name = SELECTOR_NAMES.get(v) if ti == 0 else None
    entry = GDT_SLOT_NAMES.get(index) if ti == 0 else None
    return Selector(v, index, ti, rpl, name, entry)


def selector_name(v: int) -> Optional[str]:
    return decode_selector(v).name


# --- 8-byte segment descriptors (SDM Vol.3 3.4.5) ---

# System-segment and gate types, SDM Vol.3 Table 3-2.  In IA-32e mode only
# LDT, 64-bit TSS, call/interrupt/trap gates exist; the rest are reserved.
SYSTEM_TYPES_LONG: Dict[int, str] = {
    0x2: "ldt",
    0x9: "tss-avail",
    0xB: "tss-busy",
    0xC: "call-gate",
    0xE: "interrupt-gate",
    0xF: "trap-gate",
}
SYSTEM_TYPES_LEGACY: Dict[int, str] = {
    0x1: "tss16-avail",
    0x2: "ldt",
    0x3: "tss16-busy",
    0x4: "call-gate16",
    0x5: "task-gate",
    0x6: "interrupt-gate16",
    0x7: "trap-gate16",
    0x9: "tss-avail",
    0xB: "tss-busy",
    0xC: "call-gate",
    0xE: "interrupt-gate",
    0xF: "trap-gate",
}
# In long mode these system types are 16 bytes long (SDM Vol.3 7.2.3, 6.14.1).
SIXTEEN_BYTE_TYPES = frozenset({0x2, 0x9, 0xB, 0xC, 0xE, 0xF})


def _system_kind(type_: int, long_mode: bool) -> str:
    table = SYSTEM_TYPES_LONG if long_mode else SYSTEM_TYPES_LEGACY
    return table.get(type_, "reserved")


@dataclass
class SegmentDescriptor(Record):
    raw: int
    base: int
    limit: int             # raw 20-bit limit
    effective_limit: int   # byte limit after G scaling
    type: int              # 4-bit type field
    s: int                 # 1 = code/data, 0 = system
    dpl: int
    present: bool
    avl: bool
    long: bool             # L: 64-bit code segment
    db: bool               # D/B
    granularity: bool      # G: limit in 4 KiB units
    kind: str              # null/code/data/ldt/tss-avail/tss-busy/call-gate/.../reserved
    accessed: Optional[bool]
    readable: Optional[bool]     # code only
    writable: Optional[bool]     # data only
    conforming: Optional[bool]   # code only
    expand_down: Optional[bool]  # data only


def decode_segment_descriptor(raw: Union[bytes, bytearray, int], long_mode: bool = True) -> SegmentDescriptor:
    v = int_or_bytes(raw, 8, "segment descriptor")
    limit = field(v, 0, 16) | (field(v, 48, 4) << 16)
    base = field(v, 16, 24) | (field(v, 56, 8) << 24)
    type_ = field(v, 40, 4)
    s = field(v, 44, 1)
    g = bit(v, 55)
    eff = (limit << 12) | 0xFFF if g else limit
    accessed = readable = writable = conforming = expand_down = None
    if v == 0:
        kind = "null"
    elif s:
        accessed = bool(type_ & 1)
        if type_ & 8:
            kind = "code"
            readable = bool(type_ & 2)
            conforming = bool(type_ & 4)
        else:
            kind = "data"
            writable = bool(type_ & 2)
            expand_down = bool(type_ & 4)
    else:
        kind = _system_kind(type_, long_mode)
    return SegmentDescriptor(
        raw=v, base=base, limit=limit, effective_limit=eff, type=type_, s=s,
        dpl=field(v, 45, 2), present=bit(v, 47), avl=bit(v, 52), long=bit(v, 53),
        db=bit(v, 54), granularity=g, kind=kind, accessed=accessed, readable=readable,
        writable=writable, conforming=conforming, expand_down=expand_down)


def encode_segment_descriptor(base: int = 0, limit: int = 0, type: int = 0, s: int = 1,
                              dpl: int = 0, present: bool = True, avl: bool = False,
                              long: bool = False, db: bool = False,
                              granularity: bool = False) -> bytes:
    """Inverse of decode_segment_descriptor: 8 little-endian bytes."""
    base = check_uint(base, 32, "base")
    limit = check_uint(limit, 20, "limit")
    check_uint(type, 4, "type")
    check_uint(s, 1, "s")
    check_uint(dpl, 2, "dpl")
    v = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (type << 40) | (s << 44) | (dpl << 45)
    v |= (int(bool(present)) << 47) | ((limit >> 16) << 48) | (int(bool(avl)) << 52)
    v |= (int(bool(long)) << 53) | (int(bool(db)) << 54) | (int(bool(granularity)) << 55)
    v |= (base >> 24) << 56
    return v.to_bytes(8, "little")


def gdt_entry_init(flags: int, base: int, limit: int) -> int:
    """The value the kernel's GDT_ENTRY_INIT(flags, base, limit) produces
    (arch/x86/include/asm/desc_defs.h): flags bits 0-7 are the access byte,
    bits 12-15 are AVL/L/D/G."""
    check_uint(flags, 16, "flags")
    raw = encode_segment_descriptor(
        base=base, limit=limit, type=flags & 0xF, s=(flags >> 4) & 1,
        dpl=(flags >> 5) & 3, present=bool(flags & 0x80), avl=bool(flags & 0x1000),
        long=bool(flags & 0x2000), db=bool(flags & 0x4000), granularity=bool(flags & 0x8000))
    return int.from_bytes(raw, "little")


# --- 16-byte system descriptors (TSS/LDT in IA-32e mode, SDM Vol.3 7.2.3) ---

@dataclass
class SystemDescriptor(Record):
    raw_low: int
    raw_high: int
    base: int              # full 64-bit base
    limit: int
    effective_limit: int
    type: int
    dpl: int
    present: bool
    avl: bool
    granularity: bool
    kind: str
    reserved_high: int     # bits 127:96, must be zero (SDM: type there must read 0)


def decode_system_descriptor(raw: Union[bytes, bytearray, int]) -> SystemDescriptor:
    v = int_or_bytes(raw, 16, "system descriptor")
    low, high = v & MASK64, v >> 64
    seg = decode_segment_descriptor(low)
    if seg.s:
        raise DecodeError("not a system descriptor (S bit set)")
    return SystemDescriptor(
        raw_low=low, raw_high=high, base=seg.base | ((high & MASK32) << 32),
        limit=seg.limit, effective_limit=seg.effective_limit, type=seg.type, dpl=seg.dpl,
        present=seg.present, avl=seg.avl, granularity=seg.granularity,
        kind=_system_kind(seg.type, True), reserved_high=high >> 32)


def encode_system_descriptor(base: int, limit: int, type: int = 0x9, dpl: int = 0,
                             present: bool = True, avl: bool = False,
                             granularity: bool = False) -> bytes:
    """16 bytes, as set_tssldt_descriptor() in arch/x86/include/asm/desc.h builds."""
    base = check_uint(base, 64, "base")
    low = encode_segment_descriptor(base=base & MASK32, limit=limit, type=type, s=0,
                                    dpl=dpl, present=present, avl=avl, granularity=granularity)
    return low + (base >> 32).to_bytes(4, "little") + bytes(4)


# --- GDT ---

@dataclass
class GdtEntry(Record):
    index: int
    selector: int                 # index * 8 (RPL 0)
    name: Optional[str]
    raw: int                      # this 8-byte slot
    kind: str                     # descriptor kind, or "upper-half" for slot 2 of 16
    descriptor: Optional[Union[SegmentDescriptor, SystemDescriptor]]
    upper_half_of: Optional[int]  # for the second slot of a 16-byte descriptor
    note: Optional[str] = None


def decode_gdt(table: Union[bytes, bytearray], names: Optional[Mapping[int, str]] = None,
               long_mode: bool = True) -> List[GdtEntry]:
    """Decode a GDT image (length = GDTR.limit + 1, a multiple of 8).

    In long mode a system descriptor of a 16-byte type (LDT, TSS, gates)
    consumes two slots; the second is reported with kind "upper-half" and
    `upper_half_of` pointing at its owner instead of being decoded."""
    data = as_bytes(table, 0, "GDT")
    if len(data) % 8:
        raise DecodeError(f"GDT: length {len(data)} is not a multiple of 8")
    slot_names = GDT_SLOT_NAMES if names is None else names
    out: List[GdtEntry] = []
    n = len(data) // 8
    i = 0
    while i < n:
        raw = int.from_bytes(data[i * 8:i * 8 + 8], "little")
        seg = decode_segment_descriptor(raw, long_mode)
        name = slot_names.get(i)
        if long_mode and raw and not seg.s and seg.type in SIXTEEN_BYTE_TYPES:
            if i + 1 < n:
                high = int.from_bytes(data[i * 8 + 8:i * 8 + 16], "little")
                sysd = decode_system_descriptor(raw | (high << 64))
                out.append(GdtEntry(i, i * 8, name, raw, sysd.kind, sysd, None))
                out.append(GdtEntry(i + 1, (i + 1) * 8, slot_names.get(i + 1), high,
                                    "upper-half", None, i))
                i += 2
                continue
            out.append(GdtEntry(i, i * 8, name, raw, seg.kind, seg, None,
                                note="16-byte system descriptor cut off by the table end"))
        else:
            out.append(GdtEntry(i, i * 8, name, raw, seg.kind, seg, None))
        i += 1
    return out


# --- IDT (SDM Vol.3 6.14.1, struct gate_struct in asm/desc_defs.h) ---

GATE_INTERRUPT = 0xE
GATE_TRAP = 0xF
GATE_CALL = 0xC
GATE_TASK = 0x5

GATE_KINDS = {GATE_INTERRUPT: "interrupt", GATE_TRAP: "trap", GATE_CALL: "call", GATE_TASK: "task"}

# Vectors 0-31: SDM Vol.3 Table 6-1 (plus AMD's #HV/#VC/#SX); Linux numbers
# are in arch/x86/include/asm/trapnr.h (identical in 6.1 and 6.12).
EXCEPTION_NAMES: Dict[int, str] = {
    0: "#DE divide error",
    1: "#DB debug",
    2: "NMI",
    3: "#BP breakpoint",
    4: "#OF overflow",
    5: "#BR bound range exceeded",
    6: "#UD invalid opcode",
    7: "#NM device not available",
    8: "#DF double fault",
    9: "coprocessor segment overrun",
    10: "#TS invalid TSS",
    11: "#NP segment not present",
    12: "#SS stack-segment fault",
    13: "#GP general protection",
    14: "#PF page fault",
    15: "reserved",  # Linux: X86_TRAP_SPURIOUS
    16: "#MF x87 floating-point error",
    17: "#AC alignment check",
    18: "#MC machine check",
    19: "#XM SIMD floating-point exception",
    20: "#VE virtualization exception",
    21: "#CP control protection",
    22: "reserved", 23: "reserved", 24: "reserved", 25: "reserved",
    26: "reserved", 27: "reserved",
    28: "#HV hypervisor injection",
    29: "#VC VMM communication",
    30: "#SX security exception",
    31: "reserved",
    0x80: "IA32 syscall (int 0x80)",
}

# Vectors whose exception pushes an error code (asm/segment.h EXCEPTION_ERRCODE_MASK).
EXCEPTION_ERRCODE_MASK = 0x20027D00

# Linux system vectors (arch/x86/include/asm/irq_vectors.h).
_SYSTEM_VECTORS_COMMON = {
    0xFF: "SPURIOUS_APIC", 0xFE: "ERROR_APIC", 0xFD: "RESCHEDULE", 0xFC: "CALL_FUNCTION",
    0xFB: "CALL_FUNCTION_SINGLE", 0xFA: "THERMAL_APIC", 0xF9: "THRESHOLD_APIC",
    0xF8: "REBOOT", 0xF7: "X86_PLATFORM_IPI", 0xF6: "IRQ_WORK", 0xF4: "DEFERRED_ERROR",
    0xF3: "HYPERVISOR_CALLBACK", 0xF2: "POSTED_INTR", 0xF1: "POSTED_INTR_WAKEUP",
    0xF0: "POSTED_INTR_NESTED", 0xEF: "MANAGED_IRQ_SHUTDOWN",
    0xEE: "HYPERV_REENLIGHTENMENT", 0xED: "HYPERV_STIMER0", 0xEC: "LOCAL_TIMER",
}
# 6.1 still has IRQ_MOVE_CLEANUP_VECTOR at FIRST_EXTERNAL_VECTOR (0x20); 6.12
# has dropped it and added POSTED_MSI_NOTIFICATION_VECTOR (0xeb).  Only the
# 6.1 and 6.12 trees were checked: kernels after 6.1 get the 6.12 table.
SYSTEM_VECTORS_6_1 = {**_SYSTEM_VECTORS_COMMON, 0x20: "IRQ_MOVE_CLEANUP"}
SYSTEM_VECTORS_6_12 = {**_SYSTEM_VECTORS_COMMON, 0xEB: "POSTED_MSI_NOTIFICATION"}


def system_vectors_for_version(major: int, minor: int) -> Dict[int, str]:
    return SYSTEM_VECTORS_6_1 if (major, minor) <= (6, 1) else SYSTEM_VECTORS_6_12


def vector_name(vector: int, version: Optional[Tuple[int, int]] = None) -> str:
    """Human name for an IDT vector: exception, int 0x80, Linux system vector
    or "external interrupt"."""
    vector = check_uint(vector, 8, "vector")
    if vector in EXCEPTION_NAMES:
        return EXCEPTION_NAMES[vector]
    sysv = system_vectors_for_version(*(version or (6, 12)))
    if vector in sysv:
        return sysv[vector]
    return "external interrupt"


@dataclass
class Gate(Record):
    raw: int
    offset: int          # 64-bit handler address
    selector: int
    selector_name: Optional[str]
    ist: int             # 0 = no stack switch, 1..7 = tss.ist[ist-1]
    type: int            # 4-bit type
    kind: str            # "interrupt" / "trap" / "call" / "task" / "reserved"
    dpl: int
    present: bool
    reserved: int        # bits 127:96 (must be zero)


def decode_gate(raw16: Union[bytes, bytearray, int]) -> Gate:
    v = int_or_bytes(raw16, 16, "IDT gate")
    offset = field(v, 0, 16) | (field(v, 48, 16) << 16) | (field(v, 64, 32) << 32)
    sel = field(v, 16, 16)
    type_ = field(v, 40, 4)
    return Gate(
        raw=v, offset=offset, selector=sel, selector_name=SELECTOR_NAMES.get(sel),
        ist=field(v, 32, 3), type=type_, kind=GATE_KINDS.get(type_, "reserved"),
        dpl=field(v, 45, 2), present=bit(v, 47), reserved=v >> 96)


def encode_gate(offset: int, selector: int = KERNEL_CS, ist: int = 0, type: int = GATE_INTERRUPT,
                dpl: int = 0, present: bool = True) -> bytes:
    """Inverse of decode_gate: 16 little-endian bytes (like idt.c's G() macro)."""
    offset = check_uint(offset, 64, "offset")
    check_uint(selector, 16, "selector")
    check_uint(ist, 3, "ist")
    check_uint(type, 4, "type")
    check_uint(dpl, 2, "dpl")
    v = (offset & 0xFFFF) | (selector << 16) | (ist << 32) | (type << 40) | (dpl << 45)
    v |= (int(bool(present)) << 47) | (((offset >> 16) & 0xFFFF) << 48) | ((offset >> 32) << 64)
    return v.to_bytes(16, "little")


def decode_gate32(raw8: Union[bytes, bytearray, int], names: Optional[Mapping[int, str]] = None) -> Gate:
    """An 8-byte protected-mode gate (SDM Vol.3A 6.11, Figure 6-2): offset
    15:0 and 31:16, selector, type (0xE: 32-bit interrupt gate, 0xF: trap,
    0x5: task), DPL, P; no IST.  `names`: selector -> name (32-bit GDT)."""
    v = int_or_bytes(raw8, 8, "IDT gate")
    sel = field(v, 16, 16)
    type_ = field(v, 40, 4)
    return Gate(
        raw=v, offset=field(v, 0, 16) | (field(v, 48, 16) << 16), selector=sel,
        selector_name=(names or {}).get(sel), ist=0, type=type_, kind=GATE_KINDS.get(type_, "reserved"),
        dpl=field(v, 45, 2), present=bit(v, 47), reserved=0)


@dataclass
class IdtEntry(Record):
    vector: int
    name: str
    gate: Gate


def decode_idt(table: Union[bytes, bytearray], version: Optional[Tuple[int, int]] = None,
               gate_size: int = 16, names: Optional[Mapping[int, str]] = None) -> List[IdtEntry]:
    """Decode an IDT image (length = IDTR.limit + 1, a multiple of
    `gate_size`: 16 in long mode, 8 in protected mode)."""
    data = as_bytes(table, 0, "IDT")
    if len(data) % gate_size:
        raise DecodeError(f"IDT: length {len(data)} is not a multiple of {gate_size}")
    if len(data) > 256 * gate_size:
        raise DecodeError(f"IDT: {len(data)} bytes is more than 256 gates")
    decode = decode_gate if gate_size == 16 else lambda raw: decode_gate32(raw, names)
    return [IdtEntry(i, vector_name(i, version), decode(data[i * gate_size:(i + 1) * gate_size]))
            for i in range(len(data) // gate_size)]
