"""gdb's events, connected in one place.

kx listens to gdb for two reasons: the machine layer marks its per-stop cache
stale when the machine may have changed, and the kernel model checks the
vmlinux against the running kernel again on a new connection or objfile
(kernel/kaslr.py).  Both register their handlers here, by kind; each handler
is connected to gdb's own event registries once.

Directly, with no dispatcher of kx's in between: a Ctrl-C that arrives while
gdb runs a Python event handler is raised inside that handler, where gdb
prints "Python Exception <class 'KeyboardInterrupt'>" and swallows it, so the
kx command in progress would never see it.  A handler that is a builtin (the
cache's deque.append, a dict's clear) runs no bytecode and leaves the
interrupt pending for kx's own code; a dispatcher written in Python would take
that away from every handler behind it.

kx's own stops and symbol reloads (the rdmsr injection's single-step, the
KASLR relocation) raise events too; the code doing them says so with
`kx_activity()` and handlers that must not react ask `during()`.
"""
import contextlib
from typing import Callable, Iterator, Optional, Set, Tuple

try:
    import gdb
except ImportError:  # outside gdb (unit tests, the bench's raw client): nothing to connect to
    gdb = None

# kx's kinds of event -> gdb's event registries (a registry this gdb lacks is
# skipped).
KINDS = {
    "stop": ("stop",),
    "cont": ("cont",),
    "write": ("memory_changed", "register_changed", "inferior_call"),  # gdb or the user changed the machine
    "objfile": ("new_objfile", "free_objfile"),
    "objfiles_cleared": ("clear_objfiles",),
    "exit": ("exited",),
    "new_inferior": ("new_inferior",),
    "disconnect": ("connection_removed", "inferior_deleted"),
}

# What kx itself may be doing to the machine (see kx_activity).
STEP = "step"        # single-stepping an injected instruction
RELOAD = "reload"    # reloading the vmlinux's symbols at a slide

_connected: Set[Tuple[str, Callable]] = set()
_activities: Set[str] = set()


def connect(handler: Callable, *kinds: str) -> None:
    """Call `handler(event)` on each of `kinds`; connecting the same handler
    to the same event again does nothing."""
    if gdb is None:
        return
    for kind in kinds:
        for name in KINDS[kind]:
            registry = getattr(gdb.events, name, None)
            if registry is None or (name, handler) in _connected:
                continue
            registry.connect(handler)
            _connected.add((name, handler))


@contextlib.contextmanager
def kx_activity(what: str) -> Iterator[None]:
    """Mark the events raised inside as kx's own (`STEP` or `RELOAD`)."""
    _activities.add(what)
    try:
        yield
    finally:
        _activities.discard(what)


def during(what: Optional[str] = None) -> bool:
    """Whether kx is doing `what` (any activity for None) right now."""
    return what in _activities if what is not None else bool(_activities)
