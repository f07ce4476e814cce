"""The architecture seam: one subpackage per architecture, chosen per
connection from what gdb says it debugs.

Adding an architecture means adding its subpackage (an `Arch` subclass, see
base.py) and naming it in ARCHITECTURES below; nothing else in kx changes.
Unit tests install a fake one with `use()`.
"""
import contextlib
import importlib
from typing import Dict, Optional

from gdbext import errors
from gdbext.arch.base import Arch, EntryStub, RawCall, SyscallAbi, TableChoice

__all__ = ["Arch", "EntryStub", "RawCall", "SyscallAbi", "TableChoice", "ARCHITECTURES", "registry",
           "use", "pinned", "for_elf_machine", "for_gdb_name", "current", "parse_abi"]

# The one registration per architecture: its module builds ARCH.
ARCHITECTURES = ("gdbext.arch.x86_64", "gdbext.arch.i386", "gdbext.arch.arm64")

_registry: Dict[str, Arch] = {}
_forced: Optional[Arch] = None


def registry() -> Dict[str, Arch]:
    if not _registry:
        for module in ARCHITECTURES:
            arch = importlib.import_module(module).ARCH
            _registry[arch.name] = arch
    return _registry


def use(arch: Optional[Arch]) -> None:
    """Force `arch` (a unit test's fake, or a user's choice); None restores
    detection."""
    global _forced
    _forced = arch


@contextlib.contextmanager
def pinned():
    """Inside the block current() answers what it answered on entry,
    without asking gdb: for loops that decode thousands of trace records
    while nothing can change the target's architecture."""
    global _forced
    saved = _forced
    _forced = current()
    try:
        yield _forced
    finally:
        _forced = saved


def for_elf_machine(machine: str) -> Optional[Arch]:
    """The architecture of a vmlinux file by its ELF e_machine, or None."""
    return next((a for a in registry().values() if a.elf_machine == machine), None)


def for_gdb_name(name: str) -> Arch:
    for arch in registry().values():
        if name in arch.gdb_names:
            return arch
    raise errors.NotSupported(f"kx has no support for the {name} architecture "
                              f"(it knows {', '.join(sorted(registry()))})")


def _gdb_arch_name() -> Optional[str]:
    """gdb's name for the target's architecture, or None while nothing says
    it (no target and no file: gdb then reports its default, i386)."""
    try:
        import gdb
    except ImportError:
        return None
    try:
        inferior = gdb.selected_inferior()
        if not inferior.pid and not any(o.is_valid() and o.filename for o in gdb.objfiles()):
            return None
        return inferior.architecture().name()
    except (gdb.error, AttributeError, RuntimeError):
        return None


def current() -> Arch:
    """The architecture of the target gdb debugs (x86-64 when gdb cannot
    say, as before a connection)."""
    if _forced is not None:
        return _forced
    name = _gdb_arch_name()
    if name is None:
        return registry()["x86_64"]
    return for_gdb_name(name)


def parse_abi(word: Optional[str], allow_all: bool = False, hidden: bool = True):
    """The ABI a user's --abi word names (`64`, `ia32`, ...), or with
    `allow_all` every selectable one for `all`: a list of SyscallAbi.  The
    one parser behind every command's --abi.  `hidden` admits ABIs that
    --abi does not offer by default (x32, reached through the 64-bit entry)."""
    arch = current()
    text = (word or arch.abis[0].name).lower()
    if allow_all and text == "all":
        return arch.selectable_abis()
    try:
        abi = arch.abi(text)
    except KeyError:
        abi = None
    if abi is None or not (abi.selectable or hidden):
        offered = [a.name for a in (arch.abis if hidden else arch.selectable_abis())]
        words = ", ".join(offered) + (" or all" if allow_all else "")
        raise errors.BadArgument(f"--abi must be {words}, not {word!r}")
    return [abi]
