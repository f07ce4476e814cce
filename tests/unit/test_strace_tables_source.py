"""The named constants kx decodes syscall arguments with, against the
headers of every cached lab kernel source (tests/kernel_source.py): each
name kx prints has the kernel's value, and each number the kernel names
in these headers is named by kx."""
import os
import re

import pytest

from gdbext.decoders import strace_flags as F
from gdbext.decoders import syscall_args as A
from tests.conftest import KERNELS
from tests.kernel_source import source_root

from kxlab import kernels, sources


def _cached_series():
    """The kernels under test, plus any other series whose source is cached."""
    out = list(KERNELS)
    for series in kernels.SERIES:
        if series not in out and sources.cached(series) is not None:
            out.append(series)
    return out


SERIES = _cached_series()
_NUMBER = r"(0x[0-9a-fA-F]+|0[0-7]*|[1-9]\d*)(?:[uU]?[lL]{0,2})\b"
_SHIFT = r"\(1[uU]?[lL]{0,2}\s*<<\s*(\d+)\)"


def constants(series, *paths, prefix=""):
    """{name: value} of `#define NAME number` and enum `NAME = number,` lines."""
    out = {}
    root = source_root(series)
    for path in paths:
        with open(os.path.join(root, path)) as f:
            text = f.read()
        for m in re.finditer(rf"^#\s*define\s+({prefix}\w*)\s+{_SHIFT}", text, re.M):
            out.setdefault(m.group(1), 1 << int(m.group(2)))
        for m in re.finditer(rf"^#\s*define\s+({prefix}\w*)\s+{_NUMBER}", text, re.M):
            out.setdefault(m.group(1), int(m.group(2), 8 if re.fullmatch(r"0[0-7]+", m.group(2)) else 0))
        for m in re.finditer(rf"^\s+({prefix}\w*)\s*=\s*{_NUMBER}\s*,", text, re.M):
            out.setdefault(m.group(1), int(m.group(2), 0))
    return out


def check_table(pairs, kernel, complete=True, skip=(), later=()):
    """Every (name, value) of kx's table is the kernel's (`later`: names of
    later kernels, absent here); with `complete`, every kernel name (but
    aliases and `skip`) is in kx's table."""
    ours = dict(pairs)
    wrong = {n: (v, kernel.get(n)) for n, v in ours.items()
             if kernel.get(n) != v and not (n in later and n not in kernel)}
    assert not wrong, f"kx value, kernel value: {wrong}"
    if complete:
        named = set(ours.values())
        missing = {n: v for n, v in kernel.items() if v not in named and n not in skip}
        assert not missing, f"the kernel names these, kx does not: {missing}"


@pytest.mark.parametrize("series", SERIES)
def test_clone_flags(series):
    k = constants(series, "include/uapi/linux/sched.h", prefix="CLONE_")
    k = {n: v for n, v in k.items() if not n.startswith("CLONE_ARGS_SIZE")}
    check_table(tuple(F.CLONE_FLAGS) + tuple(F.CLONE3_FLAGS), k,
                skip={"CLONE_DETACHED"}, later=F.CLONE_LATER)   # DETACHED: ignored by the kernel
    assert F.CSIGNAL == constants(series, "include/uapi/linux/sched.h", prefix="CSIGNAL")["CSIGNAL"]


@pytest.mark.parametrize("series", SERIES)
def test_wait_options(series):
    k = constants(series, "include/uapi/linux/wait.h", prefix="(?:W|__W)")
    k = {n: v for n, v in k.items() if n[1:4] not in ("EXI",) or n == "WEXITED"}
    check_table(F.WAIT_OPTIONS, {n: v for n, v in k.items() if n not in ("WSTOPPED",)},
                skip={"WSTOPPED"})


@pytest.mark.parametrize("series", SERIES)
def test_signals_and_sa_flags(series):
    k = constants(series, "arch/x86/include/uapi/asm/signal.h", prefix="SIG")
    sigs = {n: v for n, v in k.items() if 1 <= v <= 31 and n not in ("SIGIOT", "SIGPOLL", "SIGUNUSED", "SIGLOST")}
    check_table({v: n for n, v in F.SIGNALS.items()}.items(), sigs)
    sa = constants(series, "arch/x86/include/uapi/asm/signal.h", "include/uapi/asm-generic/signal-defs.h",
                   prefix="SA_")
    check_table(F.SA_FLAGS, sa, skip={"SA_NOMASK", "SA_ONESHOT", "SA_UNSUPPORTED", "SA_EXPOSE_TAGBITS"})
    assert F.SIGRTMIN == constants(series, "arch/x86/include/uapi/asm/signal.h", prefix="SIGRTMIN")["SIGRTMIN"]
    assert F.SIGRTMAX == constants(series, "arch/x86/include/asm/signal.h", prefix="_NSIG")["_NSIG"]


@pytest.mark.parametrize("series", SERIES)
def test_socket_constants(series):
    af = constants(series, "include/linux/socket.h", prefix="AF_")
    newer = {v: n for v, n in F.ADDRESS_FAMILIES.items() if v < af["AF_MAX"]}   # families of later kernels
    check_table({v: n for n, v in newer.items()}.items(), {n: v for n, v in af.items() if n != "AF_MAX"},
                skip={"AF_LOCAL"})
    types = constants(series, "include/linux/net.h", prefix="SOCK_")
    check_table({v: n for n, v in F.SOCK_TYPES.items()}.items(), {n: v for n, v in types.items() if n not in ("SOCK_MAX", "SOCK_TYPE_MASK") and not n.startswith("SOCK_PASS")})
    fcntl = constants(series, "include/uapi/asm-generic/fcntl.h", prefix="O_")
    assert dict(F.SOCK_TYPE_FLAGS) == {"SOCK_CLOEXEC": fcntl["O_CLOEXEC"], "SOCK_NONBLOCK": fcntl["O_NONBLOCK"]}
    ipproto = constants(series, "include/uapi/linux/in.h", prefix="IPPROTO_")
    check_table({v: n for n, v in F.IP_PROTOCOLS.items()}.items(),
                {n: v for n, v in ipproto.items() if n not in ("IPPROTO_MAX",) and v < 256},
                skip={"IPPROTO_ETHERNET", "IPPROTO_L2TP", "IPPROTO_SMC"}, later={"IPPROTO_AGGFRAG"})


@pytest.mark.parametrize("series", SERIES)
def test_ioctls_and_clocks(series):
    k = constants(series, "include/uapi/asm-generic/ioctls.h")
    check_table({v: n for n, v in F.IOCTLS.items()}.items(), k, complete=False)
    clocks = constants(series, "include/uapi/linux/time.h", prefix="CLOCK")
    check_table({v: n for n, v in F.CLOCKS.items()}.items(), {n: v for n, v in clocks.items() if n.startswith("CLOCK_")},
                skip={"CLOCK_SGI_CYCLE"})
    assert dict(F.TIMER_FLAGS) == {"TIMER_ABSTIME": clocks.get("TIMER_ABSTIME") or
                                   constants(series, "include/uapi/linux/time.h", prefix="TIMER_")["TIMER_ABSTIME"]}


@pytest.mark.parametrize("series", SERIES)
def test_errno_open_and_mmap(series):
    errnos = constants(series, "include/uapi/asm-generic/errno-base.h", "include/uapi/asm-generic/errno.h",
                       "include/linux/errno.h", prefix="E")
    check_table({v: n for n, v in A.ERRNO_NAMES.items()}.items(), errnos, later={"EFTYPE"})
    fcntl = constants(series, "include/uapi/asm-generic/fcntl.h", prefix="(?:O_|__O_)")
    for bit, name in A._OPEN_FLAGS:
        if name != "O_ASYNC":            # FASYNC in the header
            assert fcntl[name] == bit, name
    mman = constants(series, "include/uapi/asm-generic/mman-common.h", "include/uapi/asm-generic/mman.h",
                     "include/uapi/linux/mman.h", "arch/x86/include/uapi/asm/mman.h", prefix="(?:MAP_|PROT_)")
    for bit, name in list(A._PROT) + list(A._MAP_FLAGS):
        if name in mman:                 # MAP_DROPPABLE, MAP_ABOVE4G: newer kernels only
            assert mman[name] == bit, name
    for value, name in A._MAP_TYPES.items():
        assert mman.get(name, value) == value, name
