"""arm64 system registers of the syscall path, decoded bit by bit.

Field layouts: Arm ARM (DDI 0487) D17.2 (SCTLR_EL1, TCR_EL1, TTBRn_EL1,
ESR_EL1, MAIR_EL1), C5.2 (SPSR_EL1, CurrentEL).  What Linux programs:
arch/arm64/mm/proc.S (__cpu_setup: TCR, MAIR), arch/arm64/include/asm/
sysreg.h (INIT_SCTLR_EL1_MMU_ON), the same in 6.1 and 6.12.
"""
from typing import Dict, List, Optional

from gdbext.decoders.arm64_paging import levels_for, table_address
from gdbext.decoders.bits import bits

# ESR_ELx.EC (Arm ARM D17.2.37, Table D17-5), the classes a kernel sees.
EXCEPTION_CLASSES = {
    0x00: "unknown reason", 0x01: "WFI/WFE", 0x03: "MCR/MRC (cp15, AArch32)",
    0x04: "MCRR/MRRC (cp15, AArch32)", 0x05: "MCR/MRC (cp14, AArch32)", 0x06: "LDC/STC (cp14, AArch32)",
    0x07: "SVE/SIMD/FP access", 0x0C: "MRRC (cp14, AArch32)", 0x0D: "branch target (BTI)",
    0x0E: "illegal execution state", 0x11: "SVC32 (svc in AArch32)", 0x15: "SVC64 (svc in AArch64)",
    0x18: "MSR/MRS/system instruction", 0x19: "SVE access", 0x1C: "pointer authentication failure",
    0x20: "instruction abort from a lower EL", 0x21: "instruction abort at the same EL",
    0x22: "PC alignment fault", 0x24: "data abort from a lower EL", 0x25: "data abort at the same EL",
    0x26: "SP alignment fault", 0x28: "FP exception (AArch32)", 0x2C: "FP exception (AArch64)",
    0x2F: "SError", 0x30: "breakpoint from a lower EL", 0x31: "breakpoint at the same EL",
    0x32: "software step from a lower EL", 0x33: "software step at the same EL",
    0x34: "watchpoint from a lower EL", 0x35: "watchpoint at the same EL", 0x38: "BKPT (AArch32)",
    0x3C: "BRK (AArch64)",
}
EC_SVC32, EC_SVC64 = 0x11, 0x15

# SCTLR_EL1 single bits (D17.2.118).
SCTLR_BITS = {
    0: "M", 1: "A", 2: "C", 3: "SA", 4: "SA0", 5: "CP15BEN", 6: "nAA", 7: "ITD", 8: "SED", 9: "UMA",
    10: "EnRCTX", 11: "EOS", 12: "I", 13: "EnDB", 14: "DZE", 15: "UCT", 16: "nTWI", 18: "nTWE",
    19: "WXN", 20: "TSCXT", 21: "IESB", 22: "EIS", 23: "SPAN", 24: "E0E", 25: "EE", 26: "UCI",
    27: "EnDA", 28: "nTLSMD", 29: "LSMAOE", 30: "EnIB", 31: "EnIA", 35: "BT0", 36: "BT1",
    37: "ITFSB", 42: "ATA0", 43: "ATA", 44: "DSSBS", 57: "EPAN",
}
# Bits INIT_SCTLR_EL1_MMU_ON sets on every CPU Linux runs (asm/sysreg.h):
# the MMU and caches on, SP alignment checks, little-endian, EL0 cache
# maintenance and DC ZVA allowed.
SCTLR_EXPECTED_SET = ("M", "C", "SA", "SA0", "I", "DZE", "UCI", "SED")
SCTLR_EXPECTED_CLEAR = ("A", "EE", "E0E", "WXN")

TCR_DS = 59                       # FEAT_LPA2's 52-bit format (D17.2.131)
_TG0 = {0: "4K", 1: "64K", 2: "16K"}
_TG1 = {1: "16K", 2: "4K", 3: "64K"}
_PA_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
_SHARE = {0: "non-shareable", 2: "outer shareable", 3: "inner shareable"}
_CACHE = {0: "non-cacheable", 1: "WB-WA", 2: "WT", 3: "WB"}

# PSTATE.M[3:0] for AArch64 (C5.2.19).
_MODES64 = {0b0000: "EL0t", 0b0100: "EL1t", 0b0101: "EL1h", 0b1000: "EL2t", 0b1001: "EL2h",
            0b1100: "EL3t", 0b1101: "EL3h"}
_MODES32 = {0b0000: "usr", 0b0001: "fiq", 0b0010: "irq", 0b0011: "svc", 0b0111: "abt", 0b1011: "und",
            0b1111: "sys"}
_PSTATE_BITS = {31: "N", 30: "Z", 29: "C", 28: "V", 25: "TCO", 24: "DIT", 23: "UAO", 22: "PAN",
                21: "SS", 20: "IL", 12: "SSBS", 9: "D", 8: "A", 7: "I", 6: "F"}


def decode_esr(esr: int) -> Dict:
    ec, il, iss = bits(esr, 31, 26), bits(esr, 25, 25), bits(esr, 24, 0)
    out = {"value": esr, "ec": ec, "ec_name": EXCEPTION_CLASSES.get(ec, f"reserved/unknown class {ec:#x}"),
           "il": il, "iss": iss}
    if ec in (EC_SVC32, EC_SVC64):
        out["imm16"] = iss & 0xFFFF            # the svc's immediate
    if ec in (0x24, 0x25, 0x20, 0x21):
        out["fsc"] = iss & 0x3F                # fault status code
        out["wnr"] = bits(iss, 6, 6) if ec in (0x24, 0x25) else None
    return out


def decode_sctlr(value: int) -> Dict:
    set_names = [n for b, n in SCTLR_BITS.items() if value >> b & 1]
    out = {"value": value, "set": set_names,
           "tcf0": bits(value, 39, 38), "tcf": bits(value, 41, 40), "checks": []}
    for name in SCTLR_EXPECTED_SET:
        if name not in set_names:
            out["checks"].append(f"{name} is clear; Linux sets it (INIT_SCTLR_EL1_MMU_ON)")
    for name in SCTLR_EXPECTED_CLEAR:
        if name in set_names:
            out["checks"].append(f"{name} is set; Linux leaves it clear")
    return out


def decode_tcr(value: int) -> Dict:
    t0sz, t1sz = bits(value, 5, 0), bits(value, 21, 16)
    out = {
        "value": value, "t0sz": t0sz, "t1sz": t1sz, "va_bits_user": 64 - t0sz, "va_bits_kernel": 64 - t1sz,
        "epd0": bits(value, 7, 7), "epd1": bits(value, 23, 23), "a1": bits(value, 22, 22),
        "tg0": _TG0.get(bits(value, 15, 14), "reserved"), "tg1": _TG1.get(bits(value, 31, 30), "reserved"),
        "irgn0": _CACHE[bits(value, 9, 8)], "orgn0": _CACHE[bits(value, 11, 10)],
        "sh0": _SHARE.get(bits(value, 13, 12), "reserved"),
        "irgn1": _CACHE[bits(value, 25, 24)], "orgn1": _CACHE[bits(value, 27, 26)],
        "sh1": _SHARE.get(bits(value, 29, 28), "reserved"),
        "ips_bits": _PA_BITS.get(bits(value, 34, 32)), "as16": bits(value, 36, 36),
        "tbi0": bits(value, 37, 37), "tbi1": bits(value, 38, 38), "ha": bits(value, 39, 39),
        "hd": bits(value, 40, 40), "e0pd0": bits(value, 55, 55), "e0pd1": bits(value, 56, 56),
        "ds": bits(value, TCR_DS, TCR_DS), "checks": [],
    }
    if out["tg1"] == "4K" and out["tg0"] == "4K":
        out["levels_user"], out["levels_kernel"] = levels_for(64 - t0sz), levels_for(64 - t1sz)
    # Below 16 (more than 48 bits) T0SZ/T1SZ need DS with 4 KiB pages (D8.2.1).
    if min(t0sz, t1sz) < 16 and not out["ds"]:
        out["checks"].append(f"T0SZ/T1SZ below 16 ({t0sz}/{t1sz}) without DS: 52-bit VAs need TCR.DS (LPA2)")
    # __cpu_setup sets TCR_A1: the ASID lives in TTBR1_EL1, so that KPTI can
    # switch TTBR0 alone (arch/arm64/mm/proc.S, cpu_do_switch_mm; 4.16+).
    if not out["a1"]:
        out["checks"].append("A1 is clear: Linux keeps the ASID in TTBR1_EL1 (TCR_A1)")
    if out["epd1"]:
        out["checks"].append("EPD1 is set: kernel-half walks are disabled")
    return out


def decode_ttbr(value: int, asid_bits: int = 16, ds: bool = False) -> Dict:
    """BADDR[47:1] (with TCR.DS, bits [5:2] hold table address bits 51:48)
    and the ASID in [63:48]; CnP is bit 0."""
    return {"value": value, "asid": bits(value, 63, 48) & ((1 << asid_bits) - 1),
            "baddr": table_address(value, ds), "cnp": value & 1}


def decode_mair(value: int) -> List[Dict]:
    out = []
    for index in range(8):
        attr = (value >> (8 * index)) & 0xFF
        out.append({"index": index, "attr": attr, "meaning": mair_attr_name(attr)})
    return out


def mair_attr_name(attr: int) -> str:
    hi, lo = attr >> 4, attr & 0xF
    if hi == 0:
        return {0x0: "Device-nGnRnE", 0x4: "Device-nGnRE", 0x8: "Device-nGRE", 0xC: "Device-GRE"}.get(
            lo, "Device (reserved)")
    if attr == 0x44:
        return "Normal non-cacheable"
    if attr == 0xFF:
        return "Normal write-back"
    if attr == 0xF0:
        return "Normal tagged (MTE)"
    return f"Normal outer {hi:#x} inner {lo:#x}"


def decode_pstate(value: int) -> Dict:
    """SPSR_ELx or PSTATE as gdb's cpsr: flags, the mode, the execution state."""
    aarch32 = bool(value >> 4 & 1)
    mode = (_MODES32 if aarch32 else _MODES64).get(value & 0xF, f"reserved {value & 0xF:#x}")
    el = (value >> 2) & 3 if not aarch32 else (0 if value & 0xF == 0 else 1)
    return {"value": value, "mode": mode, "el": el, "aarch32": aarch32, "btype": bits(value, 11, 10),
            "set": [n for b, n in sorted(_PSTATE_BITS.items(), reverse=True) if value >> b & 1]}


def current_el(pstate: int) -> int:
    """CurrentEL.EL (C5.2.1) as the CPU's PSTATE says it."""
    return (pstate >> 2) & 3


def strip_pac(address: int, va_bits: int = 48, kernel: Optional[bool] = None) -> int:
    """A pointer without its pointer-authentication code: bits above
    `va_bits` copied from bit 55 (kernel addresses all ones, user all
    zeros), as XPACI does (Arm ARM C6.2.418)."""
    high = ((1 << 64) - 1) ^ ((1 << va_bits) - 1)
    top = (address >> 55) & 1 if kernel is None else int(kernel)
    return (address | high) if top else (address & ~high & ((1 << 64) - 1))
