"""The arm64 stage-1 page walk, 4 KiB granule (Arm ARM D8.3, VMSAv8-64
translation table format): 4 levels for 48-bit VAs, 3 for 39-bit.  TTBR1_EL1
maps the upper (kernel) half and TTBR0_EL1 the lower (user) half; the
tables hold 512 8-byte descriptors.

Descriptor bits (D8.3.1, D8.3.2): valid [0]; at levels 0-2 bit 1 says
table (1) or block (0, levels 1 and 2 only); at level 3 bit 1 must be set
(page).  Output address [47:12].  Leaf attributes: AttrIndx [4:2], NS [5],
AP [7:6], SH [9:8], AF [10], nG [11], DBM [51], Contiguous [52], PXN [53],
UXN [54].  Table attributes: PXNTable [59], UXNTable [60], APTable [62:61],
NSTable [63].  LPA2 (52-bit with 4 KiB pages, TCR.DS) is not handled:
the lab boots with lpa2=off.
"""
from typing import Callable, Dict, List, Optional

from gdbext.decoders.bits import MASK64
from gdbext.decoders.paging import PageFault, Translation, WalkStep

OA_MASK = 0x0000FFFFFFFFF000         # output address [47:12]
TTBR_BADDR_MASK = 0x0000FFFFFFFFFFFE  # BADDR [47:1]
LINUX_NAMES = {"L0": "pgd", "L1": "pud", "L2": "pmd", "L3": "pte"}
_LEAF_BITS = {5: "NS", 10: "AF", 11: "nG", 51: "DBM", 52: "CONT", 53: "PXN", 54: "UXN"}
_TABLE_BITS = {59: "PXNTable", 60: "UXNTable", 63: "NSTable"}
_AP = {0: "EL1 rw", 1: "EL1+EL0 rw", 2: "EL1 ro", 3: "EL1+EL0 ro"}


def levels_for(va_bits: int) -> List[str]:
    """The levels a walk of `va_bits`-bit addresses visits (4 KiB granule:
    9 bits per level above the 12-bit offset)."""
    count = -(-(va_bits - 12) // 9)
    return [f"L{4 - count + i}" for i in range(count)]


def index(va: int, level: str) -> int:
    shift = 12 + 9 * (3 - int(level[1]))
    return (va >> shift) & 0x1FF


def is_upper(va: int) -> bool:
    return bool(va >> 63)


def _is_table(value: int, level: str) -> bool:
    return level != "L3" and value & 3 == 3


def _reason(value: int, level: str) -> Optional[str]:
    if not value & 1:
        return "not valid"
    if level == "L0" and not value & 2:
        return "a block descriptor at level 0 (reserved)"
    if level == "L3" and not value & 2:
        return "reserved descriptor at level 3"
    return None


def translate(va: int, table: int, read_u64: Callable[[int], int], va_bits: int = 48) -> Translation:
    """Walk `va` from the table at physical `table` (a TTBR's BADDR)."""
    va &= MASK64
    steps: List[WalkStep] = []
    base = table & TTBR_BADDR_MASK
    names = levels_for(va_bits)
    writable, user, pxn, uxn = True, True, False, False
    for level in names:
        entry_address = base + 8 * index(va, level)
        value = read_u64(entry_address) & MASK64
        steps.append(WalkStep(level, entry_address, value))
        reason = _reason(value, level)
        if reason:
            raise PageFault(va, level, entry_address, value, steps, reason)
        if _is_table(value, level):
            ap_table = (value >> 61) & 3
            writable &= not ap_table & 2
            user &= not ap_table & 1
            pxn |= bool(value >> 59 & 1)
            uxn |= bool(value >> 60 & 1)
            base = value & OA_MASK
            continue
        size = 1 << (12 + 9 * (3 - int(level[1])))
        ap = (value >> 6) & 3
        user = user and bool(ap & 1)
        # Executable where the page's user runs: EL0 for a user page (UXN),
        # EL1 otherwise (PXN).
        executable = not (uxn or value >> 54 & 1) if user else not (pxn or value >> 53 & 1)
        phys = (value & OA_MASK & ~(size - 1)) | (va & (size - 1))
        return Translation(va, phys, size, steps, writable and not ap & 2, user, executable,
                           not (value >> 11) & 1, linux_levels={n: LINUX_NAMES[n] for n in names})
    raise PageFault(va, names[-1], steps[-1].address, steps[-1].value, steps, "walk did not end")


def entry_fields(value: int, level: str) -> Dict:
    valid = bool(value & 1)
    table = valid and _is_table(value, level)
    out = {"present": valid, "leaf": valid and not table, "table": table}
    if valid and not table:
        out.update(attr_index=(value >> 2) & 7, ap=_AP[(value >> 6) & 3], sh=(value >> 8) & 3)
    return out


def entry_flags(value: int, level: str) -> List[str]:
    if not value & 1:
        return []
    if _is_table(value, level):
        names = ["TABLE"] + [n for b, n in _TABLE_BITS.items() if value >> b & 1]
        ap_table = (value >> 61) & 3
        return names + ([f"APTable={ap_table}"] if ap_table else [])
    kind = "PAGE" if level == "L3" else "BLOCK"
    return ([kind, f"AttrIndx={(value >> 2) & 7}", f"AP={_AP[(value >> 6) & 3]}"]
            + [n for b, n in _LEAF_BITS.items() if value >> b & 1])


def describe_walk(va: int, steps: List[WalkStep], translation: Translation = None,
                  fault: PageFault = None, va_bits: int = 48) -> Dict:
    """The same JSON shape as the x86 walk (decoders/paging.describe_walk)."""
    levels = []
    for step in steps:
        fields = entry_fields(step.value, step.level)
        levels.append({"level": step.level, "linux": LINUX_NAMES.get(step.level), "index": index(va, step.level),
                       "address": step.address, "value": step.value,
                       "flags": entry_flags(step.value, step.level), "bits": fields,
                       "next_table": (step.value & OA_MASK) if fields["table"] else None})
    out = {"va": va, "la57": False, "va_bits": va_bits, "levels": levels, "mapped": translation is not None,
           "walked_root": None,
           "phys": None, "page_size": None, "fault": None}
    if translation is not None:
        out.update(phys=translation.phys, page_size=translation.page_size, writable=translation.writable,
                   user=translation.user, executable=translation.executable,
                   global_page=translation.global_page, pkey=0)
    if fault is not None:
        out["fault"] = {"level": fault.level, "linux": LINUX_NAMES.get(fault.level), "reason": fault.reason,
                        "entry_address": fault.entry_address, "entry_value": fault.entry_value}
    return out
