"""x86-64's own evidence of the KASLR text slide, and the memory layout
`kx kaslr` shows once the slide is known (Arch.kaslr_readings,
Arch.kaslr_memory_layout, Arch.kaslr_layout_rows).

Sources (kernel/kaslr.py adds the neutral banner and build-id ones and votes):
- idt:   IDT gate handlers (vectors 0, 3, 6, 14) against their symbols;
- lstar: IA32_LSTAR against entry_SYSCALL_64 (explicit `kx kaslr` only: it
         needs an rdmsr injection on a vCPU in ring 0).
"""
from typing import Dict, List, Optional

from gdbext import errors
from gdbext.arch.base import SlideReadings
from gdbext.decoders import descriptors
from gdbext.decoders import kaslr as kdec
from gdbext.decoders.bits import MASK64
from gdbext.kernel import symbols, types
from gdbext import machine

# cpu_entry_area's read-only IDT alias, where idt_map_in_cea() puts idt_table
# and what IDTR holds (arch/x86/include/asm/cpu_entry_area.h, 6.1 and 6.12):
# the fallback when the remote has no QEMU monitor to tell IDTR.
CEA_RO_IDT = 0xFFFFFE0000000000
LSTAR = 0xC0000082
# IDT vectors whose handlers idt.c installs from fixed symbols (def_idts[]).
IDT_SYMBOLS = {0: "asm_exc_divide_error", 3: "asm_exc_int3", 6: "asm_exc_invalid_op",
               14: "asm_exc_page_fault"}
RANDOMIZED_BASES = ("page_offset_base", "vmalloc_base", "vmemmap_base")


def readings(table, cpu: int, inject: bool) -> SlideReadings:
    notes: Dict[str, str] = {}
    sources: Dict[str, Optional[int]] = {}
    sources["idt"], per_vector, final = _idt_source(table, cpu, notes)
    sources["lstar"] = None
    if inject:
        try:
            sources["lstar"] = _lstar_source(table, cpu, notes)
        except errors.KxError as exc:
            notes["lstar"] = str(exc)
    else:
        notes["lstar"] = "not read (`kx kaslr` reads it when rdmsr injection is possible)"
    # A mismatch needs the guest's runtime IDT (or LSTAR): after boot IDTR
    # is always the cpu_entry_area alias (idt.c: idt_map_in_cea); early
    # boot runs on other tables whose handlers say nothing about the vmlinux.
    evidence = sources["idt"] is not None or sources["lstar"] is not None or bool(per_vector and final)
    return SlideReadings(
        sources=sources, notes=notes, candidates=list(per_vector.values()),
        report={"idt_vectors": {str(v): s for v, s in sorted(per_vector.items())}},
        evidence=evidence, contradicted_by="the IDT/LSTAR", placed_by="the guest's IDT")


def _idt_base(cpu: int):
    """(IDT base, where it came from): IDTR from QEMU's monitor, else the
    fixed cpu_entry_area alias."""
    try:
        return machine.monitor_cpu_state(cpu)["idt"]["base"], "IDTR"
    except (errors.NotSupported, KeyError, TypeError):
        return CEA_RO_IDT, "cpu_entry_area"


def _idt_source(table, cpu, notes):
    """(slide or None, {vector: slide}, whether the IDT is the final one)."""
    # Not tables.idt(): that reads all 256 gates and falls back to the
    # idt_table symbol, which is what is being checked here; this reads only
    # the gates it compares and falls back to the fixed cpu_entry_area alias.
    links = {v: table.link_address(name) for v, name in IDT_SYMBOLS.items()}
    links = {v: a for v, a in links.items() if a is not None}
    if not links:
        notes["idt"] = "the vmlinux has none of " + ", ".join(IDT_SYMBOLS.values())
        return None, {}, False
    base, where = _idt_base(cpu)
    try:
        raw = machine.read_kernel(base, (max(links) + 1) * 16, cpu)
    except errors.MemoryUnreadable as exc:
        notes["idt"] = f"IDT at {base:#x} ({where}) unreadable: {exc}"
        return None, {}, False
    handlers = {}
    for v in links:
        gate = descriptors.decode_gate(raw[v * 16:v * 16 + 16])
        if gate.present:
            handlers[v] = gate.offset
    slide, per_vector = kdec.idt_slide(handlers, links)
    if slide is None:
        notes["idt"] = ("IDT handlers disagree: " + ", ".join(
            f"vector {v}: {s:#x}" for v, s in sorted(per_vector.items()))) if per_vector else "no present gates"
    return slide, per_vector, base == CEA_RO_IDT


def text_pointers(cpu: int) -> Dict[str, int]:
    """{"idt vector N": handler} for the present gates of IDT_SYMBOLS'
    vectors: kernel text, whatever the slide (no symbol needed)."""
    base, _where = _idt_base(cpu)
    raw = machine.read_kernel(base, (max(IDT_SYMBOLS) + 1) * 16, cpu)
    out = {}
    for v in IDT_SYMBOLS:
        gate = descriptors.decode_gate(raw[v * 16:v * 16 + 16])
        if gate.present and kdec.relocatable(gate.offset):
            out[f"idt vector {v}"] = gate.offset
    return out


def _lstar_source(table, cpu, notes):
    from gdbext.arch.x86_64 import msr_inject
    link = table.link_address("entry_SYSCALL_64")
    if link is None:
        notes["lstar"] = "the vmlinux has no entry_SYSCALL_64"
        return None
    why = msr_inject.injection_refusal(cpu)
    if why:
        notes["lstar"] = why
        return None
    readings_, _warnings = msr_inject.read_msrs(cpu, [LSTAR])
    r = readings_[0]
    if r.value is None or r.source not in ("gdbstub", "rdmsr"):
        notes["lstar"] = r.note or "LSTAR not readable"
        return None
    return kdec.signed_delta(r.value, link)


# ---------------------------------------------------------------------------
# What `kx kaslr` reports beyond the slide

def _read_u64(name):
    addr = symbols.lookup(name)
    if addr is None:
        return None
    try:
        return machine.read_u64(addr)
    except errors.KxError:
        return None


def _kernel_alignment():
    """boot_params.hdr.kernel_alignment: CONFIG_PHYSICAL_ALIGN as the boot
    loader saw it (Documentation/arch/x86/boot.rst, offset 0x230)."""
    addr = symbols.lookup("boot_params")
    if addr is None:
        return None
    try:
        off = types.offsetof("struct boot_params", "hdr.kernel_alignment")
        return int.from_bytes(machine.read_kernel(addr + off, 4), "little")
    except errors.KxError:
        return None


def memory_layout(slide: int, levels: int, warnings: List[str]) -> dict:
    """Physical and direct-map randomisation, read once the slide is known."""
    out = {"paging_levels": levels}
    randomized = {}
    for name in RANDOMIZED_BASES:
        out[name] = _read_u64(name)
        randomized[name] = kdec.randomized(name, out[name], levels)
    out["memory_randomized"] = randomized
    phys_base = _read_u64("phys_base")
    out["phys_base"] = None if phys_base is None else kdec.signed_delta(phys_base, 0)
    text_link = symbols.elf_table().link_address("_text")
    out["text"] = None if text_link is None else text_link + slide
    out.update(physical_load=None, physical_load_walk=None, physical_slide=None)
    if text_link is not None:
        _physical_load(out, text_link, phys_base, warnings)
    out["kernel_alignment"] = _kernel_alignment()
    if out["kernel_alignment"] and slide % out["kernel_alignment"]:
        warnings.append(f"slide {slide:#x} is not a multiple of boot_params.hdr.kernel_alignment "
                        f"{out['kernel_alignment']:#x}")
    return out


def _physical_load(out: dict, text_link: int, phys_base: Optional[int], warnings: List[str]) -> None:
    """Where _text is in physical memory: from phys_base, and by a page walk."""
    if phys_base is not None:
        # __pa_symbol(x) = x - __START_KERNEL_map + phys_base (page_64.h)
        out["physical_load"] = (out["text"] - kdec.START_KERNEL_MAP + phys_base) & MASK64
        # Without KASLR _text sits at its link-time physical address.
        out["physical_slide"] = kdec.signed_delta(out["physical_load"], text_link - kdec.START_KERNEL_MAP)
    try:
        out["physical_load_walk"] = machine.translate(out["text"], root=machine.kernel_page_table()).phys
    except errors.KxError as exc:
        warnings.append(f"page walk of _text failed: {exc}")
    if (out["physical_load"] is not None and out["physical_load_walk"] is not None
            and out["physical_load"] != out["physical_load_walk"]):
        warnings.append(f"phys_base says _text is at {out['physical_load']:#x}, the page tables "
                        f"say {out['physical_load_walk']:#x}")


def layout_rows(d: dict):
    """The text lines of memory_layout's keys: (label, value, note, width)."""
    if "text" not in d:
        return []
    rows = [("_text", f"{d['text']:#x}" if d["text"] is not None else "?", None, 14)]
    if d["physical_load"] is not None:
        rows.append(("phys load", f"{d['physical_load']:#x}", (
            f"physical slide {d['physical_slide']:#x}; phys_base {d['phys_base']:#x}"
            + (f"; page walk {d['physical_load_walk']:#x}" if d["physical_load_walk"] is not None else "")), 14))
    for name in RANDOMIZED_BASES:
        value = d[name]
        rnd = d["memory_randomized"][name]
        rows.append((name, f"{value:#x}" if value is not None else "?",
                     "randomized" if rnd else ("default" if rnd is False else None), 16))
    if d.get("kernel_alignment"):
        rows.append(("alignment", f"{d['kernel_alignment']:#x}", "boot_params.hdr.kernel_alignment", 14))
    return rows
