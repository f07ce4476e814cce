"""The system call tables of the kernel being debugged: nr -> handler -> name,
and how the kernel dispatches.

Everything comes from the vmlinux file (kernel/vmlinux.py: no guest reads,
no DWARF); what each ABI calls its table, switch and handlers is the
architecture's (gdbext.arch: SyscallAbi.table, .switch, .handler_prefixes,
.compat_prefixes), and decoding a switch's code is the architecture's too.

Facts this relies on (read in linux-source-6.1 and 6.12, x86):
- arch/x86/entry/syscall_64.c: `sys_call_table[]` holds `__x64_sys_NAME`
  wrappers; nr gaps are `__x64_sys_ni_syscall` (scripts/syscalltbl.sh).  Its
  ELF symbol size / 8 is NR_syscalls (451 in 6.1.192, 463 in 6.12.117, one
  more than the last line of syscall_64.tbl).
- Since 6.9 (backported to 6.1.85, 6.6.26 ...) do_syscall_64() calls the
  switch `x64_sys_call(regs, nr)` and the compat entries `ia32_sys_call()`
  (decoders/x86_switch.py).  sys_call_table stays only because
  kernel/trace/trace_syscalls.c reads it; `ia32_sys_call_table` and
  `x32_sys_call_table` are gone: the only ia32 map left is the switch's
  code.  Older kernels do `call *sys_call_table(,%rax,8)` and
  `ia32_sys_call_table[nr](regs)`.
- ia32 handlers: `__ia32_sys_NAME` and `__ia32_compat_sys_NAME`; x32:
  `__x64_sys_NAME` and `__x32_compat_sys_NAME` (CONFIG_X86_X32_ABI, off in
  Debian's configs).  Before 4.17 (no pt_regs wrappers) they were plain
  `sys_NAME` / `compat_sys_NAME`.
- The names are the kernel's SYSCALL_DEFINE names, which are not always the
  ABI names of syscall_64.tbl: nr 4 is `newstat` (ABI "stat"), ia32 nr 90 is
  `ia32_mmap`.  No ABI name exists anywhere in the vmlinux.

The names, Entry, FileModel and dispatch_info are pure (unit-tested with
fixtures and the cached vmlinux files); the functions at the bottom are the
kernel-model API, cached per loaded vmlinux.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import List, Optional, Tuple

from gdbext import arch, errors
from gdbext.arch.base import SyscallAbi
from gdbext.kernel import vmlinux

MAX_NR = 4096          # sanity bound on any table size
NI_STEM = "ni_syscall"  # kernel/sys_ni.c: sys_ni_syscall, every ABI's "not implemented"


def resolve_abi(abi) -> SyscallAbi:
    """A SyscallAbi, or the ABI a word names (gdbext.arch.parse_abi: "64",
    "ia32", ...; x32 included)."""
    if isinstance(abi, SyscallAbi):
        return abi
    return arch.parse_abi(None if abi is None else str(abi))[0]


# ---------------------------------------------------------------------------
# Names

def _prefixes(abi: SyscallAbi) -> Tuple[str, ...]:
    return abi.handler_prefixes + abi.compat_prefixes


@functools.lru_cache(maxsize=4)
def _all_prefixes(architecture) -> Tuple[str, ...]:
    """Every ABI's handler prefixes, longest first (`__ia32_compat_sys_`
    before `compat_sys_` before `sys_`)."""
    found = {p for a in architecture.abis for p in _prefixes(a)}
    return tuple(sorted(found, key=lambda p: (-len(p), p)))


def split_handler(symbol: Optional[str]) -> Tuple[Optional[str], str]:
    """`__ia32_compat_sys_openat` -> ("openat", "__ia32_compat_sys_"); a symbol
    with no handler prefix -> (None, "")."""
    if not symbol:
        return None, ""
    for prefix in _all_prefixes(arch.current()):
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            return symbol[len(prefix):], prefix
    return None, ""


def is_compat_prefix(prefix: str) -> bool:
    return any(prefix in a.compat_prefixes for a in arch.current().abis)


def handler_name(symbol: Optional[str]) -> Tuple[Optional[str], bool, bool]:
    """(name, implemented, compat) from a handler symbol.

    `__x64_sys_openat` -> ("openat", True, False);
    `__ia32_compat_sys_fcntl64` -> ("fcntl64", True, True);
    `__x64_sys_ni_syscall` / `sys_ni_syscall` -> (None, False, False)."""
    stem, prefix = split_handler(symbol)
    if stem is None or stem == NI_STEM:
        return None, False, False
    return stem, True, is_compat_prefix(prefix)


def is_expected_symbol(symbol: Optional[str], abi) -> bool:
    """Whether `symbol` is a handler this ABI's table may hold."""
    return bool(symbol) and any(symbol.startswith(p) and len(symbol) > len(p)
                                for p in _prefixes(resolve_abi(abi)))


# ---------------------------------------------------------------------------
# The model of one ABI, in link-time (file) addresses

@dataclasses.dataclass
class Entry:
    nr: int
    name: Optional[str]          # None when not implemented (ni_syscall)
    handler: int                 # the file's value + the KASLR slide
    symbol: Optional[str]        # __x64_sys_openat
    implemented: bool = True
    compat: bool = False         # __ia32_compat_sys_* / __x32_compat_sys_*

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class FileModel:
    """One ABI's nr -> handler map from the vmlinux file.

    image: read(address, size) at link addresses; syms: lookup(name) ->
    link address | None; describe(address) -> (name, offset) | None;
    optionally size(name) -> int | None."""

    def __init__(self, abi, image, syms, architecture=None):
        self.spec = spec = resolve_abi(abi)
        self.abi = spec.name
        self.syms = syms
        self.table_address = syms.lookup(spec.table)
        self.switch_address = syms.lookup(spec.switch) if spec.switch else None
        if self.table_address is None and self.switch_address is None:
            raise errors.MissingSymbol(spec.table, f"nor {spec.switch}: no {spec.table_label} syscall ABI"
                                                   " in this kernel")
        self.switch = self.switch_size = self.switch_error = None
        if self.switch_address is not None:
            self._decode_switch(image, architecture or arch.current())
        if self.table_address is not None:
            word = (architecture or arch.current()).pointer_size
            size = symbol_size(syms, spec.table, limit=word * MAX_NR, step=word)
            if not size or size % word:
                raise errors.DecodeError(f"{spec.table} has size {size}, not a multiple of {word}")
            self.nr_syscalls = size // word
            self.handlers = vmlinux.read_u64s(image.read, self.table_address, self.nr_syscalls, word)
            self.source = spec.table
        else:
            self.nr_syscalls = self.switch.nr_syscalls
            self.handlers = self.switch.cases(self.nr_syscalls)
            self.source = f"{spec.switch} switch (this kernel has no {spec.table})"
        self._names = {}
        self.symbols = [self._symbol_for(h) for h in self.handlers]

    def _decode_switch(self, image, architecture) -> None:
        spec = self.spec
        self.switch_size = symbol_size(self.syms, spec.switch, limit=1 << 16)
        code = image.read(self.switch_address, self.switch_size)
        try:
            self.switch = architecture.decode_syscall_switch(code, self.switch_address)
        except errors.DecodeError as exc:
            if self.table_address is None:
                raise errors.NotSupported(f"{spec.switch}() in the vmlinux does not decode as a"
                                          f" switch ({exc}) and there is no {spec.table}") from None
            self.switch_error = str(exc)

    def _symbol_for(self, address: int) -> Optional[str]:
        """The handler's name, preferring this ABI's prefix among aliases
        (6.1/6.12: __x64_sys_ni_syscall and __ia32_sys_ni_syscall share one
        address)."""
        if address in self._names:
            return self._names[address]
        hit = self.syms.describe(address)
        name = None
        if hit is not None:
            name = hit[0] if hit[1] == 0 else f"{hit[0]}+{hit[1]:#x}"
            stem, _ = split_handler(hit[0])
            if hit[1] == 0 and stem is not None:
                name = next((p + stem for p in _prefixes(self.spec) if self.syms.lookup(p + stem) == address),
                            name)
        self._names[address] = name
        return name

    def entries(self, slide: int = 0) -> List[Entry]:
        out = []
        for nr, (h, sym) in enumerate(zip(self.handlers, self.symbols)):
            name, implemented, compat = handler_name(sym if sym and "+" not in sym else None)
            out.append(Entry(nr, name, h + slide, sym, implemented, compat))
        return out


def symbol_size(syms, name: str, limit: int, step: int = 1) -> Optional[int]:
    """A symbol's ELF size.  Uses syms.size() when there is one; otherwise
    finds where describe() stops naming it (binary search)."""
    size_of = getattr(syms, "size", None)
    if callable(size_of):
        size = size_of(name)
        if size:
            return size
    start = syms.lookup(name)
    if start is None:
        return None

    def inside(n):
        hit = syms.describe(start + n)
        return hit is not None and hit[0] == name and hit[1] == n
    lo, hi = 0, limit // step  # inside(lo*step) holds; find the first outside
    if inside(hi * step):
        raise errors.DecodeError(f"{name} is larger than {limit} bytes")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if inside(mid * step):
            lo = mid
        else:
            hi = mid
    return hi * step


def dispatch_info(abi, has_switch: bool, has_table: bool) -> dict:
    """How the kernel reaches the handler for this ABI."""
    spec = resolve_abi(abi)
    if has_switch:
        table_note = (f"{spec.table} is still in memory but only names each handler (for ftrace);"
                      " it is not used to dispatch, so overwriting an entry changes nothing: a hook"
                      f" would have to patch {spec.switch}() or the handler itself"
                      if has_table else f"there is no {spec.table}: kx reads nr -> handler from the"
                      " switch's own code")
        return {"kind": spec.switch, "function": spec.switch, "switch": True,
                "note": f"{spec.caller} calls {spec.switch}(regs, nr), a switch of direct calls; {table_note}"}
    return {"kind": "sys_call_table", "function": spec.table, "switch": False,
            "note": f"{spec.caller} calls {spec.table}[nr](regs), an indirect call: the table entry in"
                    " memory is what runs"}


# ---------------------------------------------------------------------------
# The kernel-model API (gdb side)

_objcache = None


def cache():
    """Per loaded vmlinux: cleared when gdb loads or frees an objfile."""
    global _objcache
    if _objcache is None:
        from gdbext.kernel.objcache import ObjfileCache
        _objcache = ObjfileCache()
    return _objcache


class LinkSymbols:
    """The shared SymbolTable seen at link-time addresses (slide removed)."""

    def __init__(self, table):
        self.t = table
        self.slide = getattr(table, "slide", 0)

    def lookup(self, name):
        v = self.t.lookup(name)
        return None if v is None else v - self.slide

    def describe(self, address):
        return self.t.describe(address + self.slide)


def image() -> vmlinux.VmlinuxImage:
    from gdbext.kernel import symbols
    return vmlinux.image(symbols.vmlinux_path())


def model(abi) -> FileModel:
    """The file model of `abi` (link-time addresses: it does not change with
    the KASLR slide)."""
    from gdbext.kernel import symbols
    path = symbols.vmlinux_path()   # "no vmlinux loaded" before any word about the ABI
    spec = resolve_abi(abi)
    key = ("syscalls-model", path, spec.name)
    if key not in cache():
        cache()[key] = FileModel(spec, image(), LinkSymbols(symbols.table()))
    return cache()[key]


class Table:
    """One ABI's syscall table, as the kernel being debugged defines it."""

    def __init__(self, file_model: FileModel, slide: int):
        self.abi = file_model.abi
        self.model = file_model
        self.slide = slide
        self.address = None if file_model.table_address is None else file_model.table_address + slide
        self.switch_address = None if file_model.switch_address is None else file_model.switch_address + slide
        self.nr_syscalls = file_model.nr_syscalls
        self.source = file_model.source
        self.entries = file_model.entries(slide)
        self._by_name = {}
        for e in self.entries:
            for key in (e.name, e.symbol):
                if key:
                    self._by_name.setdefault(key, e.nr)
            if e.name:
                self._by_name.setdefault("sys_" + e.name, e.nr)

    def entry(self, nr: int) -> Optional[Entry]:
        return self.entries[nr] if isinstance(nr, int) and 0 <= nr < self.nr_syscalls else None

    def name(self, nr: int) -> Optional[str]:
        e = self.entry(nr)
        return e.name if e else None

    def nr(self, name: str) -> Optional[int]:
        """The lowest nr whose handler is `name` (or its symbol, or sys_name)."""
        return self._by_name.get(name)

    def nrs(self, name: str) -> List[int]:
        """Every nr whose handler is `name` (ia32 fcntl and fcntl64 share one)."""
        nr = self.nr(name)
        if nr is None:
            return []
        sym = self.entries[nr].symbol
        return [e.nr for e in self.entries if e.symbol == sym]

    def names(self) -> List[str]:
        return sorted({e.name for e in self.entries if e.name})


def table(abi="64") -> Table:
    """The syscall table of `abi` ("64", "32", "x32", or a SyscallAbi).
    MissingSymbol if the kernel has neither the table nor the dispatch switch
    for it."""
    from gdbext.kernel import symbols
    file_model = model(abi)
    slide = getattr(symbols.table(), "slide", 0)
    key = ("syscalls-table", symbols.vmlinux_path(), file_model.abi, slide)
    if key not in cache():
        cache()[key] = Table(file_model, slide)
    return cache()[key]


def name(nr: int, abi="64") -> Optional[str]:
    """The handler's name for nr (None if out of range or not implemented)."""
    return table(abi).name(nr)


def handler(nr: int, abi="64") -> Optional[Tuple[int, str]]:
    """(address, symbol) the kernel dispatches nr to, per the vmlinux file (+
    slide); None when nr >= NR_syscalls (the kernel returns -ENOSYS)."""
    e = table(abi).entry(nr)
    return (e.handler, e.symbol) if e else None


def dispatch(abi="64") -> dict:
    """{"kind", "function", "switch", "note"}: kind is the switch function
    (`x64_sys_call`, `ia32_sys_call`) or `sys_call_table`."""
    m = model(abi)
    return dispatch_info(m.spec, m.switch_address is not None, m.table_address is not None)
