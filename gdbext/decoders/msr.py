"""The MSRs of the syscall path: names, lookup, and field decoders.

Indices: arch/x86/include/asm/msr-index.h (same in 6.1 and 6.12).
Semantics: Intel SDM Vol.3 5.8.8 (SYSCALL/SYSRET MSRs) and the SYSCALL and
SYSRET instruction pages in Vol.2B; EFER bits from msr-index.h (_EFER_*)
plus AMD APM Vol.2 3.1.7 for TCE.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from gdbext.errors import DecodeError
from gdbext.decoders.bits import MASK32, Record, check_uint, decode_flags, flag_bools
from gdbext.decoders.descriptors import (
    KERNEL_CS, USER32_CS, decode_cpunode, decode_selector)


@dataclass(frozen=True)
class MsrInfo(Record):
    name: str
    index: int
    description: str
    aliases: Tuple[str, ...] = ()


IA32_EFER = 0xC0000080
IA32_STAR = 0xC0000081
IA32_LSTAR = 0xC0000082
IA32_CSTAR = 0xC0000083
IA32_FMASK = 0xC0000084
IA32_FS_BASE = 0xC0000100
IA32_GS_BASE = 0xC0000101
IA32_KERNEL_GS_BASE = 0xC0000102
IA32_TSC_AUX = 0xC0000103
IA32_SYSENTER_CS = 0x174
IA32_SYSENTER_ESP = 0x175
IA32_SYSENTER_EIP = 0x176
# FRED (6.9+, "x86/fred: FRED entry/exit and dispatch code"; Intel's FRED
# specification, 5.1): with CR4.FRED the CPU enters the kernel through
# IA32_FRED_CONFIG for every event, syscall and sysenter included.
IA32_FRED_RSP0 = 0x1CC
IA32_FRED_STKLVLS = 0x1D0
IA32_FRED_CONFIG = 0x1D4

# Display order: mode control first, then the SYSCALL quartet, the bases
# swapgs juggles, then the legacy SYSENTER trio.
ALL_MSRS: Tuple[MsrInfo, ...] = (
    MsrInfo("IA32_EFER", IA32_EFER, "extended feature enables (SCE, LME, LMA, NXE)", ("MSR_EFER",)),
    MsrInfo("IA32_STAR", IA32_STAR, "SYSCALL/SYSRET segment selectors", ("MSR_STAR",)),
    MsrInfo("IA32_LSTAR", IA32_LSTAR, "64-bit SYSCALL entry point (entry_SYSCALL_64)", ("MSR_LSTAR",)),
    MsrInfo("IA32_CSTAR", IA32_CSTAR, "compat-mode SYSCALL entry point (entry_SYSCALL_compat)",
            ("MSR_CSTAR",)),
    MsrInfo("IA32_FMASK", IA32_FMASK, "RFLAGS bits cleared by SYSCALL",
            ("SFMASK", "FMASK", "IA32_SFMASK", "MSR_SYSCALL_MASK", "SYSCALL_MASK")),
    MsrInfo("IA32_FS_BASE", IA32_FS_BASE, "FS segment base", ("MSR_FS_BASE",)),
    MsrInfo("IA32_GS_BASE", IA32_GS_BASE, "GS segment base (per-cpu base in the kernel)",
            ("MSR_GS_BASE",)),
    MsrInfo("IA32_KERNEL_GS_BASE", IA32_KERNEL_GS_BASE, "GS base that SWAPGS swaps in",
            ("MSR_KERNEL_GS_BASE", "SHADOW_GS_BASE")),
    MsrInfo("IA32_TSC_AUX", IA32_TSC_AUX, "RDTSCP/RDPID aux value: (node << 12) | cpu",
            ("MSR_TSC_AUX",)),
    MsrInfo("IA32_SYSENTER_CS", IA32_SYSENTER_CS, "SYSENTER code segment", ("MSR_IA32_SYSENTER_CS",)),
    MsrInfo("IA32_SYSENTER_ESP", IA32_SYSENTER_ESP, "SYSENTER stack pointer",
            ("MSR_IA32_SYSENTER_ESP",)),
    MsrInfo("IA32_SYSENTER_EIP", IA32_SYSENTER_EIP, "SYSENTER entry point (entry_SYSENTER_compat)",
            ("MSR_IA32_SYSENTER_EIP",)),
)

# Read only when CR4.FRED is set: without FRED they raise #GP.
FRED_MSRS: Tuple[MsrInfo, ...] = (
    MsrInfo("IA32_FRED_CONFIG", IA32_FRED_CONFIG,
            "FRED entry point (asm_fred_entrypoint_user), red zone, event stack level",
            ("MSR_IA32_FRED_CONFIG",)),
    MsrInfo("IA32_FRED_RSP0", IA32_FRED_RSP0, "FRED ring-0 stack for events from user mode",
            ("MSR_IA32_FRED_RSP0",)),
    MsrInfo("IA32_FRED_STKLVLS", IA32_FRED_STKLVLS, "FRED stack level of each exception vector",
            ("MSR_IA32_FRED_STKLVLS",)),
)

MSR_BY_INDEX: Dict[int, MsrInfo] = {m.index: m for m in ALL_MSRS + FRED_MSRS}

# MSRs whose value is an address; symbolizing them is the caller's job.
ADDRESS_MSRS = frozenset({IA32_LSTAR, IA32_CSTAR, IA32_FS_BASE, IA32_GS_BASE,
                          IA32_KERNEL_GS_BASE, IA32_SYSENTER_ESP, IA32_SYSENTER_EIP,
                          IA32_FRED_RSP0})


def _norm(name: str) -> str:
    """Canonical lookup key: upper case, no MSR_/IA32_ prefix, no separators."""
    s = name.strip().upper().replace("-", "_")
    for prefix in ("MSR_", "IA32_"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return s.replace("_", "")


_BY_KEY: Dict[str, MsrInfo] = {}
for _m in ALL_MSRS + FRED_MSRS:
    for _n in (_m.name,) + _m.aliases:
        _BY_KEY.setdefault(_norm(_n), _m)


def _parse_index(text: str):
    t = text.strip().lower()
    try:
        if t.startswith("0x"):
            return int(t, 16)
        if t.endswith("h") and all(c in "0123456789abcdef" for c in t[:-1]) and t[:-1]:
            return int(t[:-1], 16)
        if t.isdigit():
            return int(t, 10)
    except ValueError:
        return None
    return None


def lookup_msr(text: str, allow_unknown_index: bool = False) -> MsrInfo:
    """Find an MSR by name ("lstar", "MSR_LSTAR", "IA32_LSTAR", "sfmask",
    case-insensitive) or by index ("0xc0000082", "3221225602").

    An index not in the table is a DecodeError unless `allow_unknown_index`,
    in which case a generic MsrInfo named after the hex index is returned."""
    if not isinstance(text, str) or not text.strip():
        raise DecodeError("no MSR given; valid names: " + valid_names())
    idx = _parse_index(text)
    if idx is not None:
        if idx >> 32:
            raise DecodeError(f"MSR index {idx:#x} does not fit in 32 bits; known: " + valid_names())
        if idx in MSR_BY_INDEX:
            return MSR_BY_INDEX[idx]
        if allow_unknown_index:
            return MsrInfo(f"MSR_{idx:#x}", idx, "unknown MSR")
        raise DecodeError(f"unknown MSR index {idx:#x}; known: " + valid_names())
    m = _BY_KEY.get(_norm(text))
    if m is None:
        raise DecodeError(f"unknown MSR `{text.strip()}`; valid names: " + valid_names())
    return m


def valid_names() -> str:
    return ", ".join(f"{m.name[5:] if m.name.startswith('IA32_') else m.name} ({m.index:#x})"
                     for m in ALL_MSRS + FRED_MSRS)


# --- EFER ---

EFER_BITS: Dict[int, str] = {
    0: "SCE",        # SYSCALL/SYSRET enable
    8: "LME",        # long mode enable
    10: "LMA",       # long mode active (read-only)
    11: "NXE",       # no-execute enable
    12: "SVME",      # AMD SVM enable
    13: "LMSLE",     # AMD long mode segment limit enable
    14: "FFXSR",     # AMD fast FXSAVE/FXRSTOR
    15: "TCE",       # AMD translation cache extension (not in msr-index.h)
    21: "AUTOIBRS",  # AMD automatic IBRS
}


def decode_efer(v: int) -> Dict[str, Any]:
    v = check_uint(v, 64, "EFER")
    out: Dict[str, Any] = flag_bools(v, EFER_BITS)
    out["set"] = decode_flags(v, EFER_BITS)
    return out


# --- STAR ---

def expected_star() -> int:
    """STAR as syscall_init() programs it in both 6.1 and 6.12
    (arch/x86/kernel/cpu/common.c):
        wrmsr(MSR_STAR, 0, (__USER32_CS << 16) | __KERNEL_CS);
    i.e. high dword = USER32_CS:KERNEL_CS, low dword (legacy EIP) = 0.
    6.12 still writes STAR unconditionally, but only writes LSTAR/CSTAR/
    SYSENTER_*/SYSCALL_MASK when FRED is not enabled (idt_syscall_init())."""
    return (USER32_CS << 48) | (KERNEL_CS << 32)


def decode_star(v: int) -> Dict[str, Any]:
    """Selectors SYSCALL loads and SYSRET returns to (SDM Vol.2B SYSCALL/SYSRET):
    SYSCALL: CS = STAR[47:32] & 0xFFFC, SS = STAR[47:32] + 8.
    SYSRET:  CS = STAR[63:48] | 3 (32-bit) or (STAR[63:48] + 16) | 3 (64-bit),
             SS = (STAR[63:48] + 8) | 3 -- the CPU forces RPL 3."""
    v = check_uint(v, 64, "STAR")
    syscall_base = (v >> 32) & 0xFFFF
    sysret_base = (v >> 48) & 0xFFFF

    def sel(x: int) -> Dict[str, Any]:
        return decode_selector(x & 0xFFFF).to_dict()

    return {
        "syscall_base": syscall_base,
        "sysret_base": sysret_base,
        "syscall_cs": sel(syscall_base & 0xFFFC),
        "syscall_ss": sel(syscall_base + 8),
        "sysret_cs32": sel(sysret_base | 3),
        "sysret_ss": sel((sysret_base + 8) | 3),
        "sysret_cs64": sel((sysret_base + 16) | 3),
        "legacy_eip": v & MASK32,
        "matches_linux": v == expected_star(),
    }


# --- RFLAGS and the SYSCALL mask ---

# arch/x86/include/uapi/asm/processor-flags.h; IOPL (bits 12-13) is a number.
RFLAGS_BITS: Dict[int, str] = {
    0: "CF", 2: "PF", 4: "AF", 6: "ZF", 7: "SF", 8: "TF", 9: "IF", 10: "DF",
    11: "OF", 14: "NT", 16: "RF", 17: "VM", 18: "AC", 19: "VIF", 20: "VIP", 21: "ID",
}
RFLAGS_FIXED_BIT = 1      # X86_EFLAGS_FIXED: always reads as 1
RFLAGS_IOPL_SHIFT = 12
RFLAGS_IOPL_MASK = 3 << RFLAGS_IOPL_SHIFT

# What syscall_init() (6.1) / idt_syscall_init() (6.12) writes to
# MSR_SYSCALL_MASK: CF|PF|AF|ZF|SF|TF|IF|DF|OF|IOPL|NT|RF|AC|ID, since
# "x86/syscall: Maximize MSR_SYSCALL_MASK" (5.14, 6de4ac1d03f7); before it
# (5.10) TF|DF|IF|IOPL|AC|NT.  The kernel's own value is read from its code
# (arch/x86_64/cpu_setup.py); these name the two Linux has used.
EXPECTED_SFMASK = 0x257FD5
SFMASK_BEFORE_5_14 = 0x47700


def _rflags_names(v: int, iopl_name: bool = False) -> List[str]:
    """Set flag names in bit order.  The always-one bit 1 is skipped; IOPL
    (bits 12-13) is listed once as "IOPL" only if `iopl_name`; any other
    set bit shows up as "bit<N>"."""
    names = []
    for n in range(64):
        if not (v >> n) & 1 or n == RFLAGS_FIXED_BIT:
            continue
        if n in (12, 13):
            if iopl_name and "IOPL" not in names:
                names.append("IOPL")
            continue
        names.append(RFLAGS_BITS.get(n, f"bit{n}"))
    return names


def decode_rflags(v: int) -> Dict[str, Any]:
    v = check_uint(v, 64, "RFLAGS")
    out: Dict[str, Any] = flag_bools(v, RFLAGS_BITS)
    out["IOPL"] = (v & RFLAGS_IOPL_MASK) >> RFLAGS_IOPL_SHIFT
    out["FIXED"] = bool(v & (1 << RFLAGS_FIXED_BIT))
    out["set"] = _rflags_names(v)
    return out


def decode_sfmask(v: int) -> Dict[str, Any]:
    """RFLAGS bits SYSCALL clears: RFLAGS &= ~SFMASK (SDM Vol.2B SYSCALL)."""
    v = check_uint(v, 64, "SFMASK")
    return {
        "cleared": _rflags_names(v, iopl_name=True),
        "iopl_cleared": (v & RFLAGS_IOPL_MASK) == RFLAGS_IOPL_MASK,
        "if_cleared": bool(v & (1 << 9)),
        "matches_linux": v in (EXPECTED_SFMASK, SFMASK_BEFORE_5_14),
    }


# --- TSC_AUX ---

def decode_tsc_aux(v: int) -> Dict[str, Any]:
    """Linux writes vdso_encode_cpunode(cpu, node) = (node << 12) | cpu
    (setup_getcpu() in arch/x86/kernel/cpu/common.c); only the low 32 bits
    are architectural."""
    v = check_uint(v, 64, "TSC_AUX")
    return decode_cpunode(v & MASK32)


def decode_sysenter_cs(v: int) -> Dict[str, Any]:
    v = check_uint(v, 64, "SYSENTER_CS")
    return {"selector": decode_selector(v & 0xFFFF).to_dict()}


# --- FRED ---

FRED_ENTRY_KERNEL_OFFSET = 256    # events from ring 0 enter 256 bytes past the user entry


def decode_fred_config(v: int) -> Dict[str, Any]:
    """IA32_FRED_CONFIG (FRED specification 5.1): bits 63:12 the entry point
    of events from user mode (ring-0 events enter 256 bytes later), bits 10:9
    the stack level of ordinary events, bits 8:6 the red zone in 64-byte
    units, bit 2 shadow-stack handling."""
    v = check_uint(v, 64, "FRED_CONFIG")
    entry = v & ~0xFFF & ((1 << 64) - 1)
    return {"entry_user": entry, "entry_kernel": entry + FRED_ENTRY_KERNEL_OFFSET,
            "event_stack_level": (v >> 9) & 3, "redzone_bytes": ((v >> 6) & 7) * 64,
            "shadow_stack": bool(v & (1 << 2))}


def expected_fred_config(entrypoint_user: int) -> int:
    """What cpu_init_fred_exceptions() (arch/x86/kernel/fred.c, 6.9+) writes:
    FRED_CONFIG_REDZONE (one 64-byte line) | FRED_CONFIG_INT_STKLVL(0) |
    asm_fred_entrypoint_user."""
    return (1 << 6) | entrypoint_user


_DECODERS = {
    IA32_EFER: decode_efer,
    IA32_STAR: decode_star,
    IA32_FMASK: decode_sfmask,
    IA32_TSC_AUX: decode_tsc_aux,
    IA32_SYSENTER_CS: decode_sysenter_cs,
    IA32_FRED_CONFIG: decode_fred_config,
}


def decode_msr(index: int, value: int) -> Dict[str, Any]:
    """{"name", "index", "value", "is_address", "fields"}; fields is {} for
    address-valued and unknown MSRs."""
    index = check_uint(index, 32, "MSR index")
    value = check_uint(value, 64, "MSR value")
    info = MSR_BY_INDEX.get(index)
    dec = _DECODERS.get(index)
    return {
        "name": info.name if info else f"MSR_{index:#x}",
        "index": index,
        "value": value,
        "is_address": index in ADDRESS_MSRS,
        "fields": dec(value) if dec else {},
    }
