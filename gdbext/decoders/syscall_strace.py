"""What strace knows of particular syscalls beyond their C types: flags and
structs by name at the entry, out-parameters at the return, and how its
line lays the arguments out (open's mode only with O_CREAT, clone's named
arguments in strace's order).

Arguments are named as the kernel's SYSCALL_DEFINE names them (x86-64,
6.1 - 7.2: kernel/fork.c, kernel/exit.c, kernel/signal.c, ...).  A reader
`read(address, size) -> bytes` returns exactly `size` bytes of user memory
or raises; every failure prints the address, never raises.
"""
import struct
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from gdbext.decoders import strace_flags as F
from gdbext.decoders import syscall_structs as S
from gdbext.decoders.bits import MASK32, MASK64, to_signed

Reader = Callable[[int, int], bytes]
NEVER_RETURNS = frozenset({"exit", "exit_group"})
POINTER_RETURNS = frozenset({"mmap", "brk", "mremap", "shmat"})
ARGV_MAX = 64           # array entries read before "..."
O_CREAT, O_TMPFILE_BIT = 0o100, 0o20000000
CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SETTLS = 0x100000, 0x1000, 0x80000
CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID = 0x1000000, 0x200000
SIG_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}   # asm-generic/signal-defs.h


def _signed32(v: int) -> str:
    return str(to_signed(int(v) & MASK32, 32))


def _struct_at(fmt: Callable[[bytes], str], size: int) -> Callable:
    """An argument pointing at a `size`-byte struct that `fmt` prints."""
    def decode(value, others, read):
        if value == 0:
            return "NULL"
        return fmt(read(value, size))
    return decode


def _ioctl_arg(value, others, read):
    if (int(others.get("cmd", -1)) & MASK32) in F.IOCTL_INT_IN and value:
        return S.format_int_array(read(value, 4))
    return S.address(value)


def _string_array(value, others, read, cap: int = 256) -> str:
    """["a", "b"]: a NULL-terminated array of string pointers (argv)."""
    from gdbext.decoders.syscall_args import escape_c_string
    if value == 0:
        return "NULL"
    items = []
    for i in range(ARGV_MAX + 1):
        word = struct.unpack("<Q", read(value + 8 * i, 8))[0]
        if word == 0:
            return "[" + ", ".join(items) + "]"
        if i == ARGV_MAX:
            break
        items.append(escape_c_string(_c_string(word, read, cap), cap, truncated=False))
    return "[" + ", ".join(items) + ", ...]"


def _c_string(address: int, read: Reader, cap: int) -> bytes:
    out = b""
    while len(out) < cap:
        n = min(cap - len(out), 4096 - (address + len(out)) % 4096)
        chunk = read(address + len(out), n)
        nul = chunk.find(b"\0")
        if nul >= 0:
            return out + chunk[:nul]
        out += chunk
    return out


def _env_count(value, others, read) -> str:
    """0x7ffd... /* 3 vars */: strace's abbreviated envp."""
    if value == 0:
        return "NULL"
    n = 0
    while n < 4096 and struct.unpack("<Q", read(value + 8 * n, 8))[0]:
        n += 1
    return f"{value:#x} /* {n} var{'' if n == 1 else 's'} */"


def _const(fmt: Callable[[int], str]) -> Callable:
    return lambda value, others, read: fmt(value)


def _address(value, others, read):
    return S.address(value)


def _offset(value, others, read):
    return f"{value:#x}" if value else "0"


_TIMESPEC = _struct_at(S.format_timespec, S.TIMESPEC_SIZE)
_SIGSET = _struct_at(S.format_sigset, S.SIGSET_SIZE)
_SIGNAL = _const(lambda v: F.signal_name(to_signed(v & MASK32, 32)))
_CLOCK = _const(F.format_clock)

# At the entry: {syscall: {argument: decode(value, other args, read)}}.
ENTRY: Dict[str, Dict[str, Callable]] = {
    "clone": {"clone_flags": _const(F.format_clone_flags), "newsp": _address,
              "parent_tidptr": _address, "child_tidptr": _address, "tls": _address},
    "clone3": {"uargs": lambda v, o, r: "NULL" if v == 0 else S.format_clone_args(
        r(v, max(S.CLONE_ARGS_MIN, min(int(o.get("size", 0)), S.CLONE_ARGS_SIZE))))},
    "wait4": {"upid": _const(_signed32), "stat_addr": _address, "options": _const(F.format_wait_options),
              "ru": _address},
    "rt_sigaction": {"sig": _SIGNAL, "act": _struct_at(S.format_sigaction, S.SIGACTION_SIZE),
                     "oact": _address},
    "rt_sigprocmask": {"how": _const(lambda v: SIG_HOW.get(v & MASK32, _signed32(v))), "nset": _SIGSET,
                       "oset": _address},
    "kill": {"pid": _const(_signed32), "sig": _SIGNAL},
    "tkill": {"pid": _const(_signed32), "sig": _SIGNAL},
    "tgkill": {"tgid": _const(_signed32), "pid": _const(_signed32), "sig": _SIGNAL},
    "nanosleep": {"rqtp": _TIMESPEC, "rmtp": _address},
    "clock_nanosleep": {"which_clock": _CLOCK, "flags": _const(lambda v: F.format_flags(v, F.TIMER_FLAGS)),
                        "rqtp": _TIMESPEC, "rmtp": _address},
    "clock_gettime": {"which_clock": _CLOCK, "tp": _address},
    "clock_getres": {"which_clock": _CLOCK, "tp": _address},
    "socket": {"family": _const(F.format_socket_family), "type": _const(F.format_socket_type),
               "protocol": lambda v, o, r: F.format_socket_protocol(o.get("family", 0), v)},
    "socketpair": {"family": _const(F.format_socket_family), "type": _const(F.format_socket_type),
                   "protocol": lambda v, o, r: F.format_socket_protocol(o.get("family", 0), v),
                   "usockvec": _address},
    "ioctl": {"cmd": _const(F.format_ioctl_request), "arg": _ioctl_arg},
    "mprotect": {"start": _address},
    "pkey_mprotect": {"start": _address},
    "munmap": {"addr": _address},
    "madvise": {"start": _address},
    "brk": {"brk": _address},
    "mmap": {"addr": _address, "off": _offset},
    "mremap": {"addr": _address, "new_addr": _address},
    "execve": {"argv": _string_array, "envp": _env_count},
}


def _wait_status(value, others, ret, read):
    return S.format_wait_status(struct.unpack("<i", read(value, 4))[0]) if ret > 0 else None


def _parent_tid(value, others, ret, read):
    if int(others.get("clone_flags", 0)) & CLONE_PARENT_SETTID and ret > 0:
        return S.format_int_array(read(value, 4))
    return None


def _out(fmt: Callable[[bytes], str], size: int) -> Callable:
    return lambda value, others, ret, read: fmt(read(value, size)) if ret == 0 else None


# At the return: {syscall: {argument: decode(value, others, ret, read) or None}}.
RETURN: Dict[str, Dict[str, Callable]] = {
    "wait4": {"stat_addr": _wait_status},
    "rt_sigaction": {"oact": _out(S.format_sigaction, S.SIGACTION_SIZE)},
    "rt_sigprocmask": {"oset": _out(S.format_sigset, S.SIGSET_SIZE)},
    "clock_gettime": {"tp": _out(S.format_timespec, S.TIMESPEC_SIZE)},
    "clock_getres": {"tp": _out(S.format_timespec, S.TIMESPEC_SIZE)},
    "socketpair": {"usockvec": _out(lambda b: S.format_int_array(b, 2), 8)},
    "pipe2": {"fildes": _out(lambda b: S.format_int_array(b, 2), 8)},
    "pipe": {"fildes": _out(lambda b: S.format_int_array(b, 2), 8)},
    "clone": {"parent_tidptr": _parent_tid},
}


def entry_text(syscall: str, name: str, value: int, others: Mapping[str, int],
               read: Optional[Reader]) -> Optional[str]:
    """An argument's text at the entry when this module knows it, else None."""
    decode = ENTRY.get(syscall, {}).get(name)
    if decode is None:
        return None
    value = int(value) & MASK64
    try:
        return decode(value, others, read or _no_memory)
    except Exception:  # any reader or layout failure prints the address
        return S.address(value)


def return_text(syscall: str, name: str, value: int, others: Mapping[str, int], ret: int,
                read: Optional[Reader]) -> Optional[str]:
    """An out-parameter's text once the call returned `ret`, or None (keep
    the entry's text: a NULL pointer, a failed call, nothing to read)."""
    decode = RETURN.get(syscall, {}).get(name)
    value = int(value) & MASK64
    if decode is None or value == 0 or read is None:
        return None
    try:
        return decode(value, others, to_signed(int(ret) & MASK64, 64), read)
    except Exception:  # unreadable: the address stays
        return None


def _no_memory(address: int, size: int) -> bytes:
    raise ValueError("no memory reader")


def _clone_line(args: Sequence[Tuple[str, int, str]]) -> List[str]:
    by = {n: (v, t) for n, v, t in args}
    flags = int(by.get("clone_flags", (0, ""))[0])
    out = [f"child_stack={by['newsp'][1]}", f"flags={by['clone_flags'][1]}"]
    if flags & (CLONE_PARENT_SETTID | CLONE_PIDFD):
        out.append(f"parent_tid={by['parent_tidptr'][1]}")
    if flags & CLONE_SETTLS:
        out.append(f"tls={by['tls'][1]}")
    if flags & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID):
        out.append(f"child_tidptr={by['child_tidptr'][1]}")
    return out


def line_args(syscall: str, args: Sequence[Tuple[str, int, str]]) -> List[str]:
    """The argument list of strace's line from [(name, value, text)]."""
    names = [n for n, _, _ in args]
    if syscall == "clone" and {"clone_flags", "newsp", "parent_tidptr", "tls", "child_tidptr"} <= set(names):
        return _clone_line(args)
    if syscall in ("open", "openat", "openat2") and "mode" in names and "flags" in names:
        flags = int(args[names.index("flags")][1])
        if not flags & (O_CREAT | O_TMPFILE_BIT):
            return [t for n, _, t in args if n != "mode"]
    return [t for _, _, t in args]


# The bytes each struct argument of ENTRY and RETURN reads.
_STRUCT_BYTES = {"act": S.SIGACTION_SIZE, "oact": S.SIGACTION_SIZE, "rqtp": S.TIMESPEC_SIZE,
                 "tp": S.TIMESPEC_SIZE, "nset": S.SIGSET_SIZE, "oset": S.SIGSET_SIZE,
                 "uargs": S.CLONE_ARGS_SIZE, "stat_addr": 4, "parent_tidptr": 4, "usockvec": 8,
                 "fildes": 8}


def struct_captures(syscall: str, params: Sequence[Tuple[str, str]]) -> List[Tuple[int, int]]:
    """[(argument index, bytes)] of the structs ENTRY and RETURN read in
    user memory, for a tracer that must capture them when the call is made
    and when it returns."""
    reads = {n for n, decode in ENTRY.get(syscall, {}).items() if decode is not _address}
    reads |= set(RETURN.get(syscall, {}))
    sizes = dict(_STRUCT_BYTES, arg=4) if syscall == "ioctl" else _STRUCT_BYTES
    return [(i, sizes[name]) for i, (_, name) in enumerate(params) if name in reads and name in sizes]
