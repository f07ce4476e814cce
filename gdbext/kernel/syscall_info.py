"""The syscall tables as the public API (gdbext/api.py) and `kx syscalls`
present them: typed records whose to_dict() is `kx syscalls --json`
(docs/interface.md), from kernel/syscalls.py (the vmlinux file) and, with
`check`, guest memory (kernel/syscall_check.py).
"""
import difflib
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional, Union

from gdbext import arch, errors
from gdbext.kernel import backend, syscalls


@dataclass
class Syscall:
    """One system call of one ABI: its number, the kernel's SYSCALL_DEFINE
    name (None for a gap: sys_ni_syscall), the handler the kernel dispatches
    to, and its signature once asked for (gdbext.api.syscall).

    >>> s = gdbext.api.syscall("openat")
    >>> s.nr, s.symbol, [a["name"] for a in s.signature.as_dict()["args"]]
    (257, '__x64_sys_openat', ['dfd', 'filename', 'flags', 'mode'])
    """
    nr: int
    name: Optional[str]
    handler: int
    symbol: Optional[str]
    implemented: bool
    compat: bool
    abi: str = "64"
    ok: Optional[bool] = None              # with check: the entry in memory is the file's
    problems: Optional[List[str]] = None   # with check: what is wrong with it
    signature: Optional[syscalls.Signature] = None
    configured_out: bool = False           # a COND_SYSCALL stub: no signature, returns -ENOSYS

    def to_dict(self) -> dict:
        """The row of `kx syscalls --json`'s `entries`; with the signature
        when one was looked up."""
        out = {"nr": self.nr, "name": self.name, "handler": self.handler, "symbol": self.symbol,
               "ok": self.ok, "implemented": self.implemented, "compat": self.compat}
        if self.problems:
            out["problems"] = list(self.problems)
        if self.signature is not None or self.configured_out:
            out.update(abi=self.abi, signature=self.signature.as_dict() if self.signature else None,
                       configured_out=self.configured_out)
        return out


@dataclass
class TableCheck:
    """What `check` found: clean, or the problems (kernel/syscall_check.py)."""
    cpu: int
    clean: bool
    problems: List[Dict[str, object]]
    checked: Dict[str, object]
    switch_error: Optional[str] = None
    reference: str = "vmlinux"     # or "kallsyms": no vmlinux file to compare with

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.switch_error is None:
            del out["switch_error"]
        return out


@dataclass
class SyscallTable:
    """One ABI's syscalls as the running kernel defines them (`kx syscalls
    --json`); iterates over its entries, `find()` picks one.

    >>> t = gdbext.api.syscalls("32")
    >>> t.nr_syscalls, t.find("write").nr, t.dispatch["kind"]
    (451, 4, 'ia32_sys_call')
    """
    abi: str
    table: Optional[int]                   # the table's address, None without one
    table_symbol: Optional[str]
    switch: Optional[int]                  # the dispatch switch's address, if any
    nr_syscalls: int
    source: str
    dispatch: Dict[str, object]            # {"kind", "function", "switch", "note"}
    entries: List[Syscall]
    single: bool = False                   # one syscall asked for: signature keys too
    check: Optional[TableCheck] = None

    def __iter__(self) -> Iterator[Syscall]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, name_or_nr: Union[str, int]) -> Syscall:
        """The entry with this nr or name (KxError if there is none)."""
        want = _number(name_or_nr)
        for e in self.entries:
            if (e.nr == want) if want is not None else name_or_nr in (e.name, e.symbol):
                return e
        raise errors.BadArgument(f"no syscall {name_or_nr!r} here")

    def to_dict(self) -> dict:
        out = {"abi": self.abi, "table": self.table, "table_symbol": self.table_symbol, "switch": self.switch,
               "nr_syscalls": self.nr_syscalls, "source": self.source, "dispatch": self.dispatch}
        rows = [e.to_dict() for e in self.entries]
        for row in rows:
            for key in ("abi", "signature", "configured_out"):
                row.pop(key, None)
        out["entries"] = rows
        if self.single:
            e = self.entries[0]
            out["signature"] = e.signature.as_dict() if e.signature else None
            if e.configured_out:
                out["configured_out"] = True
        if self.check is not None:
            out["check"] = self.check.to_dict()
        return out


def _number(word) -> Optional[int]:
    if isinstance(word, int):
        return word
    try:
        return int(str(word), 0)
    except ValueError:
        return None


def find_entry(t, which, bits: str):
    """The table entry `which` (a name or a number) names, or BadArgument
    saying why not (out of range, or no such name with the closest ones)."""
    nr = _number(which)
    if nr is not None:
        e = t.entry(nr)
        if e is None:
            raise errors.BadArgument(
                f"syscall number {nr} is out of range: the {bits} table has 0-{t.nr_syscalls - 1}"
                " (the kernel returns -ENOSYS)")
        return e
    nr = t.nr(which)
    if nr is None:
        close = difflib.get_close_matches(which, t.names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise errors.BadArgument(f"no syscall named {which!r} in the {bits} table{hint}")
    return t.entries[nr]


def _row(e, abi: str, problems: Optional[Dict], undecodable: bool) -> Syscall:
    row = Syscall(e.nr, e.name, e.handler, e.symbol, e.implemented, e.compat, abi)
    if problems is not None:
        row.ok = e.nr not in problems and not undecodable
        if e.nr in problems:
            row.problems = [p.message for p in problems[e.nr]]
    return row


def _check(t, dispatch, cpu, single) -> tuple:
    """(TableCheck, {nr: [Problem]}) of the table and switch in memory."""
    cpu = backend.check_cpu(cpu)
    problems = syscalls.check(t.abi, cpu)
    by_nr: Dict = {}
    for p in problems:
        by_nr.setdefault(p.nr, []).append(p)
    shown = problems if single is None else [p for p in problems if p.nr in (single.nr, None)]
    check = TableCheck(cpu, not problems, [p.as_dict() for p in shown],
                       {"table_entries": t.nr_syscalls if t.address is not None else 0,
                        "switch": dispatch["function"] if t.model.switch is not None else None})
    check.reference = syscalls.check_reference()
    if check.reference != "vmlinux":
        check.checked["switch"] = None
    if t.model.switch_error:
        check.switch_error = (f"{dispatch['function']}() was not checked: the vmlinux's copy"
                              f" does not decode ({t.model.switch_error})")
    return check, by_nr


def _signed(row: Syscall, abi: str) -> Syscall:
    row.signature = syscalls.signature(row.nr, abi)
    if row.signature is None and row.implemented and syscalls.configured_out(row.nr, abi):
        row.configured_out = True
    return row


def syscall_table(abi="64", which=None, check: bool = False, cpu: Optional[int] = None) -> SyscallTable:
    """`abi`'s table (every entry, or only `which` with its signature);
    with `check`, compared with guest memory on `cpu`."""
    t = syscalls.table(abi)
    spec = arch.current().abi(t.abi)
    single = None if which is None else find_entry(t, which, spec.table_label)
    dispatch = syscalls.dispatch(t.abi)
    checked, by_nr = (None, None)
    if check:
        checked, by_nr = _check(t, dispatch, cpu, single)
    # A switch that no longer decodes may send any nr anywhere.
    undecodable = any(p.kind == "switch-undecodable" for p in (by_nr or {}).get(None, ()))
    rows = [_row(e, t.abi, by_nr, undecodable) for e in ([single] if single else t.entries)]
    if single is not None:
        _signed(rows[0], t.abi)
    return SyscallTable(abi=t.abi, table=t.address, table_symbol=spec.table if t.address is not None else None,
                        switch=t.switch_address, nr_syscalls=t.nr_syscalls, source=t.source, dispatch=dispatch,
                        entries=rows, single=single is not None, check=checked)


def syscall(name_or_nr, abi="64") -> Syscall:
    """One syscall with its signature (BadArgument if the table has none
    by that name or number)."""
    return syscall_table(abi, which=name_or_nr).entries[0]
