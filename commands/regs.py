"""kx regs: what user space handed the kernel, from pt_regs on the task stack."""
from gdbext import api, arch
from gdbext.render import Report, Text

from .base import KxCommand
from .task import task_completions


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
        data = api.pt_regs(args.task).to_dict()
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
