"""Kernel symbols from the vmlinux ELF symbol table.

The ELF .symtab is read once per vmlinux file (kernel/vmlinux.py), about
0.2 s on the Debian vmlinux, and never touches the DWARF.  Without
pyelftools kx falls back to gdb's minimal symbols, one query at a time.

KASLR: the table holds link-time addresses; `slide` (set by kernel/kaslr.py
for the current connection) is added to the symbols of the kernel image only.
While kernel/kaslr.py has found that the vmlinux is not the running kernel,
table() hands out an UntrustedSymbols that knows no names, so nothing prints
a wrong symbol and every address lookup fails with the mismatch message.
"""
import contextlib
import bisect

from gdbext import errors
from gdbext.decoders.bits import MASK64
from gdbext.decoders.kaslr import relocatable
from gdbext.kernel import vmlinux


def _image_start(path: str) -> int:
    """Where the relocatable image starts for the vmlinux's architecture
    (by its ELF machine), x86-64's when kx does not know it."""
    from gdbext import arch
    a = arch.for_elf_machine(vmlinux.image(path).machine) or arch.registry()["x86_64"]
    return a.kaslr_image_start


class SymbolTable:
    def __init__(self, path: str):
        self.path = path
        self.slide = 0  # KASLR text slide applied by `kx kaslr`
        self.image_start = _image_start(path)
        self._by_name = {}
        self._addrs = []
        self._entries = []  # (address, size, name), sorted by address
        self._load()

    def _load(self):
        entries = []
        image = vmlinux.image(self.path)
        for sym in image.symbol_entries():
            self._by_name.setdefault(sym.name, sym.value)
            if not sym.absolute:            # a number (a CRC, a size) names no address
                entries.append((sym.value, sym.size, sym.name))
        entries.sort()
        self._entries = entries
        self._addrs = [e[0] for e in entries]

    def link_address(self, name: str):
        """The address the linker gave `name` (no slide), or None."""
        return self._by_name.get(name)

    def lookup(self, name: str):
        value = self._by_name.get(name)
        if value is None:
            return None
        return value + self.slide if relocatable(value, self.image_start) else value

    def address(self, name: str) -> int:
        value = self.lookup(name)
        if value is None:
            raise errors.MissingSymbol(name)
        return value

    def describe(self, address: int, max_offset: int = 1 << 20):
        """(name, offset) of the symbol containing `address`, or None."""
        if not relocatable(address, self.image_start):
            a = address  # per-cpu offsets and absolute values do not slide
        else:
            a = address - self.slide
            if not relocatable(a, self.image_start):
                # Below the slid image, in [__START_KERNEL_map, +slide): where
                # the image would be without KASLR, so not a kernel symbol.
                return None
        i = bisect.bisect_right(self._addrs, a) - 1
        # Prefer the innermost sized symbol among same-address aliases.
        while i >= 0:
            value, size, name = self._entries[i]
            if a - value <= max_offset and (size == 0 or a < value + size or a == value):
                # Skip zero-sized local labels when a sized symbol covers it.
                return name, a - value
            if a - value > max_offset:
                return None
            i -= 1
        return None

    def format(self, address: int) -> str:
        hit = self.describe(address)
        if hit is None:
            return None
        name, off = hit
        return name if off == 0 else f"{name}+{off:#x}"

    def names_at(self, address: int):
        """Every name that starts exactly at `address` (aliases: 5.10 gives
        __do_sys_getpid, __ia32_sys_getpid and __x64_sys_getpid one address)."""
        a = address - self.slide if relocatable(address, self.image_start) else address
        lo, hi = bisect.bisect_left(self._addrs, a), bisect.bisect_right(self._addrs, a)
        return [e[2] for e in self._entries[lo:hi]]

    def in_kernel_text(self, address: int) -> bool:
        start, end = self.lookup("_stext"), self.lookup("_etext")
        if start is None or end is None:
            return False
        return start <= address < end


class GdbSymbols:
    """Fallback without pyelftools: gdb's minimal symbols."""

    slide = 0

    def lookup(self, name):
        import gdb
        try:
            return int(gdb.parse_and_eval(f"(unsigned long)&'{name}'")) & MASK64
        except gdb.error:
            return None

    def address(self, name):
        v = self.lookup(name)
        if v is None:
            raise errors.MissingSymbol(name)
        return v

    def describe(self, address, max_offset=1 << 20):
        import gdb
        try:
            out = gdb.execute(f"info symbol {address:#x}", to_string=True)
        except gdb.error:
            return None
        if out.startswith("No symbol"):
            return None
        parts = out.split()
        name = parts[0]
        off = int(parts[2]) if len(parts) > 2 and parts[1] == "+" else 0
        return name, off

    def format(self, address):
        hit = self.describe(address)
        if hit is None:
            return None
        return hit[0] if hit[1] == 0 else f"{hit[0]}+{hit[1]:#x}"

    def in_kernel_text(self, address):
        s, e = self.lookup("_stext"), self.lookup("_etext")
        return s is not None and e is not None and s <= address < e


class UntrustedSymbols:
    """Stands in for the table while the vmlinux does not match the running
    kernel: no names, and addresses fail with the mismatch message."""

    def __init__(self, why: str):
        self.why = why
        self.slide = 0

    def lookup(self, name):
        return None

    def address(self, name):
        raise errors.KernelMismatch(self.why)

    def describe(self, address, max_offset=1 << 20):
        return None

    def format(self, address):
        return None

    def in_kernel_text(self, address):
        return False


# The ELF tables outlive gdb's objfiles: kx's own relocation (kernel/kaslr.py)
# reloads the objfile, and re-reading 110k symbols for that would cost 0.2 s.
# Keyed by the file's identity, so a rebuilt vmlinux is read again.
_tables = {}
_state = {"slide": 0, "untrusted": None, "path": None, "installed": None}


def use(symbol_table) -> None:
    """Answer from `symbol_table` (a unit test's fake: lookup, address,
    describe, format, in_kernel_text) instead of the vmlinux; None goes
    back to the vmlinux."""
    _state["installed"] = symbol_table


def vmlinux_path() -> str:
    import gdb
    path = gdb.current_progspace().filename
    if not path and _state["path"]:
        # After `kx kaslr` relocated it with add-symbol-file, the vmlinux is
        # no longer gdb's main symbol file.
        if any(o.is_valid() and o.filename == _state["path"] for o in gdb.objfiles()):
            path = _state["path"]
    if not path:
        raise errors.KxError("no vmlinux loaded: start gdb with the kernel's vmlinux (`file vmlinux`)")
    return path


def elf_table():
    """The vmlinux's own table with the current slide, whatever the match
    verdict (kernel/kaslr.py compares it with memory)."""
    path = vmlinux_path()
    key = vmlinux.file_key(path)
    t = _tables.get(key)
    if t is None:
        try:
            t = SymbolTable(path)
        except vmlinux.PyelftoolsMissing:
            t = GdbSymbols()
        _tables.clear()
        _tables[key] = t
    t.slide = _state["slide"] if isinstance(t, SymbolTable) else 0
    return t


@contextlib.contextmanager
def pinned():
    """Inside the block table() answers what it answered on entry, without
    asking gdb for the file again (trace loops decoding thousands of
    records, during which no symbol file can load)."""
    saved = _state["installed"]
    _state["installed"] = table()
    try:
        yield _state["installed"]
    finally:
        _state["installed"] = saved


def table():
    """The symbol table of the loaded vmlinux, slid for KASLR; an
    UntrustedSymbols while the vmlinux does not match the running kernel."""
    if _state["installed"] is not None:
        return _state["installed"]
    if _state["untrusted"]:
        return UntrustedSymbols(_state["untrusted"])
    return elf_table()


def set_slide(slide: int, path: str = None) -> None:
    """Called by kernel/kaslr.py with the slide of the current connection."""
    _state["slide"] = slide
    if path:
        _state["path"] = path


def set_untrusted(why) -> None:
    """A mismatch message, or None when the vmlinux matches (or is unchecked)."""
    _state["untrusted"] = why


def address(name: str) -> int:
    return table().address(name)


def lookup(name: str):
    return table().lookup(name)


def format_address(address: int):
    """'symbol+0xoff', 'module+0xoff' for an address in a loadable module
    (kernel/modules.py), or None."""
    if address is None:
        return None
    hit = table().format(address)
    if hit is None and _state["installed"] is None:
        from gdbext.kernel import modules
        hit = modules.describe(address)
    return hit
