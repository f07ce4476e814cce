"""gdb's symbol file for the vmlinux: where gdb puts a symbol now, and
reloading the file at a KASLR slide.  kernel/kaslr.py decides the slide;
this is the one place that changes gdb's symbols."""
import time
from typing import Iterable, Optional

import gdb

from gdbext import errors
from gdbext import machine
from gdbext.decoders.bits import MASK64
from gdbext.machine import hooks


def loaded_address(name: str) -> Optional[int]:
    """The address gdb's symbols give `name` now, or None."""
    try:
        return int(gdb.parse_and_eval(f"(unsigned long)&'{name}'")) & MASK64
    except gdb.error:
        return None


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"' if any(c in path for c in ' "\'\\') else path


def reload(path: str, slide: int, zero_based_sections: Iterable[str]) -> float:
    """Reload the symbols of the vmlinux at `path` at `slide`; returns seconds spent.

    add-symbol-file's `-s SECTION 0` keeps zero-based per-cpu sections at 0
    (`symbol-file -o` would slide &pcpu_hot too).  Dropping the main symbol
    file disables breakpoints with symbolic locations; they are re-enabled
    as they were once the new objfile has moved them.  gdb's index cache is
    keyed by build ID, so the reload costs about 0.3-0.8 s, not a re-index."""
    t0 = time.perf_counter()
    saved = [(b, b.enabled) for b in gdb.breakpoints()]
    quoted = _quote(path)
    try:
        with hooks.kx_activity(hooks.RELOAD):
            if slide == 0:
                gdb.execute(f"symbol-file {quoted}", to_string=True)
            else:
                _add_at_slide(quoted, slide, zero_based_sections)
    finally:
        for b, enabled in saved:
            try:
                if b.is_valid() and b.enabled != enabled:
                    b.enabled = enabled
            except (gdb.error, RuntimeError):
                pass
        machine.invalidate()
    return time.perf_counter() - t0


def _add_at_slide(quoted: str, slide: int, zero_based_sections: Iterable[str]) -> None:
    gdb.execute("symbol-file", to_string=True)
    keep = " ".join(f"-s {name} 0" for name in zero_based_sections)
    try:
        gdb.execute(f"add-symbol-file {quoted} -o {slide:#x} {keep}", to_string=True)
    except (gdb.error, KeyboardInterrupt) as exc:
        # Never leave gdb without symbols (a failure, or a Ctrl-C between
        # the two commands): back to the unrelocated file.
        gdb.execute(f"symbol-file {quoted}", to_string=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise errors.KxError(f"could not relocate the symbols by {slide:#x}: {exc}") from None


def add_module(path: str, args) -> None:
    """add-symbol-file for one module at its live section addresses (the
    arguments decoders/modules.add_symbol_file_args builds); a file loaded
    before for the same path is dropped first, so a reload moves it."""
    quoted = [_quote(path)] + list(args[1:])
    with hooks.kx_activity(hooks.RELOAD):
        for o in gdb.objfiles():
            if o.is_valid() and o.filename == path:
                try:
                    gdb.execute(f"remove-symbol-file {_quote(path)}", to_string=True)
                except gdb.error:
                    pass
                break
        try:
            gdb.execute("add-symbol-file " + " ".join(quoted), to_string=True)
        except gdb.error as exc:
            raise errors.KxError(f"add-symbol-file {path} failed: {exc}") from None
        finally:
            machine.invalidate()


def loaded_files() -> dict:
    """{basename: path} of the symbol files gdb has loaded."""
    import os
    return {os.path.basename(o.filename): o.filename for o in gdb.objfiles() if o.is_valid() and o.filename}


def load_main(path: str) -> float:
    """Make `path` gdb's main symbol file (`symbol-file`), without gdb's
    question when one is loaded already; returns seconds spent."""
    t0 = time.perf_counter()
    saved = gdb.parameter("confirm")
    gdb.execute("set confirm off", to_string=True)
    try:
        gdb.execute(f"symbol-file {_quote(path)}", to_string=True)
    finally:
        gdb.execute(f"set confirm {'on' if saved else 'off'}", to_string=True)
    machine.invalidate()
    return time.perf_counter() - t0
