"""KASLR and the vmlinux-versus-guest check, once per connection.

On the first stop after gdb connects (or the first kx command or $kx_*
function, whichever comes first) kx:

1. finds the text slide from independent sources and takes it only when at
   least two agree (decoders/kaslr.vote):
   - the architecture's own (Arch.kaslr_readings; x86-64: the IDT's
     handlers, and IA32_LSTAR on an explicit `kx kaslr`);
   - banner:   the file's linux_banner bytes found in memory at symbol + slide;
   - build_id: the file's GNU build-id note found in memory at .notes + slide;
2. decides whether the vmlinux is the running kernel: its linux_banner must
   be in memory at the agreed slide (one small read) and its build ID too;
3. relocates gdb's symbols (machine/symbol_files.py: add-symbol-file -o
   SLIDE, keeping zero-based per-cpu sections at 0) and kx's own ELF table,
   or, on a mismatch, makes the symbol layer refuse (symbols.UntrustedSymbols).

The verdict is cached per connection and vmlinux file; it is dropped when
gdb loads another objfile, loses the connection or the inferior exits.
"""
import dataclasses
import os
import time
from typing import Dict, List, Optional

import gdb

from gdbext import arch, errors
from gdbext.arch.base import SlideReadings
from gdbext.decoders import kaslr as kdec
from gdbext.kernel import symbols, version, vmlinux
from gdbext import machine
from gdbext.machine import hooks, symbol_files


@dataclasses.dataclass
class Detection:
    path: str
    file_banner: str
    build_id: Optional[str]
    sources: Dict[str, Optional[int]]   # every source, the architecture's first
    notes: Dict[str, str]
    report: Dict[str, object]           # the architecture's further `kx kaslr` keys
    vote: kdec.Vote
    match: Optional[bool]           # True, False (mismatch) or None (could not tell)
    mismatch: Optional[str] = None  # the one-line warning
    memory_banner: Optional[str] = None
    gdb_slide: Optional[int] = None
    applied: bool = False
    check_seconds: float = 0.0
    apply_seconds: float = 0.0
    relocated_now: bool = False

    @property
    def slide(self) -> Optional[int]:
        return self.vote.slide


_state = {"key": None, "detection": None}


# ---------------------------------------------------------------------------
# Connection bookkeeping

def _connection_key():
    """(inferior, connection, vmlinux file) or None when not attached."""
    try:
        inf = gdb.selected_inferior()
        if not inf.pid or not inf.threads():
            return None
        path = symbols.vmlinux_path()
    except (gdb.error, errors.KxError):
        return None
    return inf.num, getattr(inf, "connection_num", None), vmlinux.file_key(path)


def reset(*_args) -> None:
    """Forget the verdict: a new objfile, a lost connection, an exit (not
    kx's own reload of the symbols)."""
    if hooks.during(hooks.RELOAD):
        return
    _state["key"] = _state["detection"] = None
    symbols.set_slide(0)
    symbols.set_untrusted(None)


def current() -> Optional[Detection]:
    """The cached verdict for this connection, without touching the target."""
    key = _connection_key()
    if key is not None and key == _state["key"]:
        return _state["detection"]
    return None


# ---------------------------------------------------------------------------
# Reading the sources

def _memory_equals(link, expected, slide, cpu):
    try:
        got = machine.read_kernel(link + slide, len(expected), cpu)
    except errors.MemoryUnreadable:
        return None, None
    return got == expected, got


def _banner_source(candidates, cpu, notes):
    """(the first candidate slide at which memory holds the file's
    linux_banner or None, what memory held at the first readable one)."""
    link, raw = version.file_banner()
    if not raw.strip(b"\0"):
        notes["banner"] = "the vmlinux has no linux_banner"
        return None, None
    memory_banner = None
    for c in candidates:
        same, got = _memory_equals(link, raw, c, cpu)
        if memory_banner is None and got is not None:
            memory_banner = kdec.printable_prefix(got)
        if same:
            return c, memory_banner
    notes["banner"] = ("the file's linux_banner is not in memory at "
                       + (", ".join(f"+{c:#x}" for c in candidates) or "any valid slide"))
    return None, memory_banner


def _build_id_source(note, candidates, cpu, notes):
    """The first candidate slide at which memory holds the file's build-id
    note (vmlinux.VmlinuxImage.build_id_note), or None."""
    if note is None:
        notes["build_id"] = "the vmlinux has no GNU build-id note"
        return None
    readable = False
    for c in candidates:
        same, got = _memory_equals(note[0], note[1], c, cpu)
        readable = readable or got is not None
        if same:
            return c
    notes["build_id"] = ("the file's build ID is not in memory at any candidate slide" if readable
                         else "the .notes section is not readable in memory")
    return None


def detect(inject: bool = False) -> Detection:
    """Read the sources and decide (no relocation here)."""
    t0 = time.perf_counter()
    table = symbols.elf_table()
    if not isinstance(table, symbols.SymbolTable):
        raise errors.NotSupported("KASLR detection needs pyelftools (./scripts/lab bootstrap installs it)")
    path = table.path
    cpu = machine.selected_cpu()
    own = arch.current().kaslr_readings(table, cpu, inject)
    notes: Dict[str, str] = dict(own.notes)
    sources: Dict[str, Optional[int]] = dict(own.sources)

    # Candidate slides, most likely first; 0 covers nokaslr with no other source.
    candidates: List[int] = []
    for value in [*own.sources.values(), *own.candidates, 0]:
        if value is not None and _slide_problem(value) is None and value not in candidates:
            candidates.append(value)

    file_banner = version.banner_from_file()
    sources["banner"], memory_banner = _banner_source(candidates, cpu, notes)
    note = vmlinux.image(path).build_id_note()
    build_id = note[2] if note else None
    sources["build_id"] = _build_id_source(note, candidates, cpu, notes)

    a = arch.current()
    vote = kdec.vote(sources, a.kaslr_align, max_slide=a.kaslr_max_slide)
    for name, why in vote.rejected.items():
        notes.setdefault(name, why)
    match, mismatch = _verdict(sources, vote, own, file_banner, memory_banner, path, notes)
    return Detection(path=path, file_banner=file_banner, build_id=build_id, sources=sources, notes=notes,
                     report=own.report, vote=vote, match=match, mismatch=mismatch,
                     memory_banner=memory_banner, check_seconds=time.perf_counter() - t0)


def _slide_problem(value: int):
    a = arch.current()
    return kdec.slide_problem(value, a.kaslr_align, a.kaslr_max_slide)


def _verdict(sources, vote, own: SlideReadings, file_banner, memory_banner, path, notes):
    """(match, mismatch message).  A mismatch needs evidence: the
    architecture's sources read the running kernel's state and the file's
    banner is not where they say.  Early boot (other tables, the banner
    unmapped) gives None."""
    if vote.agreed and sources["banner"] == vote.slide:
        if sources["build_id"] is None and "is not in memory" in notes.get("build_id", ""):
            why = "its linux_banner is in memory but its build ID is not (a different build of the same version)"
        else:
            return True, None
    elif sources["banner"] is not None:
        # The banner is there, but nothing else agrees on the slide.
        if own.evidence:
            why = (f"its banner is in memory at slide {sources['banner']:#x}, but {own.contradicted_by} "
                   "say otherwise")
        else:
            return None, None
    elif own.evidence and memory_banner is not None:
        seen = ""
        if memory_banner and memory_banner.startswith("Linux version"):
            seen = f" (memory there holds Linux {kdec.banner_summary(memory_banner)})"
        why = f"its linux_banner is not in the guest's memory at any slide {own.placed_by} allows" + seen
    else:
        return None, None  # no evidence either way: the runtime tables or the banner's page unreadable
    summary = kdec.banner_summary(file_banner) or path
    return False, (f"the vmlinux does not match the running kernel: {path} is Linux {summary}, but {why}; "
                   "load the running kernel's vmlinux (`file PATH`); until then kx refuses "
                   "commands that depend on kernel offsets")


# ---------------------------------------------------------------------------
# Relocating gdb's symbols

def gdb_slide(table) -> Optional[int]:
    """The slide gdb's own symbols carry now: its &_text minus the file's."""
    link = table.link_address("_text")
    if link is None:
        return None
    value = symbol_files.loaded_address("_text")
    return None if value is None else kdec.signed_delta(value, link)


# ---------------------------------------------------------------------------
# The entry points

def ensure(force: bool = False, inject: bool = False, relocate_gdb: bool = True) -> Optional[Detection]:
    """The verdict for this connection: detect, relocate, cache.  None when
    there is nothing to check (not attached, or the target is running).
    Raises only KxError/gdb.error when `force` (the explicit `kx kaslr`).
    `relocate_gdb=False` (inside a gdb expression: $kx_* functions) slides
    kx's own symbols only and leaves gdb's reload, and the cached verdict,
    to the next stop or kx command: reloading the symbol file would free
    objfiles the expression being evaluated still uses."""
    key = _connection_key()
    if key is None:
        return None
    if not force and key == _state["key"]:
        return _state["detection"]
    try:
        machine.require_stopped()
        regs = machine.registers()
    except errors.KxError:
        if force:
            raise
        return None
    a = arch.current()
    if not a.kernel_mode_ready(regs):
        # No kernel runs yet (QEMU -S, early boot).
        if force:
            raise errors.NotSupported(f"the CPU is not in {a.kernel_mode_name} yet: no kernel to check")
        return None
    previous = _state["detection"] if key == _state["key"] else None
    det = detect(inject=inject)
    table = symbols.elf_table()
    if det.match is False:
        symbols.set_slide(0, det.path)
        symbols.set_untrusted(det.mismatch)
    else:
        symbols.set_untrusted(None)
        if det.slide is not None:
            det.gdb_slide = gdb_slide(table)
            if det.gdb_slide != det.slide and not relocate_gdb:
                symbols.set_slide(det.slide, det.path)
                return det
            if det.gdb_slide != det.slide:
                det.apply_seconds = symbol_files.reload(table.path, det.slide, vmlinux.image(table.path).zero_based_sections)
                det.relocated_now = True
                det.gdb_slide = gdb_slide(table)
            det.applied = det.gdb_slide == det.slide
            symbols.set_slide(det.slide, det.path)
        else:
            det.gdb_slide = gdb_slide(table)
    if previous is not None and not det.relocated_now:
        det.apply_seconds = previous.apply_seconds  # what the relocation cost when it happened
    # An undecided verdict (early boot, unreadable memory) is not kept: the
    # next stop or kx command looks again.
    _state["key"] = (_connection_key() or key) if det.match is not None else None
    _state["detection"] = det if det.match is not None else None
    return det


def mismatch_message(force: bool = False, relocate_gdb: bool = True) -> Optional[str]:
    """The mismatch warning for this connection, or None (checks once)."""
    try:
        det = ensure(force=force, relocate_gdb=relocate_gdb)
    except (errors.KxError, gdb.error):
        return None
    return det.mismatch if det is not None else None


def _announce(det: Detection) -> None:
    if det.match is False:
        gdb.write(f"kx: WARNING: {det.mismatch}\n")
    elif det.relocated_now:
        gdb.write(f"kx: KASLR text slide {det.slide:#x} ({', '.join(det.vote.agreeing)} agree): "
                  f"symbols relocated in {det.apply_seconds:.2f} s\n")
    elif det.slide is None and det.match is None:
        gdb.write("kx: could not determine the KASLR slide (see `kx kaslr`)\n")


_announced_unknown = [None]


def _on_stop(_event=None) -> None:
    """The first stop of a connection (gdb stops when `target remote`
    attaches) runs the check, so `break` and `info symbol` are right from
    the start.  Never lets an exception into gdb's stop handling."""
    if hooks.during():
        return
    try:
        key = _connection_key()
        if key is None or key == _state["key"]:
            return
        det = ensure()
        if det is not None and (det.match is not None or _announced_unknown[0] != key):
            _announce(det)
            if det.match is None:
                _announced_unknown[0] = key  # say "could not determine" once per connection
    except KeyboardInterrupt:
        # Ctrl-C at the attach stop: gdb prints a Python exception for what
        # escapes a stop hook and nothing is running to interrupt, so drop
        # it; the verdict was not cached and the next kx command decides.
        pass
    except Exception:  # noqa: BLE001 - a stop hook must never break gdb
        pass


def install_hooks() -> None:
    hooks.connect(_on_stop, "stop")
    hooks.connect(_on_objfile, "objfile")
    hooks.connect(reset, "objfiles_cleared", "exit", "disconnect")


def _on_objfile(event) -> None:
    """Only the vmlinux's own objfile changes the verdict: `add-symbol-file
    module.ko` must not drop the slide kx's symbols carry."""
    objfile = getattr(event, "new_objfile", None) or getattr(event, "objfile", None)
    try:
        if objfile is not None and objfile.filename and \
                os.path.realpath(objfile.filename) != os.path.realpath(symbols.vmlinux_path()):
            return
    except Exception:  # noqa: BLE001 - no vmlinux known: forget, to be safe
        pass
    reset()


# ---------------------------------------------------------------------------
# What `kx kaslr` reports beyond the slide

def memory_layout(det: Detection, warnings: List[str]) -> dict:
    """What the architecture reads once the slide is known (JSON keys)."""
    return arch.current().kaslr_memory_layout(det.slide, warnings)
