"""Ground truth from the kernel's own source tree, for tests: never through
kx's code.  The tree is Debian's linux-source-SERIES of the lab kernel,
unpacked into the lab's cache by `./scripts/lab fetch --kernel S --source`
(./scripts/test does it for every kernel it tests)."""
import os
import re

import pytest

from kxlab import kernels, sources


def source_root(series: str) -> str:
    kernel = kernels.cached(series)
    root = sources.cached(series, kernel.version if kernel else None)
    if root is None:
        pytest.fail(f"no {series} kernel source in the lab's cache: "
                    f"./scripts/lab fetch --kernel {series} --source (./scripts/test does it)")
    return str(root)


def syscall_tbl(series: str, bits: str) -> dict:
    """nr -> (ABI name, entry point or None for ni_syscall), from
    arch/x86/entry/syscalls/syscall_{64,32}.tbl; the i386 table's compat
    entry point where it has one."""
    out = {}
    with open(os.path.join(source_root(series), f"arch/x86/entry/syscalls/syscall_{bits}.tbl")) as f:
        for line in f:
            p = line.split()
            if not p or p[0].startswith("#") or (bits == "64" and p[1] == "x32"):
                continue
            entry = p[3] if len(p) > 3 else None
            if bits == "32" and len(p) > 4 and p[4] != "-":      # the compat entry point
                entry = p[4]
            out[int(p[0])] = (p[2], None if entry in (None, "sys_ni_syscall") else entry)
    return out


def syscall_init_msrs(series: str):
    """(whether syscall_init() skips CSTAR on Intel, the SYSCALL_MASK it
    writes), from arch/x86/kernel/cpu/common.c and the X86_EFLAGS_*_BIT
    numbers of arch/x86/include/uapi/asm/processor-flags.h."""
    root = source_root(series)
    with open(os.path.join(root, "arch/x86/kernel/cpu/common.c")) as f:
        common = f.read()
    skips = bool(re.search(r"x86_vendor != X86_VENDOR_INTEL\)\s*wrmsr[lq]?\(MSR_CSTAR", common))
    mask = re.search(r"wrmsr[lq]?\(MSR_SYSCALL_MASK,([^;]*);", common).group(1)
    with open(os.path.join(root, "arch/x86/include/uapi/asm/processor-flags.h")) as f:
        bits = {n: int(b) for n, b in re.findall(r"#define X86_EFLAGS_(\w+)_BIT\s+(\d+)", f.read())}
    return skips, sum((3 if n == "IOPL" else 1) << bits[n]          # IOPL is two bits
                      for n in re.findall(r"X86_EFLAGS_(\w+)", mask))


def tif_bit(series: str, name: str):
    """The bit number of `name` (TIF_SECCOMP, ...) in the kernel's
    arch/x86/include/asm/thread_info.h, or None when it has none."""
    with open(os.path.join(source_root(series), "arch/x86/include/asm/thread_info.h")) as f:
        m = re.search(rf"#define {name}\s+(\d+)\b", f.read())
    return int(m.group(1)) if m else None
