"""kx regs: what user space handed the kernel, from pt_regs on the task stack."""
from typing import Optional

from gdbext import arch, errors
from gdbext.kernel import entry, tasks
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand
from .task import task_completions


def syscall_name(nr: int, abi: str):
    """nr -> name from the kernel's own tables (kernel/syscalls.py)."""
    from gdbext.kernel import syscalls
    try:
        return syscalls.name(nr, abi)
    except errors.KxError:
        return None


def describe_syscall(nr: int, mode: str):
    """{nr, name, abi, x32} for the number saved in pt_regs (orig_ax on
    x86-64), or None if not a syscall."""
    if nr < 0:
        return None
    a = arch.current()
    choice = a.split_nr(a.user_abi(mode), nr)
    name = syscall_name(choice.nr, choice.abi)
    return {"nr": nr, "name": name, "abi": choice.abi, "x32": choice.flagged}


def live_warning(task) -> Optional[str]:
    """Why pt_regs may not be what the CPU running `task` holds, or None."""
    if task.running_on is None:
        return None
    a = arch.current()
    live = machine.registers(task.running_on)
    if a.in_user_mode(live):
        return (f"CPU {task.running_on} is in user mode: these are the registers saved at "
                "its last kernel entry; gdb's registers are the live ones")
    if live.get(a.pc) is not None:
        return entry.pt_regs_pending(live[a.pc], task.running_on)
    return None


class KxRegs(KxCommand):
    """Decode the user-mode registers a task saved on its kernel stack.
Usage: kx regs [PID|COMM|ADDR] [--json]

Finds struct pt_regs the kernel's way, task_pt_regs(): the top of the task's
kernel stack (stack + THREAD_SIZE - TOP_OF_KERNEL_STACK_PADDING) minus
sizeof(struct pt_regs).  Shows every register, orig_ax as the syscall number
and name, CS/SS with the mode they mean, RFLAGS by name, and for a 32-bit
(compat) task the i386 syscall ABI: eax = nr, ebx ecx edx esi edi ebp =
arguments 1-6.  A kernel thread has no user pt_regs and is refused."""

    name = "regs"
    completions = staticmethod(task_completions)

    def arguments(self, p):
        p.add_argument("task", nargs="?", default=None, metavar="PID|COMM|ADDR",
                       help="default: the task running on the selected vCPU")

    def run(self, args):
        cpu = machine.selected_cpu()
        task = tasks.find(args.task, cpu)
        address, regs = tasks.user_pt_regs(task, cpu)
        a = arch.current()
        mode = a.user_mode(regs)
        abi = a.user_abi(mode)
        warnings = [w for w in (live_warning(task),) if w]
        own, own_warnings = a.user_regs_report(regs)
        warnings += own_warnings
        syscall = describe_syscall(getattr(regs, abi.ptregs_nr), mode)
        arg_list = [{"reg": hw, "field": f, "value": getattr(regs, f) & abi.mask}
                    for hw, f in zip(abi.arg_regs, abi.ptregs_args)]
        data = {
            "task": {"address": task.address, "pid": task.pid, "comm": task.comm},
            "address": address, "mode": mode,
            "regs": {name: getattr(regs, name) for name in a.pt_regs_offsets},
            "syscall": syscall,
            "nr_reg": abi.nr_reg,
            "args": arg_list if syscall else [],
            **own,
            "warnings": warnings,
        }
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        a = arch.current()
        tk = d["task"]
        mode = a.user_modes.get(d["mode"], d["mode"])
        nr_member = a.user_abi(d["mode"]).ptregs_nr
        t = Text().head(f"pt_regs of pid {tk['pid']} \"{tk['comm']}\" at {d['address']:#x}  ({mode} user mode)")
        sc = d["syscall"]
        if sc:
            name = sc["name"] or "unknown"
            t.kv("syscall", f"{name} (nr {sc['nr'] if not sc['x32'] else hex(sc['nr'])}, {sc['abi']}-bit ABI)",
                 kind="sym", note=f"{nr_member}; {d['nr_reg']} at entry")
            t.line(("dim", "  arguments: "), ", ".join(f"{x['reg']}={x['value']:#x}" for x in d["args"]))
        else:
            t.kv("syscall", "none", kind="dim",
                 note=f"{nr_member} = -1: an interrupt or exception, not a syscall")
        for name, value, note in a.user_regs_rows(d):
            t.kv(name, value, width=8, note=note)
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxRegs()
