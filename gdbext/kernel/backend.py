"""Where the kernel model reads from: the machine's registers and memory,
the kernel's symbols and its types.

Inside gdb that is the machine layer (gdbext.machine, registers and memory
cached per stop), the vmlinux's symbol table (kernel/symbols.py) and its
DWARF through gdb (kernel/types.py).  A unit test installs a FakeTarget
(kernel/fake.py) instead, filled from a dict or a recorded snapshot, so
tasks, per-cpu data and syscall events run under plain pytest.
"""
import contextlib
from typing import Dict, List, Optional


class GdbMachine:
    """The machine layer, imported only when first used (it needs gdb)."""

    @staticmethod
    def _m():
        from gdbext import machine
        return machine

    def cpus(self) -> List[int]:
        return self._m().cpus()

    def check_cpu(self, cpu: Optional[int]) -> int:
        return self._m().check_cpu(cpu)

    def registers(self, cpu: Optional[int] = None) -> Dict[str, int]:
        return self._m().registers(cpu)

    def read_kernel(self, address: int, size: int, cpu: Optional[int] = None) -> bytes:
        return self._m().read_kernel(address, size, cpu)

    def read_user(self, address: int, size: int, cpu: Optional[int] = None) -> bytes:
        return self._m().read_user(address, size, cpu)

    def cached(self, key, compute):
        return self._m().cached(key, compute)

    @property
    def syscalls(self):
        from gdbext.kernel import syscalls
        return syscalls

    def kernel_version(self):
        from gdbext.kernel import version
        return version.version()


_machine = GdbMachine()


def machine():
    """The active machine: registers, memory and the per-stop cache."""
    return _machine


def cpus() -> List[int]:
    return _machine.cpus()


def check_cpu(cpu: Optional[int]) -> int:
    return _machine.check_cpu(cpu)


def registers(cpu: Optional[int] = None) -> Dict[str, int]:
    return _machine.registers(cpu)


def read_kernel(address: int, size: int, cpu: Optional[int] = None) -> bytes:
    return _machine.read_kernel(address, size, cpu)


def read_user(address: int, size: int, cpu: Optional[int] = None) -> bytes:
    return _machine.read_user(address, size, cpu)


def read_u64(address: int, cpu: Optional[int] = None) -> int:
    return int.from_bytes(_machine.read_kernel(address, 8, cpu), "little")


def cached(key, compute):
    return _machine.cached(key, compute)


def syscalls():
    """The syscall tables' questions (kernel/syscalls.py, or a fake's)."""
    return _machine.syscalls


def kernel_version() -> tuple:
    """(major, minor) of the kernel, (0, 0) when unknown: the flag tables
    of decoders/flags.py depend on it."""
    return _machine.kernel_version()


@contextlib.contextmanager
def installed(target):
    """Run the kernel model on `target` (a kernel/fake.py FakeTarget): its
    machine, symbols, types and architecture, restored afterwards."""
    from gdbext import arch
    from gdbext.kernel import symbols, types
    global _machine
    saved = _machine
    _machine = target
    symbols.use(target.symbols)
    types.use(target.types)
    arch.use(target.arch)
    try:
        yield target
    finally:
        _machine = saved
        symbols.use(None)
        types.use(None)
        arch.use(None)
