"""strace-grade decoding: named flags (decoders/strace_flags.py), small
structs from their bytes (syscall_structs.py) and the per-syscall rules
(syscall_strace.py), with byte fixtures and hypothesis.  The expected
texts are strace 6.1's spelling of the same values."""
import struct

from hypothesis import given, strategies as st

from gdbext.decoders import strace_flags as F
from gdbext.decoders import syscall_args as A
from gdbext.decoders import syscall_strace as T
from gdbext.decoders import syscall_structs as S


def memory(blobs):
    def read(address, size):
        for base, data in blobs.items():
            if base <= address and address + size <= base + len(data):
                return data[address - base:address - base + size]
        raise OSError(f"cannot read {size} bytes at {address:#x}")
    return read


def value_of(text, table):
    """Back from "A|B|0x40" to the number (the inverse of format_flags)."""
    names = dict(table)
    return sum(names[w] if w in names else int(w, 16) for w in text.split("|")) if text != "0" else 0


def test_clone_flags_as_strace_prints_them():
    glibc_fork = 0x01200011        # CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
    assert F.format_clone_flags(glibc_fork) == "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
    assert F.format_clone_flags(17) == "SIGCHLD"
    assert F.format_clone_flags(0) == "0"
    thread = 0x3D0F00
    assert F.format_clone_flags(thread) == ("CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|"
                                            "CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID")
    assert F.format_clone_flags(1 << 32, clone3=True) == "CLONE_CLEAR_SIGHAND"
    assert F.format_clone_flags(0x400000 | 0x4000) == "CLONE_VFORK|0x400000"   # CLONE_DETACHED left as a number


@given(st.integers(0, (1 << 64) - 1))
def test_flags_round_trip(value):
    table = tuple(F.CLONE_FLAGS) + tuple(F.CLONE3_FLAGS)
    assert value_of(F.format_flags(value, table), table) == value
    assert value_of(F.format_wait_options(value), F.WAIT_OPTIONS) == value & 0xFFFFFFFF


def test_wait_options_and_status():
    assert F.format_wait_options(0) == "0"
    assert F.format_wait_options(1 | 0x40000000) == "WNOHANG|__WALL"
    assert S.format_wait_status(3 << 8) == "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]"
    assert S.format_wait_status(9) == "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]"
    assert S.format_wait_status(0x8B) == "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGSEGV && WCOREDUMP(s)}]"
    assert S.format_wait_status(0x137F) == "[{WIFSTOPPED(s) && WSTOPSIG(s) == SIGSTOP}]"
    assert S.format_wait_status(0xFFFF) == "[{WIFCONTINUED(s)}]"


@given(st.integers(0, 255), st.integers(1, 31))
def test_wait_status_exited_and_signaled(code, sig):
    assert S.format_wait_status(code << 8) == f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {code}}}]"
    assert F.signal_name(sig) in S.format_wait_status(sig)


def test_signals_and_sets():
    assert F.signal_name(10) == "SIGUSR1" and F.signal_name(34) == "SIGRT_2" and F.signal_name(99) == "99"
    assert F.format_sigset(0) == "[]"
    assert F.format_sigset((1 << 9) | (1 << 14)) == "[USR1 TERM]"
    assert F.format_sigset(~(1 << 8) & (1 << 64) - 1) == "~[KILL]"
    assert F.format_sigset(1 << 33) == "[RT_2]"          # signal 34


@given(st.integers(0, (1 << 64) - 1))
def test_sigset_lists_each_signal_once(mask):
    text = F.format_sigset(mask)
    inverted = text.startswith("~")
    names = text.lstrip("~")[1:-1].split()
    assert len(names) == (64 - bin(mask).count("1") if inverted else bin(mask).count("1"))


def test_sigaction_bytes():
    act = struct.pack("<QQQQ", 0x401136, 0x04000000 | 0x10000000, 0x401000, 1 << 14)
    assert S.format_sigaction(act) == ("{sa_handler=0x401136, sa_mask=[TERM], sa_flags=SA_RESTORER|SA_RESTART, "
                                       "sa_restorer=0x401000}")
    ign = struct.pack("<QQQQ", 1, 0, 0, 0)
    assert S.format_sigaction(ign) == "{sa_handler=SIG_IGN, sa_mask=[], sa_flags=0}"


def test_timespec_and_clone_args_bytes():
    assert S.format_timespec(struct.pack("<qq", 0, 1000000)) == "{tv_sec=0, tv_nsec=1000000}"
    args = struct.pack("<11Q", 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0)
    assert S.format_clone_args(args) == "{flags=0, exit_signal=SIGCHLD, stack=NULL, stack_size=0}"
    vfork = struct.pack("<8Q", 0x4100, 0, 0, 0, 17, 0x7F0000, 0x4000, 0)     # the 64-byte VER0 layout
    assert S.format_clone_args(vfork) == ("{flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f0000, "
                                          "stack_size=0x4000}")


@given(st.binary(min_size=64, max_size=88))
def test_clone_args_any_bytes(data):
    text = S.format_clone_args(data)
    assert text.startswith("{flags=") and text.endswith("}")


def test_sockets_ioctls_clocks():
    assert F.format_socket_family(1) == "AF_UNIX" and F.format_socket_family(200) == "0xc8 /* AF_??? */"
    assert F.format_socket_type(2 | 0o2000000) == "SOCK_DGRAM|SOCK_CLOEXEC"
    assert F.format_socket_protocol(2, 6) == "IPPROTO_TCP" and F.format_socket_protocol(1, 0) == "0"
    assert F.format_ioctl_request(0x5401) == "TCGETS" and F.format_ioctl_request(0x5421) == "FIONBIO"
    assert F.format_ioctl_request(0x80086601) == "_IOC(_IOC_READ, 0x66, 0x1, 0x8)"
    assert F.format_clock(1) == "CLOCK_MONOTONIC" and F.format_clock(0xFFFFFFFF) == "-1"


STACK = 0x7FFC0000
MEM = memory({
    STACK: struct.pack("<qq", 0, 1000000) + struct.pack("<i", 1) + b"\0" * 4
    + struct.pack("<QQQQ", 0x401136, 0x04000000, 0x401000, 0),
    STACK + 0x100: struct.pack("<QQQ", STACK + 0x200, STACK + 0x210, 0),
    STACK + 0x200: b"/bin/kxsys\0\0\0\0\0\0-v\0".ljust(0xE00, b"\0"),    # to the end of its page
})


def test_entry_texts():
    assert T.entry_text("nanosleep", "rqtp", STACK, {}, MEM) == "{tv_sec=0, tv_nsec=1000000}"
    assert T.entry_text("nanosleep", "rmtp", 0, {}, MEM) == "NULL"
    assert T.entry_text("ioctl", "arg", STACK + 16, {"cmd": 0x5421}, MEM) == "[1]"
    assert T.entry_text("ioctl", "arg", STACK + 16, {"cmd": 0x5401}, MEM) == f"{STACK + 16:#x}"
    assert T.entry_text("rt_sigaction", "act", STACK + 24, {}, MEM).startswith("{sa_handler=0x401136")
    assert T.entry_text("execve", "argv", STACK + 0x100, {}, MEM) == '["/bin/kxsys", "-v"]'
    assert T.entry_text("execve", "envp", STACK + 0x110, {}, MEM) == f"{STACK + 0x110:#x} /* 0 vars */"
    assert T.entry_text("write", "fd", 1, {}, MEM) is None
    # A struct that cannot be read prints its address.
    assert T.entry_text("nanosleep", "rqtp", 0x1234, {}, MEM) == "0x1234"


def test_return_texts():
    status = memory({0x5000: struct.pack("<i", 3 << 8)})
    assert T.return_text("wait4", "stat_addr", 0x5000, {}, 42, status) == "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]"
    assert T.return_text("wait4", "stat_addr", 0x5000, {}, -10, status) is None     # ECHILD: the address stays
    assert T.return_text("wait4", "stat_addr", 0, {}, 42, status) is None
    assert T.return_text("rt_sigaction", "oact", STACK + 24, {}, 0, MEM).endswith("sa_restorer=0x401000}")
    assert T.return_text("clone", "parent_tidptr", 0x5000, {"clone_flags": 0x100000}, 99, status) == "[768]"


@given(st.sampled_from(sorted((sc, arg) for sc, args in T.ENTRY.items() for arg in args)),
       st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 32) - 1))
def test_entry_text_never_raises(which, value, cmd):
    syscall, arg = which
    assert isinstance(T.entry_text(syscall, arg, value, {"cmd": cmd, "size": cmd, "family": cmd}, MEM), str)


def test_line_layout():
    openat = [("dfd", 0, "AT_FDCWD"), ("filename", 1, '"/x"'), ("flags", 0o2000000, "O_RDONLY|O_CLOEXEC"),
              ("mode", 0, "000")]
    assert T.line_args("openat", openat) == ["AT_FDCWD", '"/x"', "O_RDONLY|O_CLOEXEC"]
    created = openat[:2] + [("flags", 0o1101, "O_WRONLY|O_CREAT|O_TRUNC"), ("mode", 0o640, "0640")]
    assert T.line_args("openat", created)[-1] == "0640"
    clone = [("clone_flags", 0x01200011, "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"), ("newsp", 0, "NULL"),
             ("parent_tidptr", 0, "NULL"), ("child_tidptr", 0x7F10, "0x7f10"), ("tls", 0, "NULL")]
    assert T.line_args("clone", clone) == ["child_stack=NULL", "flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
                                           "child_tidptr=0x7f10"]


def test_format_arg_uses_the_rules_and_capture_plan_the_structs():
    assert A.format_arg("int", "family", 1, syscall="socket") == "AF_UNIX"
    assert A.format_arg("unsigned long", "start", 0x7F0000001000, syscall="mprotect") == "0x7f0000001000"
    assert A.format_arg("struct __kernel_timespec *", "rqtp", STACK, syscall="nanosleep",
                        read_memory=MEM) == "{tv_sec=0, tv_nsec=1000000}"
    params = [("int", "sig"), ("const struct sigaction *", "act"), ("struct sigaction *", "oact"),
              ("size_t", "sigsetsize")]
    assert A.capture_plan(params, "rt_sigaction") == [(1, "buffer", S.SIGACTION_SIZE, None),
                                                       (2, "buffer", S.SIGACTION_SIZE, None)]
    assert A.capture_plan([("struct __kernel_timespec *", "rqtp"), ("struct __kernel_timespec *", "rmtp")],
                          "nanosleep") == [(0, "buffer", S.TIMESPEC_SIZE, None)]
    assert A.capture_plan([("struct clone_args *", "uargs"), ("size_t", "size")], "clone3") == [
        (0, "buffer", S.CLONE_ARGS_SIZE, None)]
