# SPDX-License-Identifier: GPL-2.0-or-later
"""A symbol file for gdb built from what the guest says about itself
(kernel/guest_kernel.py): kallsyms' symbols, BTF's types as DWARF, and the
few bytes kx's KASLR check compares with memory.

The file is an ELF linked at the running kernel's addresses:
- `.text` (_text to _etext) and `.kx.data` (the rest of the image) are
  NOBITS sections holding every kallsyms symbol, functions typed as such;
  per-cpu symbols (absolute below 6.15) sit in a zero-based `.data..percpu`
  as in a real vmlinux, so kx's relocation keeps them at 0;
- the C that decoders/btf_c.py emits from BTF, compiled with `gcc -g`,
  gives every struct, union, enum and typedef, and typed variables for
  BTF's VARs (per-cpu data) and for the globals kx reads (init_task,
  sys_call_table, linux_banner);
- `.notes` and the linux_banner hold the guest's own bytes, so `kx kaslr`
  checks this file against memory like a vmlinux.

objcopy adds the symbols after the link: ld keeps no local symbol of a
NOBITS section, and static names repeat (many `cmp` functions).
"""
import collections
import json
import os
import struct
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from gdbext import arch, errors
from gdbext.decoders import btf as B, btf_c
from gdbext.decoders.kaslr import relocatable as _relocatable


def _moves(address: int) -> bool:
    """Whether a kallsyms address moves with the text slide: in the kernel
    image's window, which is this architecture's (i386: all of PAGE_OFFSET)."""
    return _relocatable(address, arch.current().kaslr_image_start)

ELF_NAME = "kernel-6.elf"
SIGNATURES = "btf-syscalls.json"   # the syscall bodies' prototypes (decoders/btf_c.py)     # the number changes with the file's shape
_GLOBALS = {"init_task": "struct task_struct"}
_ARRAYS = {"sys_call_table": "sys_call_ptr_t", "ia32_sys_call_table": "sys_call_ptr_t",
           "x32_sys_call_table": "sys_call_ptr_t"}


def _flags(letter: str) -> str:
    """objcopy --add-symbol flags for a kallsyms type letter."""
    binding = "weak" if letter in "wWvV" else "global" if letter.isupper() else "local"
    return f"{binding},{'function' if letter in 'tTwW' else 'object'}"


def _section_of(address: int, text: Tuple[int, int]) -> str:
    if not _moves(address):
        return ".data..percpu"
    return ".kx.text" if text[0] <= address < text[1] else ".kx.data"


def symbol_arguments(symbols, text: Tuple[int, int], bases: Dict[str, int], skip) -> List[str]:
    """objcopy arguments adding every kallsyms symbol.  ld would drop the
    local ones (it keeps no local symbol of a NOBITS section, binutils
    2.40), and a static name can repeat, so objcopy adds them after the link."""
    out: List[str] = []
    globals_seen = set()
    for address, letter, name in symbols:
        if (address, name) in skip or not name or any(c in name for c in "=,\\ '\"\n"):
            continue
        flags = _flags(letter)
        if not flags.startswith("local"):
            if name in globals_seen:
                flags = "local" + flags[flags.index(","):]
            globals_seen.add(name)
        section = _section_of(address, text)
        out += ["--add-symbol", f"{name}={section}:{address - bases[section]:#x},{flags}"]
    return out


def typed_variables(btf: Optional[B.Btf], emitter: Optional[btf_c.Emitter], by_name: Dict[str, List[int]],
                    sizes: Dict[str, int]) -> List[Tuple[int, str, str]]:
    """[(address, name, C definition)] of the variables whose type kx knows
    (with no BTF: the syscall tables as words, so that their symbols keep
    the length copied from memory, and the banner)."""
    wanted: Dict[str, str] = {}
    for t in btf.types[1:] if btf is not None else ():
        if t.kind == B.VAR and t.name:
            wanted[t.name] = emitter.decl(t.type, t.name)
    for name, spec in _GLOBALS.items() if btf is not None else ():
        t = btf.named(spec)
        if t is not None:
            wanted[name] = emitter.decl(t.id, name)
    for name, elem in _ARRAYS.items():
        t = btf.named(elem) if btf is not None else None
        if sizes.get(name):
            count = f"{name}[{sizes[name] // 8}]"
            wanted[name] = emitter.decl(t.id, count) if t is not None else f"unsigned long {count}"
    if sizes.get("linux_banner"):
        wanted["linux_banner"] = f"char linux_banner[{sizes['linux_banner']}]"
    taken = set(emitter.names.values()) | emitter.enumerators if emitter is not None else set()
    out = []
    for name, decl in wanted.items():
        addrs = by_name.get(name, [])
        if len(addrs) == 1 and name not in taken:
            section = ".kxvar." + name
            out.append((addrs[0], name, f'{decl} __attribute__((section("{section}")));'))
    return out


def _symbol_sizes(symbols) -> Dict[str, int]:
    """Distance to the next symbol, for the arrays whose length BTF lacks."""
    out = {}
    for (a, _l, n), (b, _l2, _n2) in zip(symbols, symbols[1:]):
        if n in _ARRAYS or n == "linux_banner":
            out[n] = b - a
    return out


def linker_script(bounds: Dict[str, Tuple[int, int]], variables, raw_sections) -> str:
    """Every section at its address; typed variables placed inside theirs."""
    lines = ["SECTIONS {"]
    placed = collections.defaultdict(list)
    for address, name, _decl in sorted(variables):
        for section, (lo, hi) in bounds.items():
            if lo <= address < hi:
                placed[section].append((address - lo, name))
                break
    for section, (lo, hi) in bounds.items():
        body = [f"*({section})"]
        end = 0
        for off, name in placed[section]:
            if off >= end:
                body.append(f". = {off:#x}; *(.kxvar.{name})")
                end = off + 1
        body.append(f". = MAX(., {hi - lo:#x});")
        lines.append(f"  {section} {lo:#x} (NOLOAD) : {{ {' '.join(body)} }}")
    for section, address in raw_sections:
        lines.append(f"  {section} {address:#x} : {{ *({section}) }}")
    lines.append("  /DISCARD/ : { *(.comment) *(.note.GNU-stack) }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _raw_assembly(raw: List[Tuple[str, int, bytes]]) -> str:
    # PROGBITS, not NOTE: gdb must not take the kernel's build ID for this
    # file's (its index cache would hand it the vmlinux's DWARF index).
    # The empty NOBITS sections give the output sections their flags: gdb
    # takes symbols of an "ax" section for functions.
    parts = [f'\t.section {name},"{flags}",@nobits' for name, flags in
             ((".kx.text", "ax"), (".kx.data", "aw"), (".data..percpu", "aw"))]
    for section, _address, data in raw:
        parts.append(f'\t.section {section},"a",@progbits\n\t.byte ' + ",".join(str(b) for b in data))
    return "\n".join(parts) + "\n"


def _bounds(symbols, text: Tuple[int, int]) -> Dict[str, Tuple[int, int]]:
    lo_hi: Dict[str, List[int]] = {}
    for address, _l, _n in symbols:
        s = _section_of(address, text)
        r = lo_hi.setdefault(s, [address, address])
        r[0], r[1] = min(r[0], address), max(r[1], address)
    out = {".kx.text": text}
    if ".kx.data" in lo_hi:
        out[".kx.data"] = (text[1], lo_hi[".kx.data"][1] + 0x1000)
    if ".data..percpu" in lo_hi:
        out[".data..percpu"] = (0, lo_hi[".data..percpu"][1] + 0x1000)
    return out


# A 32-bit x86 kernel gets a 32-bit ELF (gdb takes the file's
# architecture: an x86-64 file would switch an i386 session's registers).
_TOOL_FLAGS_386 = {"gcc": ["-m32"], "as": ["--32"], "ld": ["-m", "elf_i386"]}


def _run(argv, cwd):
    if arch.current().elf_machine == "EM_386":
        argv = [argv[0], *_TOOL_FLAGS_386.get(argv[0], []), *argv[1:]]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise errors.KxError(f"{argv[0]} failed building the symbol file: "
                             + (done.stderr.strip().splitlines() or ["?"])[0])


def rebase(symbols, raw: List[Tuple[str, int, bytes]], link_text: int):
    """(symbols, raw) moved so that _text is at `link_text`: the file is
    then linked where the kernel is without KASLR, and kx's KASLR code
    finds each boot's real slide, never a negative one.  The syscall
    tables' entries move too (the kernel relocated them in memory)."""
    runtime = next(a for a, _l, n in symbols if n == "_text")
    shift = min(link_text, runtime) - runtime
    if not shift:
        return symbols, raw

    def move(a: int) -> int:
        return a + shift if _moves(a) else a
    moved = []
    for section, address, data in raw:
        if section.endswith("_table"):
            fmt = "Q" if arch.current().pointer_size == 8 else "I"
            values = struct.unpack(f"<{len(data) // struct.calcsize(fmt)}{fmt}", data)
            data = struct.pack(f"<{len(values)}{fmt}", *(move(v) if v else 0 for v in values))
        moved.append((section, move(address), data))
    return [(move(a), letter, n) for a, letter, n in symbols], moved


def build(directory: str, symbols, btf_blob: bytes, raw: List[Tuple[str, int, bytes]],
          link_text: int = None) -> Dict[str, float]:
    """Write directory/ELF_NAME; `raw` is [(section, address, bytes)]
    copied from memory (.notes, the banner, the syscall tables); with
    `link_text`, linked there (rebase).  Returns timings."""
    t0 = time.perf_counter()
    if link_text is not None:
        symbols, raw = rebase(symbols, raw, link_text)
    by_name: Dict[str, List[int]] = collections.defaultdict(list)
    for a, _l, n in symbols:
        by_name[n].append(a)
    text = (by_name["_text"][0], by_name["_etext"][0])
    bounds = _bounds(symbols, text)
    source = "/* no BTF */\n"
    btf = emitter = None
    if btf_blob:
        btf = B.parse(btf_blob)
        emitter = btf_c.Emitter(btf)
        source = btf_c.emit(btf)
        with open(os.path.join(directory, SIGNATURES), "w") as f:
            json.dump(btf_c.syscall_prototypes(btf), f)
    sizes = _symbol_sizes(symbols)
    sizes.update({section[len(".kx.copy."):]: len(data) for section, _a, data in raw
                  if section.startswith(".kx.copy.")})
    variables = typed_variables(btf, emitter, by_name, sizes)
    source += "\n".join(v[2] for v in variables) + "\n"
    t_emit = time.perf_counter()
    skip = {(a, n) for a, n, _d in variables}
    with tempfile.TemporaryDirectory(prefix="kx-elf-") as tmp:
        objects = []
        with open(os.path.join(tmp, "types.c"), "w") as f:
            f.write(source)
        _run(["gcc", *btf_c.GCC_OPTIONS, "-c", "types.c", "-o", "types.o"], tmp)
        objects.append("types.o")
        with open(os.path.join(tmp, "raw.s"), "w") as f:
            f.write(_raw_assembly(raw))
        _run(["as", "raw.s", "-o", "raw.o"], tmp)
        objects.append("raw.o")
        with open(os.path.join(tmp, "kernel.lds"), "w") as f:
            f.write(linker_script(bounds, variables, [(s, a) for s, a, _b in raw]))
        _run(["ld", "--no-check-sections", "-z", "noexecstack", "-T", "kernel.lds", "-o", "linked.elf"]
             + objects, tmp)
        with open(os.path.join(tmp, "symbols.args"), "w") as f:
            f.write("\n".join(symbol_arguments(symbols, text, {s: lo for s, (lo, _hi) in bounds.items()},
                                                 skip)) + "\n")
        out = os.path.join(directory, ELF_NAME)
        _run(["objcopy", "@symbols.args", "linked.elf", out + ".tmp"], tmp)
        os.replace(out + ".tmp", out)
    for stale in os.listdir(directory):   # the files of earlier kx versions
        if stale.startswith("kernel") and stale.endswith(".elf") and stale != ELF_NAME:
            os.remove(os.path.join(directory, stale))
    t_end = time.perf_counter()
    return {"btf_to_c": round(t_emit - t0, 3), "compile_link": round(t_end - t_emit, 3)}
