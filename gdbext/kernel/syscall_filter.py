"""Which syscalls a `kx break` / `kx trace` wants, and where to catch them.

A filter is checked in two steps so that a non-matching hit costs as little
as possible: first the number, straight from a register (no memory read),
then the task's pid/comm (one small read).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from gdbext import arch, errors
from gdbext.kernel import backend, entry, symbols


@dataclass
class SyscallFilter:
    abis: List[str]
    nrs: Dict[str, Optional[Set[int]]] = field(default_factory=dict)  # abi -> nrs (None: all)
    pid: Optional[int] = None
    comm: Optional[str] = None
    words: List[str] = field(default_factory=list)

    def wants_nr(self, abi: str, nr: int) -> bool:
        wanted = self.nrs.get(abi)
        return wanted is None or nr in wanted

    def wants_task(self, pid: int, tgid: int, comm: str) -> bool:
        if self.pid is not None and self.pid not in (pid, tgid):
            return False
        return self.comm is None or self.comm == comm

    @property
    def needs_task(self) -> bool:
        return self.pid is not None or self.comm is not None

    def describe(self) -> str:
        parts = [" ".join(self.words) or "all syscalls", f"abi {'+'.join(self.abis)}"]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.comm is not None:
            parts.append(f"comm {self.comm}")
        return ", ".join(parts)


def build(words: List[str], abi: str = "64", pid: Optional[int] = None,
          comm: Optional[str] = None) -> SyscallFilter:
    """A filter from syscall names or numbers; unknown names are an error."""
    abis = [a.name for a in arch.parse_abi(abi, allow_all=True, hidden=False)]
    if pid is not None and pid < 0:
        raise errors.BadArgument(f"--pid must be >= 0, got {pid}")
    nrs: Dict[str, Optional[Set[int]]] = {a: (set() if words else None) for a in abis}
    for word in words:
        found = False
        for a in abis:
            table = backend.syscalls().table(a)
            try:
                nr = int(word, 0)
            except ValueError:
                nr = None
            if nr is not None:
                if nr < 0:
                    raise errors.BadArgument(f"syscall numbers are >= 0, got {nr}")
                nrs[a].add(nr)  # out-of-range numbers are legal: they return -ENOSYS
                found = True
                continue
            hits = table.nrs(word)
            if hits:
                nrs[a].update(hits)
                found = True
        if not found:
            raise errors.BadArgument(f"unknown syscall {word!r} for the {'/'.join(abis)}-bit ABI "
                                     "(`kx syscalls` lists them)")
    return SyscallFilter(abis=abis, nrs=nrs, pid=pid, comm=comm, words=list(words))


def entry_locations(abi: str) -> List[tuple]:
    """[(stub name, address)] this kernel has for `abi`: where the CPU lands
    for each of its syscall instructions."""
    stubs = arch.current().abi(abi).stubs
    out = []
    for stub in stubs:
        address = symbols.lookup(stub.name)
        if address is not None:
            out.append((stub.name, address))
    if not out:
        raise errors.MissingSymbol(" / ".join(s.name for s in stubs))
    return out


def return_locations(abi: str) -> List[tuple]:
    """[(stub name, address)] just after each stub's call into C: pt_regs->ax
    holds the return value there, and the CPU is still on the kernel stack."""
    out = []
    for stub, _ in entry_locations(abi):
        site = entry.call_site(stub)
        if site is not None:
            out.append((stub, site[2]))
    return out
