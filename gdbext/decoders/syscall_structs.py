"""Small user-space structs of syscalls, from their bytes, printed the way
strace prints them.  x86-64 layouts (a guest test compares each size and
offset with the kernel's DWARF):

struct __kernel_timespec  include/uapi/linux/time_types.h: tv_sec, tv_nsec (s64)
struct sigaction          include/linux/signal_types.h (x86-64, the
                          rt_sigaction() view): sa_handler, sa_flags,
                          sa_restorer, sa_mask (8 bytes each)
struct clone_args         include/uapi/linux/sched.h: eleven __aligned_u64
                          (CLONE_ARGS_SIZE_VER2 = 88)
"""
import struct
from gdbext.decoders import strace_flags as F
from gdbext.decoders.bits import MASK64

TIMESPEC_SIZE = 16
SIGACTION_SIZE = 32
SIGACTION_OFFSETS = {"sa_handler": 0, "sa_flags": 8, "sa_restorer": 16, "sa_mask": 24}
SIGSET_SIZE = 8
CLONE_ARGS_FIELDS = ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
                     "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")
CLONE_ARGS_SIZE = 8 * len(CLONE_ARGS_FIELDS)
CLONE_ARGS_MIN = 64      # CLONE_ARGS_SIZE_VER0: flags .. tls


def address(value: int) -> str:
    """strace's printaddr: NULL or hex."""
    value = int(value) & MASK64
    return "NULL" if value == 0 else f"{value:#x}"


def _need(data: bytes, size: int, what: str) -> bytes:
    if len(data) < size:
        raise ValueError(f"{what} needs {size} bytes, got {len(data)}")
    return bytes(data[:size])


def format_timespec(data: bytes) -> str:
    """{tv_sec=1, tv_nsec=500000000}"""
    sec, nsec = struct.unpack("<qq", _need(data, TIMESPEC_SIZE, "struct timespec"))
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def format_sigaction(data: bytes) -> str:
    """{sa_handler=SIG_IGN, sa_mask=[USR1], sa_flags=SA_RESTORER, sa_restorer=0x401000}
    (sa_restorer only with SA_RESTORER, as strace does)."""
    handler, flags, restorer, mask = struct.unpack("<QQQQ", _need(data, SIGACTION_SIZE, "struct sigaction"))
    text = (f"{{sa_handler={F.SA_HANDLERS.get(handler) or address(handler)}, "
            f"sa_mask={F.format_sigset(mask)}, sa_flags={F.format_sa_flags(flags)}")
    if flags & F.SA_RESTORER:
        text += f", sa_restorer={address(restorer)}"
    return text + "}"


def format_sigset(data: bytes) -> str:
    return F.format_sigset(struct.unpack("<Q", _need(data, SIGSET_SIZE, "sigset_t"))[0])


def clone_args(data: bytes) -> dict:
    """The fields of a struct clone_args of 64, 80 or 88 bytes (the rest 0)."""
    data = bytes(data)
    if len(data) < CLONE_ARGS_MIN:
        raise ValueError(f"struct clone_args needs at least {CLONE_ARGS_MIN} bytes, got {len(data)}")
    n = min(len(data), CLONE_ARGS_SIZE) // 8
    values = list(struct.unpack(f"<{n}Q", data[:8 * n])) + [0] * (len(CLONE_ARGS_FIELDS) - n)
    return dict(zip(CLONE_ARGS_FIELDS, values))


def format_clone_args(data: bytes) -> str:
    """{flags=CLONE_VM, exit_signal=SIGCHLD, stack=NULL, stack_size=0}: the
    fields strace shows, on the same conditions."""
    a = clone_args(data)
    flags = a["flags"]
    parts = [f"flags={F.format_clone_flags(flags, clone3=True)}"]
    if flags & 0x1000:                                   # CLONE_PIDFD
        parts.append(f"pidfd={address(a['pidfd'])}")
    if flags & (0x1000000 | 0x200000):                   # CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID
        parts.append(f"child_tid={address(a['child_tid'])}")
    if flags & 0x100000:                                 # CLONE_PARENT_SETTID
        parts.append(f"parent_tid={address(a['parent_tid'])}")
    sig = a["exit_signal"]
    parts.append(f"exit_signal={F.signal_name(sig) if sig else '0'}"
                 if sig < 0x7FFFFFFF else f"exit_signal={sig}")
    parts.append(f"stack={address(a['stack'])}")
    parts.append(f"stack_size={a['stack_size']:#x}" if a["stack_size"] else "stack_size=0")
    if flags & 0x80000:                                  # CLONE_SETTLS
        parts.append(f"tls={address(a['tls'])}")
    if a["set_tid"] or a["set_tid_size"]:
        parts += [f"set_tid={address(a['set_tid'])}", f"set_tid_size={a['set_tid_size']}"]
    if a["cgroup"] or flags & 0x200000000:               # CLONE_INTO_CGROUP
        parts.append(f"cgroup={a['cgroup']}")
    return "{" + ", ".join(parts) + "}"


def format_wait_status(status: int) -> str:
    """[{WIFEXITED(s) && WEXITSTATUS(s) == 0}] and the other cases of
    include/uapi/linux/wait.h's encoding (exit code << 8 | signal | 0x80 core)."""
    status &= 0xFFFFFFFF
    low = status & 0x7F
    if status & 0xFF == 0x7F:
        sig = (status >> 8) & 0xFF
        text = f"{{WIFSTOPPED(s) && WSTOPSIG(s) == {F.signal_name(sig & 0x7F)}{' | 0x80' if sig & 0x80 else ''}}}"
        rest = status & ~0xFF7F
    elif low and low != 0x7F:
        core = " && WCOREDUMP(s)" if status & 0x80 else ""
        text = f"{{WIFSIGNALED(s) && WTERMSIG(s) == {F.signal_name(low)}{core}}}"
        rest = status & ~0xFF
    elif low == 0 and status != 0xFFFF:
        text = f"{{WIFEXITED(s) && WEXITSTATUS(s) == {(status >> 8) & 0xFF}}}"
        rest = status & ~0xFF00
    else:
        return "[{WIFCONTINUED(s)}]"
    if rest:
        text += f" | {rest:#x}"
    return f"[{text}]"


def format_int_array(data: bytes, count: int = 1) -> str:
    """[3] or [3, 4]: ints (fd pairs, an ioctl's int argument)."""
    ints = struct.unpack(f"<{count}i", _need(data, 4 * count, f"{count} int"))
    return "[" + ", ".join(map(str, ints)) + "]"

