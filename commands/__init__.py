"""The `kx` gdb commands.

Installed as the subpackage `gdbext.commands` (see setup.py); in a checkout
gdbext aliases this directory under the same name, so the modules here always
use imports relative to gdbext.
"""
import importlib

# Every module with commands, functions or parameters, in `help kx` order.
MODULES = ("prefix", "params", "msr", "gdt", "idt", "tss", "task", "regs", "functions", "unwind", "syscalls", "event", "breaks", "trace", "kaslr", "vdso")

_registered = False


def register_all() -> None:
    global _registered
    if _registered:
        return
    import sys
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
            module.register()
        except Exception as exc:  # one broken module must not take the rest down
            print(f"kx: `kx {name}` is unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
    _registered = True
