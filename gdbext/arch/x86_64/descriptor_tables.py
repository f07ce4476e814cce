"""The descriptor tables of one vCPU: GDTR, IDTR and TR, then their contents.

GDTR/IDTR/TR are not gdbstub registers.  They come from QEMU's monitor for
exactly the vCPU asked about (gdbext.machine.monitor_cpu_state), or, on a
gdbserver without a monitor, from the kernel's own per-cpu copies: gdt_page
(the RW alias of the GDT the CPU loads from cpu_entry_area), idt_table and
cpu_tss_rw.  Either way one CPU's base is never paired with another's table.
"""
from gdbext import errors
from gdbext.decoders import descriptors
from gdbext.kernel import percpu, symbols, version
from gdbext import machine

GDT_SIZE = descriptors.GDT_ENTRIES * 8          # arch/x86/include/asm/segment.h
IDT_SIZE = 256 * 16


def system_registers(cpu: int) -> dict:
    cpu = machine.check_cpu(cpu)
    try:
        state = machine.monitor_cpu_state(cpu)
        tr = state.get("tr_seg") or {}
        return {"source": "monitor", "gdt": state["gdt"], "idt": state["idt"],
                "tr": {"selector": tr.get("selector"), "base": tr.get("base"),
                       "limit": tr.get("limit"), "flags": tr.get("flags")}}
    except (errors.NotSupported, KeyError):
        pass
    return {"source": "kernel",
            "gdt": {"base": percpu.address("gdt_page", cpu), "limit": GDT_SIZE - 1},
            "idt": {"base": symbols.address("idt_table"), "limit": IDT_SIZE - 1},
            "tr": {"selector": descriptors.TSS_SEL, "base": percpu.address("cpu_tss_rw", cpu),
                   "limit": None, "flags": None}}


def gdt(cpu: int):
    regs = system_registers(cpu)
    raw = machine.read_kernel(regs["gdt"]["base"], regs["gdt"]["limit"] + 1, cpu)
    return regs, descriptors.decode_gdt(raw)


def idt(cpu: int):
    regs = system_registers(cpu)
    limit = min(regs["idt"]["limit"], IDT_SIZE - 1)
    raw = machine.read_kernel(regs["idt"]["base"], limit + 1, cpu)
    return regs, descriptors.decode_idt(raw[: (len(raw) // 16) * 16], version.version())


def int80_entry_names():
    """The kernel's int 0x80 entry: entry_INT80_compat up to 6.6, then
    asm_int80_emulation (6.7, "x86/entry: Convert INT 0x80 emulation to
    IDTENTRY", also backported to 6.1.y)."""
    return [n for n in ("asm_int80_emulation", "entry_INT80_compat") if symbols.lookup(n) is not None]
