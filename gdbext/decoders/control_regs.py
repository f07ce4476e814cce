"""x86-64 control registers, bit by bit: CR0, CR4, CR8, XCR0 (EFER's bits
are decoders/msr.py's EFER_BITS, CR3's fields decoders/paging.decode_cr3).

Bit positions: Intel SDM Vol.3A 2.5 "Control Registers" (CR0, CR4, CR8),
Vol.1 13.3 "Enabling the XSAVE Feature Set" with Vol.1 13.1 (XCR0's state
components), Vol.3A 2.2.1 (EFER); the kernel's names are
arch/x86/include/uapi/asm/processor-flags.h and asm/fpu/types.h (6.1, 6.12).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from gdbext.decoders.bits import check_uint, decode_flags
from gdbext.decoders.msr import EFER_BITS

# bit -> (name, what it means when set)
CR0_BITS: Dict[int, Tuple[str, str]] = {
    0: ("PE", "protected mode"),
    1: ("MP", "WAIT/FWAIT honour TS"),
    2: ("EM", "no x87 FPU: x87 instructions raise #NM"),
    3: ("TS", "task switched: the next FPU/SSE use raises #NM"),
    4: ("ET", "387 coprocessor (always 1)"),
    5: ("NE", "native x87 error reporting (#MF)"),
    16: ("WP", "supervisor writes honour read-only pages"),
    18: ("AM", "alignment checks allowed (with RFLAGS.AC at CPL 3)"),
    29: ("NW", "not write-through (with CD)"),
    30: ("CD", "caching disabled"),
    31: ("PG", "paging"),
}

CR4_BITS: Dict[int, Tuple[str, str]] = {
    0: ("VME", "virtual-8086 mode extensions"),
    1: ("PVI", "protected-mode virtual interrupts"),
    2: ("TSD", "RDTSC restricted to CPL 0"),
    3: ("DE", "debugging extensions (DR4/DR5 fault)"),
    4: ("PSE", "4 MiB pages in 32-bit paging"),
    5: ("PAE", "physical address extension (required by long mode)"),
    6: ("MCE", "machine-check exceptions"),
    7: ("PGE", "global pages (G bit honoured)"),
    8: ("PCE", "RDPMC at any CPL"),
    9: ("OSFXSR", "OS supports FXSAVE/FXRSTOR (SSE enabled)"),
    10: ("OSXMMEXCPT", "OS handles SIMD exceptions (#XM)"),
    11: ("UMIP", "SGDT/SIDT/SLDT/SMSW/STR refused at CPL > 0"),
    12: ("LA57", "5-level paging (57-bit linear addresses)"),
    13: ("VMXE", "VMX enabled"),
    14: ("SMXE", "SMX enabled"),
    16: ("FSGSBASE", "RDFSBASE/WRFSBASE/RDGSBASE/WRGSBASE enabled"),
    17: ("PCIDE", "process-context identifiers in CR3[11:0]"),
    18: ("OSXSAVE", "XSAVE and XCR0 enabled"),
    19: ("KL", "Key Locker"),
    20: ("SMEP", "supervisor-mode execution prevention"),
    21: ("SMAP", "supervisor-mode access prevention"),
    22: ("PKE", "protection keys for user pages"),
    23: ("CET", "control-flow enforcement"),
    24: ("PKS", "protection keys for supervisor pages"),
    25: ("UINTR", "user interrupts"),
    28: ("LAM_SUP", "linear-address masking for supervisor pointers"),
    32: ("FRED", "flexible return and event delivery: entry through IA32_FRED_CONFIG, not the IDT/LSTAR"),
}

# A 32-bit kernel has no long mode: CR4.PAE selects PAE paging itself (SDM
# Vol.3A 4.1.1, 4.4): the 3-level walk (PDPT, page directory, page table)
# with 64-bit entries, 2 MiB pages, and the XD/NX bit once EFER.NXE is set.
CR4_BITS_32: Dict[int, Tuple[str, str]] = {
    **CR4_BITS,
    5: ("PAE", "PAE paging: the 3-level walk (PDPT, page directory, page table) with 64-bit entries, "
               "2 MiB pages and NX (with EFER.NXE)"),
}

# XCR0: state components the OS enabled for XSAVE (SDM Vol.1 13.1, 13.3).
XCR0_BITS: Dict[int, Tuple[str, str]] = {
    0: ("X87", "x87 state (always 1)"),
    1: ("SSE", "XMM registers and MXCSR"),
    2: ("AVX", "upper halves of YMM0-15"),
    3: ("BNDREGS", "MPX bound registers"),
    4: ("BNDCSR", "MPX BNDCFGU/BNDSTATUS"),
    5: ("OPMASK", "AVX-512 k0-k7"),
    6: ("ZMM_HI256", "upper halves of ZMM0-15"),
    7: ("HI16_ZMM", "ZMM16-31"),
    9: ("PKRU", "protection-key rights register"),
    17: ("XTILECFG", "AMX tile configuration"),
    18: ("XTILEDATA", "AMX tile data"),
    19: ("APX", "APX extended GPRs"),
}

# EFER meanings (the names are EFER_BITS; SDM Vol.3A 2.2.1, AMD APM Vol.2 3.1.7).
EFER_MEANINGS: Dict[str, str] = {
    "SCE": "SYSCALL/SYSRET enabled",
    "LME": "long mode enabled",
    "LMA": "long mode active (read-only)",
    "NXE": "no-execute bit (XD) honoured in page tables",
    "SVME": "AMD SVM enabled",
    "LMSLE": "AMD long-mode segment limits",
    "FFXSR": "AMD fast FXSAVE/FXRSTOR",
    "TCE": "AMD translation cache extension",
    "AUTOIBRS": "AMD automatic IBRS",
}
EFER_TABLE: Dict[int, Tuple[str, str]] = {b: (n, EFER_MEANINGS.get(n, "")) for b, n in EFER_BITS.items()}

CR8_TPL_MASK = 0xF   # CR8[3:0]: task-priority level; bits 63:4 reserved (SDM Vol.3A 2.5)


def _names(table: Mapping[int, Tuple[str, str]]) -> Dict[int, str]:
    return {b: name for b, (name, _m) in table.items()}


def decode_bits(value: int, table: Mapping[int, Tuple[str, str]], width: int = 64,
                what: str = "register") -> Dict[str, Any]:
    """{set: [names], clear: [named bits that are clear], bits: [{bit, name,
    set, meaning}], unknown: [set bit numbers the table does not name]}."""
    value = check_uint(value, width, what)
    names = _names(table)
    rows = [{"bit": b, "name": n, "set": bool(value >> b & 1), "meaning": m}
            for b, (n, m) in sorted(table.items())]
    return {
        "set": [n for n in decode_flags(value, names) if not n.startswith("bit")],
        "clear": [r["name"] for r in rows if not r["set"]],
        "unknown": [b for b in range(width) if value >> b & 1 and b not in table],
        "bits": rows,
    }


def decode_cr0(value: int) -> Dict[str, Any]:
    return decode_bits(value, CR0_BITS, 64, "CR0")


def decode_cr4(value: int, table: Mapping[int, Tuple[str, str]] = CR4_BITS) -> Dict[str, Any]:
    return decode_bits(value, table, 64, "CR4")


def decode_efer(value: int) -> Dict[str, Any]:
    return decode_bits(value, EFER_TABLE, 64, "EFER")


def decode_xcr0(value: int) -> Dict[str, Any]:
    return decode_bits(value, XCR0_BITS, 64, "XCR0")


def decode_cr8(value: int) -> Dict[str, Any]:
    """CR8 is the task-priority register: interrupts of priority class
    (vector >> 4) <= TPL are held back (SDM Vol.3A 10.8.6)."""
    value = check_uint(value, 64, "CR8")
    tpl = value & CR8_TPL_MASK
    return {"tpl": tpl, "reserved_set": value & ~CR8_TPL_MASK != 0,
            "set": [f"TPL={tpl}"] if tpl else [], "clear": [], "unknown": [], "bits": []}


def consistency(cr0: int, cr4: int, efer: int) -> List[str]:
    """Architectural combinations that cannot hold in 64-bit mode (SDM Vol.3A
    9.8.5, 2.5): one sentence per problem, none on a healthy kernel."""
    problems = []
    if efer >> 10 & 1 and not cr0 >> 31 & 1:
        problems.append("EFER.LMA is set but CR0.PG is clear")
    if efer >> 10 & 1 and not cr4 >> 5 & 1:
        problems.append("EFER.LMA is set but CR4.PAE is clear")
    if cr0 >> 29 & 1 and not cr0 >> 30 & 1:
        problems.append("CR0.NW is set without CR0.CD (a #GP combination)")
    if cr4 >> 17 & 1 and not efer >> 10 & 1:
        problems.append("CR4.PCIDE is set outside long mode")
    return problems
