"""The arm64 guests: Debian's cloud-arm64 kernels under qemu-system-aarch64
-M virt, with gdb-multiarch.  One shared guest per kernel per session (the
nokaslr one), and a KASLR guest for the test module that needs it.

KX_TEST_ARM64_KERNELS (comma-separated, default 6.1,6.12) picks the kernels.
"""
import os
import re

import pytest

from kxlab import gdbrun, initramfs_arm64, kernels, qemu
from tests.guestlib import GuestSession, LabConfig

ARM64_KERNELS = [k.strip() for k in os.environ.get("KX_TEST_ARM64_KERNELS", "6.1,6.12").split(",") if k.strip()]
_unknown = [k for k in ARM64_KERNELS if k not in kernels.ARM64_SERIES]
if _unknown or not ARM64_KERNELS:
    raise pytest.UsageError(f"KX_TEST_ARM64_KERNELS={os.environ.get('KX_TEST_ARM64_KERNELS')!r}: "
                            f"choose among {', '.join(kernels.ARM64_SERIES)}")
_SESSIONS = {}


class Arm64Session(GuestSession):
    """A GuestSession on an arm64 guest (its own registry: the x86 one is
    keyed by LabConfig alone)."""

    @classmethod
    def get(cls, config: LabConfig) -> "Arm64Session":
        if config not in _SESSIONS:
            _SESSIONS[config] = cls(config)
        return _SESSIONS[config]

    @classmethod
    def release(cls, config: LabConfig) -> None:
        session = _SESSIONS.pop(config, None)
        if session is not None:
            session.close()

    def __init__(self, config: LabConfig):
        self.config = config
        self.kernel = kernels.fetch(config.kernel, quiet=True, arch="arm64")
        self.guest = qemu.Guest(qemu.BootOptions(
            kernel=config.kernel, smp=config.smp, cpu=config.cpu, pti=config.pti, kaslr=config.kaslr,
            workload=config.workload, append=config.append, arch="arm64", lpa2=config.lpa2),
            kernel=self.kernel)
        self.guest.start()
        self.symbols = self.kernel.symbols()
        self.vmlinux = self.kernel.vmlinux
        self.gdb = None
        try:
            self.gdb = gdbrun.start_mi(self.vmlinux, self.guest.port, arch="arm64")
            self.gdb.cmd("set kx color off")
            self.running = False
        except BaseException:
            self.close()
            raise

    def monitor_registers(self, cpu: int) -> dict:
        """QEMU's own `info registers` of one vCPU (no gdb involved)."""
        from gdbext.decoders.qemu_monitor import parse_info_registers_aarch64
        return parse_info_registers_aarch64(self.guest.hmp(f"cpu {cpu}") + self.guest.hmp("info registers"))

    def workload_pid(self) -> int:
        return int(re.findall(r"KX-WORK pid=(\d+)", self.guest.serial())[-1])

    def stop_at(self, location: str, condition: str, timeout: float = 120) -> int:
        """Continue to `location` where `condition` holds; the stopped CPU."""
        self.run_to(location, condition, timeout)
        return int(self.gdb.eval("$_thread")) - 1


def _config(series: str, kaslr: bool = False) -> LabConfig:
    return LabConfig(kernel=series, smp=2, cpu="", pti="auto", kaslr=kaslr)


@pytest.fixture(scope="session", params=ARM64_KERNELS)
def arm64_series(request):
    return request.param


@pytest.fixture(scope="session")
def arm64_lab(arm64_series):
    yield Arm64Session.get(_config(arm64_series))


def stopped_for_a_test(session):
    """Yield `session` stopped; afterwards, no breakpoints left (a session
    that stops answering is booted again)."""
    try:
        session.ensure_stopped()
    except (TimeoutError, EOFError) as exc:
        session.restart(f"before the test: {exc}")
    yield session
    try:
        session.cleanup_after_test()
    except (TimeoutError, EOFError) as exc:
        session.restart(f"after the test: {exc}")


@pytest.fixture
def a64(arm64_lab):
    """The shared arm64 gdb, stopped, no breakpoints left by earlier tests."""
    yield from stopped_for_a_test(arm64_lab)


@pytest.fixture(scope="module")
def a64_kaslr(arm64_series):
    """A KASLR guest (no `nokaslr`: the device tree's kaslr-seed), for one module."""
    config = _config(arm64_series, kaslr=True)
    session = Arm64Session.get(config)
    yield session
    Arm64Session.release(config)


@pytest.fixture(scope="session")
def arm64_binaries():
    return initramfs_arm64.binaries_dir()


def pytest_sessionfinish(session, exitstatus):
    for s in list(_SESSIONS.values()):
        s.close()
    _SESSIONS.clear()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests import reliability   # the figures the arm64 matrix and fuzzing recorded
    reliability.write_summary(terminalreporter)
