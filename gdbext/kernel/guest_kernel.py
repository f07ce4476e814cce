# SPDX-License-Identifier: GPL-2.0-or-later
"""The running kernel's own description of itself, read from guest memory
when there is no vmlinux: its symbols (kallsyms) and its types (BTF).

1. The CPU names a place in the kernel's text with no symbol at all
   (Arch.kernel_text_pointers; x86-64: the IDT's handlers).
2. kallsyms' arrays sit in .rodata after .text: kx reads forward from there
   in 1 MiB chunks until decoders/kallsyms.find_tables() finds them, and
   decodes every symbol (runtime addresses: KASLR is already applied).
3. The GNU build-id note (__start_notes; with a text-only kallsyms, found
   by its header after the arrays) names the build; VMCOREINFO
   (vmcoreinfo_data, 6.0+ lists the kallsyms arrays) confirms the scan.
4. The BTF blob is between __start_BTF and __stop_BTF.

The result is cached per build ID under $KX_CACHE (default ~/.cache/kx)
/guest-kernels/<build-id>/: the next attach reads the IDT, then 36 bytes at
each cached build's note, and decodes nothing.
"""
import bisect
import dataclasses
import json
import os
import time
from typing import Dict, List, Optional, Tuple

from gdbext import arch, errors
from gdbext.decoders import elfnote, kallsyms
from gdbext.decoders.kaslr import relocatable as _relocatable
from gdbext.kernel import backend, guest_vmcoreinfo


def _moves(address: int) -> bool:
    """Whether a kallsyms address moves with the text slide: in the kernel
    image's window, which is this architecture's (i386: all of PAGE_OFFSET)."""
    return _relocatable(address, arch.current().kaslr_image_start)

CHUNK = 1 << 20
SCAN_LIMIT = 128 << 20     # text and rodata of the largest image we know is ~60 MiB
SUBCHUNK = 64 << 10        # the granule of a chunk with unmapped pages
MAX_HOLE = 8               # MiB of nothing before the scan gives up
_TAIL = 2 << 20            # what follows the token index: kallsyms_offsets, the base
FORMAT = 3                 # bump when the cached files change shape
# Objects kx's file model reads as bytes (syscall tables, the dispatch
# switches, whose calls are rel32): the symbol file carries a copy of them
# from memory, to the next symbol or 64 KiB.  Not syscall_init: its
# immediates are relocated and cannot be moved back (kx msr falls back).
COPIED = ("sys_call_table", "ia32_sys_call_table", "x32_sys_call_table", "x64_sys_call",
          "ia32_sys_call", "x32_sys_call")


@dataclasses.dataclass
class GuestKernel:
    build_id: str
    text: int                          # runtime address of _text
    symbols: List[Tuple[int, str, str]]    # (address, type letter, name), kallsyms order
    btf_path: Optional[str]
    directory: str
    sources: Dict[str, str]            # fact -> where it came from
    seconds: Dict[str, float]
    cached: bool = False
    _btf_syscalls: Optional[dict] = None

    def btf_syscalls(self) -> Dict[str, List[List[str]]]:
        """{"__do_sys_NAME": [[ctype, name], ...]} from BTF ({} without)."""
        from gdbext.kernel import guest_elf
        if self._btf_syscalls is None:
            try:
                with open(os.path.join(self.directory, guest_elf.SIGNATURES)) as f:
                    self._btf_syscalls = json.load(f)
            except (OSError, ValueError):
                self._btf_syscalls = {}
        return self._btf_syscalls

    def has_data_symbols(self) -> bool:
        """Whether kallsyms lists data (CONFIG_KALLSYMS_ALL): without it,
        text symbols and a few section markers only (scripts/kallsyms.c's
        symbol_valid; 686-pae 6.1: one, __init_begin)."""
        return sum(t in "dDbB" for _a, t, _n in self.symbols) > len(self.symbols) // 100

    def address(self, name: str) -> Optional[int]:
        for a, _t, n in self.symbols:
            if n == name:
                return a
        return None


def cache_root() -> str:
    root = os.environ.get("KX_CACHE") or os.path.expanduser("~/.cache/kx")
    return os.path.join(root, "guest-kernels")


# ---------------------------------------------------------------------------
# Reading from the guest

def _read(address: int, size: int, cpu: int) -> bytes:
    return backend.read_kernel(address, size, cpu)


def scan_kallsyms(start: int, cpu: int) -> Tuple[List[kallsyms.Symbol], Dict[str, int], int]:
    """(symbols, {array: address}, bytes read) scanning forward from `start`."""
    base = start & ~0xFFF
    blob = bytearray()
    holes = 0
    while len(blob) < SCAN_LIMIT and holes < MAX_HOLE:
        before = len(blob)
        chunk = _read_with_holes(base + before, cpu)
        holes = holes + 1 if not chunk.strip(b"\0") else 0
        blob += chunk
        # The digit tokens may straddle the chunk boundary: look back a little.
        if kallsyms._DIGITS in blob[max(0, before - 32):]:
            try:
                found = kallsyms.find_tables(bytes(blob))
            except errors.DecodeError:
                continue
            blob += _read(base + len(blob), _TAIL, cpu)
            tables = kallsyms.locate_offsets(bytes(blob), found, arch.current().pointer_size)
            syms = kallsyms.symbols_from_blob(bytes(blob), base, tables)
            where = {name: base + getattr(tables, name) for name in
                     ("num_syms", "names", "markers", "token_table", "token_index", "offsets")}
            if tables.relative_base is not None:
                where["relative_base"] = base + tables.relative_base
            return syms, where, len(blob)
    raise errors.KxError(f"no kallsyms in the {len(blob) >> 20} MiB of kernel memory after {base:#x} "
                         "(a kernel built without CONFIG_KALLSYMS?)")


def _read_with_holes(address: int, cpu: int) -> bytes:
    """CHUNK bytes at `address`, zeros where nothing is mapped: the kernel
    frees the pages between the end of its text and .rodata once boot is
    done (free_kernel_image_pages, arch/x86/mm/init_64.c)."""
    try:
        return _read(address, CHUNK, cpu)
    except errors.MemoryUnreadable:
        pass
    parts = []
    for off in range(0, CHUNK, SUBCHUNK):
        try:
            parts.append(_read(address + off, SUBCHUNK, cpu))
        except errors.MemoryUnreadable:
            parts.append(bytes(SUBCHUNK))
    return b"".join(parts)


def _build_id_note(by_name: Dict[str, int], cpu: int, after: int) -> Tuple[int, bytes, str]:
    """(address, note bytes, hex build ID) of the GNU build-id note: at
    __start_notes, or, when kallsyms has only text symbols (no
    CONFIG_KALLSYMS_ALL), searched by its header after the kallsyms arrays
    (RO_DATA puts NOTES after them, include/asm-generic/vmlinux.lds.h)."""
    start, stop = by_name.get("__start_notes"), by_name.get("__stop_notes")
    if start is None or stop is None:
        return _search_build_id(after, cpu)
    if not 0 < stop - start < 65536:
        raise errors.KxError("kallsyms' __start_notes/__stop_notes make no notes section")
    found = elfnote.find_build_id(_read(start, stop - start, cpu))
    if found is None:
        raise errors.KxError("the kernel's notes hold no GNU build ID")
    offset, desc = found
    note = _read(start + offset, 16 + len(desc), cpu)
    return start + offset, note, desc.hex()


# namesz 4, descsz 20 (a SHA-1), NT_GNU_BUILD_ID, "GNU\0": ld's --build-id note.
_BUILD_ID_HEADER = bytes.fromhex("04000000" "14000000" "03000000") + b"GNU\0"
NOTE_SEARCH = 4 << 20


_EMBEDDED_ELF = 4 << 12    # a vDSO image: page-aligned raw ELF, a few pages


def _inside_embedded_elf(blob: bytes, at: int) -> bool:
    """Whether the note at `at` belongs to an ELF image the kernel carries
    (the vDSO's raw_data, page-aligned: arch/x86/entry/vdso/vdso2c.h),
    which has a build-id note of its own."""
    page = at & ~0xFFF
    return any(blob[p:p + 4] == b"\x7fELF" for p in range(page, max(-1, page - _EMBEDDED_ELF), -0x1000))


def _search_build_id(after: int, cpu: int) -> Tuple[int, bytes, str]:
    base = after & ~0xFFF
    blob = b""
    for off in range(0, NOTE_SEARCH, CHUNK):
        blob += _read_with_holes(base + off, cpu)
        at = blob.find(_BUILD_ID_HEADER)
        while 0 <= at <= len(blob) - 36:
            if not _inside_embedded_elf(blob, at):
                return base + at, blob[at:at + 36], blob[at + 16:at + 36].hex()
            at = blob.find(_BUILD_ID_HEADER, at + 1)
    raise errors.KxError(f"kallsyms has no __start_notes and no GNU build-id note follows the kallsyms "
                         f"arrays in {NOTE_SEARCH >> 20} MiB from {base:#x}: cannot name this build")


def vmcoreinfo(by_name: Dict[str, int], cpu: int) -> Dict[str, str]:
    """VMCOREINFO's KEY=VALUE lines (kernel/vmcore_info.c), {} when absent."""
    where = by_name.get("vmcoreinfo_data")
    if where is None:
        return {}
    return vmcoreinfo_at(where, lambda address, size: _read(address, size, cpu))


def vmcoreinfo_at(where: int, read) -> Dict[str, str]:
    """VMCOREINFO's KEY=VALUE lines from the page the pointer at `where`
    (vmcoreinfo_data) names, through `read(address, size)`; {} when unreadable."""
    try:
        page = int.from_bytes(read(where, 8), "little")
        text = read(page, 4096).split(b"\0", 1)[0].decode("ascii", "replace")
    except errors.MemoryUnreadable:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _confirm_with_vmcoreinfo(info: Dict[str, str], where: Dict[str, int], sources: Dict[str, str]) -> None:
    names = info.get("SYMBOL(kallsyms_names)")
    if names is None:
        sources["vmcoreinfo"] = "no kallsyms in VMCOREINFO (before 6.0, or not readable)"
    elif int(names, 16) != where["names"]:
        raise errors.KxError(f"VMCOREINFO puts kallsyms_names at {names}, the scan at {where['names']:#x}")
    else:
        sources["vmcoreinfo"] = "SYMBOL(kallsyms_*) agree with the scan"


# ---------------------------------------------------------------------------
# The cache

def _meta_path(directory: str) -> str:
    return os.path.join(directory, "meta.json")


def _save(gk: GuestKernel, pointers: Dict[str, int], note: Tuple[int, bytes, str]) -> None:
    os.makedirs(gk.directory, exist_ok=True)
    with open(os.path.join(gk.directory, "kallsyms"), "w") as f:
        for a, t, n in gk.symbols:
            f.write(f"{a:016x} {t} {n}\n")
    meta = {"format": FORMAT, "build_id": gk.build_id, "text": gk.text,
            "pointers": {k: v - gk.text for k, v in pointers.items()},
            "note_offset": note[0] - gk.text, "note": note[1].hex(), "sources": gk.sources,
            "seconds": gk.seconds}
    tmp = _meta_path(gk.directory) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, _meta_path(gk.directory))


def _cached(pointers: Dict[str, int], cpu: int) -> Optional[GuestKernel]:
    """The cached build whose build-id note is in memory where the CPU's
    text pointers put it, or None."""
    root = cache_root()
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return None
    for name in names:
        directory = os.path.join(root, name)
        try:
            with open(_meta_path(directory)) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if meta.get("format") != FORMAT:
            continue
        for source, offset in meta["pointers"].items():
            if source not in pointers:
                continue
            text = pointers[source] - offset
            note = bytes.fromhex(meta["note"])
            try:
                same = _read(text + meta["note_offset"], len(note), cpu) == note
            except errors.MemoryUnreadable:
                same = False
            if same:
                gk = _from_cache(directory, meta, text)
                # This boot's facts, not the addresses of the attach that filled the cache.
                gk.sources.update({
                    "kernel_text": f"{source} handler {pointers[source]:#x}",
                    "kallsyms": f"cached: {len(gk.symbols)} symbols decoded from memory at an earlier attach",
                    "build_id": f"GNU build-id note in memory at {text + meta['note_offset']:#x} "
                                "matches the cache"})
                if gk.btf_path:
                    gk.sources["btf"] = (f"cached: {os.path.getsize(gk.btf_path)} bytes read from __start_BTF "
                                         "at an earlier attach")
                return gk
            break
    return None


def _from_cache(directory: str, meta: dict, text: int) -> GuestKernel:
    slide = text - meta["text"]
    symbols = []
    with open(os.path.join(directory, "kallsyms")) as f:
        for line in f:
            a, t, n = line.rstrip("\n").split(" ", 2)
            a = int(a, 16)
            symbols.append((a + slide if _moves(a) else a, t, n))
    btf = os.path.join(directory, "btf")
    sources = dict(meta["sources"])
    sources["cache"] = f"{directory} (build ID matched in memory)"
    return GuestKernel(build_id=meta["build_id"], text=text, symbols=symbols,
                       btf_path=btf if os.path.exists(btf) else None, directory=directory,
                       sources=sources, seconds=dict(meta.get("seconds", {})), cached=True)


# ---------------------------------------------------------------------------
# The entry point

def _text_pointers(cpu: int) -> Dict[str, int]:
    pointers = arch.current().kernel_text_pointers(cpu)
    if not pointers:
        raise errors.KxError("the CPU names no kernel text yet (no IDT): stop the guest after boot")
    return pointers


def _read_btf(gk: GuestKernel, by_name: Dict[str, int], cpu: int) -> None:
    start, stop = by_name.get("__start_BTF"), by_name.get("__stop_BTF")
    if start is None or stop is None:
        gk.sources["btf"] = "none: this kernel was built without CONFIG_DEBUG_INFO_BTF"
        return
    t0 = time.perf_counter()
    blob = _read(start, stop - start, cpu)
    gk.seconds["btf_read"] = round(time.perf_counter() - t0, 3)
    gk.btf_path = os.path.join(gk.directory, "btf")
    os.makedirs(gk.directory, exist_ok=True)
    with open(gk.btf_path, "wb") as f:
        f.write(blob)
    gk.sources["btf"] = f"{stop - start} bytes at __start_BTF {start:#x} (kallsyms)"


def load(cpu: Optional[int] = None) -> GuestKernel:
    """The running kernel's symbols and BTF, from the cache or from memory."""
    cpu = backend.check_cpu(cpu)
    t0 = time.perf_counter()
    pointers = _text_pointers(cpu)
    hit = _cached(pointers, cpu)
    if hit is not None:
        hit.seconds = {"attach": round(time.perf_counter() - t0, 3)}
        return hit
    syms, sources, scanned_where, arrays_end = _find_kallsyms(pointers, cpu)
    t_scan = time.perf_counter() - t0
    by_name = {}
    for s in syms:
        by_name.setdefault(s.name, s.address)
    if "_text" not in by_name:
        raise errors.KxError("kallsyms has no _text")
    note = _build_id_note(by_name, cpu, arrays_end)
    sources["build_id"] = (f"GNU build-id note at {note[0]:#x} (__start_notes, kallsyms)" if "__start_notes" in
                           by_name else f"GNU build-id note found by its header at {note[0]:#x}, after the "
                           "kallsyms arrays (kallsyms has text symbols only: no CONFIG_KALLSYMS_ALL)")
    if scanned_where is not None and "vmcoreinfo_data" not in by_name:
        sources["vmcoreinfo"] = ("not located: no vmcoreinfo_data in kallsyms (text symbols only) and no "
                                 "page-table route to it on this architecture")
    elif scanned_where is not None:
        _confirm_with_vmcoreinfo(vmcoreinfo(by_name, cpu), scanned_where, sources)
    gk = GuestKernel(build_id=note[2], text=by_name["_text"],
                     symbols=[(s.address, s.type, s.name) for s in syms], btf_path=None,
                     directory=os.path.join(cache_root(), note[2]), sources=sources,
                     seconds={"kallsyms_scan": round(t_scan, 3)})
    _read_btf(gk, by_name, cpu)
    _save_raw(gk, by_name, note, cpu)
    gk.seconds["attach"] = round(time.perf_counter() - t0, 3)
    _save(gk, pointers, note)
    return gk


def _find_kallsyms(pointers: Dict[str, int], cpu: int):
    """(symbols, sources, None, end of the arrays) through VMCOREINFO
    (6.0+), else (symbols, sources, {array: address}, end) by the scan from the lowest text pointer (the
    arrays are then checked against VMCOREINFO found through kallsyms)."""
    source, start = min(pointers.items(), key=lambda kv: kv[1])
    sources = {"kernel_text": f"{source} handler {start:#x}"}
    found = guest_vmcoreinfo.find(cpu)
    where = guest_vmcoreinfo.array_addresses(found[2]) if found else {}
    if where:
        syms, low, size = guest_vmcoreinfo.read_kallsyms(where, cpu)
        sources["kallsyms"] = (f"VMCOREINFO's SYMBOL(kallsyms_*): {len(syms)} symbols from {size >> 10} KiB "
                               f"at {low:#x}, kallsyms_names at {where['names']:#x}")
        sources["vmcoreinfo"] = (f"found with no symbol: page {found[1]:#x}, pointed to from {found[0]:#x} in "
                                 "the kernel's writable data; the finder agrees on the arrays")
        return syms, sources, None, where["token_index"] + 512
    syms, where, scanned = scan_kallsyms(start, cpu)
    sources["kallsyms"] = (f"scan of {scanned >> 20} MiB from {start & ~0xFFF:#x}: "
                           f"{len(syms)} symbols, kallsyms_names at {where['names']:#x}")
    return syms, sources, where, where["token_index"] + 512


def _save_raw(gk: GuestKernel, by_name: Dict[str, int], note: Tuple[int, bytes, str], cpu: int) -> None:
    """The bytes the symbol file carries for kx's KASLR check: the notes
    (the build-id note alone when kallsyms does not bound them) and
    linux_banner (up to its NUL)."""
    raw = {}
    start, stop = by_name.get("__start_notes"), by_name.get("__stop_notes")
    raw[".notes"] = (start, _read(start, stop - start, cpu)) if start and stop else note[:2]
    if "linux_banner" in by_name:
        banner = _read(by_name["linux_banner"], 512, cpu)
        raw[".kx.banner"] = (by_name["linux_banner"], banner.split(b"\0", 1)[0] + b"\0")
    addresses = sorted({a for a, _t, _n in gk.symbols})
    for name in COPIED:
        start = by_name.get(name)
        if start is None:
            continue
        i = bisect.bisect_right(addresses, start)
        end = min(addresses[i] if i < len(addresses) else start + 65536, start + 65536)
        data = _read(start, end - start, cpu)
        if name.endswith("_table"):
            # Padding up to the next symbol is not part of the table: every
            # real entry points somewhere (sys_ni_syscall at least).
            word = arch.current().pointer_size
            while data.endswith(bytes(word)):
                data = data[:-word]
        raw[".kx.copy." + name] = (start, data)
    os.makedirs(gk.directory, exist_ok=True)
    with open(os.path.join(gk.directory, "raw.json"), "w") as f:
        json.dump({k: [a, b.hex()] for k, (a, b) in raw.items()}, f)


def raw_sections(gk: GuestKernel) -> List[Tuple[str, int, bytes]]:
    with open(os.path.join(gk.directory, "raw.json")) as f:
        return [(k, a, bytes.fromhex(b)) for k, (a, b) in json.load(f).items()]


def symbol_file(gk: GuestKernel) -> str:
    """The ELF gdb loads (kernel/guest_elf.py), built once per build ID."""
    from gdbext.kernel import guest_elf
    path = os.path.join(gk.directory, guest_elf.ELF_NAME)
    if not os.path.exists(path):
        blob = b""
        if gk.btf_path:
            with open(gk.btf_path, "rb") as f:
                blob = f.read()
        gk.seconds.update(guest_elf.build(gk.directory, gk.symbols, blob, raw_sections(gk),
                                          arch.current().kernel_link_text))
    return path
