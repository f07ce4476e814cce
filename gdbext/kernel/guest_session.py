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


def current() -> Optional[guest_kernel.GuestKernel]:
    """The guest kernel whose symbol file gdb has loaded, or None."""
    gk = _state["kernel"]
    if gk is None:
        return None
    import gdb
    path = os.path.join(gk.directory, "kernel.elf")
    if gdb.current_progspace().filename != path:
        return None
    return gk


def gdb_has_kernel_file() -> bool:
    import gdb
    return bool(gdb.current_progspace().filename)


def attach(cpu: Optional[int] = None) -> guest_kernel.GuestKernel:
    """Read (or find cached) the guest's symbols and types and give them to gdb."""
    from gdbext.machine import symbol_files
    t0 = time.perf_counter()
    gk = guest_kernel.load(cpu)
    path = guest_kernel.symbol_file(gk)
    gk.seconds["symbol_file_load"] = round(symbol_files.load_main(path), 3)
    gk.seconds["total"] = round(time.perf_counter() - t0, 3)
    _state["kernel"] = gk
    return gk


def summary(gk: guest_kernel.GuestKernel) -> str:
    how = "cached" if gk.cached else "read from memory"
    btf = "BTF types" if gk.btf_path else "no BTF (types unknown: only symbol-level commands work)"
    return (f"kx: no vmlinux: loaded the running kernel's own symbols ({len(gk.symbols)} kallsyms) and "
            f"{btf}, {how}, in {gk.seconds.get('total', 0):.2f} s (`kx kernel` says where each fact "
            "came from)\n")


def _on_stop(_event=None) -> None:
    """At the first stop of a connection with no symbol file, load the
    guest's own.  Never lets an exception into gdb's stop handling."""
    if hooks.during() or settings.get("guest-kernel") != "auto":
        return
    try:
        import gdb
        inf = gdb.selected_inferior()
        key = (inf.num, getattr(inf, "connection_num", None))
        if not inf.pid or key == _state["connection"] or gdb_has_kernel_file():
            return
        _state["connection"] = key
        gdb.write(summary(attach()))
    except KeyboardInterrupt:
        pass
    except errors.KxError as exc:
        import gdb
        gdb.write(f"kx: no vmlinux, and the guest's own symbols could not be read: {exc}\n")
    except Exception:  # noqa: BLE001 - a stop hook must never break gdb
        pass


def _forget(_event=None) -> None:
    _state["connection"] = None


def install_hooks() -> None:
    hooks.connect(_on_stop, "stop")
    hooks.connect(_forget, "exit", "disconnect")
