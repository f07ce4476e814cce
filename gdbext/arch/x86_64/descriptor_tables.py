"""The descriptor tables of one vCPU: GDTR, IDTR and TR, then their contents.

GDTR/IDTR/TR are not gdbstub registers.  They come from QEMU's monitor for
exactly the vCPU asked about (gdbext.machine.monitor_cpu_state), or, on a
gdbserver without a monitor, from the kernel's own per-cpu copies: gdt_page
(the RW alias of the GDT the CPU loads from cpu_entry_area), idt_table and
cpu_tss_rw.  Either way one CPU's base is never paired with another's table.
"""
from gdbext import arch, errors
from gdbext.decoders import descriptors
from gdbext.kernel import percpu, symbols, version
from gdbext import machine



def _layout():
    """(GDT size, IDT size, gate size, GDT slot names, long mode) of the
    x86 architecture the target is: x86-64 or i386."""
    a = arch.current()
    return a.gdt_entries * 8, 256 * a.idt_gate_size, a.idt_gate_size, a.gdt_slot_names, a.gdt_long_mode


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
    gdt_size, idt_size = _layout()[:2]
    return {"source": "kernel",
            "gdt": {"base": percpu.address("gdt_page", cpu), "limit": gdt_size - 1},
            "idt": {"base": symbols.address("idt_table"), "limit": idt_size - 1},
            "tr": {"selector": arch.current().tss_selector, "base": percpu.address("cpu_tss_rw", cpu),
                   "limit": None, "flags": None}}


def gdt(cpu: int):
    regs = system_registers(cpu)
    raw = machine.read_kernel(regs["gdt"]["base"], regs["gdt"]["limit"] + 1, cpu)
    names, long_mode = _layout()[3:]
    return regs, descriptors.decode_gdt(raw[: (len(raw) // 8) * 8], names, long_mode)


def idt(cpu: int):
    regs = system_registers(cpu)
    _, idt_size, gate, names, _ = _layout()
    limit = min(regs["idt"]["limit"], idt_size - 1)
    raw = machine.read_kernel(regs["idt"]["base"], limit + 1, cpu)
    return regs, descriptors.decode_idt(raw[: (len(raw) // gate) * gate], version.version(), gate,
                                        arch.current().selector_names)


def int80_entry_names():
    """The kernel's int 0x80 entry: entry_INT80_compat up to 6.6, then
    asm_int80_emulation (6.7, "x86/entry: Convert INT 0x80 emulation to
    IDTENTRY", also backported to 6.1.y); entry_INT80_32 on an i386 kernel."""
    return [n for n in ("asm_int80_emulation", "entry_INT80_compat", "entry_INT80_32")
            if symbols.lookup(n) is not None]
