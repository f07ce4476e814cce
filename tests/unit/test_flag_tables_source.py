"""kx's flag tables against the #defines of each kernel under test, read
from that kernel's own source tree (tests/kernel_source.py)."""
import os
import re

import pytest

from gdbext.arch.x86_64 import thread_flags
from gdbext.decoders import flags
from tests.conftest import KERNELS
from tests.kernel_source import source_root


def defines(path, prefix):
    """{name: value} of `#define PREFIX... value` lines (hex or decimal)."""
    out = {}
    with open(path) as f:
        for m in re.finditer(rf"^#\s*define\s+((?:{prefix})[A-Z0-9_]+)\s+(0x[0-9a-fA-F]+|\d+)\b", f.read(), re.M):
            out[m.group(1)] = int(m.group(2), 0)
    return out


def bits(table_by_name):
    return {v.bit_length() - 1: n for n, v in table_by_name.items() if v and v & (v - 1) == 0}


def version_of(series):
    return tuple(int(x) for x in series.split("."))


@pytest.mark.parametrize("series", KERNELS)
def test_pf_and_task_state(series):
    src = source_root(series)
    sched = os.path.join(src, "include/linux/sched.h")
    tables = flags.for_version(*version_of(series))
    assert tables.tree == version_of(series)
    assert tables.pf == {b: n for b, n in bits(defines(sched, "PF_")).items() if "__HOLE__" not in n}
    states = {n: v for n, v in defines(sched, "(?:__)?TASK_|EXIT_").items()
              if n not in ("TASK_STATE_MAX", "TASK_REPORT_IDLE", "TASK_REPORT_MAX", "TASK_COMM_LEN")}
    expected = bits(states)
    with open(sched) as f:
        if "(0x00004000 * IS_ENABLED(CONFIG_LOCKDEP))" in f.read():
            expected[14] = "__TASK_FREEZABLE_UNSAFE"   # a bit only with CONFIG_LOCKDEP
    assert tables.task_state == expected


@pytest.mark.parametrize("series", KERNELS)
def test_x86_thread_info_bits(series):
    src = source_root(series)
    t = flags.tree_for(version_of(series), thread_flags.TREES)
    x86 = os.path.join(src, "arch/x86/include/asm/thread_info.h")
    tif = defines(x86, "TIF_")
    generic = os.path.join(src, "include/asm-generic/thread_info_tif.h")
    if os.path.exists(generic):
        # The generic bits an architecture opts into with HAVE_TIF_*.
        x86_text, generic_text = open(x86).read(), open(generic).read()
        tif.update({n: v for n, v in defines(generic, "TIF_").items()
                    if f"#ifdef HAVE_{n}" not in generic_text or f"#define HAVE_{n}" in x86_text})
    assert t.tif == {v: n for n, v in tif.items() if v < 64}
    ts = defines(os.path.join(src, "arch/x86/include/asm/thread_info.h"), "TS_")
    assert t.ts == bits(ts)


@pytest.mark.parametrize("series", [s for s in KERNELS if s in ("6.1", "6.12")])
def test_arm64_tif_bits(series):
    """arm64's TIF_* numbers (bit numbers in the header) for the arm64
    kernels of the same series: the source tree is the same."""
    from gdbext.arch.arm64 import thread_flags as arm64_flags
    header = os.path.join(source_root(series), "arch/arm64/include/asm/thread_info.h")
    want = {v: n for n, v in defines(header, "TIF_").items() if v < 64}
    assert flags.tree_for(version_of(series), arm64_flags.TREES).tif == want
