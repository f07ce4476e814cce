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
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from gdbext import errors
from gdbext.decoders import syscall_args
from gdbext.decoders.descriptors import USER32_CS
from gdbext.decoders.msr import decode_rflags
from gdbext.decoders.ptregs import PT_REGS_SIZE, decode_pt_regs
from gdbext.kernel import entry, symbols, syscalls, tasks
from gdbext import machine

X32_SYSCALL_BIT = 0x40000000   # arch/x86/include/uapi/asm/unistd.h
TS_COMPAT = 0x0002             # arch/x86/include/asm/thread_info.h
ENOSYS = 38
PAGE = 4096
MASK32 = 0xFFFFFFFF

class View:
    """One stopped vCPU as the decoder sees it: registers and memory."""

    def __init__(self, cpu: int):
        self.cpu = cpu

    def regs(self) -> Dict[str, int]:
        return machine.registers(self.cpu)

    def read_kernel(self, address: int, size: int) -> bytes:
        return machine.read_kernel(address, size, self.cpu)

    def read_user(self, address: int, size: int) -> bytes:
        return machine.read(address, size, self.cpu)

    def current_task(self) -> int:
        return tasks.current(self.cpu)


@dataclass
class Arg:
    reg: str
    value: int
    name: Optional[str] = None
    type: Optional[str] = None
    decoded: Optional[str] = None

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

    @property
    def valid(self) -> bool:
        return self.nr_syscalls is not None and 0 <= self.nr < self.nr_syscalls

    def to_dict(self) -> dict:
        return {
            "cpu": self.cpu, "pid": self.pid, "tgid": self.tgid, "comm": self.comm, "task": self.task,
            "abi": self.abi, "entry": self.entry, "source": self.source, "nr": self.nr, "name": self.name,
            "x32": self.x32, "args": [a.to_dict() for a in self.args], "return_ip": self.return_ip,
            "rflags": self.rflags,
            "rflags_names": decode_rflags(self.rflags)["set"] if self.rflags is not None else None,
            "handler": self.handler, "dispatch": self.dispatch.get("kind"),
            "dispatch_detail": self.dispatch, "nr_syscalls": self.nr_syscalls,
            "signature_source": self.signature_source, "ret": self.ret,
            "ret_name": syscall_args.errno_name(self.ret) if self.ret is not None and -4095 <= self.ret < 0 else None,
            "notes": self.notes,
        }

    def strace(self) -> str:
        """`openat(AT_FDCWD, "/etc/x", O_RDONLY)`, plus ` = 3` once returned."""
        name = self.name or f"syscall_{self.nr:#x}"
        text = f"{name}({', '.join(a.decoded or hex(a.value) for a in self.args)})"
        if self.ret is not None:
            text += " = " + syscall_args.format_return(self.ret)
        return text


def read_user_string(view: View, address: int, size: int) -> bytes:
    """Up to `size` bytes at a user address, page by page, stopping early at
    a NUL or an unmapped page; raises only if nothing at all is readable."""
    out = b""
    pos = address
    while len(out) < size:
        n = min(size - len(out), PAGE - (pos % PAGE))
        try:
            chunk = view.read_user(pos, n)
        except errors.KxError:
            if not out:
                raise
            break
        out += chunk
        if b"\0" in chunk:
            break
        pos += n
    return out


def signed32(v: int) -> int:
    v &= MASK32
    return v - (1 << 32) if v & 0x80000000 else v


def _live(stub: str, regs: Dict[str, int], view: View):
    """(abi, nr, [(reg, value)], return_ip, rflags, notes) from registers
    at an entry stub, before pt_regs exist."""
    notes = []
    if stub == "entry_SYSCALL_64":
        args = [(r, regs[r]) for r in ("rdi", "rsi", "rdx", "r10", "r8", "r9")]
        return "64", regs["rax"], args, regs["rcx"], regs["r11"], notes
    # The i386 ABI: eax = nr, ebx ecx edx esi edi ebp (orig_ax is (int)eax).
    names = ("ebx", "ecx", "edx", "esi", "edi", "ebp")
    values = [regs[n.replace("e", "r", 1)] & MASK32 for n in names]
    args = list(zip(names, values))
    nr = signed32(regs["rax"])
    ret_ip = rflags = None
    if stub == "entry_SYSCALL_compat":
        # SYSCALL from 32-bit code clobbers ECX, so the vDSO passes arg 2
        # in EBP and arg 6 on the user stack (entry_64_compat.S).
        ret_ip, rflags = regs["rcx"] & MASK32, regs["r11"]
        arg6 = None
        try:
            arg6 = int.from_bytes(view.read_user(regs["rsp"] & MASK32, 4), "little")
        except errors.KxError:
            notes.append("argument 6 is on the user stack, which is not readable here")
        args = [("ebx", values[0]), ("ebp", values[5]), ("edx", values[2]), ("esi", values[3]),
                ("edi", values[4]), ("[esp]", arg6 if arg6 is not None else 0)]
    elif stub in ("asm_int80_emulation", "entry_INT80_compat"):
        start = symbols.lookup(stub)
        if regs["rip"] == start:
            # The CPU pushed an IRET frame (RIP, CS, RFLAGS, RSP, SS) and
            # %rsp points at it (SDM Vol.3A 6.14.2).
            frame = view.read_kernel(regs["rsp"], 24)
            ret_ip = int.from_bytes(frame[0:8], "little")
            rflags = int.from_bytes(frame[16:24], "little")
        else:
            notes.append("past the stub's first instruction the IRET frame has moved: the return "
                         "address is in pt_regs once they are built")
    elif stub == "entry_SYSENTER_compat":
        # __kernel_vsyscall pushes ecx, edx, ebp and moves esp into ebp
        # before sysenter, which saves no stack pointer: ebp is the user
        # esp and argument 6 is the ebp pushed there (vdso32/system_call.S,
        # entry_64_compat.S, common.c do_fast_syscall_32).
        notes.append("SYSENTER saves no return address: the kernel returns to the vDSO's "
                     "__kernel_vsyscall landing pad")
        arg6 = None
        try:
            arg6 = int.from_bytes(view.read_user(values[5], 4), "little")
        except errors.KxError:
            notes.append("argument 6 is on the user stack, which is not readable here")
        args = args[:5] + [("[ebp]", arg6 if arg6 is not None else 0)]
    return "32", nr, args, ret_ip, rflags, notes


def _int80_before_orig_ax(stub: Optional[str], rip: int) -> bool:
    """Whether `rip` is in the int $0x80 IDT entry before orig_ax is set:
    in asm_int80_emulation, or in int80_emulation() itself."""
    if stub == "asm_int80_emulation":
        return True
    hit = symbols.table().describe(rip)
    return hit is not None and hit[0] == "int80_emulation"


def decode(view: View, ret: Optional[int] = None) -> SyscallEvent:
    """The syscall the vCPU behind `view` is in (entering, or returning with
    `ret` when the caller knows it)."""
    regs = view.regs()
    if regs.get("cs") is not None and regs["cs"] & 3 == 3:
        raise errors.NotSupported(f"CPU {view.cpu} is in user mode: stop at entry_SYSCALL_64 "
                                  "(or anywhere in a syscall) first")
    task = view.current_task()
    brief = tasks.LIST_READER.read(task, reader=view.read_kernel)
    if brief["flags"] & tasks.PF_KTHREAD:
        raise errors.KxError(f"CPU {view.cpu} runs the kernel thread {brief['comm']!r} "
                             f"(pid {brief['pid']}): it is not in a system call")
    pt_addr = tasks.pt_regs_address_for_stack(brief["stack"])
    stub = entry.entry_of(regs["rip"])
    in_stub = entry.is_syscall_entry(stub)
    if in_stub and not (brief["stack"] <= regs["rsp"] <= pt_addr):
        source = "registers"
        abi, nr, raw_args, return_ip, rflags, notes = _live(stub, regs, view)
        if abi == "64":
            nr = nr - (1 << 64) if nr >> 63 else nr
    else:
        source = "pt_regs"
        pt = decode_pt_regs(view.read_kernel(pt_addr, PT_REGS_SIZE))
        orig_ax = pt.orig_ax
        if orig_ax < 0 and _int80_before_orig_ax(stub, regs["rip"]):
            # int $0x80 as an IDT entry (6.1.66+ / 6.7+, common.c
            # int80_emulation): the idtentry stub pushes -1 as orig_ax and
            # int80_emulation() itself stores regs->orig_ax = regs->ax & 0xffffffff.
            # Until it has, the number is still in pt_regs->ax.
            orig_ax = pt.ax & MASK32
            notes_int80 = ["int80_emulation() has not stored orig_ax yet: nr is pt_regs->ax"]
        else:
            notes_int80 = []
        if orig_ax < 0:
            raise errors.KxError(f"CPU {view.cpu} is not in a system call: pt_regs.orig_ax is -1 "
                                 "(an interrupt or exception entry)")
        compat = pt.cs == USER32_CS or bool((brief["ti_status"] or 0) & TS_COMPAT) or bool(notes_int80)
        abi = "32" if compat else "64"
        nr = signed32(orig_ax) if compat else orig_ax
        names = (("ebx", "bx"), ("ecx", "cx"), ("edx", "dx"), ("esi", "si"), ("edi", "di"), ("ebp", "bp")) \
            if compat else (("rdi", "di"), ("rsi", "si"), ("rdx", "dx"), ("r10", "r10"), ("r8", "r8"), ("r9", "r9"))
        mask = MASK32 if compat else (1 << 64) - 1
        raw_args = [(hw, getattr(pt, f) & mask) for hw, f in names]
        return_ip, rflags, notes = pt.ip, pt.flags, notes_int80
        if not in_stub:
            stub = "entry_SYSCALL_64" if not compat else None
    x32 = abi == "64" and nr >= 0 and bool(nr & X32_SYSCALL_BIT)
    table_abi = "x32" if x32 else abi
    lookup_nr = nr & ~X32_SYSCALL_BIT if x32 else nr
    name = handler = nr_syscalls = sig = None
    try:
        table = syscalls.table(table_abi)
        nr_syscalls = table.nr_syscalls
        name = table.name(lookup_nr)
        hit = syscalls.handler(lookup_nr, table_abi)
        if hit:
            handler = {"address": hit[0], "symbol": hit[1]}
        if name:
            sig = syscalls.signature(lookup_nr, table_abi)
        dispatch = syscalls.dispatch(table_abi)
    except errors.MissingSymbol:
        dispatch = {"kind": None, "note": f"this kernel has no {table_abi}-bit syscall table"}
        if x32:
            notes.append("the x32 bit (0x40000000) is set, but this kernel has no x32 ABI "
                         "(CONFIG_X86_X32_ABI): it returns -ENOSYS")
            ret = -ENOSYS if ret is None else ret
    if x32:
        notes.insert(0, f"x32 ABI: nr {nr:#x} has __X32_SYSCALL_BIT (0x40000000) set")
    if nr_syscalls is not None and not (0 <= lookup_nr < nr_syscalls):
        notes.append(f"nr {nr} is not below NR_syscalls ({nr_syscalls}): the kernel calls no "
                     "handler and returns -ENOSYS")
        if ret is None:
            ret = -ENOSYS
    params = sig.args if sig else []
    values = {pname: v for (_, pname), (_, v) in zip(params, raw_args)}

    def read_string(a, n):
        return read_user_string(view, a, n)
    args = []
    count = len(params) if sig else len(raw_args)
    for i, (reg, value) in enumerate(raw_args[:count]):
        if i < len(params):
            ctype, pname = params[i]
            others = {k: v for k, v in values.items() if k != pname}
            decoded = syscall_args.format_arg(ctype, pname, value, read_string, others, name)
            args.append(Arg(reg, value, pname, ctype, decoded))
        else:
            args.append(Arg(reg, value, None, None, hex(value)))
    return SyscallEvent(
        cpu=view.cpu, task=task, pid=brief["pid"], tgid=brief["tgid"], comm=brief["comm"], abi=abi,
        entry=stub, source=source, nr=nr, name=name, x32=x32, args=args, return_ip=return_ip,
        rflags=rflags, handler=handler, dispatch=dispatch, nr_syscalls=nr_syscalls,
        signature_source=sig.source if sig else None, ret=ret, notes=notes)
