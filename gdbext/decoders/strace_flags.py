"""Named constants of syscall arguments, printed the way strace prints them.

Every value is the x86-64 kernel's; a unit test reads each table back from
the headers of every lab kernel source (tests/unit/test_strace_tables_source.py):
clone          include/uapi/linux/sched.h
wait options   include/uapi/linux/wait.h
signals        arch/x86/include/uapi/asm/signal.h
sa_flags       arch/x86/include/uapi/asm/signal.h, include/uapi/asm-generic/signal-defs.h
sockets        include/linux/socket.h (AF_*), include/linux/net.h (SOCK_*),
               include/uapi/linux/in.h (IPPROTO_*)
ioctl          include/uapi/asm-generic/ioctls.h, include/uapi/asm-generic/ioctl.h
clocks         include/uapi/linux/time.h
Within a table the order is the order strace lists the names in, so that
the text is the same as strace's (strace's own xlat files: facts only).
"""
from typing import Dict, List, Optional, Sequence, Tuple

from gdbext.decoders.bits import MASK64

Table = Sequence[Tuple[str, int]]

CLONE_FLAGS: Table = (
    ("CLONE_VM", 0x100), ("CLONE_FS", 0x200), ("CLONE_FILES", 0x400), ("CLONE_SIGHAND", 0x800),
    ("CLONE_PIDFD", 0x1000), ("CLONE_PTRACE", 0x2000), ("CLONE_VFORK", 0x4000),
    ("CLONE_PARENT", 0x8000), ("CLONE_THREAD", 0x10000), ("CLONE_NEWNS", 0x20000),
    ("CLONE_SYSVSEM", 0x40000), ("CLONE_SETTLS", 0x80000), ("CLONE_PARENT_SETTID", 0x100000),
    ("CLONE_CHILD_CLEARTID", 0x200000), ("CLONE_UNTRACED", 0x800000),
    ("CLONE_CHILD_SETTID", 0x1000000), ("CLONE_NEWCGROUP", 0x2000000), ("CLONE_NEWUTS", 0x4000000),
    ("CLONE_NEWIPC", 0x8000000), ("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWNET", 0x40000000), ("CLONE_IO", 0x80000000),
)
# Only clone3() takes these (the 64-bit flags of struct clone_args); the
# last four are 7.x's.
CLONE3_FLAGS: Table = (
    ("CLONE_CLEAR_SIGHAND", 1 << 32), ("CLONE_INTO_CGROUP", 1 << 33), ("CLONE_NEWTIME", 0x80),
    ("CLONE_AUTOREAP", 1 << 34), ("CLONE_NNP", 1 << 35), ("CLONE_PIDFD_AUTOKILL", 1 << 36),
    ("CLONE_EMPTY_MNTNS", 1 << 37),
)
CLONE_LATER = frozenset({"CLONE_AUTOREAP", "CLONE_NNP", "CLONE_PIDFD_AUTOKILL", "CLONE_EMPTY_MNTNS"})
CSIGNAL = 0xFF   # clone(): the low byte is the exit signal

WAIT_OPTIONS: Table = (
    ("WNOHANG", 0x1), ("WUNTRACED", 0x2), ("WEXITED", 0x4), ("WCONTINUED", 0x8),
    ("WNOWAIT", 0x01000000), ("__WCLONE", 0x80000000), ("__WALL", 0x40000000),
    ("__WNOTHREAD", 0x20000000),
)

SIGNALS: Dict[int, str] = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
    26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}
SIGRTMIN = 32   # the kernel's; glibc reserves the first two
SIGRTMAX = 64   # _NSIG

SA_FLAGS: Table = (
    ("SA_RESTORER", 0x04000000), ("SA_ONSTACK", 0x08000000), ("SA_RESTART", 0x10000000),
    ("SA_NODEFER", 0x40000000), ("SA_RESETHAND", 0x80000000), ("SA_SIGINFO", 0x4),
    ("SA_NOCLDSTOP", 0x1), ("SA_NOCLDWAIT", 0x2),
)
SA_RESTORER = 0x04000000
SA_HANDLERS = {0: "SIG_DFL", 1: "SIG_IGN"}

ADDRESS_FAMILIES: Dict[int, str] = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 3: "AF_AX25", 4: "AF_IPX", 5: "AF_APPLETALK",
    6: "AF_NETROM", 7: "AF_BRIDGE", 8: "AF_ATMPVC", 9: "AF_X25", 10: "AF_INET6", 11: "AF_ROSE",
    12: "AF_DECnet", 13: "AF_NETBEUI", 14: "AF_SECURITY", 15: "AF_KEY", 16: "AF_NETLINK",
    17: "AF_PACKET", 18: "AF_ASH", 19: "AF_ECONET", 20: "AF_ATMSVC", 21: "AF_RDS", 22: "AF_SNA",
    23: "AF_IRDA", 24: "AF_PPPOX", 25: "AF_WANPIPE", 26: "AF_LLC", 27: "AF_IB", 28: "AF_MPLS",
    29: "AF_CAN", 30: "AF_TIPC", 31: "AF_BLUETOOTH", 32: "AF_IUCV", 33: "AF_RXRPC", 34: "AF_ISDN",
    35: "AF_PHONET", 36: "AF_IEEE802154", 37: "AF_CAIF", 38: "AF_ALG", 39: "AF_NFC", 40: "AF_VSOCK",
    41: "AF_KCM", 42: "AF_QIPCRTR", 43: "AF_SMC", 44: "AF_XDP", 45: "AF_MCTP",
}
SOCK_TYPES: Dict[int, str] = {
    1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
    6: "SOCK_DCCP", 10: "SOCK_PACKET",
}
SOCK_TYPE_MASK = 0xF
SOCK_TYPE_FLAGS: Table = (("SOCK_CLOEXEC", 0o2000000), ("SOCK_NONBLOCK", 0o4000))
IP_PROTOCOLS: Dict[int, str] = {
    0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 2: "IPPROTO_IGMP", 4: "IPPROTO_IPIP", 6: "IPPROTO_TCP",
    8: "IPPROTO_EGP", 12: "IPPROTO_PUP", 17: "IPPROTO_UDP", 22: "IPPROTO_IDP", 29: "IPPROTO_TP",
    33: "IPPROTO_DCCP", 41: "IPPROTO_IPV6", 46: "IPPROTO_RSVP", 47: "IPPROTO_GRE", 50: "IPPROTO_ESP",
    51: "IPPROTO_AH", 92: "IPPROTO_MTP", 94: "IPPROTO_BEETPH", 98: "IPPROTO_ENCAP",
    103: "IPPROTO_PIM", 108: "IPPROTO_COMP", 132: "IPPROTO_SCTP", 136: "IPPROTO_UDPLITE",
    137: "IPPROTO_MPLS", 144: "IPPROTO_AGGFRAG", 255: "IPPROTO_RAW",
}
INET_FAMILIES = (2, 10)   # AF_INET, AF_INET6: the protocol is an IPPROTO_*

# The tty and file ioctls of asm-generic/ioctls.h (x86 uses them as they are).
IOCTLS: Dict[int, str] = {
    0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x5405: "TCGETA",
    0x5406: "TCSETA", 0x5407: "TCSETAW", 0x5408: "TCSETAF", 0x5409: "TCSBRK", 0x540A: "TCXONC",
    0x540B: "TCFLSH", 0x540C: "TIOCEXCL", 0x540D: "TIOCNXCL", 0x540E: "TIOCSCTTY",
    0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5411: "TIOCOUTQ", 0x5412: "TIOCSTI",
    0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ", 0x5415: "TIOCMGET", 0x5416: "TIOCMBIS",
    0x5417: "TIOCMBIC", 0x5418: "TIOCMSET", 0x5419: "TIOCGSOFTCAR", 0x541A: "TIOCSSOFTCAR",
    0x541B: "FIONREAD", 0x541C: "TIOCLINUX", 0x541D: "TIOCCONS", 0x541E: "TIOCGSERIAL",
    0x541F: "TIOCSSERIAL", 0x5420: "TIOCPKT", 0x5421: "FIONBIO", 0x5422: "TIOCNOTTY",
    0x5423: "TIOCSETD", 0x5424: "TIOCGETD", 0x5425: "TCSBRKP", 0x5427: "TIOCSBRK",
    0x5428: "TIOCCBRK", 0x5429: "TIOCGSID", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX",
    0x5452: "FIOASYNC", 0x5453: "TIOCSERCONFIG", 0x5454: "TIOCSERGWILD", 0x5455: "TIOCSERSWILD",
    0x5456: "TIOCGLCKTRMIOS", 0x5457: "TIOCSLCKTRMIOS", 0x5458: "TIOCSERGSTRUCT",
    0x5459: "TIOCSERGETLSR", 0x545A: "TIOCSERGETMULTI", 0x545B: "TIOCSERSETMULTI",
    0x545C: "TIOCMIWAIT", 0x545D: "TIOCGICOUNT", 0x5460: "FIOQSIZE",
}
# ioctls whose argument points at an int the call reads: strace shows `[value]`.
IOCTL_INT_IN = frozenset({0x5421, 0x5452, 0x5410, 0x5423})   # FIONBIO FIOASYNC TIOCSPGRP TIOCSETD
# asm-generic/ioctl.h: nr 8 bits, type 8, size 14, dir 2 (x86 uses the generic layout).
IOC_NRBITS, IOC_TYPEBITS, IOC_SIZEBITS = 8, 8, 14
IOC_DIRS = {1: "_IOC_WRITE", 2: "_IOC_READ", 3: "_IOC_READ|_IOC_WRITE"}

CLOCKS: Dict[int, str] = {
    0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
    3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
    6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
    9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI",
}
TIMER_FLAGS: Table = (("TIMER_ABSTIME", 0x1),)


def format_flags(value: int, table: Table, zero: str = "0") -> str:
    """"A|B|0x40": the names of `table` whose bits are all set, in table
    order, then what no name covers in hex; `zero` when value is 0."""
    value = int(value) & MASK64
    if value == 0:
        return zero
    names: List[str] = []
    rest = value
    for name, bits in table:
        if bits and value & bits == bits and rest & bits:
            names.append(name)
            rest &= ~bits
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names)


def signal_name(sig: int) -> str:
    """SIGUSR1; SIGRT_2 for a real-time signal (strace's spelling); the
    number otherwise."""
    sig = int(sig)
    if sig in SIGNALS:
        return SIGNALS[sig]
    if SIGRTMIN <= sig <= SIGRTMAX:
        return f"SIGRT_{sig - SIGRTMIN}"
    return str(sig)


def format_clone_flags(value: int, clone3: bool = False) -> str:
    """clone(): "CLONE_VM|CLONE_FS|SIGCHLD" (the exit signal in the low
    byte); clone3(): the 64-bit flags alone."""
    value = int(value) & MASK64
    if clone3:
        return format_flags(value, tuple(CLONE_FLAGS) + tuple(CLONE3_FLAGS))
    sig = value & CSIGNAL
    flags = value & ~CSIGNAL
    if not flags:
        return signal_name(sig) if sig else "0"
    text = format_flags(flags, CLONE_FLAGS)
    return f"{text}|{signal_name(sig)}" if sig else text


def format_wait_options(value: int) -> str:
    return format_flags(int(value) & 0xFFFFFFFF, WAIT_OPTIONS)


def format_sa_flags(value: int) -> str:
    return format_flags(value, SA_FLAGS)


def format_sigset(mask: int, nsig: int = SIGRTMAX) -> str:
    """"[USR1 TERM]" (names without SIG); strace's "~[...]" for a set with
    two thirds or more of the bits on, listing the signals not in it."""
    mask = int(mask) & ((1 << nsig) - 1)
    prefix = ""
    if bin(mask).count("1") >= nsig * 2 // 3:
        mask, prefix = ~mask & ((1 << nsig) - 1), "~"
    names = []
    for bit in range(nsig):
        if mask >> bit & 1:
            names.append(signal_name(bit + 1)[3:] if bit + 1 < SIGRTMIN else f"RT_{bit + 1 - SIGRTMIN}")
    return f"{prefix}[{' '.join(names)}]"


def format_socket_family(value: int) -> str:
    value = int(value) & 0xFFFFFFFF
    return ADDRESS_FAMILIES.get(value, f"{value:#x} /* AF_??? */")


def format_socket_type(value: int) -> str:
    """"SOCK_STREAM|SOCK_CLOEXEC": the type, then its flags."""
    value = int(value) & 0xFFFFFFFF
    kind = value & SOCK_TYPE_MASK
    names = [SOCK_TYPES.get(kind, f"{kind:#x} /* SOCK_??? */")]
    rest = value & ~SOCK_TYPE_MASK
    if rest:
        names.append(format_flags(rest, SOCK_TYPE_FLAGS))
    return "|".join(names)


def format_socket_protocol(family: int, value: int) -> str:
    value = int(value) & 0xFFFFFFFF
    if int(family) & 0xFFFFFFFF in INET_FAMILIES and value in IP_PROTOCOLS:
        return IP_PROTOCOLS[value]
    return str(value)


def format_ioctl_request(value: int) -> str:
    """TCGETS; otherwise _IOC(dir, type, nr, size) from the number's fields."""
    value = int(value) & 0xFFFFFFFF
    if value in IOCTLS:
        return IOCTLS[value]
    nr = value & 0xFF
    kind = (value >> IOC_NRBITS) & 0xFF
    size = (value >> (IOC_NRBITS + IOC_TYPEBITS)) & ((1 << IOC_SIZEBITS) - 1)
    direction = value >> (IOC_NRBITS + IOC_TYPEBITS + IOC_SIZEBITS)
    return f"_IOC({IOC_DIRS.get(direction, '_IOC_NONE')}, {kind:#x}, {nr:#x}, {size:#x})"


def format_clock(value: int) -> str:
    value = int(value) & 0xFFFFFFFF
    return CLOCKS.get(value, str(value if value < 0x80000000 else value - (1 << 32)))


def name_of(value: int, names: Dict[int, str]) -> Optional[str]:
    return names.get(int(value))
