"""The arm64 stage-1 page walk, 4 KiB granule (Arm ARM D8.3, VMSAv8-64
translation table format): 4 levels for 48-bit VAs, 3 for 39-bit, and 5
(from level -1) for 52-bit VAs with FEAT_LPA2 (TCR_EL1.DS = 1).  TTBR1_EL1
maps the upper (kernel) half and TTBR0_EL1 the lower (user) half; the
tables hold 512 8-byte descriptors (16 at level -1).

Descriptor bits (D8.3.1, D8.3.2): valid [0]; at levels -1..2 bit 1 says
table (1) or block (0: levels 1 and 2, and level 0 with DS = 1); at level 3
bit 1 must be set (page).  Output address [47:12]; with DS = 1 it is
[49:12] and OA[51:50] sits in bits [9:8], which hold SH otherwise (the
shareability then comes from TCR_EL1.SH0/SH1) (D8.3.1.1, FEAT_LPA2;
arch/arm64/include/asm/pgtable-hwdef.h PTE_ADDR_HIGH in 6.12).  The
table address in a TTBR is BADDR[47:1]; with DS = 1 its bits [5:2] hold
BADDR[51:48] (D17.2.155; phys_to_ttbr in 6.12).  Leaf attributes:
AttrIndx [4:2], NS [5], AP [7:6], SH [9:8], AF [10], nG [11], DBM [51],
Contiguous [52], PXN [53], UXN [54].  Table attributes: PXNTable [59],
UXNTable [60], APTable [62:61], NSTable [63].
"""
from typing import Callable, Dict, List, Optional

from gdbext.decoders.bits import MASK64
from gdbext.decoders.paging import PageFault, Translation, WalkStep
from gdbext.errors import DecodeError

OA_MASK = 0x0000FFFFFFFFF000         # output address [47:12]
OA_MASK_DS = 0x0003FFFFFFFFF000      # output address [49:12] with TCR.DS
TTBR_BADDR_MASK = 0x0000FFFFFFFFFFFE  # BADDR [47:1]
TTBR_BADDR_MASK_DS = 0x0000FFFFFFFFFFC0  # BADDR [47:6] with TCR.DS; [51:48] in [5:2]
# Linux's names for the levels, from the leaf up: p4d only with 5 levels,
# pud only with 4 or more (include/asm-generic/pgtable-nop4d.h, -nopud.h).
_LINUX_BY_DEPTH = {2: ("pgd", "pte"), 3: ("pgd", "pmd", "pte"), 4: ("pgd", "pud", "pmd", "pte"),
                   5: ("pgd", "p4d", "pud", "pmd", "pte")}
_LEAF_BITS = {5: "NS", 10: "AF", 11: "nG", 51: "DBM", 52: "CONT", 53: "PXN", 54: "UXN"}
_TABLE_BITS = {59: "PXNTable", 60: "UXNTable", 63: "NSTable"}
_AP = {0: "EL1 rw", 1: "EL1+EL0 rw", 2: "EL1 ro", 3: "EL1+EL0 ro"}


def levels_for(va_bits: int) -> List[str]:
    """The levels a walk of `va_bits`-bit addresses visits (4 KiB granule:
    9 bits per level above the 12-bit offset; 52 bits start at level -1)."""
    count = -(-(va_bits - 12) // 9)
    return [f"L{4 - count + i}" for i in range(count)]


def linux_names(levels: List[str]) -> Dict[str, str]:
    return dict(zip(levels, _LINUX_BY_DEPTH.get(len(levels), ())))


def level_number(level: str) -> int:
    return int(level[1:])


def level_shift(level: str) -> int:
    return 12 + 9 * (3 - level_number(level))


def index(va: int, level: str, va_bits: int = 64) -> int:
    """The descriptor index `va` uses at `level`; the first level of a walk
    resolves only the bits left below `va_bits` (4 at level -1 for 52)."""
    shift = level_shift(level)
    width = max(1, min(9, va_bits - shift))
    return (va >> shift) & ((1 << width) - 1)


def table_address(ttbr: int, ds: bool = False) -> int:
    """The physical address of the first table a TTBR names."""
    if ds:
        return (ttbr & TTBR_BADDR_MASK_DS) | (((ttbr >> 2) & 0xF) << 48)
    return ttbr & TTBR_BADDR_MASK


def output_address(value: int, ds: bool = False) -> int:
    """The address a descriptor holds (next table, block or page)."""
    if ds:
        return (value & OA_MASK_DS) | (((value >> 8) & 3) << 50)
    return value & OA_MASK


def is_upper(va: int) -> bool:
    """Whether TTBR1 translates `va`: bit 55 selects the half, tagged or
    not (Arm ARM D8.2.1)."""
    return bool(va >> 55 & 1)


def _is_table(value: int, level: str) -> bool:
    return level != "L3" and value & 3 == 3


def _reason(value: int, level: str, ds: bool = False) -> Optional[str]:
    if not value & 1:
        return "not valid"
    if level == "L-1" and not value & 2:
        return "a block descriptor at level -1 (reserved)"
    if level == "L0" and not value & 2 and not ds:
        return "a block descriptor at level 0 (reserved without TCR.DS)"
    if level == "L3" and not value & 2:
        return "reserved descriptor at level 3"
    return None


def out_of_range(va: int, va_bits: int, tbi: bool = False) -> Optional[str]:
    """Why `va` is outside its half's range, or None: the bits above
    `va_bits` must all equal bit 55 (bits [63:56] are ignored with TBI)
    (Arm ARM D8.2.1, the VA range of each half from TnSZ)."""
    top = 56 if tbi else 64
    high = (va & ((1 << top) - 1)) >> va_bits
    want = (1 << (top - va_bits)) - 1 if is_upper(va) else 0
    if high == want:
        return None
    half = "TTBR1 (upper)" if is_upper(va) else "TTBR0 (lower)"
    return (f"{va:#x} is outside the {va_bits}-bit range of {half}: bits [{top - 1}:{va_bits}] must all be "
            f"{1 if want else 0} (a translation fault at the first level)")


def translate(va: int, table: int, read_u64: Callable[[int], int], va_bits: int = 48,
              ds: bool = False, tbi: bool = False) -> Translation:
    """Walk `va` from the table a TTBR value `table` names; `ds` is
    TCR_EL1.DS (FEAT_LPA2's descriptor format), `tbi` the half's TBIn."""
    va &= MASK64
    why = out_of_range(va, va_bits, tbi)
    if why:
        raise DecodeError(why)
    steps: List[WalkStep] = []
    base = table_address(table, ds)
    names = levels_for(va_bits)
    writable, user, pxn, uxn = True, True, False, False
    for level in names:
        entry_address = base + 8 * index(va, level, va_bits)
        value = read_u64(entry_address) & MASK64
        steps.append(WalkStep(level, entry_address, value))
        reason = _reason(value, level, ds)
        if reason:
            raise PageFault(va, level, entry_address, value, steps, reason)
        if _is_table(value, level):
            ap_table = (value >> 61) & 3
            writable &= not ap_table & 2
            user &= not ap_table & 1
            pxn |= bool(value >> 59 & 1)
            uxn |= bool(value >> 60 & 1)
            base = output_address(value, ds)
            continue
        size = 1 << level_shift(level)
        ap = (value >> 6) & 3
        user = user and bool(ap & 1)
        # Executable where the page's user runs: EL0 for a user page (UXN),
        # EL1 otherwise (PXN).
        executable = not (uxn or value >> 54 & 1) if user else not (pxn or value >> 53 & 1)
        phys = (output_address(value, ds) & ~(size - 1)) | (va & (size - 1))
        return Translation(va, phys, size, steps, writable and not ap & 2, user, executable,
                           not (value >> 11) & 1, linux_levels=linux_names(names))
    raise PageFault(va, names[-1], steps[-1].address, steps[-1].value, steps, "walk did not end")


def entry_fields(value: int, level: str, ds: bool = False) -> Dict:
    valid = bool(value & 1)
    table = valid and _is_table(value, level)
    out = {"present": valid, "leaf": valid and not table, "table": table}
    if valid and not table:
        # With DS, bits [9:8] are OA[51:50] and SH is TCR_EL1's.
        out.update(attr_index=(value >> 2) & 7, ap=_AP[(value >> 6) & 3], sh=None if ds else (value >> 8) & 3)
    if valid:
        out["output_address"] = output_address(value, ds)
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
                  fault: PageFault = None, va_bits: int = 48, ds: bool = False) -> Dict:
    """The same JSON shape as the x86 walk (decoders/paging.describe_walk)."""
    levels = []
    linux = linux_names(levels_for(va_bits))
    for step in steps:
        fields = entry_fields(step.value, step.level, ds)
        levels.append({"level": step.level, "linux": linux.get(step.level),
                       "index": index(va, step.level, va_bits),
                       "address": step.address, "value": step.value,
                       "flags": entry_flags(step.value, step.level), "bits": fields,
                       "next_table": fields["output_address"] if fields["table"] else None})
    out = {"va": va, "la57": False, "va_bits": va_bits, "lpa2": ds, "levels": levels,
           "mapped": translation is not None, "walked_root": None,
           "phys": None, "page_size": None, "fault": None}
    if translation is not None:
        out.update(phys=translation.phys, page_size=translation.page_size, writable=translation.writable,
                   user=translation.user, executable=translation.executable,
                   global_page=translation.global_page, pkey=0)
    if fault is not None:
        out["fault"] = {"level": fault.level, "linux": linux.get(fault.level), "reason": fault.reason,
                        "entry_address": fault.entry_address, "entry_value": fault.entry_value}
    return out
