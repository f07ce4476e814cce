"""Convenience functions: $kx_current, $kx_per_cpu, $kx_ptregs."""
import gdb

from gdbext import errors
from gdbext.kernel import percpu, symbols, tasks, types
from gdbext import machine


def _int(value, what):
    try:
        return int(value)
    except (gdb.error, TypeError, ValueError):
        raise gdb.GdbError(f"{what} must be a number") from None


def _cpu(arg):
    cpu = None if arg is None else _int(arg, "cpu")
    return machine.check_cpu(cpu)


class _KxFunction(gdb.Function):
    fname = ""

    def __init__(self):
        super().__init__(self.fname)

    def invoke(self, *args):
        try:
            from gdbext.kernel import kaslr
            # The vmlinux check and KASLR slide, once per connection; never a
            # symbol reload in the middle of gdb evaluating an expression.
            mismatch = kaslr.mismatch_message(relocate_gdb=False)
            if mismatch:
                raise errors.KernelMismatch(mismatch)
            return self.call(*args)
        except errors.KxError as exc:
            raise gdb.GdbError(f"${self.fname}: {exc}") from None
        except gdb.MemoryError as exc:
            raise gdb.GdbError(f"${self.fname}: memory not readable: {exc}") from None

    def call(self, *args):
        raise NotImplementedError


class KxCurrent(_KxFunction):
    """$kx_current([CPU]) -> struct task_struct *: the task running on CPU.

Default: the selected vCPU (gdb thread N is vCPU N-1).  Reads the per-cpu
current_task (pcpu_hot.current_task on 6.2-6.14) at &var +
__per_cpu_offset[CPU]; never trusts GS_BASE, which holds the user value
before swapgs.  Example: p $kx_current(1)->comm"""

    fname = "kx_current"

    def call(self, cpu=None):
        address = tasks.current(_cpu(cpu))
        return gdb.Value(address).cast(types.lookup("struct task_struct").pointer())


class KxPerCpu(_KxFunction):
    """$kx_per_cpu("NAME"[, CPU]) -> the per-cpu variable NAME on CPU.

Computed as &NAME + __per_cpu_offset[CPU], which is right for zero-based
per-cpu symbols (up to 6.14) and for 6.15's ordinary addresses alike.
Example: p $kx_per_cpu("runqueues", 1).nr_running"""

    fname = "kx_per_cpu"

    def call(self, name=None, cpu=None):
        if name is None:
            raise gdb.GdbError('usage: $kx_per_cpu("NAME"[, CPU])')
        try:
            name = name.string()
        except gdb.error:
            raise gdb.GdbError('$kx_per_cpu: NAME must be a string, e.g. $kx_per_cpu("runqueues")') from None
        cpu = _cpu(cpu)
        if symbols.lookup(name) is None:
            raise errors.MissingSymbol(name)
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        address = percpu.address(name, cpu)
        if sym is None:
            raise errors.KxError(f"the debug info has no variable `{name}` (a vmlinux without DWARF?), so its"
                                 f" type is unknown; on CPU {cpu} it is at {address:#x}")
        vtype = sym.type
        try:  # an lvalue when gdb can read it on this CPU's page tables
            machine.read(address, max(vtype.sizeof, 1), cpu)
            return gdb.Value(address).cast(vtype.pointer()).dereference()
        except errors.MemoryUnreadable:
            # On the user page table (KPTI entry): read through the kernel PGD.
            return gdb.Value(machine.read_kernel(address, vtype.sizeof, cpu), vtype)


class KxPtregs(_KxFunction):
    """$kx_ptregs([TASK]) -> struct pt_regs *: a task's user-mode registers.

TASK is a struct task_struct * (for example $kx_current()), a pid, or a
task_struct address; default: the current task of the selected vCPU.  The
address is task_pt_regs(): the top of the kernel stack minus sizeof(struct
pt_regs) (and TOP_OF_KERNEL_STACK_PADDING).  Kernel threads have none.
Example: p $kx_ptregs()->orig_ax"""

    fname = "kx_ptregs"

    def call(self, task=None):
        cpu = machine.selected_cpu()
        spec = None
        if task is not None:
            spec = _int(task, "TASK") & machine.MASK64
        t = tasks.find(spec, cpu)
        if t.is_kernel_thread:
            tasks.user_pt_regs(t, cpu)  # raises the clear "kernel thread" error
        return gdb.Value(tasks.pt_regs_address(t)).cast(types.lookup("struct pt_regs").pointer())


def register():
    KxCurrent()
    KxPerCpu()
    KxPtregs()
