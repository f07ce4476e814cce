"""The i386 guest: Debian's 686-pae 6.1 under qemu-system-i386 -cpu Haswell
(PAE, NX, sysenter), 2 vCPUs, pti=on, nokaslr; one guest and one gdb for
the whole session (tests/guestlib.py), torn down by tests/conftest.py.

Ground truth: System.map of the 686-pae kernel, QEMU's monitor, and the
static i386 workload (scripts/guest/kxwork32.c, hello32.S, sysenter32.S)
with its ELF symbols and KX-* lines."""
import re

import pytest
from elftools.elf.elffile import ELFFile

from kxlab import initramfs_i386
from tests.guestlib import GuestSession, LabConfig

CONFIG = LabConfig(kernel="6.1", smp=2, cpu="Haswell", pti="on", arch="i386")
HELLO32_LEN = len("Hello from int $0x80 (32-bit)\n")
SYSENTER32_LEN = len("Hello from __kernel_vsyscall (32-bit)\n")


@pytest.fixture(scope="session")
def i386_lab():
    return GuestSession.get(CONFIG)


@pytest.fixture
def kx(i386_lab):
    """The shared i386 gdb, stopped, with no breakpoints left by earlier
    tests (a hung gdb is replaced with its guest, as tests/conftest.py does)."""
    try:
        i386_lab.ensure_stopped()
    except (TimeoutError, EOFError) as exc:
        i386_lab.restart(f"before the test: {exc}")
    yield i386_lab
    try:
        i386_lab.cleanup_after_test()
    except (TimeoutError, EOFError) as exc:
        i386_lab.restart(f"after the test: {exc}")


def elf_symbols(binary: str) -> dict:
    """The symbols of one of the i386 initramfs's binaries."""
    with open(initramfs_i386.binaries_dir() / binary, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}


def workload(kx) -> dict:
    """The workload's own KX-WORK line: pid, vDSO base, AT_SYSINFO."""
    m = re.findall(r"KX-WORK pid=(\d+) vdso=(0x[0-9a-f]+) target=\S+ mark_len=\d+ sysinfo=(0x[0-9a-f]+)",
                   kx.guest.serial())
    assert m, "the workload never announced itself"
    pid, vdso, sysinfo = m[-1]
    return {"pid": int(pid), "vdso": int(vdso, 16), "sysinfo": int(sysinfo, 16)}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests import reliability   # the figures the i386 matrix and fuzzing recorded
    reliability.write_summary(terminalreporter)
