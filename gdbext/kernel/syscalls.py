"""The system call tables of the kernel being debugged: nr -> handler -> name,
signatures, and how the kernel dispatches.

Everything static comes from the vmlinux file (pyelftools, no guest reads,
no DWARF): the tables, the dispatch switch, the ftrace metadata.  Only
`check()` reads guest memory, once per table per stop, through
gdbext.machine.

Facts this relies on (read in linux-source-6.1 and 6.12):
- arch/x86/entry/syscall_64.c: `sys_call_table[]` holds `__x64_sys_NAME`
  wrappers; nr gaps are `__x64_sys_ni_syscall` (scripts/syscalltbl.sh).  Its
  ELF symbol size / 8 is NR_syscalls (451 in 6.1.192, 463 in 6.12.117, one
  more than the last line of syscall_64.tbl).
- Since "x86/syscall: Don't force use of indirect calls for system calls"
  (6.9; backported to 6.1.85, 6.6.26 ...) do_syscall_64() calls
  `x64_sys_call(regs, nr)`, a switch of direct calls, and int 0x80/sysenter
  call `ia32_sys_call()`.  sys_call_table stays only because
  kernel/trace/trace_syscalls.c reads it; `ia32_sys_call_table` and
  `x32_sys_call_table` are gone (on x86-64 the only ia32 map left is the
  switch's code, which kx decodes: decode_switch below).  Older kernels do
  `call *sys_call_table(,%rax,8)` and `ia32_sys_call_table[nr](regs)`.
- The switch compiles (gcc 12 in both Debian builds, with -fno-jump-tables
  from arch/x86/Makefile under retpolines/IBT) to a binary tree of
  `cmp $imm,%esi` / je / ja / jbe / jne ending in tail `jmp __x64_sys_NAME`
  (or `call` for the noreturn exit/exit_group).  A build with jump tables
  would not decode: kx then says so and falls back to the table.
- ia32 handlers: `__ia32_sys_NAME` and `__ia32_compat_sys_NAME`; x32:
  `__x64_sys_NAME` and `__x32_compat_sys_NAME` (CONFIG_X86_X32_ABI, off in
  Debian's configs).  Before 4.17 (no pt_regs wrappers) they were plain
  `sys_NAME` / `compat_sys_NAME`.
- The names are the kernel's SYSCALL_DEFINE names, which are not always the
  ABI names of syscall_64.tbl: nr 4 is `newstat` (ABI "stat"), ia32 nr 90 is
  `ia32_mmap`.  No ABI name exists anywhere in the vmlinux.
- include/trace/syscall.h, struct syscall_metadata (CONFIG_FTRACE_SYSCALLS,
  =y in both Debian configs): name, syscall_nr, nb_args, types, args, then
  list_head and two pointers: 64 bytes, unchanged 6.1 - 6.12.
  SYSCALL_DEFINEx (include/linux/syscalls.h) emits `__syscall_meta__NAME`
  with `types__NAME[]`/`args__NAME[]`: the type as the source spelled it
  after macro expansion ("const char *": __user is already gone, measured in
  6.1/6.12).  COMPAT_SYSCALL_DEFINEx emits none: compat
  signatures come from DWARF (`__do_compat_sys_NAME`) through gdb.

The pure parts (ELF reads, metadata, the switch decoder, names) import no
gdb and are unit-tested with byte fixtures; the functions at the bottom are
the kernel-model API the commands use.
"""
from __future__ import annotations

import bisect
import dataclasses
import struct
from typing import Callable, List, Optional, Tuple

from gdbext.decoders.x86insn import modrm_length
from gdbext import errors

MASK32 = 0xFFFFFFFF
MAX_NR = 4096  # sanity bound on any table size

# abi -> how this kernel names and reaches its handlers
ABIS = {
    "64": {"bits": "64-bit", "table": "sys_call_table", "switch": "x64_sys_call",
           "prefixes": ("__x64_sys_", "sys_"), "compat_prefixes": (),
           "caller": "do_syscall_64()"},
    "32": {"bits": "ia32", "table": "ia32_sys_call_table", "switch": "ia32_sys_call",
           "prefixes": ("__ia32_sys_", "sys_"), "compat_prefixes": ("__ia32_compat_sys_", "compat_sys_"),
           "caller": "do_int80_syscall_32() / do_int80_emulation() / do_fast_syscall_32()"},
    "x32": {"bits": "x32", "table": "x32_sys_call_table", "switch": "x32_sys_call",
            "prefixes": ("__x64_sys_", "sys_"), "compat_prefixes": ("__x32_compat_sys_", "compat_sys_"),
            "caller": "do_syscall_64() (nr with __X32_SYSCALL_BIT)"},
}
ABI_ALIASES = {"64": "64", "x64": "64", "x86_64": "64", "32": "32", "ia32": "32", "i386": "32",
               "x32": "x32"}
NI_STEM = "ni_syscall"
ALL_PREFIXES = ("__x64_sys_", "__ia32_compat_sys_", "__ia32_sys_", "__x32_compat_sys_",
                "compat_sys_", "sys_")


def normalize_abi(abi) -> str:
    key = ABI_ALIASES.get(str(abi).lower())
    if key is None:
        raise errors.BadArgument(f"unknown ABI {abi!r}: use 64, 32 or x32")
    return key


# ---------------------------------------------------------------------------
# Names

def split_handler(symbol: Optional[str]) -> Tuple[Optional[str], str]:
    """`__ia32_compat_sys_openat` -> ("openat", "__ia32_compat_sys_"); a symbol
    with no handler prefix -> (None, "")."""
    if not symbol:
        return None, ""
    for prefix in ALL_PREFIXES:
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            return symbol[len(prefix):], prefix
    return None, ""


def handler_name(symbol: Optional[str]) -> Tuple[Optional[str], bool, bool]:
    """(name, implemented, compat) from a handler symbol.

    `__x64_sys_openat` -> ("openat", True, False);
    `__ia32_compat_sys_fcntl64` -> ("fcntl64", True, True);
    `__x64_sys_ni_syscall` / `sys_ni_syscall` -> (None, False, False)."""
    stem, prefix = split_handler(symbol)
    if stem is None:
        return None, False, False
    if stem == NI_STEM:
        return None, False, False
    return stem, True, "compat_sys_" in prefix


def is_expected_symbol(symbol: Optional[str], abi: str) -> bool:
    """Whether `symbol` is a handler this ABI's table may hold."""
    spec = ABIS[abi]
    return bool(symbol) and any(symbol.startswith(p) and len(symbol) > len(p)
                                for p in spec["prefixes"] + spec["compat_prefixes"])


# ---------------------------------------------------------------------------
# The vmlinux file

class ElfImage:
    """Reads bytes at link-time addresses from the vmlinux file's sections."""

    def __init__(self, path: str):
        from elftools.elf.elffile import ELFFile  # ImportError: the caller says "needs pyelftools"
        self.path = path
        self._file = open(path, "rb")
        elf = ELFFile(self._file)
        secs = []
        for s in elf.iter_sections():
            if s["sh_addr"] and s["sh_size"] and s["sh_type"] != "SHT_NOBITS":
                secs.append((s["sh_addr"], s["sh_size"], s["sh_offset"], s.name))
        secs.sort()
        self._sections = secs
        self._starts = [s[0] for s in secs]

    def section(self, address: int):
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            start, size, offset, name = self._sections[i]
            if start <= address < start + size:
                return start, size, offset, name
        return None

    def read(self, address: int, size: int) -> bytes:
        """Up to `size` bytes (fewer at a section's end); DecodeError if the
        address is not backed by the file (.bss, per-cpu, ...)."""
        sec = self.section(address)
        if sec is None:
            raise errors.DecodeError(f"{address:#x} is not in a file-backed section of {self.path}")
        start, length, offset, _ = sec
        n = min(size, start + length - address)
        self._file.seek(offset + address - start)
        return self._file.read(n)

    def close(self):
        self._file.close()


def read_cstring(read: Callable[[int, int], bytes], address: int, cap: int = 256) -> str:
    out = b""
    while len(out) < cap:
        chunk = read(address + len(out), 64)
        if not chunk:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            out += chunk[:nul]
            return out.decode("ascii", "replace")
        out += chunk
    raise errors.DecodeError(f"no NUL within {cap} bytes at {address:#x}")


def read_table(read: Callable[[int, int], bytes], address: int, count: int) -> List[int]:
    raw = read(address, 8 * count)
    if len(raw) != 8 * count:
        raise errors.DecodeError(f"table at {address:#x} is cut short ({len(raw)} of {8 * count} bytes)")
    return list(struct.unpack(f"<{count}Q", raw))


# struct syscall_metadata (include/trace/syscall.h, 6.1 and 6.12): the
# first 32 bytes are what kx needs.
META_FORMAT = "<QiiQQ"
META_SIZE = 64


@dataclasses.dataclass
class Signature:
    name: str                     # the SYSCALL_DEFINE name ("openat")
    args: List[Tuple[str, str]]   # [(ctype, argname)], as decoders.syscall_args takes them
    source: str                   # "ftrace" or "dwarf"
    origin: str = ""              # the symbol read: __syscall_meta__openat, __do_sys_openat

    def format(self) -> str:
        inner = ", ".join(f"{t}{'' if t.endswith('*') else ' '}{n}" for t, n in self.args)
        return f"{self.name}({inner or 'void'})"

    def as_dict(self) -> dict:
        return {"name": self.name, "args": [{"type": t, "name": n} for t, n in self.args],
                "source": self.source, "origin": self.origin}


def parse_metadata(read: Callable[[int, int], bytes], address: int) -> dict:
    """One struct syscall_metadata at `address` (link-time, from the file):
    {"name": "sys_openat", "nr": -1, "args": [(type, name), ...]}.  syscall_nr
    is -1 in the file: the kernel fills it at boot (init_ftrace_syscalls)."""
    raw = read(address, struct.calcsize(META_FORMAT))
    if len(raw) < struct.calcsize(META_FORMAT):
        raise errors.DecodeError(f"syscall metadata at {address:#x} is cut short")
    name_p, nr, nb, types_p, args_p = struct.unpack(META_FORMAT, raw)
    if not 0 <= nb <= 6:
        raise errors.DecodeError(f"syscall metadata at {address:#x}: nb_args {nb} is not 0-6")
    name = read_cstring(read, name_p)
    args = []
    if nb:
        types = read_table(read, types_p, nb)
        names = read_table(read, args_p, nb)
        args = [(read_cstring(read, t), read_cstring(read, n)) for t, n in zip(types, names)]
    return {"name": name, "nr": nr, "args": args}


# ---------------------------------------------------------------------------
# The dispatch switch (x64_sys_call / ia32_sys_call), decoded from its code
#
# Sets of nr values are sorted lists of inclusive (lo, hi) intervals over
# the 32-bit `unsigned int nr`.

FULL = [(0, MASK32)]


def _intersect(a, b):
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _complement(a):
    out, pos = [], 0
    for lo, hi in a:
        if lo > pos:
            out.append((pos, lo - 1))
        pos = hi + 1
    if pos <= MASK32:
        out.append((pos, MASK32))
    return out


def _range(lo, hi):
    return [(lo, hi)] if lo <= hi else []


def _signed_range(slo, shi):
    """Signed 32-bit [slo, shi] as unsigned intervals."""
    out = []
    if slo < 0:
        out.append((slo & MASK32, min(shi, -1) & MASK32))
    if shi >= 0:
        out.append((max(slo, 0), shi))
    return sorted(x for x in out if x[0] <= x[1])


def _to_signed(v):
    return v - (1 << 32) if v & 0x80000000 else v


def condition_set(cc: int, flags) -> list:
    """The nr values for which condition code `cc` (the low nibble of
    Jcc, SDM Vol. 2 Appendix B) holds after `flags`: ("cmp", imm) for
    `cmp $imm,nr` or ("test",) for `test nr,nr`."""
    if flags is None:
        raise errors.DecodeError("conditional jump with no compare before it")
    smin, smax = -(1 << 31), (1 << 31) - 1
    if flags[0] == "test":
        table = {0x2: [], 0x3: FULL, 0x4: [(0, 0)], 0x5: [(1, MASK32)], 0x6: [(0, 0)],
                 0x7: [(1, MASK32)], 0x8: [(1 << 31, MASK32)], 0x9: [(0, smax)],
                 0xC: [(1 << 31, MASK32)], 0xD: [(0, smax)],
                 0xE: [(0, 0), (1 << 31, MASK32)], 0xF: [(1, smax)]}
    else:
        b = flags[1] & MASK32
        sb = _to_signed(b)
        table = {0x2: _range(0, b - 1), 0x3: [(b, MASK32)], 0x4: [(b, b)],
                 0x5: _complement([(b, b)]), 0x6: [(0, b)], 0x7: _range(b + 1, MASK32),
                 0xC: _signed_range(smin, sb - 1), 0xD: _signed_range(sb, smax),
                 0xE: _signed_range(smin, sb), 0xF: _signed_range(sb + 1, smax)}
    if cc not in table:
        raise errors.DecodeError(f"unsupported condition code {cc:#x} after {flags[0]}")
    return table[cc]


def _nop_length(code: bytes, p: int) -> int:
    """Length of `0f 1f /0` (multi-byte NOP) starting at p (the 0f)."""
    n = modrm_length(code, p + 2)
    if n is None:
        raise errors.DecodeError(f"truncated NOP at +{p:#x}")
    return 2 + n


def decode_insn(code: bytes, off: int):
    """The instruction at `off`: (length, kind, operand) with kind one of
    nop, cmp (reg, imm), test (reg), jcc (cc, rel), jmp (rel), call (rel),
    stop.  Only what compiled switches contain; anything else is a
    DecodeError, so a patched or unexpected function is reported, never
    guessed."""
    try:
        if code[off:off + 4] == b"\xf3\x0f\x1e\xfa":     # endbr64 (IBT, 6.2+)
            return 4, "nop", None
        p = off
        while code[p] in (0x66, 0x2E):                    # nop padding prefixes
            p += 1
        rex = 0
        if 0x40 <= code[p] <= 0x4F:
            rex = code[p]
            p += 1
        op = code[p]
        if op == 0x0F and code[p + 1] == 0x1F and not rex:
            return p - off + _nop_length(code, p), "nop", None
        if op == 0x90 and p == off:
            return 1, "nop", None
        if p != off and (p - off > 1 or not rex):
            raise errors.DecodeError(f"unexpected prefix at +{off:#x}")
        if rex & 8:
            raise errors.DecodeError(f"64-bit operation at +{off:#x}: nr is a 32-bit unsigned int")
        rexb = 8 if rex & 1 else 0
        if op in (0x83, 0x81):
            modrm = code[p + 1]
            if modrm >> 6 == 3 and (modrm >> 3) & 7 == 7:
                reg = (modrm & 7) | rexb
                if op == 0x83:
                    imm = struct.unpack_from("<b", code, p + 2)[0]
                    return p - off + 3, "cmp", (reg, imm & MASK32)
                imm = struct.unpack_from("<I", code, p + 2)[0]
                return p - off + 6, "cmp", (reg, imm)
        elif op == 0x3D:
            return p - off + 5, "cmp", (0 | rexb, struct.unpack_from("<I", code, p + 1)[0])
        elif op == 0x85:
            modrm = code[p + 1]
            if modrm >> 6 == 3 and (modrm >> 3) & 7 == modrm & 7 and not (rex & 6):
                return p - off + 2, "test", (modrm & 7) | rexb
        elif not rex and 0x70 <= op <= 0x7F:
            return 2, "jcc", (op & 0xF, struct.unpack_from("<b", code, p + 1)[0])
        elif not rex and op == 0x0F and 0x80 <= code[p + 1] <= 0x8F:
            return 6, "jcc", (code[p + 1] & 0xF, struct.unpack_from("<i", code, p + 2)[0])
        elif not rex and op == 0xEB:
            return 2, "jmp", struct.unpack_from("<b", code, p + 1)[0]
        elif not rex and op == 0xE9:
            return 5, "jmp", struct.unpack_from("<i", code, p + 1)[0]
        elif not rex and op == 0xE8:
            return 5, "call", struct.unpack_from("<i", code, p + 1)[0]
        elif not rex and op in (0xC3, 0xCC) or code[p:p + 2] == b"\x0f\x0b":
            return 1, "stop", op
        raise errors.DecodeError(f"unexpected instruction {code[off:off + 8].hex(' ')} at +{off:#x}")
    except (IndexError, struct.error):
        raise errors.DecodeError(f"instruction at +{off:#x} runs past the end of the code") from None


@dataclasses.dataclass
class SwitchMap:
    """nr -> handler address, as a switch function dispatches."""
    start: int
    leaves: List[Tuple[int, int, int]]    # (lo, hi, target), sorted, disjoint, covering 0..2^32-1

    def target(self, nr: int) -> int:
        i = bisect.bisect_right([lf[0] for lf in self.leaves], nr & MASK32) - 1
        return self.leaves[i][2]

    @property
    def default(self) -> int:
        return self.leaves[-1][2]

    @property
    def nr_syscalls(self) -> int:
        """One more than the highest nr with a case of its own."""
        d = self.default
        cases = [hi for lo, hi, t in self.leaves if t != d]
        return max(cases) + 1 if cases else 0

    def cases(self, count: int = None) -> List[int]:
        n = self.nr_syscalls if count is None else count
        return [self.target(nr) for nr in range(n)]


def decode_switch(code: bytes, start: int, max_steps: int = 200000) -> SwitchMap:
    """Decode `long f(const struct pt_regs *regs, unsigned int nr)`'s switch
    from its machine code (`code` at link or run address `start`).

    Walks every path from the entry, splitting the set of nr values at each
    conditional jump; a jump or call leaving the function is a handler.  The
    ftrace site at the entry (`call __fentry__` in the file, a 5-byte NOP or
    a call to a trampoline at run time) is skipped."""
    end = start + len(code)
    leaves = []
    # (address, nr set, flags, still in the prologue?, compared register)
    stack = [(start, FULL, None, True, None)]
    steps = 0
    while stack:
        pc, values, flags, prologue, reg = stack.pop()
        while True:
            steps += 1
            if steps > max_steps:
                raise errors.DecodeError("the switch did not decode within the step limit")
            if not start <= pc < end:
                raise errors.DecodeError(f"fell off the function at {pc:#x}")
            length, kind, arg = decode_insn(code, pc - start)
            nxt = pc + length
            if kind == "nop":
                pc = nxt
                continue
            if kind == "call" and prologue:
                pc, prologue = nxt, False            # the ftrace site
                continue
            prologue = False
            if kind in ("cmp", "test"):
                r = arg[0] if kind == "cmp" else arg
                if reg is not None and r != reg:
                    raise errors.DecodeError(f"compares two registers (r{reg}, r{r}) at {pc:#x}")
                reg = r
                flags = ("cmp", arg[1]) if kind == "cmp" else ("test",)
                pc = nxt
                continue
            if kind == "jcc":
                cc, rel = arg
                taken = condition_set(cc, flags)
                yes, no = _intersect(values, taken), _intersect(values, _complement(taken))
                if yes:
                    stack.append((nxt + rel, yes, flags, False, reg))
                if not no:
                    break
                values, pc = no, nxt
                continue
            if kind in ("jmp", "call"):
                target = (nxt + arg) & ((1 << 64) - 1)
                if kind == "jmp" and start <= target < end:
                    pc = target
                    continue
                leaves.extend((lo, hi, target) for lo, hi in values)
                break
            raise errors.DecodeError(f"a path of the switch ends in {'ret' if arg == 0xC3 else 'a trap'} at {pc:#x}")
    leaves.sort()
    pos = 0
    for lo, hi, _ in leaves:
        if lo != pos:
            raise errors.DecodeError("the switch's cases overlap or leave a gap")
        pos = hi + 1
    if pos != MASK32 + 1:
        raise errors.DecodeError("the switch's cases do not cover every nr")
    return SwitchMap(start, leaves)


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

    syms: lookup(name) -> link address | None; describe(address) ->
    (name, offset) | None; optionally size(name) -> int | None."""

    def __init__(self, abi: str, image, syms):
        self.abi = abi
        spec = ABIS[abi]
        self.spec = spec
        self.syms = syms
        self.table_address = syms.lookup(spec["table"])
        self.switch_address = syms.lookup(spec["switch"])
        if self.table_address is None and self.switch_address is None:
            raise errors.MissingSymbol(spec["table"], f"nor {spec['switch']}: no {spec['bits']} syscall ABI in this kernel"
                                       + (", built without CONFIG_X86_X32_ABI" if abi == "x32" else ""))
        self.switch = None
        self.switch_size = None
        self.switch_error = None
        if self.switch_address is not None:
            self.switch_size = symbol_size(syms, spec["switch"], limit=1 << 16)
            code = image.read(self.switch_address, self.switch_size)
            try:
                self.switch = decode_switch(code, self.switch_address)
            except errors.DecodeError as exc:
                if self.table_address is None:
                    raise errors.NotSupported(f"{spec['switch']}() in the vmlinux does not decode as a"
                                              f" switch ({exc}) and there is no {spec['table']}") from None
                self.switch_error = str(exc)
        if self.table_address is not None:
            size = symbol_size(syms, spec["table"], limit=8 * MAX_NR, step=8)
            if not size or size % 8:
                raise errors.DecodeError(f"{spec['table']} has size {size}, not a multiple of 8")
            self.nr_syscalls = size // 8
            self.handlers = read_table(image.read, self.table_address, self.nr_syscalls)
            self.source = spec["table"]
        else:
            self.nr_syscalls = self.switch.nr_syscalls
            self.handlers = self.switch.cases(self.nr_syscalls)
            self.source = f"{spec['switch']} switch (this kernel has no {spec['table']})"
        self._names = {}
        self.symbols = [self._symbol_for(h) for h in self.handlers]

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
                for prefix in self.spec["prefixes"] + self.spec["compat_prefixes"]:
                    if self.syms.lookup(prefix + stem) == address:
                        name = prefix + stem
                        break
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


# ---------------------------------------------------------------------------
# Checking guest memory against the file (pure: the caller reads)

@dataclasses.dataclass
class Problem:
    nr: Optional[int]
    kind: str          # table-differs | unexpected-symbol | outside-text | switch-differs | switch-undecodable
    message: str
    value: Optional[int] = None
    expected: Optional[int] = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_table(abi: str, memory: List[int], expected: List[int], describe, in_text) -> List[Problem]:
    """Compare the table read from guest memory with the file's (both at run
    addresses).  describe(address) -> "sym+off" | None; in_text(address)."""
    problems = []
    for nr, (value, want) in enumerate(zip(memory, expected)):
        sym = describe(value)
        where = f"{value:#x}" + (f" ({sym})" if sym else " (no symbol)")
        if value != want:
            problems.append(Problem(nr, "table-differs",
                                    f"entry is {where}; the vmlinux file has {want:#x} ({describe(want) or '?'})",
                                    value, want))
        if not in_text(value):
            problems.append(Problem(nr, "outside-text", f"entry {where} points outside kernel text (_stext.._etext)",
                                    value, want))
        elif sym is None or "+" in sym or not is_expected_symbol(sym, abi):
            problems.append(Problem(nr, "unexpected-symbol",
                                    f"entry {where} is not the start of a {' or '.join(p + '*' for p in ABIS[abi]['prefixes'][:1] + ABIS[abi]['compat_prefixes'][:1])} handler",
                                    value, want))
    return problems


def check_switch(abi: str, memory_map: Optional[SwitchMap], file_map: SwitchMap, slide: int, count: int,
                 describe, error: str = None) -> List[Problem]:
    """Compare the switch decoded from guest memory with the file's."""
    fn = ABIS[abi]["switch"]
    if memory_map is None:
        return [Problem(None, "switch-undecodable",
                        f"{fn}() in guest memory does not decode as a switch ({error}): patched?")]
    problems = []
    for nr in list(range(count)) + [MASK32]:
        got, want = memory_map.target(nr), file_map.target(nr) + slide
        if got != want:
            label = f"nr {nr}" if nr != MASK32 else "the default case"
            problems.append(Problem(nr if nr != MASK32 else None, "switch-differs",
                                    f"{fn}() sends {label} to {got:#x} ({describe(got) or 'no symbol'});"
                                    f" the vmlinux file sends it to {want:#x} ({describe(want) or '?'})",
                                    got, want))
    return problems


def dispatch_info(abi: str, has_switch: bool, has_table: bool) -> dict:
    """How the kernel reaches the handler for this ABI."""
    spec = ABIS[abi]
    if has_switch:
        table_note = (f"{spec['table']} is still in memory but only names each handler (for ftrace);"
                      " it is not used to dispatch, so overwriting an entry changes nothing: a hook"
                      f" would have to patch {spec['switch']}() or the handler itself"
                      if has_table else f"there is no {spec['table']}: kx reads nr -> handler from the"
                      f" switch's own code")
        return {"kind": spec["switch"], "function": spec["switch"], "switch": True,
                "note": f"{spec['caller']} calls {spec['switch']}(regs, nr), a switch of direct calls"
                        f" (Linux 6.9, backported to 6.1.85+/6.6.26+); {table_note}"}
    return {"kind": "sys_call_table", "function": spec["table"], "switch": False,
            "note": f"{spec['caller']} calls {spec['table']}[nr](regs) (an indirect `call *{spec['table']}"
                    f"(,%rax,8)`): the table entry in memory is what runs"}


# ---------------------------------------------------------------------------
# The kernel-model API (gdb side)

_objcache = None


def _cache():
    global _objcache
    if _objcache is None:
        from gdbext.kernel.objcache import ObjfileCache
        _objcache = ObjfileCache()
    return _objcache


class _LinkSymbols:
    """The shared SymbolTable seen at link-time addresses (slide removed)."""

    def __init__(self, table):
        self.t = table
        self.slide = getattr(table, "slide", 0)

    def lookup(self, name):
        v = self.t.lookup(name)
        return None if v is None else v - self.slide

    def describe(self, address):
        return self.t.describe(address + self.slide)


def _image():
    from gdbext.kernel import symbols
    path = symbols.vmlinux_path()
    key = ("syscalls-image", path)
    cache = _cache()
    if key not in cache:
        try:
            cache[key] = ElfImage(path)
        except ImportError:
            raise errors.NotSupported("kx syscalls needs pyelftools (./scripts/lab bootstrap installs it)") from None
    return cache[key]


def _model(abi: str) -> FileModel:
    from gdbext.kernel import symbols
    abi = normalize_abi(abi)
    t = symbols.table()
    # Link-time addresses: the model does not change with the KASLR slide.
    key = ("syscalls-model", symbols.vmlinux_path(), abi)
    cache = _cache()
    if key not in cache:
        cache[key] = FileModel(abi, _image(), _LinkSymbols(t))
    return cache[key]


class Table:
    """One ABI's syscall table, as the kernel being debugged defines it."""

    def __init__(self, model: FileModel, slide: int):
        self.abi = model.abi
        self.model = model
        self.slide = slide
        self.address = None if model.table_address is None else model.table_address + slide
        self.switch_address = None if model.switch_address is None else model.switch_address + slide
        self.nr_syscalls = model.nr_syscalls
        self.source = model.source
        self.entries = model.entries(slide)
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


def table(abi: str = "64") -> Table:
    """The syscall table of `abi` ("64", "32", "x32").  MissingSymbol if the
    kernel has neither the table nor the dispatch switch for it."""
    from gdbext.kernel import symbols
    model = _model(abi)
    slide = getattr(symbols.table(), "slide", 0)
    key = ("syscalls-table", symbols.vmlinux_path(), model.abi, slide)
    cache = _cache()
    if key not in cache:
        cache[key] = Table(model, slide)
    return cache[key]


def name(nr: int, abi: str = "64") -> Optional[str]:
    """The handler's name for nr (None if out of range or not implemented)."""
    return table(abi).name(nr)


def handler(nr: int, abi: str = "64") -> Optional[Tuple[int, str]]:
    """(address, symbol) the kernel dispatches nr to, per the vmlinux file (+
    slide); None when nr >= NR_syscalls (the kernel returns -ENOSYS)."""
    e = table(abi).entry(nr)
    return (e.handler, e.symbol) if e else None


def dispatch(abi: str = "64") -> dict:
    """{"kind", "function", "switch", "note"}: kind is the switch function
    (`x64_sys_call`, `ia32_sys_call`) or `sys_call_table`."""
    m = _model(abi)
    return dispatch_info(m.abi, m.switch_address is not None, m.table_address is not None)


def signature(name_or_nr, abi: str = "64") -> Optional[Signature]:
    """The parameters of a syscall: ftrace metadata from the file, else the
    DWARF of __do_sys_NAME / __do_compat_sys_NAME (one function, via gdb).
    None when neither knows it."""
    from gdbext.kernel import symbols
    t = table(abi)
    nr = name_or_nr if isinstance(name_or_nr, int) else t.nr(name_or_nr)
    e = t.entry(nr) if nr is not None else None
    if e is not None:
        if not e.implemented:
            return None
        stem, prefix = split_handler(e.symbol)
        compat, handler_addr = e.compat, e.handler
    else:
        stem, prefix = split_handler(name_or_nr if isinstance(name_or_nr, str) else None)
        stem = stem or (name_or_nr if isinstance(name_or_nr, str) else None)
        if not stem:
            return None
        compat, handler_addr = "compat_sys_" in prefix, None
    key = ("syscalls-sig", symbols.vmlinux_path(), stem, compat)
    cache = _cache()
    if key not in cache:
        sig = None if compat else _ftrace_signature(stem)
        if sig is None:
            sig = _dwarf_signature(stem, compat, handler_addr)
        cache[key] = sig
    return cache[key]


def configured_out(nr: int, abi: str = "64") -> bool:
    """Whether nr's handler is a COND_SYSCALL stub: a weak __x64_sys_NAME in
    kernel/sys_ni.c that returns -ENOSYS because the kernel was built without
    the syscall (6.1: lookup_dcookie).  Such handlers have no ftrace metadata.
    Asks gdb's DWARF for the one function's file."""
    e = table(abi).entry(nr)
    if e is None or not e.implemented:
        return False
    try:
        import gdb
        # The stubs have line info but no subprogram block of their own
        # (measured, 6.1 __x64_sys_lookup_dcookie): ask the line table.
        symtab = gdb.find_pc_line(e.handler).symtab
        return symtab is not None and symtab.filename.endswith("kernel/sys_ni.c")
    except (ImportError, RuntimeError):
        return False
    except Exception:  # gdb.error without a target or debug info
        return False


def _ftrace_signature(stem: str) -> Optional[Signature]:
    from gdbext.kernel import symbols
    meta = _LinkSymbols(symbols.table()).lookup(f"__syscall_meta__{stem}")
    if meta is None:
        return None
    try:
        m = parse_metadata(_image().read, meta)
    except errors.DecodeError:
        return None
    if m["name"] != f"sys_{stem}":
        return None
    return Signature(stem, m["args"], "ftrace", f"__syscall_meta__{stem}")


def _dwarf_signature(stem: str, compat: bool, handler_addr: Optional[int]) -> Optional[Signature]:
    """__do_sys_NAME / __do_compat_sys_NAME has the real parameter types.  It
    is usually inlined into the __x64_/__ia32_ wrapper, so look for its
    inlined block there (a few hundred block_for_pc calls over one small
    function) before asking gdb for an out-of-line copy."""
    try:
        import gdb
    except ImportError:
        return None
    wanted = f"__do_{'compat_sys_' if compat else 'sys_'}{stem}"
    try:
        if handler_addr is not None:
            outer = gdb.block_for_pc(handler_addr)
            while outer is not None and outer.function is None:
                outer = outer.superblock
            if outer is not None:
                for pc in range(outer.start, outer.end):
                    b = gdb.block_for_pc(pc)
                    while b is not None and b.start >= outer.start and not b.is_static and b is not outer:
                        fn = b.function
                        if fn is not None and fn.name == wanted:
                            return Signature(stem, _ordered_args(b, stem, inlined=True), "dwarf", wanted)
                        b = b.superblock
        sym = gdb.lookup_static_symbol(wanted) or gdb.lookup_global_symbol(wanted)
        if sym is not None and sym.type is not None and sym.type.code == gdb.TYPE_CODE_FUNC:
            b = gdb.block_for_pc(int(sym.value().address))
            while b is not None and b.function is None:
                b = b.superblock
            if b is not None:
                return Signature(stem, _ordered_args(b, stem, inlined=False), "dwarf", wanted)
    except (gdb.error, RuntimeError):
        return None
    return None


def order_args(args: List[Tuple[str, str]], reference: Optional[List[str]], inlined: bool) -> List[Tuple[str, str]]:
    """Put DWARF parameters in declaration order.

    gdb 13 gives an inlined block's parameters, and the inlined function's
    type fields, in reverse (measured on __do_sys_openat, __do_sys_write,
    __do_compat_sys_openat and __do_compat_sys_execve in 6.12), and an
    out-of-line function's in order.  When the native syscall's ftrace
    metadata names the same parameters (`reference`), that order wins."""
    if reference and sorted(n for _, n in args) == sorted(reference):
        by_name = {n: (t, n) for t, n in args}
        return [by_name[n] for n in reference]
    return list(reversed(args)) if inlined else list(args)


def _ordered_args(block, stem: str, inlined: bool) -> List[Tuple[str, str]]:
    args = [(str(a.type), a.name) for a in block if a.is_argument]
    # SYSCALL_DEFINE0/COMPAT_SYSCALL_DEFINE0 bodies take only
    # `const struct pt_regs *__unused` (arch/x86/include/asm/syscall_wrapper.h).
    if len(args) == 1 and args[0][1] == "__unused":
        return []
    native = _ftrace_signature(stem)
    return order_args(args, [n for _, n in native.args] if native else None, inlined)


def check(abi: str = "64", cpu: int = None) -> List[Problem]:
    """Compare guest memory with the vmlinux file: the table (entry by entry:
    same value as the file, the start of an expected handler, inside
    _stext.._etext) and, where the kernel dispatches through a switch, the
    switch's decoded targets.  Reads each once (batched, cached per stop)."""
    from gdbext.kernel import symbols
    from gdbext import machine
    t = table(abi)
    m = t.model
    st = symbols.table()
    problems = []
    if t.address is not None:
        raw = machine.read_kernel(t.address, 8 * t.nr_syscalls, cpu)
        memory = list(struct.unpack(f"<{t.nr_syscalls}Q", raw))
        problems += check_table(t.abi, memory, [e.handler for e in t.entries], st.format, st.in_kernel_text)
    if m.switch is not None:
        code = machine.read_kernel(t.switch_address, m.switch_size, cpu)
        # Decoding takes ~25 ms; the code rarely changes, so remember the
        # last result by its bytes.
        key = ("syscalls-live-switch", t.abi, t.switch_address)
        cache = _cache()
        hit = cache.get(key)
        if hit is not None and hit[0] == code:
            live, err = hit[1], hit[2]
        else:
            try:
                live, err = decode_switch(code, t.switch_address), None
            except errors.DecodeError as exc:
                live, err = None, str(exc)
            cache[key] = (code, live, err)
        problems += check_switch(t.abi, live, m.switch, t.slide, t.nr_syscalls, st.format, err)
    return problems
