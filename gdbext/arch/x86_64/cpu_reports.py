"""The typed results of x86-64's CPU-state readers (gdbext.api.msrs and
gdbext.api.tss): `to_dict()` is `kx msr --json` / `kx tss --json`
(docs/interface.md).  Pure data, importable without gdb; cpustate.py fills
them in."""
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional


@dataclass
class Msr:
    """One MSR: its value (None when unreadable), where the value came from
    (`gdbstub`, `rdmsr` or `expected`), the symbol it points at, its decoded
    fields, and for the MSRs the kernel fixes at boot the value it programs
    (`expected`) and whether they agree (`ok`).

    >>> lstar = gdbext.api.msrs(0)["IA32_LSTAR"]
    >>> lstar.symbol, lstar.ok
    ('entry_SYSCALL_64', True)
    """
    name: str
    index: int
    value: Optional[int]
    source: Optional[str]
    symbol: Optional[str]
    fields: Dict[str, object]
    verified: bool = False            # the kernel fixes it: expected/ok apply
    expected: Optional[int] = None
    ok: Optional[bool] = None

    def to_dict(self) -> dict:
        out = {"name": self.name, "index": self.index, "value": self.value, "source": self.source,
               "symbol": self.symbol, "fields": self.fields}
        if self.verified:
            out.update(expected=self.expected, ok=self.ok)
        return out


@dataclass
class MsrReport:
    """The MSRs of one vCPU (`kx msr --json`); indexable by MSR name.

    >>> r = gdbext.api.msrs(cpu=1, names=["LSTAR", "STAR"])
    >>> [m.name for m in r], r.warnings
    (['IA32_LSTAR', 'IA32_STAR'], [])
    """
    cpu: int
    msrs: List[Msr]
    warnings: List[str] = field(default_factory=list)
    # How the CPU enters the kernel: cpu_setup.fred_state()
    entry: Dict[str, object] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Msr]:
        return iter(self.msrs)

    def __getitem__(self, name: str) -> Msr:
        for m in self.msrs:
            if name in (m.name, m.name[5:]):
                return m
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "entry": dict(self.entry), "msrs": [m.to_dict() for m in self.msrs],
                "warnings": list(self.warnings)}


@dataclass
class IstSlot:
    slot: int                 # 1..7
    address: int
    stack: Optional[str]      # the exception stack's name (DF, NMI, DB, MCE, VC)


@dataclass
class TssReport:
    """One vCPU's 64-bit TSS as TR selects it (`kx tss --json`).

    >>> t = gdbext.api.tss(0)
    >>> t.busy, t.rsp0_is, t.ist_slots[0].stack
    (True, 'cpu_entry_area entry stack (entry code switches to the task stack)', 'DF')
    """
    cpu: int
    selector: int
    base: int
    busy: bool
    limit: int
    rsp: List[int]            # RSP0-2
    ist: List[int]            # IST1-7
    io_bitmap_base: int
    rsp0_is: str
    current_top_of_stack: Optional[int]
    ist_slots: List[IstSlot]
    selector_name: Optional[str]
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
