"""A system call caught on its way in: which task, which ABI, nr -> name,
the six arguments decoded, the user return point, and the dispatch.

Where the values come from depends on where the vCPU stopped:
- inside an entry stub before pt_regs are complete (the first instruction of
  entry_SYSCALL_64, still on the user CR3 under KPTI and before swapgs): the
  live registers.  SYSCALL left RIP in RCX and RFLAGS in R11 (SDM Vol.2B,
  SYSCALL); int 0x80 left an IRET frame on the stack;
- anywhere after that (do_syscall_64, x64_sys_call, the handler, ...): the
  task's pt_regs (task_pt_regs()).
Kernel memory is read through the target's page walk, so neither the user
page table nor the user GS base around swapgs gets in the way.

Everything reads through a View, so the fast trace loop can hand in the
registers and memory it already has instead of going through gdb.
"""
import functools
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from gdbext import arch, errors
from gdbext.decoders import syscall_args, syscall_strace
from gdbext.decoders.paging import PAGE_SIZE_4K as PAGE
from gdbext.decoders.syscall_args import ENOSYS
from gdbext.kernel import backend, entry, page_cache, tasks


class View:
    """One stopped vCPU as the decoder sees it: registers and memory."""

    def __init__(self, cpu: int):
        self.cpu = cpu

    def regs(self) -> Dict[str, int]:
        return backend.registers(self.cpu)

    def read_kernel(self, address: int, size: int) -> bytes:
        return backend.read_kernel(address, size, self.cpu)

    def read_user(self, address: int, size: int) -> bytes:
        # A page the task has not faulted in comes from the page cache.
        return page_cache.with_page_cache(lambda a, n: backend.read_user(a, n, self.cpu),
                                          self.current_task, self.read_kernel)(address, size)

    def current_task(self) -> int:
        return tasks.current(self.cpu)

    def task_brief(self, task: int) -> Dict[str, object]:
        """The task's members a decode needs (tasks.LIST_READER); a caller
        must not change the dict (a view may hand out a cached one)."""
        return tasks.LIST_READER.read(task, reader=self.read_kernel)


@dataclass
class Arg:
    reg: str
    value: int
    name: Optional[str] = None
    type: Optional[str] = None
    decoded: Optional[str] = None

    @property
    def string(self) -> Optional[str]:
        """A string argument's text (`/etc/kx-target` where `decoded` is
        `"/etc/kx-target"`); None for any other argument."""
        raw = syscall_args.unescape_c_string(self.decoded)
        return None if raw is None else raw.decode("utf-8", "replace")

    def to_dict(self):
        return {"reg": self.reg, "value": self.value, "name": self.name, "type": self.type,
                "decoded": self.decoded}


@dataclass
class SyscallEvent:
    cpu: int
    task: int
    pid: int
    tgid: int
    comm: str
    abi: str                    # "64" or "32"
    entry: Optional[str]        # the entry stub, when known
    source: str                 # "registers" or "pt_regs"
    nr: int
    name: Optional[str]
    x32: bool
    args: List[Arg]
    return_ip: Optional[int]
    rflags: Optional[int]
    handler: Optional[Dict]
    dispatch: Dict
    nr_syscalls: Optional[int]
    signature_source: Optional[str]
    ret: Optional[int] = None
    notes: List[str] = field(default_factory=list)
    raw_args: List[int] = field(default_factory=list)   # all six, whatever the signature says
    # Emitted at its entry by a trace that waits for returns: a call that
    # never returns (exit_group), shown as strace does, `= ?`.
    no_return: bool = False

    @property
    def valid(self) -> bool:
        return self.nr_syscalls is not None and 0 <= self.nr < self.nr_syscalls

    def to_dict(self) -> dict:
        return {
            "cpu": self.cpu, "pid": self.pid, "tgid": self.tgid, "comm": self.comm, "task": self.task,
            "abi": self.abi, "entry": self.entry, "source": self.source, "nr": self.nr, "name": self.name,
            "x32": self.x32, "args": [a.to_dict() for a in self.args], "return_ip": self.return_ip,
            "rflags": self.rflags,
            "rflags_names": list(_flag_names(arch.current(), self.rflags)) if self.rflags is not None else None,
            "handler": self.handler, "dispatch": self.dispatch.get("kind"),
            "dispatch_detail": self.dispatch, "nr_syscalls": self.nr_syscalls,
            "signature_source": self.signature_source, "ret": self.ret,
            "ret_name": syscall_args.errno_name(self.ret) if self.ret is not None and -4095 <= self.ret < 0 else None,
            "notes": self.notes, "line": self.strace(),
        }

    def arg(self, name: str) -> Optional[Arg]:
        """The argument the kernel's signature calls `name`, or None:
        `ev.arg("filename").string` for openat's path."""
        return next((a for a in self.args if a.name == name), None)

    def strace(self) -> str:
        """`openat(AT_FDCWD, "/etc/x", O_RDONLY)`, plus ` = 3` once returned,
        laid out as strace does (decoders/syscall_strace.py)."""
        name = self.name or f"syscall_{self.nr:#x}"
        stem = syscall_args._syscall_stem(name)
        texts = syscall_strace.line_args(stem, [(a.name, a.value, a.decoded or hex(a.value)) for a in self.args])
        text = f"{name}({', '.join(texts)})"
        if self.ret is not None:
            text += " = " + syscall_args.format_return(self.ret, pointer=stem in syscall_strace.POINTER_RETURNS)
        elif self.no_return:
            text += " = ?"
        return text

    @property
    def never_returns(self) -> bool:
        return syscall_args._syscall_stem(self.name) in syscall_strace.NEVER_RETURNS


@functools.lru_cache(maxsize=256)
def _flag_names(a, value: int) -> tuple:
    """The architecture's names of the user flags word (cached: a trace
    decodes the same few values thousands of times a second)."""
    return tuple(a.flag_names(value))


UNREADABLE = "(unreadable)"
UNREADABLE_TWICE = "(unreadable at entry and return)"


def read_user_string(read_user, address: int, size: int) -> bytes:
    """Up to `size` bytes at a user address, page by page, stopping early at
    a NUL or an unmapped page; raises only if nothing at all is readable."""
    out = b""
    pos = address
    while len(out) < size:
        n = min(size - len(out), PAGE - (pos % PAGE))
        try:
            chunk = read_user(pos, n)
        except errors.KxError:
            if not out:
                raise
            break
        out += chunk
        if b"\0" in chunk:
            break
        pos += n
    return out


def _memo(memo: Optional[dict], key, compute):
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _raw_call(view: View, regs: Dict[str, int], brief: Dict, memo: Optional[dict] = None):
    """The RawCall at this stop: from the live registers while the entry
    stub has not written pt_regs yet, else from pt_regs."""
    a = arch.current()
    pt_addr = brief["stack"] + _memo(memo, "pt_regs offset", tasks.pt_regs_offset_in_stack)
    stub = _memo(memo, ("stub", regs[a.pc]), lambda: entry.syscall_stub(entry.entry_of(regs[a.pc])))
    live = stub if stub is not None and a.pt_regs_pending(stub, regs, brief["stack"], pt_addr) \
        else (a.vector_slot_stub(regs) if stub is None else None)
    if live is not None:
        call = a.live_call(live, regs, view)
        call.source = "registers"
        return call
    pt = a.decode_pt_regs(view.read_kernel(pt_addr, a.pt_regs_size))
    try:
        call = a.call_from_pt_regs(pt, stub, regs[a.pc], brief)
    except errors.KxError as exc:
        raise errors.KxError(f"CPU {view.cpu}: {exc}") from None
    call.source = "pt_regs"
    return call


@dataclass
class _Lookup:
    """What the kernel's tables say of a number."""
    name: Optional[str] = None
    handler: Optional[Dict] = None
    nr_syscalls: Optional[int] = None
    signature: Optional[object] = None
    dispatch: Dict = field(default_factory=dict)


def _look_up(table_abi: str, nr: int, notes: List[str], choice) -> _Lookup:
    out = _Lookup()
    syscalls = backend.syscalls()
    try:
        table = syscalls.table(table_abi)
        out.nr_syscalls = table.nr_syscalls
        out.name = table.name(nr)
        hit = syscalls.handler(nr, table_abi)
        if hit:
            out.handler = {"address": hit[0], "symbol": hit[1]}
        if out.name:
            out.signature = syscalls.signature(nr, table_abi)
        out.dispatch = syscalls.dispatch(table_abi)
    except errors.MissingSymbol:
        out.dispatch = {"kind": None, "note": f"this kernel has no {table_abi}-bit syscall table"}
        if choice.flagged:
            notes.append(f"this kernel has no {choice.abi} ABI (no {arch.current().abi(choice.abi).table}): "
                         "it returns -ENOSYS")
    return out


def _format_arg(read_user, arg: Arg, values: Dict[str, int], name: Optional[str]) -> str:
    others = {k: v for k, v in values.items() if k != arg.name}
    return syscall_args.format_arg(arg.type, arg.name, arg.value,
                                   lambda a, n: read_user_string(read_user, a, n), others, name,
                                   read_memory=read_user)


def _decode_args(view: View, raw_args, sig, name) -> List[Arg]:
    params = sig.args if sig else []
    values = {pname: v for (_, pname), (_, v) in zip(params, raw_args)}
    args = []
    count = len(params) if sig else len(raw_args)
    for i, (reg, value) in enumerate(raw_args[:count]):
        if i < len(params):
            ctype, pname = params[i]
            arg = Arg(reg, value, pname, ctype)
            arg.decoded = _format_arg(view.read_user, arg, values, name)
            args.append(arg)
        else:
            args.append(Arg(reg, value, None, None, hex(value)))
    return args


def complete_at_return(event: SyscallEvent, read_user) -> SyscallEvent:
    """What strace shows once a call returned, read in the task's memory
    then: out-parameters (wait4's status, the old sigaction, ...) and the
    strings that could not be read at the entry (a page the kernel faulted
    in meanwhile); one still unreadable says so."""
    if event.ret is None:
        return event
    stem = syscall_args._syscall_stem(event.name)
    values = {a.name: a.value for a in event.args if a.name}
    for arg in event.args:
        if not arg.name:
            continue
        others = {k: v for k, v in values.items() if k != arg.name}
        out = syscall_strace.return_text(stem, arg.name, arg.value, others, event.ret, read_user)
        if out is not None:
            arg.decoded = out
        elif arg.decoded and arg.decoded.endswith(UNREADABLE):
            again = _format_arg(read_user, arg, values, event.name)
            if again.endswith(UNREADABLE):
                arg.decoded = again.replace(UNREADABLE, UNREADABLE_TWICE)
            else:
                arg.decoded = again
                event.notes.append(f"{arg.name} read at the return: its page was not present at the entry")
    return event


def decode(view: View, ret: Optional[int] = None, memo: Optional[dict] = None) -> SyscallEvent:
    """The syscall the vCPU behind `view` is in (entering, or returning with
    `ret` when the caller knows it).  `memo`: a dict the caller keeps over
    many decodes during which symbols and tables cannot change (a trace):
    each stub and each number's table entry is then looked up once."""
    a = arch.current()
    regs = view.regs()
    if a.in_user_mode(regs):
        raise errors.NotSupported(f"CPU {view.cpu} is in user mode: stop at a syscall entry "
                                  "(or anywhere in a syscall) first")
    task = view.current_task()
    brief = view.task_brief(task)
    if brief["flags"] & tasks.PF_KTHREAD:
        raise errors.KxError(f"CPU {view.cpu} runs the kernel thread {brief['comm']!r} "
                             f"(pid {brief['pid']}): it is not in a system call")
    call = _raw_call(view, regs, brief, memo)
    abi = a.abi(call.abi)
    choice = a.split_nr(abi, call.nr)
    notes = list(call.notes)
    if choice.note:
        notes.insert(0, choice.note)

    def look_up():
        added = []
        return _look_up(choice.abi, choice.nr, added, choice), added
    found, added = _memo(memo, ("lookup", choice.abi, choice.nr, choice.flagged), look_up)
    notes += added
    if found.nr_syscalls is None and choice.flagged and ret is None:
        ret = -ENOSYS
    if found.nr_syscalls is not None and not (0 <= choice.nr < found.nr_syscalls):
        notes.append(f"nr {call.nr} is not below NR_syscalls ({found.nr_syscalls}): the kernel calls no "
                     "handler and returns -ENOSYS")
        if ret is None:
            ret = -ENOSYS
    sig = found.signature
    return SyscallEvent(
        cpu=view.cpu, task=task, pid=brief["pid"], tgid=brief["tgid"], comm=brief["comm"], abi=call.abi,
        entry=call.stub, source=call.source, nr=call.nr, name=found.name, x32=choice.flagged,
        args=_decode_args(view, call.args, sig, found.name), return_ip=call.return_ip,
        rflags=call.flags, handler=found.handler, dispatch=found.dispatch,
        nr_syscalls=found.nr_syscalls, signature_source=sig.source if sig else None, ret=ret, notes=notes,
        raw_args=[v for _, v in call.args])
