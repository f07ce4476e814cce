"""kx event: decode the system call the selected vCPU is entering."""
from gdbext import api, arch
from gdbext.arch.base import EntryStub
from gdbext.kernel import entry, symbols
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option, word_format
from .seccomp import event_seccomp, render_event_seccomp


def _return_words(d):
    """Where the user return address and flags were found, as text."""
    if d["source"] != "registers":
        return arch.current().pt_regs_return
    stub = entry.syscall_stub(d["entry"])
    return stub.live_return if stub is not None else EntryStub.live_return


def render_event(d, t: Text = None) -> Text:
    t = t or Text()
    a = arch.current()
    abi = a.abi(d["abi"])
    where = d["entry"] or abi.entry_text or f"a {abi.label} entry"
    how = ("live registers: pt_regs are not built yet" if d["source"] == "registers"
           else "pt_regs on the task stack")
    t.head(f"CPU {d['cpu']}: pid {d['pid']} \"{d['comm']}\" enters {where}, {abi.label} ABI  [{how}]")
    name = d["name"] or ("invalid" if d["ret"] is not None else "unknown")
    nr_text = f"{d['nr']:#x}" if d["x32"] else str(d["nr"])
    t.kv("syscall", f"{name}", kind="sym", note=f"nr {nr_text} ({abi.nr_reg})")
    for arg in d["args"]:
        label = f"{arg['reg']}"
        pname = f"{arg['type'] or ''} {arg['name'] or ''}".strip()
        t.line(("key", f"  {label:<14} "), ("num", f"{arg['value']:{word_format()}}  "), ("dim", f"{pname:<28} "),
               ("str", arg["decoded"] or ""))
    ip_via, flags_via = _return_words(d)
    if d["return_ip"] is not None:
        t.kv("returns to", f"{d['return_ip']:#x}",
             note=f"{ip_via}; {symbols.format_address(d['return_ip']) or 'user space'}")
    if d["rflags"] is not None:
        t.kv(f"user {a.flags_register}", f"{d['rflags']:#x}", note=f"{flags_via}: {' '.join(d['rflags_names'])}")
    h = d["handler"]
    if h:
        t.kv("handler", h["symbol"] or "?", kind="sym", note=f"{h['address']:#x}")
    detail = d["dispatch_detail"]
    if detail.get("kind"):
        how = ("a switch of direct calls; the table only names the handler" if detail.get("switch")
               else f"indirect call through {detail.get('function')}[nr]: the entry in memory is what runs")
        t.kv("dispatch", detail["kind"], kind="sym", note=how)
    if d["ret"] is not None:
        err = f" {d['ret_name']}" if d["ret_name"] else ""
        t.kv("returns", f"{d['ret']}{err}", kind="bad" if d["ret"] < 0 else "num")
    for n in d["notes"]:
        t.line(("dim", f"  note: {n}"))
    return t


class KxEvent(KxCommand):
    """Decode the system call the selected vCPU is stopped in.
Usage: kx event [--cpu N] [--json]

Works at the first instruction of entry_SYSCALL_64 (before swapgs, on the
user page table under KPTI: the live registers hold everything, RCX the
return address and R11 the user RFLAGS), anywhere later in the syscall path
(do_syscall_64, x64_sys_call, the handler: pt_regs), and at the compat
entries (int 0x80 via asm_int80_emulation, sysenter, 32-bit syscall) with
the i386 ABI: eax = nr; ebx, ecx, edx, esi, edi, ebp = arguments.
For a task under seccomp it says what its filters will return for this
call (`kx seccomp --eval` runs them on any call).
Shows nr -> name from the kernel's own table, each argument decoded by its
type (strings read from user memory), the handler and how the kernel reaches
it (sys_call_table, or the x64_sys_call() switch), and -ENOSYS for an
invalid number."""

    name = "event"

    def arguments(self, p):
        add_cpu_option(p)

    def run(self, args):
        cpu = machine.check_cpu(args.cpu)
        event = api.event(cpu)
        data = event.to_dict()
        data["seccomp"] = event_seccomp(event, cpu)
        text = render_event(data)
        render_event_seccomp(text, data["seccomp"])
        return Report(data, text)


def register():
    KxEvent()
