"""strace-style formatting of syscall arguments and return values.

Constants are the x86-64 UAPI values (same in 6.1 and 6.12 unless noted):
errno          include/uapi/asm-generic/errno-base.h, errno.h (1..133),
               include/linux/errno.h (kernel-internal 512..531)
open flags     include/uapi/asm-generic/fcntl.h (x86 has no override)
AT_FDCWD       include/uapi/linux/fcntl.h
mmap           include/uapi/asm-generic/mman-common.h, mman.h,
               include/uapi/linux/mman.h, arch/x86/include/uapi/asm/mman.h
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Optional

from gdbext.decoders import syscall_strace
from gdbext.decoders.bits import MASK32, MASK64, to_signed

# --- errno ---

ERRNO_NAMES: Dict[int, str] = {
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
    8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
    20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
    26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
    32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG",
    37: "ENOLCK", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP",
    # 41 is unused (EWOULDBLOCK is an alias of EAGAIN); 58 likewise (EDEADLOCK).
    42: "ENOMSG", 43: "EIDRM", 44: "ECHRNG", 45: "EL2NSYNC", 46: "EL3HLT", 47: "EL3RST",
    48: "ELNRNG", 49: "EUNATCH", 50: "ENOCSI", 51: "EL2HLT", 52: "EBADE", 53: "EBADR",
    54: "EXFULL", 55: "ENOANO", 56: "EBADRQC", 57: "EBADSLT", 59: "EBFONT",
    60: "ENOSTR", 61: "ENODATA", 62: "ETIME", 63: "ENOSR", 64: "ENONET", 65: "ENOPKG",
    66: "EREMOTE", 67: "ENOLINK", 68: "EADV", 69: "ESRMNT", 70: "ECOMM", 71: "EPROTO",
    72: "EMULTIHOP", 73: "EDOTDOT", 74: "EBADMSG", 75: "EOVERFLOW", 76: "ENOTUNIQ",
    77: "EBADFD", 78: "EREMCHG", 79: "ELIBACC", 80: "ELIBBAD", 81: "ELIBSCN",
    82: "ELIBMAX", 83: "ELIBEXEC", 84: "EILSEQ", 85: "ERESTART", 86: "ESTRPIPE",
    87: "EUSERS", 88: "ENOTSOCK", 89: "EDESTADDRREQ", 90: "EMSGSIZE", 91: "EPROTOTYPE",
    92: "ENOPROTOOPT", 93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT", 95: "EOPNOTSUPP",
    96: "EPFNOSUPPORT", 97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL",
    100: "ENETDOWN", 101: "ENETUNREACH", 102: "ENETRESET", 103: "ECONNABORTED",
    104: "ECONNRESET", 105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN",
    109: "ETOOMANYREFS", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 112: "EHOSTDOWN",
    113: "EHOSTUNREACH", 114: "EALREADY", 115: "EINPROGRESS", 116: "ESTALE",
    117: "EUCLEAN", 118: "ENOTNAM", 119: "ENAVAIL", 120: "EISNAM", 121: "EREMOTEIO",
    122: "EDQUOT", 123: "ENOMEDIUM", 124: "EMEDIUMTYPE", 125: "ECANCELED", 126: "ENOKEY",
    127: "EKEYEXPIRED", 128: "EKEYREVOKED", 129: "EKEYREJECTED", 130: "EOWNERDEAD",
    131: "ENOTRECOVERABLE", 132: "ERFKILL", 133: "EHWPOISON",
    134: "EFTYPE",   # from 7.x (asm-generic/errno.h)
    # Kernel-internal (include/linux/errno.h): never reach user space, but a
    # debugger stopped on the exit path sees them in regs->ax.
    512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM",
    521: "EBADHANDLE", 522: "ENOTSYNC", 523: "EBADCOOKIE", 524: "ENOTSUPP", 525: "ETOOSMALL",
    526: "ESERVERFAULT", 527: "EBADTYPE", 528: "EJUKEBOX", 529: "EIOCBQUEUED",
    530: "ERECALLCONFLICT", 531: "ENOGRACE",
}
MAX_ERRNO = 4095  # include/linux/err.h: -4095..-1 are error returns
ENOSYS = 38       # include/uapi/asm-generic/errno.h: what an unknown nr returns


def errno_name(n: int) -> Optional[str]:
    """errno_name(2) == "ENOENT"; accepts -2 too. None if unknown."""
    if not isinstance(n, int):
        return None
    return ERRNO_NAMES.get(abs(n))


def format_return(ret: int, pointer: bool = False) -> str:
    """-4095..-1 -> "-2 ENOENT" (number kept); other values decimal, or hex
    when `pointer` (mmap, brk)."""
    r = to_signed(int(ret), 64)
    if -MAX_ERRNO <= r <= -1:
        name = errno_name(-r)
        return f"{r} {name}" if name else str(r)
    if pointer:
        return f"{r & MASK64:#x}"
    return str(r)


# --- open flags (asm-generic/fcntl.h, octal) ---

O_ACCMODE = 0o3
_ACCMODE_NAMES = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
O_DSYNC = 0o10000
__O_SYNC = 0o4000000
O_DIRECTORY = 0o200000
__O_TMPFILE = 0o20000000
_OPEN_FLAGS = [
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o20000, "O_ASYNC"),  # FASYNC
    (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
]


def format_open_flags(v: int) -> str:
    """"O_RDONLY|O_CLOEXEC"; O_SYNC = __O_SYNC|O_DSYNC and O_TMPFILE =
    __O_TMPFILE|O_DIRECTORY are shown as the user spells them."""
    v = int(v) & MASK32
    names = [_ACCMODE_NAMES[v & O_ACCMODE]]
    rest = v & ~O_ACCMODE
    for bitv, name in _OPEN_FLAGS:
        if rest & bitv:
            names.append(name)
            rest &= ~bitv
    if rest & __O_TMPFILE:
        names.append("O_TMPFILE" if rest & O_DIRECTORY else "__O_TMPFILE")
        rest &= ~(__O_TMPFILE | O_DIRECTORY)
    if rest & O_DIRECTORY:
        names.append("O_DIRECTORY")
        rest &= ~O_DIRECTORY
    if rest & __O_SYNC:
        names.append("O_SYNC" if rest & O_DSYNC else "__O_SYNC")
        rest &= ~(__O_SYNC | O_DSYNC)
    if rest & O_DSYNC:
        names.append("O_DSYNC")
        rest &= ~O_DSYNC
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names)


def format_mode(v: int) -> str:
    """Octal like strace: 0644, 0755, 000."""
    v = int(v) & MASK32
    return ("0" + format(v, "o") if v else "0").zfill(3)


AT_FDCWD = -100


def format_at_dirfd(v: int) -> str:
    """AT_FDCWD (-100, as 32- or 64-bit two's complement) or a signed fd."""
    v = int(v)
    if v == AT_FDCWD or (v & MASK32) == (AT_FDCWD & MASK32):
        return "AT_FDCWD"
    return str(to_signed(v & MASK32, 32))


# --- mmap ---

_PROT = [(0x1, "PROT_READ"), (0x2, "PROT_WRITE"), (0x4, "PROT_EXEC"), (0x8, "PROT_SEM"),
         (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP")]


def format_mmap_prot(v: int) -> str:
    v = int(v) & MASK64
    if v == 0:
        return "PROT_NONE"
    names = []
    for bitv, name in _PROT:
        if v & bitv:
            names.append(name)
            v &= ~bitv
    if v:
        names.append(f"{v:#x}")
    return "|".join(names)


# MAP_TYPE (low 4 bits) is an enum, not flags.  MAP_DROPPABLE exists from
# v6.11 (present in 6.12, not 6.1); MAP_ABOVE4G from v6.6 (x86 shadow stacks).
_MAP_TYPES = {0x1: "MAP_SHARED", 0x2: "MAP_PRIVATE", 0x3: "MAP_SHARED_VALIDATE",
              0x8: "MAP_DROPPABLE"}
_MAP_FLAGS = [
    (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x80, "MAP_ABOVE4G"),
    (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"),
]
MAP_HUGETLB = 0x40000
MAP_HUGE_SHIFT = 26   # HUGETLB_FLAG_ENCODE_SHIFT; overlaps MAP_UNINITIALIZED (1 << 26)
MAP_HUGE_MASK = 0x3F
MAP_UNINITIALIZED = 0x4000000
_HUGE_SIZES = {14: "16KB", 16: "64KB", 19: "512KB", 20: "1MB", 21: "2MB", 23: "8MB",
               24: "16MB", 25: "32MB", 28: "256MB", 29: "512MB", 30: "1GB", 31: "2GB",
               34: "16GB"}


def format_mmap_flags(v: int) -> str:
    v = int(v) & MASK64
    t = v & 0xF
    names = [_MAP_TYPES.get(t, f"{t:#x}")] if t else []
    rest = v & ~0xF
    for bitv, name in _MAP_FLAGS:
        if rest & bitv:
            names.append(name)
            rest &= ~bitv
    huge = (rest >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK
    if huge and v & MAP_HUGETLB:
        names.append(f"MAP_HUGE_{_HUGE_SIZES[huge]}" if huge in _HUGE_SIZES
                     else f"{huge}<<MAP_HUGE_SHIFT")
        rest &= ~(MAP_HUGE_MASK << MAP_HUGE_SHIFT)
    elif rest & MAP_UNINITIALIZED:
        names.append("MAP_UNINITIALIZED")
        rest &= ~MAP_UNINITIALIZED
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) if names else "0"


# --- strings ---

_ESCAPES = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x0B: "\\v", 0x0C: "\\f",
            0x5C: "\\\\", 0x22: '\\"'}


def escape_c_string(data: bytes, cap: int, truncated: bool = False) -> str:
    """C-style quoted string of at most `cap` bytes of `data`; "..." follows
    the closing quote when truncated (or when data is longer than cap)."""
    data = bytes(data)
    cap = max(0, int(cap))
    if len(data) > cap:
        data, truncated = data[:cap], True
    out = []
    for b in data:
        if b in _ESCAPES:
            out.append(_ESCAPES[b])
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"' + ("..." if truncated else "")


_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def unescape_c_string(text: Optional[str]) -> Optional[bytes]:
    """The bytes escape_c_string() quoted (without a truncation's "..."),
    or None when `text` is not such a string (a number, NULL, ...)."""
    if not text or text[0] != '"':
        return None
    out, i = bytearray(), 1
    while i < len(text) and text[i] != '"':
        c = text[i]
        if c == "\\" and text[i + 1:i + 2] == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif c == "\\":
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ord(c))
            i += 1
    return bytes(out) if i < len(text) else None


# --- argument formatting ---

PATH_CAP = 256   # display cap for path names
BUF_CAP = 64     # display cap for write() buffers

# char pointers that hold NUL-terminated path names.
PATH_ARG_NAMES = frozenset({
    "filename", "pathname", "path", "oldname", "newname", "oldpath", "newpath",
    "linkpath", "target", "specialfile", "library", "dev_name", "dir_name",
    "old_name", "new_name", "symlink", "mountpoint", "new_root", "put_old",
})
DIRFD_ARG_NAMES = frozenset({"dfd", "olddfd", "newdfd", "dirfd", "from_dfd", "to_dfd"})
FD_ARG_NAMES = frozenset({"fd", "oldfd", "newfd", "epfd", "ufd", "fd_in", "fd_out",
                          "out_fd", "in_fd", "fildes", "pidfd", "mqdes"})
OPEN_SYSCALLS = frozenset({"open", "openat", "creat", "open_by_handle_at"})
WRITE_SYSCALLS = frozenset({"write", "pwrite64"})
MODE_SYSCALLS = frozenset({"open", "openat", "creat", "mkdir", "mkdirat", "chmod", "fchmod",
                           "fchmodat", "fchmodat2", "mknod", "mknodat"})
MMAP_SYSCALLS = frozenset({"mmap", "mmap_pgoff", "old_mmap"})

_INT32_TYPES = frozenset({"int", "signed int", "pid_t", "clockid_t", "timer_t",
                          "key_serial_t", "mqd_t", "s32", "__s32", "rwf_t"})
_UINT32_TYPES = frozenset({"unsigned int", "unsigned", "u32", "__u32", "uid_t", "gid_t",
                           "old_uid_t", "old_gid_t", "qid_t", "umode_t", "compat_uint_t"})
_INT64_TYPES = frozenset({"long", "signed long", "long long", "off_t", "loff_t", "ssize_t",
                          "s64", "__s64", "time_t", "__kernel_old_time_t", "compat_long_t"})
_UINT64_TYPES = frozenset({"unsigned long", "unsigned long long", "size_t", "u64", "__u64",
                           "aligned_u64", "compat_size_t", "compat_ulong_t"})

_QUALIFIERS = re.compile(r"\b(const|volatile|__user|__force|restrict|__restrict)\b")


def _clean_type(ctype: str) -> str:
    return " ".join(_QUALIFIERS.sub(" ", ctype or "").split())


def _is_pointer(ctype: str) -> bool:
    return "*" in (ctype or "")


def _is_const_char_ptr(ctype: str) -> bool:
    t = ctype or ""
    return "*" in t and "const" in t.split("*")[0] and re.search(r"\bchar\b", t) is not None \
        and t.count("*") == 1


def _is_char_ptr(ctype: str) -> bool:
    t = ctype or ""
    return t.count("*") == 1 and re.search(r"\bchar\b", t) is not None


def _read_c_string(addr: int, read_string: Callable[[int, int], bytes], cap: int):
    """(bytes up to the NUL, truncated?); exceptions propagate to the caller.

    Asks for cap+1 bytes: the reader may return fewer (stopping at or after
    a NUL); only getting more than `cap` without a NUL means "longer"."""
    data = bytes(read_string(addr, cap + 1))
    nul = data.find(b"\0")
    if nul >= 0:
        return data[:min(nul, cap)], nul > cap
    return data[:cap], len(data) > cap


def _hex_or_null(v: int) -> str:
    return "NULL" if v == 0 else f"{v:#x}"


def _syscall_stem(syscall: Optional[str]) -> str:
    """"openat" from "openat", "__x64_sys_openat" or "sys_openat"."""
    sc = (syscall or "").lower()
    if sc.startswith(("__x64_sys_", "__ia32_sys_")):
        return sc.split("_sys_", 1)[1]
    return sc[4:] if sc.startswith("sys_") else sc


def _is_write_buffer(ctype: str, nm: str, other: Mapping[str, int], sc: str) -> bool:
    return nm == "buf" and _is_pointer(ctype) and "count" in other and (
        sc in WRITE_SYSCALLS or (not sc and _is_const_char_ptr(ctype)))


def _is_input_string(ctype: str, nm: str) -> bool:
    return _is_char_ptr(ctype) and (nm in PATH_ARG_NAMES or _is_const_char_ptr(ctype)) or (
        not ctype and nm in PATH_ARG_NAMES)


def capture_plan(params: List[tuple], syscall: Optional[str] = None) -> List[tuple]:
    """What format_arg reads in user memory for a call with `params`
    ([(ctype, name)]): [(arg index, "string" | "buffer", most bytes, index
    of the length argument or None)].  A tracer that cannot read memory
    when it decodes (the kxtrace plugin) captures exactly these, at the
    entry and again at the return (out-parameters, strings faulted in)."""
    sc = _syscall_stem(syscall)
    names = {pname: 0 for _, pname in params}
    out = []
    for i, (ctype, pname) in enumerate(params):
        nm = (pname or "").strip()
        if _is_write_buffer(ctype, nm, names, sc):
            count = next(k for k, (_, n) in enumerate(params) if n == "count")
            out.append((i, "buffer", BUF_CAP, count))
        elif _is_input_string(ctype, nm):
            # _read_c_string asks for one byte past the cap to tell "longer".
            out.append((i, "string", PATH_CAP + 1, None))
    taken = {i for i, *_ in out}
    out += [(i, "buffer", size, None) for i, size in syscall_strace.struct_captures(sc, params) if i not in taken]
    return sorted(out)


def format_arg(ctype: str, name: str, value: int,
               read_string: Optional[Callable[[int, int], bytes]] = None,
               other_args: Optional[Mapping[str, int]] = None,
               syscall: Optional[str] = None,
               string_cap: int = PATH_CAP,
               read_memory: Optional[Callable[[int, int], bytes]] = None) -> str:
    """Format one argument strace-style.

    ctype/name: the parameter's C type and name from the SYSCALL_DEFINE
    (e.g. "const char __user *", "filename").  read_string(addr, cap) returns
    up to `cap` bytes at a user address and may raise anything; a failure
    prints "0x... (unreadable)".  other_args: the call's other arguments by
    name (raw ints), used for `count` of write() and to recognise open-like
    calls; syscall: the syscall's name when known ("openat");
    read_memory(addr, n): exactly n bytes of user memory, for the structs
    and flags strace decodes by syscall (decoders/syscall_strace.py)."""
    other = dict(other_args or {})
    sc = _syscall_stem(syscall)
    nm = (name or "").strip()
    t = _clean_type(ctype)
    v = int(value) & MASK64
    special = syscall_strace.entry_text(sc, nm, v, other, read_memory)
    if special is not None:
        return special

    def read_or_unreadable(fn):
        if read_string is None:
            return _hex_or_null(v)
        try:
            return fn()
        except Exception:  # any reader failure is shown, never raised
            return f"{v:#x} (unreadable)"

    # write()/pwrite64() buffer: not NUL-terminated, capped at min(count, 64).
    if _is_write_buffer(ctype, nm, other, sc):
        if v == 0:
            return "NULL"
        count = int(other["count"]) & MASK64
        n = min(count, BUF_CAP)

        def buf():
            data = bytes(read_string(v, n))[:n]
            return escape_c_string(data, n, truncated=count > n)
        return read_or_unreadable(buf)

    # Path names and other const char * inputs: NUL-terminated strings.
    if _is_input_string(ctype, nm):
        if v == 0:
            return "NULL"

        def path():
            data, trunc = _read_c_string(v, read_string, string_cap)
            return escape_c_string(data, string_cap, truncated=trunc)
        return read_or_unreadable(path)

    if _is_pointer(ctype):
        return _hex_or_null(v)
    return _format_scalar(t, nm, v, sc, other)


def _format_scalar(t: str, nm: str, v: int, sc: str, other: Mapping[str, int]) -> str:
    """A non-pointer argument: flags and modes by name, fds signed, the
    rest by its C type (`t`, cleaned)."""
    if nm == "flags" and (sc in OPEN_SYSCALLS or (not sc and ("filename" in other)
                                                  and "mode" in other)):
        return format_open_flags(v)
    if nm == "flags" and (sc in MMAP_SYSCALLS or (not sc and "prot" in other and "fd" in other)):
        return format_mmap_flags(v)
    if nm == "prot":
        return format_mmap_prot(v)
    if nm == "mode" and ("umode_t" in t or sc in MODE_SYSCALLS
                         or (not sc and (other.keys() & PATH_ARG_NAMES))):
        return format_mode(v)
    if nm in DIRFD_ARG_NAMES:
        return format_at_dirfd(v)
    if nm in FD_ARG_NAMES:
        return str(to_signed(v & MASK32, 32))

    if t in _UINT64_TYPES:
        return str(v)
    if t in _UINT32_TYPES:
        return str(v & MASK32)
    if t in _INT64_TYPES:
        return str(to_signed(v, 64))
    if t in _INT32_TYPES or t in ("short", "char", "bool", "_Bool"):
        return str(to_signed(v & MASK32, 32))
    if t.startswith("unsigned") or t.startswith("u") and t[1:].isdigit():
        return str(v)
    # Unknown type: small values read best in decimal, addresses in hex.
    return str(v) if v < 0x10000 else f"{v:#x}"


def format_args(params: List[tuple], values: List[int],
                read_string: Optional[Callable[[int, int], bytes]] = None,
                syscall: Optional[str] = None) -> List[str]:
    """Format a whole argument list: params = [(ctype, name), ...]."""
    named: Dict[str, int] = {n: val for (_, n), val in zip(params, values)}
    out = []
    for (ctype, pname), val in zip(params, values):
        others = {k: x for k, x in named.items() if k != pname}
        out.append(format_arg(ctype, pname, val, read_string, others, syscall))
    return out
