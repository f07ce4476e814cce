"""The arm64 kernel's virtual layout as `kx kaslr` shows it, read from the
running kernel: its VMCOREINFO (arch_crash_save_vmcoreinfo() in
arch/arm64/kernel/crash_core.c in 6.1, vmcore_info.c in 6.12: VA_BITS,
MODULES_VADDR/END, VMALLOC_END, VMEMMAP_START/END, kimage_voffset,
PHYS_OFFSET, TCR_EL1_T1SZ, KERNELOFFSET, KERNELPACMASK; VMALLOC_START from
kernel/vmcore_info.c) and TCR_EL1 now.

VA_BITS is the configured size; the size in use (vabits_actual) is 64 -
T1SZ: a 52-bit kernel (CONFIG_ARM64_VA_BITS_52) runs with 48 bits on a CPU
without FEAT_LPA2 (4 KiB pages).  PAGE_OFFSET is -(1 << VA_BITS) either way
(arch/arm64/include/asm/memory.h, 6.1 and 6.12): the linear map starts
there and, with fewer bits in use, its low part is not addressable.
"""
from typing import Dict, List, Optional

MASK64 = (1 << 64) - 1
# (JSON key, VMCOREINFO key, base) of the values shown.
FIELDS = (("va_bits", "NUMBER(VA_BITS)", 10), ("modules_vaddr", "NUMBER(MODULES_VADDR)", 16),
          ("modules_end", "NUMBER(MODULES_END)", 16), ("vmalloc_start", "NUMBER(VMALLOC_START)", 16),
          ("vmalloc_end", "NUMBER(VMALLOC_END)", 16),
          ("vmemmap_start", "NUMBER(VMEMMAP_START)", 16), ("kimage_voffset", "NUMBER(kimage_voffset)", 16),
          ("phys_offset", "NUMBER(PHYS_OFFSET)", 16), ("tcr_el1_t1sz", "NUMBER(TCR_EL1_T1SZ)", 16),
          ("kernel_offset", "KERNELOFFSET", 16), ("kernel_pac_mask", "NUMBER(KERNELPACMASK)", 16))


def parse(info: Dict[str, str]) -> Dict[str, Optional[int]]:
    """The VMCOREINFO values kx shows (None for a key the kernel lacks)."""
    out = {}
    for key, name, base in FIELDS:
        try:
            out[key] = int(info[name], base)
        except (KeyError, ValueError):
            out[key] = None
    return out


def layout(info: Dict[str, str], tcr: Optional[int], slide: int, warnings: List[str]) -> Dict:
    """`kx kaslr`'s arm64 keys: the VMCOREINFO values, PAGE_OFFSET, the VA
    bits in use, and their agreement with TCR_EL1 and the text slide."""
    values = parse(info)
    live_t1sz = (tcr >> 16) & 0x3F if tcr is not None else None
    out = {"vmcoreinfo": values, "tcr_t1sz": live_t1sz,
           "vabits_actual": 64 - live_t1sz if live_t1sz is not None else None,
           "page_offset": (-(1 << values["va_bits"])) & MASK64 if values["va_bits"] else None}
    if not info:
        warnings.append("the kernel's VMCOREINFO is not readable: layout from TCR_EL1 only")
        return out
    if values["kernel_offset"] is not None and values["kernel_offset"] != slide:
        warnings.append(f"VMCOREINFO KERNELOFFSET {values['kernel_offset']:#x} is not the slide {slide:#x}")
    if None not in (values["tcr_el1_t1sz"], live_t1sz) and values["tcr_el1_t1sz"] != live_t1sz:
        warnings.append(f"TCR_EL1.T1SZ is {live_t1sz} but the kernel saved {values['tcr_el1_t1sz']} at boot")
    if None not in (values["va_bits"], out["vabits_actual"]) and out["vabits_actual"] > values["va_bits"]:
        warnings.append(f"TCR_EL1 gives {out['vabits_actual']}-bit VAs, more than the kernel's VA_BITS "
                        f"{values['va_bits']}")
    return out


def rows(d: Dict):
    """The text lines of layout()'s keys: (label, value, note, width)."""
    if "vmcoreinfo" not in d:
        return []
    v = d["vmcoreinfo"]
    out = []
    if d["vabits_actual"] is not None:
        note = f"TCR_EL1.T1SZ = {d['tcr_t1sz']}; VA_BITS {v['va_bits']}" if v["va_bits"] else "TCR_EL1.T1SZ"
        out.append(("VA bits", str(d["vabits_actual"]), note, 14))
    if d["page_offset"] is not None:
        out.append(("PAGE_OFFSET", f"{d['page_offset']:#x}", "-(1 << VA_BITS): the linear map", 14))
    for key, label in (("phys_offset", "PHYS_OFFSET"), ("kimage_voffset", "kimage_voffset"),
                       ("modules_vaddr", "modules"), ("vmalloc_start", "vmalloc"),
                       ("vmemmap_start", "vmemmap"), ("kernel_pac_mask", "PAC mask")):
        if v[key] is not None:
            end = {"modules_vaddr": v["modules_end"], "vmalloc_start": v["vmalloc_end"]}.get(key)
            note = f"..{end:#x}" if end else "VMCOREINFO"
            out.append((label, f"{v[key]:#x}", note, 14))
    return out
