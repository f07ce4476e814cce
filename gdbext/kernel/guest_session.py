# SPDX-License-Identifier: GPL-2.0-or-later
"""gdb with no vmlinux: load the symbol file kx builds from the guest's own
kallsyms and BTF (kernel/guest_kernel.py, kernel/guest_elf.py) as gdb's main
symbol file, by hand (`kx kernel`) or at the first stop of a connection
when gdb has no symbol file (`set kx guest-kernel auto`, the default).

Once loaded, the file is the "vmlinux" for the rest of kx: kernel/kaslr.py
checks its notes and banner against memory and relocates it like a
vmlinux when a later boot moved the kernel.
"""
import os
import time
from typing import Optional

from gdbext import errors, settings
from gdbext.kernel import guest_kernel
from gdbext.machine import hooks

_state = {"kernel": None, "seconds": None, "connection": None}
STILL_WORKS = ("msr, gdt, idt, tss, syscalls, break and kaslr work, the commands that read kernel structs "
               "need the vmlinux")


def missing_symbol_reason(name: str) -> str:
    """Why the loaded guest kernel's symbols lack `name`: what its build
    left out of kallsyms and BTF ("" with a vmlinux or a complete kernel)."""
    if _state["kernel"] is None:
        return ""
    gk = current()
    if gk is None:
        return ""
    lacks = []
    if not gk.has_data_symbols():
        lacks.append("its kallsyms has text symbols only (built without CONFIG_KALLSYMS_ALL)")
    if gk.btf_path is None:
        lacks.append("it has no BTF (built without CONFIG_DEBUG_INFO_BTF)")
    if not lacks:
        return ""
    return f"{' and '.join(lacks)}, and gdb has no vmlinux: {STILL_WORKS}"


errors.missing_symbol_reason = missing_symbol_reason


def _loaded_path() -> Optional[str]:
    """gdb's kernel symbol file, also after kx's KASLR relocation made it
    an add-symbol-file objfile (kernel/symbols.vmlinux_path); None if none."""
    from gdbext.kernel import symbols
    try:
        return symbols.vmlinux_path()
    except errors.KxError:
        return None


def current() -> Optional[guest_kernel.GuestKernel]:
    """The guest kernel whose symbol file gdb has loaded, or None."""
    gk = _state["kernel"]
    if gk is None:
        return None
    from gdbext.kernel import guest_elf
    path = os.path.join(gk.directory, guest_elf.ELF_NAME)
    return gk if _loaded_path() == path else None


def gdb_has_kernel_file() -> bool:
    return _loaded_path() is not None


def attach(cpu: Optional[int] = None) -> guest_kernel.GuestKernel:
    """Read (or find cached) the guest's symbols and types and give them to gdb."""
    from gdbext.machine import symbol_files
    t0 = time.perf_counter()
    gk = guest_kernel.load(cpu)
    path = guest_kernel.symbol_file(gk)
    gk.seconds["symbol_file_load"] = round(symbol_files.load_main(path), 3)
    _state["kernel"] = gk
    # The file is linked where the kernel was when it was built: move it
    # to this boot's slide now, before anything reads gdb's symbols.
    from gdbext.kernel import kaslr
    t1 = time.perf_counter()
    kaslr.ensure()
    gk.seconds["kaslr"] = round(time.perf_counter() - t1, 3)
    gk.seconds["total"] = round(time.perf_counter() - t0, 3)
    return gk


def summary(gk: guest_kernel.GuestKernel) -> str:
    how = "cached" if gk.cached else "read from memory"
    btf = "BTF types" if gk.btf_path else "no BTF (types unknown: only symbol-level commands work)"
    return (f"kx: no vmlinux: loaded the running kernel's own symbols ({len(gk.symbols)} kallsyms) and "
            f"{btf}, {how}, in {gk.seconds.get('total', 0):.2f} s (`kx kernel` says where each fact "
            "came from)\n")


def ensure_loaded(quiet: bool = False) -> Optional[guest_kernel.GuestKernel]:
    """Before a kx command: with no symbol file in gdb (and `set kx
    guest-kernel auto`), load the guest's own.  Not from gdb's event
    observers: replacing the symbol file inside one trips gdb 13's internal
    checks (get_msymbol_address, "Recursive internal problem")."""
    if settings.get("guest-kernel") != "auto" or gdb_has_kernel_file():
        return None
    import gdb
    inf = gdb.selected_inferior()
    if not inf.pid or not inf.threads():
        return None
    gk = attach()
    if not quiet:
        gdb.write(summary(gk))
    return gk


def _on_stop(_event=None) -> None:
    """At the first stop of a connection with no symbol file: say what the
    first kx command will do."""
    if hooks.during() or settings.get("guest-kernel") != "auto":
        return
    try:
        import gdb
        inf = gdb.selected_inferior()
        key = (inf.num, getattr(inf, "connection_num", None))
        if not inf.pid or key == _state["connection"] or gdb_has_kernel_file():
            return
        _state["connection"] = key
        gdb.write("kx: no vmlinux: the first kx command loads the running kernel's own symbols and "
                  "types (kallsyms, BTF; `kx kernel`)\n")
    except Exception:  # noqa: BLE001 - a stop hook must never break gdb
        pass


def _forget(_event=None) -> None:
    _state["connection"] = None


def install_hooks() -> None:
    hooks.connect(_on_stop, "stop")
    hooks.connect(_forget, "exit", "disconnect")
