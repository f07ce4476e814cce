"""kx: a gdb extension for debugging the Linux kernel's entry path on x86-64.

Layers (see README, "Layout"):
  gdbext.decoders   pure functions: bytes/ints in, structured values out
  gdbext.machine    the only code that touches the stopped machine
  gdbext.kernel     symbols, types, per-cpu data, tasks, syscalls
  gdbext.commands   the thin `kx ...` gdb commands (the checkout's commands/)

Importing gdbext inside gdb registers the commands; outside gdb (unit tests,
tools) it only makes the pure layers importable.
"""
import os
import sys

__version__ = "0.1.0"

_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT_COMMANDS = os.path.join(os.path.dirname(_HERE), "commands")


def _alias_checkout_commands() -> None:
    """Make `gdbext.commands` import the same way from a checkout as from an
    install.  setup.py installs the top-level commands/ directory as the
    subpackage gdbext.commands (no generic top-level name is claimed); in a
    checkout we register the directory under that same name."""
    if "gdbext.commands" in sys.modules:
        return
    if os.path.isdir(os.path.join(_HERE, "commands")):
        return  # installed layout: a real subpackage
    init = os.path.join(_CHECKOUT_COMMANDS, "__init__.py")
    if not os.path.isfile(init):
        return
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "gdbext.commands", init, submodule_search_locations=[_CHECKOUT_COMMANDS])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gdbext.commands"] = module
    spec.loader.exec_module(module)


def in_gdb() -> bool:
    try:
        import gdb  # noqa: F401
    except ImportError:
        return False
    return True


def load() -> None:
    """Register every kx command, function, parameter and hook (idempotent)."""
    _alias_checkout_commands()
    from gdbext import commands  # noqa: F401
    commands.register_all()


if in_gdb():
    load()
