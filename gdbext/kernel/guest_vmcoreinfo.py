# SPDX-License-Identifier: GPL-2.0-or-later
"""VMCOREINFO found with no symbol, and the kallsyms arrays it names.

The kernel keeps VMCOREINFO's text in a page it allocates at boot
(get_zeroed_page in crash_save_vmcoreinfo_init, kernel/crash_core.c; in
kernel/vmcore_info.c since 6.9) and points to it from vmcoreinfo_data, a
variable in its writable data.  The architecture names those writable,
non-executable ranges from the page tables (Arch.kernel_data_ranges); kx
reads them, last range first (.bss, where vmcoreinfo_data lives), and
takes the page-aligned pointer whose page starts "OSRELEASE=".  Since 6.0
VMCOREINFO lists SYMBOL(kallsyms_names) and the other arrays: kx reads just
them, and the structural finder (decoders/kallsyms.py) must agree.
"""
from typing import Dict, List, Optional, Tuple

from gdbext import arch, errors
from gdbext.decoders import kallsyms, kernel_map
from gdbext.kernel import backend

OSRELEASE = b"OSRELEASE="
# Candidate pointers: kernel addresses below the kernel image's own map
# (the direct map, where get_zeroed_page's pages are, whatever its KASLR base).
LOWEST, HIGHEST = 0xFFFF800000000000, 0xFFFFFFFF80000000
CHUNK = 1 << 20
MAX_PROBES = 4096            # 6.1 with KASLR: 395 before the hit
MAX_ARRAYS = 32 << 20        # the arrays of 7.2's 187k symbols span under 4 MiB
ARRAYS = {"names": "kallsyms_names", "num_syms": "kallsyms_num_syms", "token_table": "kallsyms_token_table",
          "token_index": "kallsyms_token_index", "offsets": "kallsyms_offsets",
          "relative_base": "kallsyms_relative_base"}


def _parse(text: bytes) -> Dict[str, str]:
    lines = text.split(b"\0", 1)[0].decode("ascii", "replace").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def find(cpu: int) -> Optional[Tuple[int, int, Dict[str, str]]]:
    """(address of the pointer, address of the page, {KEY: VALUE}), or None."""
    probes = 0
    for start, end in reversed(arch.current().kernel_data_ranges(cpu)):
        for chunk in range(start, end, CHUNK):
            try:
                data = backend.read_kernel(chunk, min(CHUNK, end - chunk), cpu)
            except errors.MemoryUnreadable:
                continue
            for offset, page in kernel_map.page_pointers(data, LOWEST, HIGHEST):
                probes += 1
                if probes > MAX_PROBES:
                    return None
                try:
                    if backend.read_kernel(page, len(OSRELEASE), cpu) == OSRELEASE:
                        return chunk + offset, page, _parse(backend.read_kernel(page, 4096, cpu))
                except errors.MemoryUnreadable:
                    continue
    return None


def array_addresses(info: Dict[str, str]) -> Dict[str, int]:
    """{array: address} of the kallsyms arrays VMCOREINFO names ({} before
    6.0; 6.15+ has no kallsyms_relative_base)."""
    out = {}
    for key, symbol in ARRAYS.items():
        value = info.get(f"SYMBOL({symbol})")
        if value is not None:
            out[key] = int(value, 16)
    return out if {"names", "num_syms", "token_table", "token_index", "offsets"} <= set(out) else {}


def read_kallsyms(where: Dict[str, int], cpu: int) -> Tuple[List[kallsyms.Symbol], int, int]:
    """(symbols, first address read, bytes read) of the arrays at `where`,
    located again by the structural finder in what was read, which must put
    kallsyms_names and kallsyms_offsets where VMCOREINFO does."""
    count = int.from_bytes(backend.read_kernel(where["num_syms"], 4, cpu), "little")
    low = min(where.values()) & ~0xFFF
    high = max(where["offsets"] + 4 * count + 16, where["token_index"] + 512, where.get("relative_base", 0) + 8)
    if not 0 < high - low < MAX_ARRAYS:
        raise errors.KxError(f"VMCOREINFO's kallsyms arrays span {high - low:#x} bytes from {low:#x}")
    blob = backend.read_kernel(low, high - low, cpu)
    tables = kallsyms.locate_offsets(blob, kallsyms.find_tables(blob), arch.current().pointer_size)
    if (low + tables.names, low + tables.offsets) != (where["names"], where["offsets"]):
        raise errors.KxError(f"VMCOREINFO puts kallsyms_names at {where['names']:#x}, the finder at "
                             f"{low + tables.names:#x}")
    return kallsyms.symbols_from_blob(blob, low, tables), low, len(blob)
