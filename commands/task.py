"""kx task and kx ps: which task is this, and which tasks are there."""
from gdbext import api, arch
from gdbext.decoders import capabilities
from gdbext.kernel import flag_names, tasks
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option, word_format


def task_completions():
    """pids and comms of the tasks, for tab completion (only when stopped)."""
    try:
        return [str(t.pid) for t in tasks.all_tasks()] + [t.comm for t in tasks.all_tasks()]
    except Exception:  # completion must never raise
        return []


state_of = flag_names.state_of


class KxTask(KxCommand):
    """Show a task: pid, comm, state, flags, stack, mm and saved context.
Usage: kx task [PID|COMM|ADDR] [--cpu N] [--json]

Without an argument: the task running on the selected vCPU (or --cpu N), as
the kernel's `current` sees it (per-cpu current_task, or pcpu_hot.current_task
on 6.2-6.14), cross-checked against runqueues[cpu].curr.  PID 0 is the idle
task of that CPU.  Shows PF_* flags, thread_info TIF_* flags and
syscall_work by name, the kernel stack with its STACK_END_MAGIC check, where
thread_info lives, mm/active_mm and thread.sp/fsbase/gsbase; the seccomp
mode and number of filters (`kx seccomp` shows them); the credentials of
task->cred: uid/gid, effective, saved and filesystem ids, the supplementary
groups, and the capability sets (effective, permitted, inheritable,
bounding, ambient) by name, up to the kernel's own cap_last_cap."""

    name = "task"
    completions = staticmethod(task_completions)

    def arguments(self, p):
        p.add_argument("task", nargs="?", default=None, metavar="PID|COMM|ADDR",
                       help="pid (decimal), comm, or task_struct address (0xffff...)")
        add_cpu_option(p)

    def run(self, args):
        cpu = machine.check_cpu(args.cpu)
        task = api.task(args.task, cpu=cpu) if args.task is not None else api.current(cpu)
        data = task.to_dict()
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        run = f"running on CPU {d['running_on']}" if d["running_on"] is not None else f"last ran on CPU {d['cpu']}"
        kind = "  [kernel thread]" if d["kernel_thread"] else ""
        t = Text().head(f"task {d['address']:#x}  pid {d['pid']}  tgid {d['tgid']}  \"{d['comm']}\"  {run}{kind}")
        t.kv("state", d["state"], kind="flag", note=" | ".join(d["state_names"]) + f"  ({d['state_value']:#x})")

        def flags(key, label):
            f = d[key]
            if f is not None:
                t.kv(label, f"{f['value']:#x}", note=" ".join(f["names"]) or "none")
        flags("flags", "flags (PF_*)")
        flags("ti_flags", "TIF_*")
        flags("syscall_work", "syscall_work")
        flags("ti_status", "TS_*")
        ti = d["thread_info"]
        t.kv("thread_info", f"{ti['address']:#x}",
             note="inside task_struct (THREAD_INFO_IN_TASK)" if ti["location"] == "task_struct"
             else "at the bottom of the kernel stack")
        s = d["stack"]
        magic = {True: "STACK_END_MAGIC intact", False: "STACK_END_MAGIC OVERWRITTEN", None: "end unreadable"}
        t.kv("stack", f"{s['base']:#x} .. {s['top']:#x}", note=f"{s['size'] // 1024} KiB, {magic[s['end_magic_ok']]}")
        if s["pt_regs"] is not None:
            t.kv("user pt_regs", f"{s['pt_regs']:#x}", note="task_pt_regs(); `kx regs` decodes it")
        t.kv("mm", f"{d['mm']:#x}" if d["mm"] else "NULL", note="no user address space" if not d["mm"] else None)
        t.kv("active_mm", f"{d['active_mm']:#x}" if d["active_mm"] else "NULL")
        th = d["thread"]
        t.kv("thread.sp", f"{th['sp']:#x}", note=f"saved kernel {arch.current().sp} at its last switch_to")
        if th["fsbase"] is not None:
            t.kv("thread.fsbase", f"{th['fsbase']:#x}")
            t.kv("thread.gsbase", f"{th['gsbase']:#x}")
        render_security(t, d)
        for w in d["warnings"]:
            t.warn(w)
        return t


_CAP_LABELS = {"effective": "CapEff", "permitted": "CapPrm", "inheritable": "CapInh",
               "bounding": "CapBnd", "ambient": "CapAmb"}


def render_security(t, d):
    sec, c = d.get("seccomp"), d.get("creds")
    if sec is not None and sec["mode"] is not None:
        note = (f"{sec['filters']} filters; `kx seccomp {d['pid']}` disassembles them"
                if sec["filters"] else None)
        t.kv("seccomp", f"{sec['mode']} ({sec['mode_value']})", kind="flag", note=note)
    if c is None:
        return
    t.kv("uid", f"{c['uid']}", note=f"euid {c['euid']}  suid {c['suid']}  fsuid {c['fsuid']}")
    t.kv("gid", f"{c['gid']}", note=f"egid {c['egid']}  sgid {c['sgid']}  fsgid {c['fsgid']}")
    g = c["groups"]
    if g is not None:
        gids = " ".join(str(x) for x in g["gids"]) + (" ..." if g["truncated"] else "")
        t.kv("groups", f"{g['count']}", note=gids or None)
    for key, label in _CAP_LABELS.items():
        caps = c["caps"].get(key)
        if caps is not None:
            t.kv(label, f"{caps['value']:#018x}", note=capabilities.summary(caps))
    if c["overridden"]:
        t.line(("dim", "  note: task->cred differs from task->real_cred (an override_creds() is in force)"))


class KxPs(KxCommand):
    """List every task: pid, tgid, state, CPU, comm.
Usage: kx ps [--json]

Walks init_task.tasks and each process's threads (signal->thread_head), plus
the idle task of every CPU, reading each task_struct in two batched reads.
The CPU column is the CPU a task is running on right now (its per-cpu
current), or blank; `last` is thread_info.cpu."""

    name = "ps"

    def run(self, args):
        data = api.tasks().to_dict()
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().line(("head", f"{'PID':>7} {'TGID':>7} ST {'CPU':>3} {'LAST':>4}  {'TASK':<18}  COMM"))
        for r in d["tasks"]:
            cpu = "" if r["cpu"] is None else str(r["cpu"])
            last = "" if r["last_cpu"] is None else str(r["last_cpu"])
            comm = f"[{r['comm']}]" if r["kernel_thread"] else r["comm"]
            t.line(f"{r['pid']:>7} {r['tgid']:>7} {r['state']:<2} ", ("ok" if cpu else "plain", f"{cpu:>3}"),
                   f" {last:>4}  {r['address']:{word_format()}}  ", ("sym", comm))
        t.line(("dim", f"{d['count']} tasks"))
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxTask()
    KxPs()
