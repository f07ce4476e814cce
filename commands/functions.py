"""Convenience functions: $kx_current, $kx_per_cpu, $kx_ptregs,
$kx_task_struct, $kx_deref."""
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
before swapgs.  Example: p $kx_current(1)->comm

At the first instructions of entry_SYSCALL_64 under KPTI the CPU runs on the
user page table, which maps no task_struct: gdb dereferences a pointer through
the CPU's page tables, so `$kx_current()->comm` cannot be read there.  Use
$kx_task_struct().comm (or $kx_deref(POINTER)): kx reads it through the
kernel's page tables."""

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


_MAX_DEREF = 1 << 20


def _by_value(address, vtype, cpu):
    """The object of type `vtype` at `address`, read by kx through the
    kernel's page tables (KPTI-aware) and handed to gdb as a value not
    located in memory: gdb never reads it through the CPU's page table."""
    data = machine.read_kernel(address, vtype.sizeof, cpu)
    return gdb.Value(data, vtype)


class KxTaskStruct(_KxFunction):
    """$kx_task_struct([TASK]) -> struct task_struct: a task, by value.

TASK is a struct task_struct * (for example $kx_current(1)), a pid, or a
task_struct address; default: the current task of the selected vCPU.  kx
reads it through the kernel's page tables, so it works where gdb's own
dereference cannot: at entry_SYSCALL_64 on the user page table (KPTI).
Pointers inside it are still dereferenced by gdb (use $kx_deref).
Example: p $kx_task_struct().comm"""

    fname = "kx_task_struct"

    def call(self, task=None):
        cpu = machine.selected_cpu()
        spec = None if task is None else _int(task, "TASK") & machine.MASK64
        t = tasks.find(spec, cpu)
        return _by_value(t.address, types.lookup("struct task_struct"), cpu)


class KxDeref(_KxFunction):
    """$kx_deref(POINTER) -> *POINTER, read through the kernel's page tables.

Like *POINTER, but kx reads the object by walking the kernel's page tables,
so it works on a user page table (KPTI, the first instructions of
entry_SYSCALL_64), where gdb reads through the CPU's and fails.  The result
is a value, not an lvalue: `&` and `->` on it do not work; use `.`.
Example: p $kx_deref($kx_current()).comm"""

    fname = "kx_deref"

    def call(self, pointer=None):
        if pointer is None:
            raise gdb.GdbError("usage: $kx_deref(POINTER)")
        ptype = pointer.type.strip_typedefs()
        if ptype.code != gdb.TYPE_CODE_PTR:
            raise gdb.GdbError("$kx_deref: POINTER must be a pointer, e.g. $kx_deref($kx_current())")
        target = ptype.target()
        if target.strip_typedefs().code == gdb.TYPE_CODE_VOID or target.sizeof == 0:
            raise gdb.GdbError("$kx_deref: cast a void pointer to its type first")
        if target.sizeof > _MAX_DEREF:
            raise gdb.GdbError(f"$kx_deref: {target.sizeof} bytes is more than kx reads at once ({_MAX_DEREF})")
        address = int(pointer) & machine.MASK64
        if address == 0:
            raise gdb.GdbError("$kx_deref: POINTER is NULL")
        return _by_value(address, target, machine.selected_cpu())


def register():
    KxCurrent()
    KxPerCpu()
    KxPtregs()
    KxTaskStruct()
    KxDeref()
