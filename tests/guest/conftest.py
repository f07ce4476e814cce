"""Fixtures of the reliability tests and the figures they print.

tests/conftest.py owns the shared lab guests; this file adds
- `paused_lab`: a guest booted with QEMU's -S, attached before its first
  instruction (the early-boot state), one per kernel series;
- `throwaway_lab`: a small guest of its own that a test may kill;
- the end-of-run summary of tests/reliability.py (pytest_terminal_summary).
"""
import re
import time

import pytest

from tests import reliability
from tests.guestlib import GuestSession, LabConfig

from kxlab import gdbrun, kernels, qemu


class OwnSession(GuestSession):
    """A GuestSession that is not shared through guestlib's registry: its
    own QEMU options (-S, one vCPU) and its own life span."""

    def __init__(self, kernel_series, stopped=False, smp=2, vmlinux=None, load_kx=True, append=""):
        self.config = LabConfig(kernel=kernel_series, smp=smp)
        self.kernel = kernels.fetch(kernel_series, quiet=True)
        self.guest = qemu.Guest(qemu.BootOptions(
            kernel=kernel_series, smp=smp, cpu="Haswell", pti="on", stopped=stopped, append=append),
            kernel=self.kernel)
        self.guest.start()
        self.symbols = self.kernel.symbols()
        self.vmlinux = vmlinux or self.kernel.vmlinux
        self.gdb = None
        self.running = False
        try:
            self.gdb = gdbrun.start_mi(self.vmlinux, self.guest.port, load_kx=load_kx)
            if load_kx:
                self.gdb.cmd("set kx color off")
        except BaseException:
            self.close()
            raise


@pytest.fixture(scope="module")
def paused_lab(kernel_series):
    """2 vCPUs, Haswell, pti=on, started with -S: both vCPUs at reset."""
    session = OwnSession(kernel_series, stopped=True)
    yield session
    session.close()


def heartbeat_without_trap(kx, timeout=60) -> str:
    """Continue until the workload prints a new heartbeat, then interrupt.
    Returns "" if all went well, else what went wrong: a stop of its own
    (a breakpoint left behind would stop the guest with SIGTRAP) or no
    heartbeat."""
    start = len(kx.guest.serial())
    kx.cont()
    deadline = time.monotonic() + timeout
    problem = ""
    while True:
        if re.search(r"KX-HEARTBEAT", kx.guest.serial()[start:]):
            break
        try:
            rec = kx.gdb.wait_stopped(0.3)
            kx.running = False
            return f"the guest stopped by itself: {rec[:300]}"
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            problem = f"no heartbeat within {timeout} s"
            break
    rec = kx.gdb.interrupt()
    kx.running = False
    if 'signal-name="SIGINT"' not in rec:
        problem = problem or f"the interrupt stopped with {rec[:300]}"
    return problem


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reliability.write_summary(terminalreporter)
