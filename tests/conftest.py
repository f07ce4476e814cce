"""Shared fixtures.

Unit tests need nothing.  Guest tests (marker `guest`) boot real Debian
kernels under QEMU through the lab code and drive a real gdb over MI; the
guests and the gdb sessions are shared per test session, one per
configuration, and are always torn down, even when tests fail.
"""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from kxlab import kernels  # noqa: E402
from tests.guestlib import GuestSession, LabConfig, all_sessions  # noqa: E402

# The kernels under test (KX_TEST_KERNELS, comma-separated, of the lab's
# series); every guest fixture is parametrized by them.  KPTI needs an
# Intel model.
DEFAULT_KERNELS = "6.1,6.12"
KERNELS = [k.strip() for k in os.environ.get("KX_TEST_KERNELS", DEFAULT_KERNELS).split(",") if k.strip()]
_unknown = [k for k in KERNELS if k not in kernels.SERIES]
if _unknown or not KERNELS:
    raise pytest.UsageError(f"KX_TEST_KERNELS={os.environ.get('KX_TEST_KERNELS')!r}: "
                            f"choose among {', '.join(kernels.SERIES)}")

# The guest architectures under test (KX_TEST_ARCHES): tests/guest/ runs on
# x86_64 kernels, tests/guest_i386/ on Debian's 686-pae 6.1,
# tests/guest_arm64/ on the cloud-arm64 kernels (KX_TEST_ARM64_KERNELS).
DEFAULT_ARCHES = "x86_64,i386,arm64"
ARCHES = [a.strip() for a in os.environ.get("KX_TEST_ARCHES", DEFAULT_ARCHES).split(",") if a.strip()]
_GUEST_DIRS = {"x86_64": "guest", "i386": "guest_i386", "arm64": "guest_arm64"}
if not ARCHES or any(a not in _GUEST_DIRS for a in ARCHES):
    raise pytest.UsageError(f"KX_TEST_ARCHES={os.environ.get('KX_TEST_ARCHES')!r}: "
                            f"choose among {', '.join(_GUEST_DIRS)}")


def _arch_of(path: str):
    return next((a for a, d in _GUEST_DIRS.items() if f"/{d}/" in path), None)


def pytest_ignore_collect(collection_path, config):
    """Leave out the guest tests of architectures not under test."""
    skipped = {d for a, d in _GUEST_DIRS.items() if a not in ARCHES}
    if collection_path.parent.name == "tests" and collection_path.name in skipped:
        return True
    return None


# Kernels that run the whole guest suite (KX_FULL_KERNELS); the other
# kernels of KX_TEST_KERNELS run the core files only: what each kernel must
# show (entry, tasks, tables, break/trace, KASLR, no vmlinux, the state at a
# stop) without the deep tier (reliability matrix, fuzzing, interrupts, the
# plugin, the API): one kernel's whole guest suite takes 4-5 minutes of the
# 2-core CI machine's 45.
FULL_KERNELS = [k.strip() for k in os.environ.get("KX_FULL_KERNELS", "6.1,6.12").split(",") if k.strip()]
CORE_GUEST_FILES = ("test_event.py", "test_tasks.py", "test_break.py", "test_trace.py", "test_syscalls.py",
                    "test_demo.py", "test_kaslr.py", "test_cpu_state.py", "test_entry_state.py", "test_lab.py",
                    "test_no_vmlinux.py", "test_seccomp.py", "test_cr.py", "test_pagewalk.py", "test_modules.py",
                    "test_dmesg.py", "test_strace_oracle.py", "test_source_lines.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "guest: boots a real kernel under QEMU and drives gdb")
    config.addinivalue_line("markers", "gdb: runs a real gdb (no guest)")
    config.addinivalue_line("markers", "only_kernels(*series): run only on these kernel series; "
                                       "the others are deselected, not skipped")
    config.addinivalue_line("markers", "every_kernel: a test of a deep-tier file that runs on every kernel "
                                       "of KX_TEST_KERNELS, not only on KX_FULL_KERNELS")


def _series_of(item):
    """The kernel series a test item runs on: its kernel_series parameter,
    or that of a module's own guest fixture (kaslr_lab, plab, `series`)."""
    callspec = getattr(item, "callspec", None)
    if not callspec:
        return None
    for key, value in callspec.params.items():
        if (key == "kernel_series" or key == "series" or key.endswith("lab")) and value in kernels.SERIES:
            return value
    return None


def pytest_collection_modifyitems(config, items):
    keep, dropped = [], []
    for item in items:
        path = str(item.fspath).replace(os.sep, "/")
        guest_arch = _arch_of(path)
        if guest_arch:
            item.add_marker(pytest.mark.guest)
        only = item.get_closest_marker("only_kernels")
        series = _series_of(item)
        core_only = (series and series not in FULL_KERNELS and item.get_closest_marker("guest")
                     and os.path.basename(str(item.fspath)) not in CORE_GUEST_FILES
                     and not item.get_closest_marker("every_kernel"))
        off_arch = guest_arch is not None and guest_arch not in ARCHES
        (dropped if off_arch or core_only or (only and series and series not in only.args) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", params=KERNELS)
def kernel_series(request):
    return request.param


@pytest.fixture(scope="session")
def lab(kernel_series):
    """The default lab guest: 2 vCPUs, Haswell (Intel), pti=on, nokaslr."""
    session = GuestSession.get(LabConfig(kernel=kernel_series, smp=2, cpu="Haswell", pti="on"))
    yield session


@pytest.fixture(scope="module", params=KERNELS)
def kaslr_lab(request):
    """A KASLR guest (the lab guest plus `kaslr` on the command line), for
    one test module; stopped when the module is done."""
    config = LabConfig(kernel=request.param, smp=2, cpu="Haswell", pti="on", kaslr=True)
    session = GuestSession.get(config)
    yield session
    GuestSession.release(config)


@pytest.fixture(scope="module")
def mismatch_lab():
    """A 6.1 guest with gdb attached through the 6.12 vmlinux."""
    config = LabConfig(kernel="6.1", smp=2, cpu="Haswell", pti="on", vmlinux_kernel="6.12")
    session = GuestSession.get(config)
    yield session
    GuestSession.release(config)


@pytest.fixture
def kx(lab):
    """The shared gdb, stopped, with no breakpoints left by earlier tests.
    A gdb that no longer answers is replaced (with its guest), so that the
    test that hung it fails alone."""
    try:
        lab.ensure_stopped()
    except (TimeoutError, EOFError) as exc:
        lab.restart(f"before the test: {exc}")
    yield lab
    try:
        lab.cleanup_after_test()
    except (TimeoutError, EOFError) as exc:
        lab.restart(f"after the test: {exc}")


def pytest_sessionfinish(session, exitstatus):
    for s in all_sessions():
        s.close()
