"""kx regs: what user space handed the kernel, from pt_regs on the task stack."""
from gdbext import arch, errors
from gdbext.decoders import descriptors
from gdbext.decoders.msr import decode_rflags
from gdbext.decoders.ptregs import PT_REGS_FIELDS
from gdbext.kernel import entry, tasks
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand
from .task import task_completions

# pt_regs field -> the register's name in each mode, for the text view.
X86_64_NAMES = {"ax": "rax", "bx": "rbx", "cx": "rcx", "dx": "rdx", "si": "rsi", "di": "rdi",
                "bp": "rbp", "ip": "rip", "sp": "rsp"}
I386_NAMES = {"ax": "eax", "bx": "ebx", "cx": "ecx", "dx": "edx", "si": "esi", "di": "edi",
              "bp": "ebp", "ip": "eip", "sp": "esp"}


def syscall_name(nr: int, abi: str):
    """nr -> name from the kernel's own tables (kernel/syscalls.py)."""
    from gdbext.kernel import syscalls
    try:
        return syscalls.name(nr, abi)
    except errors.KxError:
        return None


def describe_syscall(orig_ax: int, mode: str):
    """{nr, name, abi, x32} for a pt_regs orig_ax, or None if not a syscall."""
    if orig_ax < 0:
        return None
    a = arch.current()
    choice = a.split_nr(a.abi("32" if mode == "32" else "64"), orig_ax)
    name = syscall_name(choice.nr, choice.abi)
    return {"nr": orig_ax, "name": name, "abi": choice.abi, "x32": choice.flagged}


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
        mode = regs.mode
        warnings = []
        if task.running_on is not None:
            live = machine.registers(task.running_on)
            if live["cs"] is not None and live["cs"] & 3 == 3:
                warnings.append(f"CPU {task.running_on} is in user mode: these are the registers saved at "
                                "its last kernel entry; gdb's registers are the live ones")
            elif live["rip"] is not None:
                pending = entry.pt_regs_pending(live["rip"], task.running_on)
                if pending:
                    warnings.append(pending)
        if mode not in ("64", "32"):
            warnings.append(f"CS {regs.cs:#x} is not a user code segment: this is not a user-mode frame")
        syscall = describe_syscall(regs.orig_ax, mode)
        args_abi = "32" if mode == "32" else "64"
        abi = arch.current().abi(args_abi)
        arg_list = [{"reg": hw, "field": f, "value": getattr(regs, f) & abi.mask}
                    for hw, f in zip(abi.arg_regs, abi.ptregs_args)]
        data = {
            "task": {"address": task.address, "pid": task.pid, "comm": task.comm},
            "address": address, "mode": mode, "regs": regs.to_dict(),
            "syscall": syscall,
            "nr_reg": abi.nr_reg,
            "args": arg_list if syscall else [],
            "cs": {"selector": regs.cs, "name": descriptors.selector_name(regs.cs), "mode": mode},
            "ss": {"selector": regs.ss, "name": descriptors.selector_name(regs.ss)},
            "rflags": decode_rflags(regs.flags)["set"],
            "warnings": warnings,
        }
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        tk = d["task"]
        mode = {"64": "64-bit", "32": "32-bit compat"}.get(d["mode"], d["mode"])
        t = Text().head(f"pt_regs of pid {tk['pid']} \"{tk['comm']}\" at {d['address']:#x}  ({mode} user mode)")
        r = d["regs"]
        sc = d["syscall"]
        if sc:
            name = sc["name"] or "unknown"
            t.kv("syscall", f"{name} (nr {sc['nr'] if not sc['x32'] else hex(sc['nr'])}, {sc['abi']}-bit ABI)",
                 kind="sym", note=f"orig_ax; {d['nr_reg']} at entry")
            t.line(("dim", "  arguments: "), ", ".join(f"{a['reg']}={a['value']:#x}" for a in d["args"]))
        else:
            t.kv("syscall", "none", kind="dim", note="orig_ax = -1: an interrupt or exception, not a syscall")
        names = I386_NAMES if d["mode"] == "32" else X86_64_NAMES
        notes = {}
        if r["ax"] == (-38 & (1 << 64) - 1) and sc:
            notes["ax"] = "-ENOSYS: entry's placeholder until the handler returns"
        if d["mode"] == "64" and sc:
            if r["cx"] == r["ip"]:
                notes["cx"] = "= rip: SYSCALL saved the return address here"
            if r["r11"] == r["flags"]:
                notes["r11"] = "= rflags: SYSCALL saved RFLAGS here"
        for name in PT_REGS_FIELDS:
            if name in ("cs", "ss", "flags", "orig_ax"):
                continue
            narrow = d["mode"] == "32" and name in I386_NAMES
            value = r[name] & 0xFFFFFFFF if narrow else r[name]
            t.kv(names.get(name, name), f"{value:#0{10 if narrow else 18}x}", width=8, note=notes.get(name))
        t.kv("orig_ax", f"{r['orig_ax']:#x}" if r["orig_ax"] >= 0 else str(r["orig_ax"]), width=8)
        t.kv("flags", f"{r['flags']:#x}", width=8, note=" ".join(d["rflags"]))
        t.kv("cs", f"{r['cs']:#x}", width=8, note=f"{d['cs']['name'] or '?'}: {mode}")
        t.kv("ss", f"{r['ss']:#x}", width=8, note=d["ss"]["name"])
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxRegs()
