"""kx seccomp: a task's seccomp filters, disassembled, and what they decide
for a syscall."""
from gdbext import arch, errors
from gdbext.decoders import seccomp as sdec
from gdbext.decoders.syscall_args import errno_name
from gdbext.kernel import backend, seccomp, tasks
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option, parse_int
from .task import task_completions


def syscall_name(abi: str):
    """nr -> the kernel's name for ABI `abi` (None when it has no table)."""
    try:
        table = backend.syscalls().table(abi)
    except errors.KxError:
        return lambda nr: None
    return table.name


def resolve_nr(word: str, abi: str) -> int:
    try:
        return int(word, 0)
    except ValueError:
        pass
    try:
        table = backend.syscalls().table(abi)
        # The kernel's names are its SYSCALL_DEFINE names: uname is newuname.
        nrs = table.nrs(word) or table.nrs("new" + word)
    except errors.MissingSymbol:
        nrs = []
    if not nrs:
        raise errors.BadArgument(f"unknown syscall {word!r} for the {abi} ABI")
    return nrs[0]


def filter_dicts(state, abi: str):
    name = syscall_name(abi)
    out = []
    for f in state.filters:
        lines = sdec.disassemble(f.insns, name, errno_name) if f.insns is not None else None
        out.append({"index": f.index, "address": f.address, "prog": f.prog, "log": f.log,
                    "len": len(f.insns) if f.insns is not None else None, "bpf_len": f.bpf_len,
                    "insns": [ln.to_dict() for ln in lines] if lines is not None else None,
                    "note": f.note})
    return out


def verdict_dict(state, nr: int, abi: str, args, ip: int):
    name = syscall_name(abi)(nr)
    v = seccomp.evaluate(state, nr, abi, args, ip, name, errno_name)
    d = v.to_dict(errno_name)
    d["name"] = name
    return d


def render_verdict(t: Text, v) -> None:
    shown = ", ".join(f"{a:#x}" for a in v["args"])
    t.kv("eval", f"{v['name'] or v['nr']}({shown})", kind="sym",
         note=f"nr {v['nr']}, {v['abi']}-bit ABI, arch {sdec.AUDIT_ARCHES.get(v['arch'], v['arch'])}, "
              f"ip {v['instruction_pointer']:#x}")
    for r in v["results"]:
        t.line(("dim", f"    filter {r['filter']} returns "), ("num", r["text"]))
    won = f"  [filter {v['filter']}]" if v["filter"] is not None else ""
    t.kv("verdict", v["verdict"] + won, kind="ok" if v["action"] in ("ALLOW", "LOG") else "bad")


def event_seccomp(event, cpu):
    """What the task's seccomp filters decide for the syscall `event`
    (events.SyscallEvent): None without seccomp, else {mode, filters,
    ...the verdict} or {mode, filters, error}.  The kernel builds
    seccomp_data from pt_regs: nr = orig_ax, instruction_pointer = the
    return address (kernel/seccomp.c populate_seccomp_data)."""
    try:
        state = seccomp.task_seccomp(event.task, cpu)
    except errors.MissingType:
        return None   # no debug info for it (a symbol-only vmlinux): say nothing
    if not state.mode:
        return None
    out = {"mode": state.mode_name, "filters": len(state.filters)}
    try:
        out.update(verdict_dict(state, event.nr, event.abi, event.raw_args, event.return_ip or 0))
    except errors.KxError as exc:
        out["error"] = str(exc)
    return out


def render_event_seccomp(t: Text, s) -> None:
    if s is None:
        return
    if "error" in s:
        t.kv("seccomp", f"{s['mode']}, {s['filters']} filters", kind="flag", note=s["error"])
        return
    won = f" (filter {s['filter']} of {s['filters']})" if s["filter"] is not None else f" ({s['filters']} filters)"
    t.kv("seccomp", s["verdict"] + won, kind="ok" if s["action"] in ("ALLOW", "LOG") else "bad")


class KxSeccomp(KxCommand):
    """Show a task's seccomp mode and filters, disassembled; --eval runs them.
Usage: kx seccomp [PID|COMM|ADDR] [--eval NR|NAME [ARG ...]] [--abi 64|32] [--ip ADDR] [--cpu N] [--json]

Reads task->seccomp (mode, filter_count, the filter list from the newest
through ->prev) and each filter's classic BPF program as user space
installed it (bpf_prog->orig_prog), and disassembles it with the
seccomp_data field names (nr, arch, instruction_pointer, args[i] and their
high halves) and the kernel's syscall names.  --eval runs every filter on
a seccomp_data built from NR (or a name), up to six ARGs, --abi (which sets
seccomp_data.arch) and --ip, and keeps the result of highest precedence as
the kernel does: KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF >
TRACE > LOG > ALLOW, the newest filter winning a tie.  The listing names
syscall numbers with the native (64-bit) table; names are the kernel's
(uname is newuname, which --eval also accepts as uname).  Default task: the
current one of the selected vCPU.  `kx event` at a syscall of a filtered
task runs the filters on that call."""

    name = "seccomp"
    completions = staticmethod(task_completions)

    def arguments(self, p):
        p.add_argument("task", nargs="?", default=None, metavar="PID|COMM|ADDR",
                       help="pid (decimal), comm, or task_struct address (0xffff...)")
        p.add_argument("--eval", nargs="+", default=None, metavar="NR|NAME [ARG",
                       help="a syscall (number or name) and up to six arguments to run the filters on")
        p.add_argument("--abi", default=None, help="the syscall ABI for --eval: 64 (default) or 32")
        p.add_argument("--ip", type=parse_int, default=0,
                       help="seccomp_data.instruction_pointer for --eval (default 0)")
        add_cpu_option(p)

    def run(self, args):
        cpu = machine.check_cpu(args.cpu)
        if args.eval is None and (args.abi is not None or args.ip):
            raise errors.BadArgument("--abi and --ip go with --eval")
        abi = arch.parse_abi(args.abi)[0].name
        task = tasks.find(args.task, cpu)
        state = seccomp.task_seccomp(task.address, cpu)
        data = {"task": {"address": task.address, "pid": task.pid, "comm": task.comm},
                "mode": state.mode_name, "mode_value": state.mode, "filter_count": state.filter_count,
                "filters": filter_dicts(state, arch.current().abis[0].name), "eval": None,
                "warnings": list(state.warnings)}
        if state.mode is None:
            data["warnings"].append("this kernel has no seccomp (CONFIG_SECCOMP is off)")
        if args.eval is not None:
            data["eval"] = self._eval(state, args, abi)
        return Report(data, self.render(data))

    @staticmethod
    def _eval(state, args, abi):
        words = args.eval
        if len(words) > 7:
            raise errors.BadArgument("--eval takes a syscall and at most six arguments")
        nr = resolve_nr(words[0], abi)
        values = []
        for w in words[1:]:
            try:
                values.append(parse_int(w) & ((1 << 64) - 1))
            except Exception:
                raise errors.BadArgument(f"argument {w!r} is not a number") from None
        return verdict_dict(state, nr, abi, values, args.ip & ((1 << 64) - 1))

    @staticmethod
    def render(d):
        task = d["task"]
        t = Text().head(f"seccomp of pid {task['pid']} \"{task['comm']}\" ({task['address']:#x})")
        mode = d["mode"] or "unsupported"
        t.kv("mode", mode, kind="flag", note=f"{len(d['filters'])} filters" if d["filters"] else None)
        for f in d["filters"]:
            order = "newest, runs first" if f["index"] == 0 else "older"
            size = f"{f['len']} instructions" if f["len"] is not None else f"{f['bpf_len']} eBPF instructions"
            log = ", SECCOMP_FILTER_FLAG_LOG" if f["log"] else ""
            t.line(("head", f"filter {f['index']}"), ("dim", f"  ({order})  {f['address']:#x}  {size}{log}"))
            if f["insns"] is None:
                t.line(("dim", f"  {f['note']}"))
                continue
            lines = [sdec.Line(i["line"], sdec.Insn(i["code"], i["jt"], i["jf"], i["k"]), i["text"])
                     for i in f["insns"]]
            for text in sdec.format_listing(lines):
                t.line(("plain", text))
        if d["eval"] is not None:
            render_verdict(t, d["eval"])
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxSeccomp()
