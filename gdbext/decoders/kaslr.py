"""KASLR arithmetic: slides, their sanity checks and the vote between sources.

Pure: addresses and bytes in, verdicts out.  The kernel model
(gdbext/kernel/kaslr.py) reads the machine and the vmlinux and asks here.

Facts (arch/x86, 6.1 and 6.12):
- the text slide is a multiple of CONFIG_PHYSICAL_ALIGN, which Kconfig
  requires to be a multiple of 2 MiB on 64-bit (Debian: 0x200000);
- find_random_virt_addr() (boot/compressed/kaslr.c) picks the virtual base
  in [LOAD_PHYSICAL_ADDR, KERNEL_IMAGE_SIZE - image size] with
  KERNEL_IMAGE_SIZE = 1 GiB under RANDOMIZE_BASE (page_64_types.h), so the
  slide lies in [0, 1 GiB);
- only the kernel image moves with it: zero-based per-cpu symbols (up to
  6.14) and absolute symbols stay where the linker put them.
"""
import collections
import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

from gdbext.decoders.bits import MASK64

MIN_ALIGN = 0x200000                 # arch/x86/Kconfig PHYSICAL_ALIGN, 64-bit
MAX_SLIDE = 1 << 30                  # KERNEL_IMAGE_SIZE with RANDOMIZE_BASE
START_KERNEL_MAP = 0xFFFFFFFF80000000  # __START_KERNEL_map (page_64_types.h)

# Where the direct map, vmalloc and vmemmap start without RANDOMIZE_MEMORY
# (arch/x86/include/asm/page_64_types.h, pgtable_64_types.h), by paging mode.
DEFAULT_BASES = {
    4: {"page_offset_base": 0xFFFF888000000000, "vmalloc_base": 0xFFFFC90000000000,
        "vmemmap_base": 0xFFFFEA0000000000},
    5: {"page_offset_base": 0xFF11000000000000, "vmalloc_base": 0xFFA0000000000000,
        "vmemmap_base": 0xFFD4000000000000},
}


def relocatable(link_address: int, image_start: int = START_KERNEL_MAP) -> bool:
    """Whether a symbol moves with the text slide: the kernel image lives at
    and above `image_start` (x86-64: the __START_KERNEL_map window); per-cpu
    offsets and absolute values don't."""
    return (link_address & MASK64) >= image_start


def slide_problem(slide: int, align: int = MIN_ALIGN, max_slide: int = MAX_SLIDE) -> Optional[str]:
    """Why `slide` cannot be a KASLR text slide, or None if it can."""
    if slide < 0:
        return f"negative ({slide:#x})"
    if slide >= max_slide:
        return f"{slide:#x} is beyond the {max_slide >> 30} GiB kernel image window"
    if slide % align:
        return f"{slide:#x} is not a multiple of the kernel alignment {align:#x}"
    return None


def signed_delta(runtime: int, link: int) -> int:
    """runtime - link as a signed 64-bit difference."""
    d = (runtime - link) & MASK64
    return d - (1 << 64) if d >> 63 else d


@dataclasses.dataclass
class Vote:
    slide: Optional[int]            # the agreed slide, or None
    agreeing: List[str]             # sources that gave it
    rejected: Dict[str, str]        # source -> why its value was not counted
    candidates: Dict[int, List[str]]  # every valid value -> its sources

    @property
    def agreed(self) -> bool:
        return self.slide is not None


def vote(readings: Mapping[str, Optional[int]], align: int = MIN_ALIGN, quorum: int = 2,
         max_slide: int = MAX_SLIDE) -> Vote:
    """Agree on a slide: at least `quorum` sources with the same valid value,
    and no other value with as many.  None readings are sources that could not
    be read; invalid values (misaligned, out of range) never count."""
    rejected = {}
    by_value = collections.OrderedDict()
    for name, value in readings.items():
        if value is None:
            continue
        why = slide_problem(value, align, max_slide)
        if why:
            rejected[name] = why
            continue
        by_value.setdefault(value, []).append(name)
    ranked = sorted(by_value.items(), key=lambda kv: -len(kv[1]))
    slide, agreeing = None, []
    if ranked and len(ranked[0][1]) >= quorum and (len(ranked) == 1 or len(ranked[1][1]) < len(ranked[0][1])):
        slide, agreeing = ranked[0][0], list(ranked[0][1])
    return Vote(slide, agreeing, rejected, dict(by_value))


def idt_slide(handlers: Mapping[int, int], links: Mapping[int, int]) -> Tuple[Optional[int], Dict[int, int]]:
    """The slide most IDT vectors agree on: handlers {vector: runtime address}
    against links {vector: link address of the handler symbol}.  Returns
    (slide or None, {vector: slide})."""
    per_vector = {v: signed_delta(handlers[v], links[v]) for v in handlers if v in links}
    if not per_vector:
        return None, per_vector
    counts = collections.Counter(per_vector.values())
    value, n = counts.most_common(1)[0]
    return (value if n * 2 > len(per_vector) else None), per_vector


def banner_summary(banner: str) -> str:
    """'6.12.117+deb12-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2025-...)'
    from a linux_banner: the release and the build line, without the compiler."""
    text = banner.strip()
    if not text.startswith("Linux version "):
        return text[:80]
    release = text.split()[2] if len(text.split()) > 2 else "?"
    hash_at = text.find(" #")
    return release + (text[hash_at:] if hash_at >= 0 else "")


def printable_prefix(raw: bytes, cap: int = 60) -> str:
    """What a memory read holds, for a message: text up to the first NUL, or hex."""
    head = raw.split(b"\0")[0][:cap]
    if head and all(32 <= b < 127 for b in head):
        return head.decode("ascii")
    return raw[:16].hex()


def randomized(name: str, value: Optional[int], levels: int = 4) -> Optional[bool]:
    """Whether a RANDOMIZE_MEMORY base differs from its fixed default."""
    default = DEFAULT_BASES.get(levels, {}).get(name)
    if value is None or default is None:
        return None
    return value != default
