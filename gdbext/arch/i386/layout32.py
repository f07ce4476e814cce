"""The i386 kernel's memory areas as `kx kaslr` shows them, and the module
area kx names addresses by: the inputs of asm/pgtable_32_areas.h's macros
read from the kernel (high_memory and __FIXADDR_TOP from memory; enum
fixed_addresses, NR_CPUS and sizeof(struct cpu_entry_area) from the DWARF),
the arithmetic in decoders/layout_x86_32.py."""
from typing import Dict, List, Optional, Tuple

from gdbext import errors
from gdbext.decoders import layout_x86_32 as lay
from gdbext.decoders.kaslr import PAGE_OFFSET_32

ORDER = ("lowmem", "vmalloc", "modules", "pkmap", "ldt_remap", "cpu_entry_area", "fixmap")
NOTES = {"lowmem": "PAGE_OFFSET .. high_memory (the direct map)",
         "vmalloc": "high_memory + 8 MiB .. VMALLOC_END",
         "modules": "= vmalloc (MODULES_VADDR = VMALLOC_START)",
         "pkmap": "kmap()'s LAST_PKMAP pages",
         "ldt_remap": "the LDT remap (one PMD)",
         "cpu_entry_area": "the read-only IDT page, then one area per possible CPU",
         "fixmap": "FIXADDR_TOT_START .. __FIXADDR_TOP"}


def _u32(name: str) -> int:
    from gdbext import machine
    from gdbext.kernel import symbols
    address = symbols.lookup(name)
    if address is None:
        raise errors.MissingSymbol(name)
    return int.from_bytes(machine.read_kernel(address, 4), "little")


def _nr_cpus() -> int:
    """NR_CPUS: the length of __per_cpu_offset[NR_CPUS] (asm/percpu.h)."""
    import gdb
    sym = gdb.lookup_global_symbol("__per_cpu_offset")
    if sym is None:
        raise errors.MissingType("__per_cpu_offset", "its array type")
    return sym.type.sizeof // 4


def inputs() -> lay.Inputs32:
    from gdbext.kernel import symbols, types
    fixed = (types.enum_values("enum fixed_addresses") or {}).get("__end_of_fixed_addresses")
    if fixed is None:
        raise errors.MissingType("enum fixed_addresses", "__end_of_fixed_addresses")
    return lay.Inputs32(
        page_offset=PAGE_OFFSET_32, high_memory=_u32("high_memory"), fixaddr_top=_u32("__FIXADDR_TOP"),
        fixed_addresses=fixed, nr_cpus=_nr_cpus(), cpu_entry_area_size=types.sizeof("struct cpu_entry_area"),
        # 686-pae: PAE is what kx runs on (I386.kernel_mode_ready); HIGHMEM
        # leaves kmap_high() in the kernel.
        pae=True, highmem=symbols.lookup("kmap_high") is not None)


def areas() -> Dict[str, Tuple[int, int]]:
    from gdbext.kernel import backend
    return backend.cached(("i386-areas",), lambda: lay.areas(inputs()))


def memory_layout(warnings: List[str]) -> dict:
    """`kx kaslr`'s keys: the areas, what they were computed from, and
    whether the cpu_entry_area starts at the CPU's IDT (its read-only IDT,
    CPU_ENTRY_AREA_RO_IDT)."""
    try:
        found, given = areas(), inputs()
    except errors.KxError as exc:
        warnings.append(f"memory areas not decoded: {exc}")
        return {"areas": None}
    out = {"areas": {name: {"start": s, "end": e} for name, (s, e) in found.items()},
           "area_inputs": {k: getattr(given, k) for k in given.__dataclass_fields__}}
    idt = _idt_base()
    if idt is not None and idt != found["cpu_entry_area"][0]:
        warnings.append(f"the IDT is at {idt:#x}, not at the computed cpu_entry_area start "
                        f"{found['cpu_entry_area'][0]:#x}")
    return out


def _idt_base() -> Optional[int]:
    from gdbext import machine
    try:
        return machine.monitor_cpu_state(machine.selected_cpu())["idt"]["base"]
    except (errors.KxError, KeyError, TypeError):
        return None


def layout_rows(d: dict):
    """The text lines of memory_layout's keys: (label, value, note, width)."""
    found = d.get("areas")
    if not found:
        return []
    return [(name, f"{found[name]['start']:#010x}-{found[name]['end']:#010x}", NOTES[name], 16)
            for name in ORDER if name in found]
