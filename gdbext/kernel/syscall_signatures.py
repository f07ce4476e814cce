"""The parameters of a syscall: ftrace metadata from the vmlinux file, else
the DWARF of the function SYSCALL_DEFINE wraps, through gdb.

- include/trace/syscall.h, struct syscall_metadata (CONFIG_FTRACE_SYSCALLS,
  =y in both Debian configs): name, syscall_nr, nb_args, types, args, then
  list_head and two pointers: 64 bytes, unchanged 6.1 - 6.12.
  SYSCALL_DEFINEx (include/linux/syscalls.h) emits `__syscall_meta__NAME`
  with `types__NAME[]`/`args__NAME[]`: the type as the source spelled it
  after macro expansion ("const char *": __user is already gone, measured in
  6.1/6.12).
- COMPAT_SYSCALL_DEFINEx emits none: compat signatures come from the DWARF
  of `__do_compat_sys_NAME`, usually inlined into its wrapper.  gdb lists an
  inlined block's parameters in the compiler's DIE order (gcc 12: reversed,
  gcc 16: as declared), so their order comes from the function's abstract
  instance in the file (kernel/vmlinux_dwarf.py).
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Callable, List, Optional, Tuple

from gdbext import errors
from gdbext.kernel import syscall_tables
from gdbext.kernel.vmlinux import read_cstring, read_u64s

# struct syscall_metadata (include/trace/syscall.h): the first 32 bytes are
# what kx needs.  nb_args is an int up to 6.x and a 7-bit field of the byte
# at the same offset in 7.x, whose other bits and next three bytes the
# kernel fills at boot (user_arg_is_str, user_arg_size, user_mask): the
# low 7 bits of that byte are nb_args in both.
META_FORMAT = "<QiB3xQQ"


@dataclasses.dataclass
class Signature:
    name: str                     # the SYSCALL_DEFINE name ("openat")
    args: List[Tuple[str, str]]   # [(ctype, argname)], as decoders.syscall_args takes them
    source: str                   # "ftrace", "dwarf" or "btf"
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
    nb &= 0x7F
    if not 0 <= nb <= 6:
        raise errors.DecodeError(f"syscall metadata at {address:#x}: nb_args {nb} is not 0-6")
    name = read_cstring(read, name_p)
    args = []
    if nb:
        types = read_u64s(read, types_p, nb)
        names = read_u64s(read, args_p, nb)
        args = [(read_cstring(read, t), read_cstring(read, n)) for t, n in zip(types, names)]
    return {"name": name, "nr": nr, "args": args}


def order_args(args: List[Tuple[str, str]], reference: Optional[List[str]], inlined: bool) -> List[Tuple[str, str]]:
    """Put DWARF parameters in declaration order.

    `reference` names the parameters in declaration order (the abstract
    instance's DWARF, else the native syscall's ftrace metadata); when it
    names the same parameters, its order wins.  Without one, an out-of-line
    function's parameters are taken as gdb gives them, and an inlined
    block's reversed: gcc 12's DIE order (measured on __do_sys_openat,
    __do_sys_write, __do_compat_sys_openat and __do_compat_sys_execve in
    6.12; gcc 16, 7.2, emits them in order)."""
    if reference and sorted(n for _, n in args) == sorted(reference):
        by_name = {n: (t, n) for t, n in args}
        return [by_name[n] for n in reference]
    return list(reversed(args)) if inlined else list(args)


# ---------------------------------------------------------------------------
# The kernel-model API (gdb side)

def signature(name_or_nr, abi="64") -> Optional[Signature]:
    """The parameters of a syscall: ftrace metadata from the file, else the
    DWARF of __do_sys_NAME / __do_compat_sys_NAME (one function, via gdb).
    None when neither knows it."""
    from gdbext.kernel import symbols
    t = syscall_tables.table(abi)
    nr = name_or_nr if isinstance(name_or_nr, int) else t.nr(name_or_nr)
    e = t.entry(nr) if nr is not None else None
    if e is not None:
        if not e.implemented:
            return None
        stem, _ = syscall_tables.split_handler(e.symbol)
        compat, handler_addr = e.compat, e.handler
    else:
        word = name_or_nr if isinstance(name_or_nr, str) else None
        stem, prefix = syscall_tables.split_handler(word)
        stem = stem or word
        if not stem:
            return None
        compat, handler_addr = syscall_tables.is_compat_prefix(prefix), None
    key = ("syscalls-sig", symbols.vmlinux_path(), stem, compat)
    cache = syscall_tables.cache()
    if key not in cache:
        sig = None if compat else _ftrace_signature(stem)
        cache[key] = sig or _dwarf_signature(stem, compat, handler_addr) or _btf_signature(stem, compat)
    return cache[key]


def configured_out(nr: int, abi="64") -> bool:
    """Whether nr's handler is a COND_SYSCALL stub: a weak __x64_sys_NAME in
    kernel/sys_ni.c that returns -ENOSYS because the kernel was built without
    the syscall (6.1: lookup_dcookie).  Such handlers have no ftrace metadata.
    Asks gdb's DWARF for the one function's file."""
    e = syscall_tables.table(abi).entry(nr)
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
    from gdbext.kernel import backend, symbols, syscall_check
    if syscall_check.reference() == "kallsyms":
        # No vmlinux file: the metadata in guest memory, at run addresses
        # (syscall_nr is filled in there, the rest is as linked).
        meta, read = symbols.table().lookup(f"__syscall_meta__{stem}"), backend.read_kernel
    else:
        meta = syscall_tables.LinkSymbols(symbols.table()).lookup(f"__syscall_meta__{stem}")
        read = syscall_tables.image().read
    if meta is None:
        return None
    try:
        m = parse_metadata(read, meta)
    except errors.DecodeError:
        return None
    if m["name"] != f"sys_{stem}":
        return None
    return Signature(stem, m["args"], "ftrace", f"__syscall_meta__{stem}")


def _dwarf_signature(stem: str, compat: bool, handler_addr: Optional[int]) -> Optional[Signature]:
    """__do_sys_NAME / __do_compat_sys_NAME has the real parameter types.  It
    is usually inlined into the __x64_/__ia32_ wrapper, so look for its
    inlined block there before asking gdb for an out-of-line copy."""
    try:
        import gdb
    except ImportError:
        return None
    wanted = f"__do_{'compat_sys_' if compat else 'sys_'}{stem}"
    try:
        block = _inlined_block(gdb, handler_addr, wanted) if handler_addr is not None else None
        if block is not None:
            from gdbext.kernel import symbols, vmlinux_dwarf
            link_pc = handler_addr - getattr(symbols.table(), "slide", 0)   # the file is unslid
            declared = vmlinux_dwarf.declared_parameters(symbols.vmlinux_path(), wanted, link_pc)
            return Signature(stem, _ordered_args(block, stem, inlined=True, declared=declared), "dwarf", wanted)
        sym = gdb.lookup_static_symbol(wanted) or gdb.lookup_global_symbol(wanted)
        if sym is not None and sym.type is not None and sym.type.code == gdb.TYPE_CODE_FUNC:
            b = _function_block(gdb, int(sym.value().address))
            if b is not None:
                return Signature(stem, _ordered_args(b, stem, inlined=False), "dwarf", wanted)
    except (gdb.error, RuntimeError):
        return None
    return None


def _btf_signature(stem: str, compat: bool) -> Optional[Signature]:
    """With no vmlinux: __do_sys_NAME's prototype from BTF, when BTF has it
    (only the bodies compiled out of line: 103 of them on 6.1)."""
    from gdbext.kernel import guest_session
    gk = guest_session.current()
    if gk is None:
        return None
    wanted = f"__do_{'compat_sys_' if compat else 'sys_'}{stem}"
    params = gk.btf_syscalls().get(wanted)
    if params is None:
        return None
    return Signature(stem, [(ctype, name) for ctype, name in params], "btf", wanted)


def _function_block(gdb, pc: int):
    b = gdb.block_for_pc(pc)
    while b is not None and b.function is None:
        b = b.superblock
    return b


def _inlined_block(gdb, handler_addr: int, wanted: str):
    """The block of `wanted` inlined into the function at handler_addr (a
    few hundred block_for_pc calls over one small function), or None."""
    outer = _function_block(gdb, handler_addr)
    if outer is None:
        return None
    for pc in range(outer.start, outer.end):
        b = gdb.block_for_pc(pc)
        while b is not None and b.start >= outer.start and not b.is_static and b is not outer:
            fn = b.function
            if fn is not None and fn.name == wanted:
                return b
            b = b.superblock
    return None


def _ordered_args(block, stem: str, inlined: bool, declared: Optional[List[str]] = None) -> List[Tuple[str, str]]:
    args = [(str(a.type), a.name) for a in block if a.is_argument]
    # SYSCALL_DEFINE0/COMPAT_SYSCALL_DEFINE0 bodies take only
    # `const struct pt_regs *__unused` (arch/x86/include/asm/syscall_wrapper.h).
    if len(args) == 1 and args[0][1] == "__unused":
        return []
    if declared and sorted(declared) == sorted(n for _, n in args):
        return order_args(args, declared, inlined)
    native = _ftrace_signature(stem)
    return order_args(args, [n for _, n in native.args] if native else None, inlined)
