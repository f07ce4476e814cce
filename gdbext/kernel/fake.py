"""A fake target for the kernel model: registers, memory, symbols, types and
syscall tables from plain data, so tasks, per-cpu code and syscall events
run under pytest with no gdb and no QEMU (drgn's mock programs are the
same idea).

    target = FakeTarget(arch=X86, registers={0: {...}}, memory={addr: b"..."},
                        symbols={"current_task": 0x...},
                        types={"struct task_struct": (9000, {"pid": (2416, 4)})})
    with backend.installed(target):
        tasks.current(0)

A snapshot is the same data as JSON (`to_snapshot` / `from_snapshot`).
"""
import bisect
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from gdbext import errors


class FakeMemory:
    """Byte segments at addresses; a read outside them is unreadable."""

    def __init__(self, segments: Mapping[int, bytes] = ()):
        self.segments: Dict[int, bytes] = {}
        for address, data in dict(segments).items():
            self.write(address, data)

    def write(self, address: int, data: bytes) -> None:
        self.segments[address] = bytes(data)

    def read(self, address: int, size: int) -> bytes:
        for start, data in self.segments.items():
            if start <= address and address + size <= start + len(data):
                return data[address - start:address - start + size]
        raise errors.MemoryUnreadable(address, size, "not in the fake target's memory")


class FakeSymbols:
    """name -> address, answering like kernel/symbols.py's SymbolTable."""

    slide = 0

    def __init__(self, symbols: Mapping[str, int]):
        self.by_name = dict(symbols)
        self._sorted = sorted((a, n) for n, a in self.by_name.items())
        self._addrs = [a for a, _ in self._sorted]

    def lookup(self, name: str) -> Optional[int]:
        return self.by_name.get(name)

    def address(self, name: str) -> int:
        if name not in self.by_name:
            raise errors.MissingSymbol(name)
        return self.by_name[name]

    def describe(self, address: int, max_offset: int = 1 << 20) -> Optional[Tuple[str, int]]:
        i = bisect.bisect_right(self._addrs, address) - 1
        if i < 0 or address - self._addrs[i] > max_offset:
            return None
        return self._sorted[i][1], address - self._addrs[i]

    def format(self, address: int) -> Optional[str]:
        hit = self.describe(address)
        if hit is None:
            return None
        return hit[0] if not hit[1] else f"{hit[0]}+{hit[1]:#x}"

    def in_kernel_text(self, address: int) -> bool:
        start, end = self.lookup("_stext"), self.lookup("_etext")
        return start is not None and end is not None and start <= address < end


class FakeTypes:
    """{"struct name": (size, {"member.path": (offset, size)})}."""

    def __init__(self, structs: Mapping[str, Tuple[int, Mapping[str, Tuple[int, int]]]]):
        self.structs = {name: (size, dict(members)) for name, (size, members) in structs.items()}

    def has(self, name: str) -> bool:
        return name in self.structs

    def sizeof(self, name: str) -> int:
        if name not in self.structs:
            raise errors.MissingType(name)
        return self.structs[name][0]

    def has_member(self, struct: str, path: str) -> bool:
        return struct in self.structs and path in self.structs[struct][1]

    def _member(self, struct: str, path: str) -> Tuple[int, int]:
        if not self.has_member(struct, path):
            raise errors.MissingType(struct, path)
        return self.structs[struct][1][path]

    def offsetof(self, struct: str, path: str) -> int:
        return self._member(struct, path)[0]

    def member_size(self, struct: str, path: str) -> int:
        return self._member(struct, path)[1]


@dataclass
class FakeSignature:
    args: List[Tuple[str, str]]          # [(C type, name)]
    source: str = "fake"


@dataclass
class FakeSyscallTable:
    names: Dict[int, str]
    nr_syscalls: int

    def name(self, nr: int) -> Optional[str]:
        return self.names.get(nr)

    def nrs(self, name: str) -> List[int]:
        return [nr for nr, n in self.names.items() if n == name]


@dataclass
class FakeSyscalls:
    """Per ABI: the table, handlers and signatures (kernel/syscalls.py's
    questions, answered from data)."""
    tables: Dict[str, FakeSyscallTable] = field(default_factory=dict)
    handlers: Dict[Tuple[str, int], Tuple[int, str]] = field(default_factory=dict)
    signatures: Dict[Tuple[str, int], FakeSignature] = field(default_factory=dict)

    def table(self, abi: str) -> FakeSyscallTable:
        if abi not in self.tables:
            raise errors.MissingSymbol(f"the {abi} syscall table")
        return self.tables[abi]

    def handler(self, nr: int, abi: str):
        return self.handlers.get((abi, nr))

    def signature(self, nr: int, abi: str):
        return self.signatures.get((abi, nr))

    def dispatch(self, abi: str) -> dict:
        return {"kind": "table", "function": f"{abi} table", "switch": False}


class FakeTarget:
    """A stopped machine made of data, for backend.installed()."""

    def __init__(self, arch, registers: Mapping[int, Dict[str, int]], memory: Mapping[int, bytes] = (),
                 symbols: Mapping[str, int] = (), types=(), syscalls: Optional[FakeSyscalls] = None,
                 user_memory: Mapping[int, bytes] = (), version: Tuple[int, int] = (0, 0)):
        self.arch = arch
        self.version = tuple(version)
        self.regs = {int(cpu): dict(r) for cpu, r in dict(registers).items()}
        self.memory = FakeMemory(memory)
        self.user_memory = FakeMemory(user_memory) if user_memory else self.memory
        self.symbols = FakeSymbols(dict(symbols))
        self.types = FakeTypes(dict(types))
        self.syscalls = syscalls or FakeSyscalls()
        self._cache: Dict = {}

    # the machine, as kernel/backend.py asks for it
    def cpus(self) -> List[int]:
        return sorted(self.regs)

    def check_cpu(self, cpu: Optional[int]) -> int:
        cpu = self.cpus()[0] if cpu is None else cpu
        if cpu not in self.regs:
            raise errors.BadArgument(f"no CPU {cpu}")
        return cpu

    def registers(self, cpu: Optional[int] = None) -> Dict[str, int]:
        return self.regs[self.check_cpu(cpu)]

    def read_kernel(self, address: int, size: int, cpu: Optional[int] = None) -> bytes:
        return self.memory.read(address, size)

    def read_user(self, address: int, size: int, cpu: Optional[int] = None) -> bytes:
        return self.user_memory.read(address, size)

    def kernel_version(self) -> Tuple[int, int]:
        return self.version

    def cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # snapshots
    def to_snapshot(self) -> dict:
        """Registers, memory, symbols and types as JSON-ready data."""
        return {
            "arch": self.arch.name,
            "registers": {str(c): r for c, r in self.regs.items()},
            "memory": {f"{a:#x}": d.hex() for a, d in self.memory.segments.items()},
            "symbols": self.symbols.by_name,
            "types": {n: [s, {p: list(m) for p, m in ms.items()}] for n, (s, ms) in self.types.structs.items()},
        }

    @classmethod
    def from_snapshot(cls, snapshot: dict, arch=None, syscalls: Optional[FakeSyscalls] = None) -> "FakeTarget":
        if arch is None:
            from gdbext import arch as arches
            arch = arches.registry()[snapshot["arch"]]
        return cls(arch, {int(c): r for c, r in snapshot["registers"].items()},
                   {int(a, 16): bytes.fromhex(d) for a, d in snapshot["memory"].items()},
                   snapshot["symbols"],
                   {n: (s, {p: tuple(m) for p, m in ms.items()}) for n, (s, ms) in snapshot["types"].items()},
                   syscalls)
