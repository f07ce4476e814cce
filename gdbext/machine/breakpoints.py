"""gdb breakpoints that kx owns: created without gdb's announcement, and
deleted on every path.

gdb announces a new breakpoint ("Breakpoint 3 at ...") on stdout, which
would break --json's one-line promise; gdb.Breakpoint() has no quiet
option, so the breakpoint is created inside a gdb.execute(...,
to_string=True) that captures the announcement.
"""
from typing import Callable, List

import gdb

_factories: List[Callable[[], gdb.Breakpoint]] = []
# gdb 18 under MI prints the announcement on the console whatever captures
# it (to_string gets the =breakpoint-created record instead), with no
# newline: the command that made a breakpoint ends that line first.
_announced = []
_made: List[gdb.Breakpoint] = []
_failed: List[BaseException] = []


def create_quietly(factory: Callable[[], gdb.Breakpoint]) -> gdb.Breakpoint:
    """`factory()` (which makes one gdb.Breakpoint), with gdb's
    announcement swallowed; its exception, if any, is re-raised here."""
    _factories.append(factory)
    try:
        gdb.execute(f"python import {__name__} as _kx_bp; _kx_bp._make_next()", to_string=True)
    finally:
        _factories.clear()
    if _failed:
        raise _failed.pop()
    if int(gdb.VERSION.split(".")[0]) >= 18:
        _announced.append(True)
    return _made.pop()


def end_announcement_line() -> None:
    """After making breakpoints: end the line a gdb that could not be
    silenced left open, so the command's own output starts on its own."""
    if _announced:
        _announced.clear()
        gdb.write("\n")


def _make_next() -> None:
    factory = _factories.pop()
    try:
        _made.append(factory())
    except Exception as exc:  # re-raised by create_quietly outside gdb.execute
        _failed.append(exc)


def delete_all(breakpoints) -> None:
    """Delete every still-valid breakpoint of `breakpoints`."""
    for b in breakpoints:
        if b.is_valid():
            b.delete()


def address_of(bp: gdb.Breakpoint) -> int:
    """The address of a `*0x...` breakpoint kx made."""
    return int(bp.location.lstrip("*"), 16)
