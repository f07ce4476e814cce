"""drgn on the stopped guest: a drgn.Program whose memory is kx's machine
layer, for `kx drgn` and gdbext.api.drgn_program().

drgn (LGPL-2.1-or-later) is an optional dependency, used as a library; no
code of it is copied here.  What this relies on (drgn 0.3.0, checked on the
lab's 6.1 and 6.12 guests):

- gdb links an older libdw than drgn's wheel ships; loaded into gdb, drgn's
  C extension binds to gdb's copy and load_debug_info() fails with "libdw
  error: no error".  Importing it with RTLD_DEEPBIND makes it resolve its
  own libraries first.
- Program.set_linux_kernel_custom(vmcoreinfo, is_live) turns a Program with
  a platform and a physical memory segment into a Linux kernel target: drgn
  walks the page tables itself from the vmcoreinfo's SYMBOL(swapper_pg_dir),
  phys_base and KERNELOFFSET (the KASLR slide: x86's
  arch_crash_save_vmcoreinfo() writes it), so only physical reads are
  needed, and they do not care whether a vCPU is on a user page table
  (KPTI).
- The vmcoreinfo note is built at boot (crash_save_vmcoreinfo_init, a
  subsys initcall) at *vmcoreinfo_data, vmcoreinfo_size bytes.
- drgn asks for memory in small pieces (a task_struct member, a page-table
  entry); through the machine layer's per-stop cache of whole physical
  pages, `for_each_task` over ~55 tasks took 0.1 s here (3.2 s with no
  cache).  The cache is dropped when the guest runs.
"""
import os
import sys
from typing import Dict, Optional

from gdbext import errors
from gdbext.decoders.paging import PAGE_SIZE_4K as PAGE

HOW_TO_GET = "drgn is not installed: pip install '.[drgn]' (or ./scripts/lab bootstrap --with-drgn)"
PHYS_SPAN = 1 << 46          # covers any guest's RAM (x86-64 physical addresses are at most 52 bits)
VMCOREINFO_MAX = 1 << 16     # VMCOREINFO_BYTES is one page; a corrupt size must not read megabytes

_programs: Dict[tuple, object] = {}


def import_drgn():
    """The drgn module, its C extension bound to its own libdw; NotSupported
    with how to install it when it is missing."""
    if sys.modules.get("drgn") is not None:
        return sys.modules["drgn"]
    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
    try:
        import drgn
    except ImportError:
        raise errors.NotSupported(HOW_TO_GET) from None
    finally:
        sys.setdlopenflags(flags)
    return drgn


def read_physical(address: int, count: int) -> bytes:
    """`count` bytes of guest RAM at `address`, through whole 4 KiB pages
    that the machine layer keeps until the guest runs again."""
    from gdbext import machine
    first = address & ~(PAGE - 1)
    pages = range(first, address + count, PAGE)
    data = b"".join(machine.read_phys_many([(p, PAGE) for p in pages]))
    return data[address - first:address - first + count]


def _segment_reader(drgn):
    def read(address, count, _offset, _physical):
        try:
            return read_physical(address, count)
        except errors.MemoryUnreadable as exc:
            raise drgn.FaultError(str(exc), address) from None
    return read


def vmcoreinfo() -> bytes:
    """The running kernel's vmcoreinfo note text (`*vmcoreinfo_data`)."""
    from gdbext.kernel import backend, symbols
    data = backend.read_u64(symbols.address("vmcoreinfo_data"))
    size = int.from_bytes(backend.read_kernel(symbols.address("vmcoreinfo_size"), 8), "little")
    if not data or not 0 < size <= VMCOREINFO_MAX:
        raise errors.KxError(f"the kernel has no vmcoreinfo yet (vmcoreinfo_data {data:#x}, size {size}): "
                             "drgn needs it; stop the guest after boot")
    return backend.read_kernel(data, size)


def _platform(drgn):
    from gdbext import arch
    name = arch.current().name
    if name != "x86_64":
        raise errors.NotSupported(f"kx's drgn bridge knows x86-64 only; this target is {name}")
    flags = drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
    return drgn.Platform(drgn.Architecture.X86_64, flags)


def _key(path: str) -> tuple:
    """The connection, the vmlinux file and the slide a Program is good for."""
    import gdb
    from gdbext.kernel import symbols, vmlinux
    inferior = gdb.selected_inferior()
    return (inferior.num, getattr(inferior, "connection_num", None), inferior.pid, vmlinux.file_key(path),
            symbols.table().slide)


def program(path: Optional[str] = None):
    """A drgn.Program of the guest gdb is attached to, with the vmlinux at
    `path` (default: gdb's) as its debug info; one per connection, vmlinux
    and slide, reused across stops (its reads are per stop)."""
    from gdbext import machine
    from gdbext.kernel import symbols
    drgn = import_drgn()
    machine.require_stopped()
    path = path or symbols.vmlinux_path()
    key = _key(path)
    if key in _programs:
        return _programs[key]
    prog = drgn.Program(_platform(drgn))
    prog.add_memory_segment(0, PHYS_SPAN, _segment_reader(drgn), True)
    prog.set_linux_kernel_custom(vmcoreinfo(), True)
    try:
        prog.load_debug_info([path])
    except drgn.MissingDebugInfoError as exc:
        raise errors.KxError(f"drgn found no debug info for the running kernel in {path}: {exc}") from None
    _programs.clear()      # an older connection's Program holds ~250 MB of DWARF
    _programs[key] = prog
    return prog
