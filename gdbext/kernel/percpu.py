"""Per-CPU variables.

`&var + __per_cpu_offset[cpu]` is right in every era: zero-based per-cpu
symbols up to 6.14, and ordinary addresses from 6.15 on ("x86/percpu/64: Use
relative percpu offsets"), because per_cpu_ptr() itself is computed that way.  Reads go through
target.read_kernel, so they work on a user page table under KPTI too; GS_BASE
is never trusted, since around swapgs it may hold the user value.
"""
from gdbext import arch, errors
from gdbext.decoders.bits import MASK64
from gdbext.kernel import backend, symbols, types


def offset(cpu: int) -> int:
    base = symbols.address("__per_cpu_offset")
    size = arch.current().pointer_size        # an array of unsigned long
    return int.from_bytes(backend.read_kernel(base + size * cpu, size), "little")


def address(name: str, cpu: int, member: str = None, struct: str = None) -> int:
    """Address of per-cpu `name` (optionally `.member` of `struct`) on `cpu`.
    The sum wraps at 64 bits: from 6.15 on the offsets are "negative" (the
    per-cpu area lies below the kernel image the symbols point into)."""
    addr = symbols.address(name) + offset(cpu)
    if member:
        addr += types.offsetof(struct, member)
    return addr & ((1 << (8 * arch.current().pointer_size)) - 1) & MASK64


def read(name: str, cpu: int, size: int, member: str = None, struct: str = None) -> bytes:
    return backend.read_kernel(address(name, cpu, member, struct), size)


def read_u64(name: str, cpu: int, member: str = None, struct: str = None) -> int:
    return int.from_bytes(read(name, cpu, 8, member, struct), "little")


def read_ulong(name: str, cpu: int, member: str = None, struct: str = None) -> int:
    """A per-cpu unsigned long or pointer, at the architecture's width."""
    return int.from_bytes(read(name, cpu, arch.current().pointer_size, member, struct), "little")


def nr_cpu_ids() -> int:
    addr = symbols.lookup("nr_cpu_ids")
    if addr is None:
        raise errors.MissingSymbol("nr_cpu_ids")
    return int.from_bytes(backend.read_kernel(addr, 4), "little")
