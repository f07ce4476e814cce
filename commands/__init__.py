"""The `kx` gdb commands.

Installed as the subpackage `gdbext.commands` (see setup.py); in a checkout
gdbext aliases this directory under the same name, so the modules here always
use imports relative to gdbext.

The commands of one architecture live in a subpackage named after it
(x86_64/) and are registered by that architecture (Arch.register_commands);
every registered architecture's are, since commands exist before gdb knows
the target's architecture.
"""
import importlib
import sys

# Every architecture-neutral module with commands, functions or parameters.
MODULES = ("prefix", "params", "task", "regs", "functions", "unwind", "syscalls", "event", "breaks",
           "trace", "kaslr", "kernel", "vdso", "seccomp", "pagewalk", "dmesg", "modules", "drgn")

_registered = False


def register_modules(package: str, names) -> None:
    """Import and register each module `package`.NAME; one broken module
    must not take the rest down."""
    for name in names:
        try:
            importlib.import_module(f"{package}.{name}").register()
        except Exception as exc:
            print(f"kx: `kx {name}` is unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)


def register_all() -> None:
    global _registered
    if _registered:
        return
    from gdbext import arch
    register_modules(__name__, MODULES)
    for name, architecture in arch.registry().items():
        try:
            architecture.register_commands()
        except Exception as exc:
            print(f"kx: the {name} commands are unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
    _registered = True
