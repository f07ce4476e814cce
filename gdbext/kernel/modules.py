"""Loadable modules: the `modules` list, where each module's memory is, its
sections (what /sys/module/NAME/sections shows) and taints.

Where a module's memory is described depends on the kernel:
- up to 6.3, struct module has core_layout and init_layout (struct
  module_layout: base, size, text_size, ...), text first;
- from 6.4 ("module: replace module_layout with module_memory") it has
  mem[MOD_MEM_NUM_TYPES] (struct module_memory: base, size), one block per
  enum mod_mem_type, and /proc/modules' address is mem[MOD_TEXT].base.
kx asks the DWARF which one this kernel has.
"""
from typing import Dict, List, Optional

from gdbext import arch, errors
from gdbext.decoders import modules as mdec
from gdbext.kernel import backend, symbols, types

MAX_MODULES = 4096
MODULE = "struct module"


def _u(address: int, size: int, cpu=None) -> int:
    return int.from_bytes(backend.read_kernel(address, size, cpu), "little")


def _word() -> int:
    """The size of a pointer and an unsigned long on this kernel (4 on i386)."""
    return arch.current().pointer_size


def read_string(address: int, limit: int = 256, cpu=None) -> str:
    """A NUL-terminated string, read up to page ends only (the next page may
    not be mapped)."""
    out = b""
    while len(out) < limit:
        n = min(limit - len(out), 0x1000 - (address + len(out)) % 0x1000)
        chunk = backend.read_kernel(address + len(out), n, cpu)
        if b"\0" in chunk:
            return (out + chunk.split(b"\0", 1)[0]).decode("utf-8", "replace")
        out += chunk
    return out.decode("utf-8", "replace")


def _regions(mod: int, cpu) -> List[tuple]:
    """[(name, base, size)] of the module's memory blocks."""
    if types.has_member(MODULE, "mem"):
        stride = types.sizeof("struct module_memory")
        first = mod + types.offsetof(MODULE, "mem")
        base_off = types.offsetof("struct module_memory", "base")
        size_off = types.offsetof("struct module_memory", "size")
        return [(name, _u(first + i * stride + base_off, _word(), cpu), _u(first + i * stride + size_off, 4, cpu))
                for i, name in enumerate(mdec.MOD_MEM_TYPES)]
    out = []
    for layout, prefix in (("core_layout", ""), ("init_layout", "init_")):
        at = mod + types.offsetof(MODULE, layout)
        base = _u(at + types.offsetof("struct module_layout", "base"), _word(), cpu)
        size = _u(at + types.offsetof("struct module_layout", "size"), 4, cpu)
        text = _u(at + types.offsetof("struct module_layout", "text_size"), 4, cpu)
        out += [(prefix + "text", base, text), (prefix + "data" if prefix else "core", base + text, size - text)]
    return out


def sections(mod: int, cpu=None) -> Dict[str, int]:
    """{section name: address} from mod->sect_attrs (kernel/module/sysfs.c)."""
    attrs = _u(mod + types.offsetof(MODULE, "sect_attrs"), _word(), cpu)
    if not attrs:
        return {}
    if not types.has_member("struct module_sect_attrs", "nsections"):
        return _sections_from_bin_attrs(attrs, cpu)
    # Up to 6.14: nsections, then attrs[] of {battr (its attr.name), address}.
    n = _u(attrs + types.offsetof("struct module_sect_attrs", "nsections"), 4, cpu)
    first = attrs + types.offsetof("struct module_sect_attrs", "attrs")
    stride = types.sizeof("struct module_sect_attr")
    name_off = types.offsetof("struct module_sect_attr", "battr.attr.name")
    addr_off = types.offsetof("struct module_sect_attr", "address")
    out = {}
    for i in range(min(n, 256)):
        at = first + i * stride
        out[read_string(_u(at + name_off, _word(), cpu), 64, cpu)] = _u(at + addr_off, _word(), cpu)
    return out


def _sections_from_bin_attrs(attrs: int, cpu=None) -> Dict[str, int]:
    """Since "module: sysfs: Drop member 'module_sect_attrs::nsections'"
    (6.15): grp.bin_attrs is a NULL-terminated array of bin_attribute
    pointers, each with the section's name and its address in `private`."""
    table = _u(attrs + types.offsetof("struct module_sect_attrs", "grp.bin_attrs"), _word(), cpu)
    name_off = types.offsetof("struct bin_attribute", "attr.name")
    addr_off = types.offsetof("struct bin_attribute", "private")
    out = {}
    for i in range(256):
        battr = _u(table + _word() * i, _word(), cpu) if table else 0
        if not battr:
            break
        out[read_string(_u(battr + name_off, _word(), cpu), 64, cpu)] = _u(battr + addr_off, _word(), cpu)
    return out


def read_module(mod: int, cpu=None) -> Dict:
    name_size = types.member_size(MODULE, "name")
    raw_name = backend.read_kernel(mod + types.offsetof(MODULE, "name"), name_size, cpu)
    regions = _regions(mod, cpu)
    taints = _u(mod + types.offsetof(MODULE, "taints"), _word(), cpu) if types.has_member(MODULE, "taints") else 0
    state = _u(mod + types.offsetof(MODULE, "state"), 4, cpu)
    core = [r for r in regions if not r[0].startswith("init")]
    return {"address": mod, "name": raw_name.split(b"\0", 1)[0].decode("utf-8", "replace"),
            "base": core[0][1], "size": sum(r[2] for r in regions),
            "state": mdec.state_name(state), "taints": taints, "taint": mdec.taint_letters(taints),
            "regions": [{"name": n, "base": b, "size": s} for n, b, s in regions if s]}


def addresses(cpu=None) -> List[int]:
    """The struct module addresses on the `modules` list, in list order
    (newest first, as /proc/modules)."""
    head = symbols.lookup("modules")
    if head is None:
        raise errors.MissingSymbol("modules", "a kernel built without CONFIG_MODULES")
    link = types.offsetof(MODULE, "list")
    out, node = [], _u(head, _word(), cpu)
    while node != head:
        if len(out) >= MAX_MODULES:
            raise errors.KxError(f"the modules list does not end after {MAX_MODULES} entries")
        out.append(node - link)
        node = _u(node, _word(), cpu)
    return out


def all_modules(cpu=None) -> List[Dict]:
    return backend.cached(("modules", cpu), lambda: [read_module(m, cpu) for m in addresses(cpu)])


def describe(address: int) -> Optional[str]:
    """"module+0xoff" (text) or "module:region+0xoff" for an address in a
    module's memory, else None.  Only for the architecture's module area,
    and never while kx's trace loop owns the connection (no gdb reads)."""
    start, end = arch.current().module_area
    if not start <= address < end:
        return None
    from gdbext import machine
    if machine.loop_owns_connection:
        return None
    try:
        mods = all_modules()
    except errors.KxError:
        return None
    for m in mods:
        hit = mdec.locate(address, [(r["name"], r["base"], r["size"]) for r in m["regions"]])
        if hit:
            region, off = hit
            return f"{m['name']}+{off:#x}" if region == "text" else f"{m['name']}:{region}+{off:#x}"
    return None


def find_files(directory: str) -> Dict[str, str]:
    """{module name: path} of the *.ko files under `directory` (Debian's
    -dbg package keeps them in /usr/lib/debug/lib/modules/RELEASE/...)."""
    import os
    if not os.path.isdir(directory):
        raise errors.BadArgument(f"not a directory: {directory}")
    out = {}
    for root, _dirs, files in os.walk(directory):
        for f in files:
            if f.endswith(".ko"):
                out.setdefault(mdec.normalize(f[:-3]), os.path.join(root, f))
    return out


def file_sections(path: str):
    """{section name: sh_addr} of a module file (pyelftools), or None
    without it.  Debian's -dbg .ko files of 6.12 give some sections a
    nonzero sh_addr (.data at 0x40), which gdb adds to their symbols."""
    try:
        from elftools.elf.elffile import ELFFile
    except ImportError:
        return None
    try:
        with open(path, "rb") as fh:
            return {s.name: s["sh_addr"] for s in ELFFile(fh).iter_sections()}
    except (OSError, Exception) as exc:  # elftools raises its own ELFError
        raise errors.KxError(f"cannot read {path}: {exc}") from None
