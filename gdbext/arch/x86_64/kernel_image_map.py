# SPDX-License-Identifier: GPL-2.0-or-later
"""The x86-64 kernel image's writable data, found with no symbol: the page
directory that maps __START_KERNEL_map's 1 GiB (PML4 index 511, PDPT index
510; under LA57 PML5 index 511 first: SDM Vol.3A 4.5) read through the
vCPU's kernel page-table root (Arch.data_ranges)."""
from typing import List, Tuple

from gdbext import machine
from gdbext.decoders import kernel_map

START_KERNEL_MAP = 0xFFFFFFFF80000000
TOP_INDEX, KERNEL_MAP_PDPT_INDEX = 511, 510


def _entry(table: int, index: int) -> int:
    page = machine.read_phys(table & kernel_map.FRAME, kernel_map.PAGE)
    return int.from_bytes(page[8 * index:8 * index + 8], "little")


def data_ranges(cpu: int, la57: bool) -> List[Tuple[int, int]]:
    """[(start, end)] writable, non-executable runs of the kernel image;
    [] when the walk meets a missing or 1 GiB entry."""
    table = machine.kernel_page_table(cpu)
    for index in ((TOP_INDEX,) if la57 else ()) + (TOP_INDEX, KERNEL_MAP_PDPT_INDEX):
        entry = _entry(table, index)
        if not entry & kernel_map.PRESENT or entry & kernel_map.PAGE_SIZE_BIT:
            return []
        table = entry
    directory = machine.read_phys(table & kernel_map.FRAME, kernel_map.PAGE)
    return kernel_map.data_ranges(directory, START_KERNEL_MAP,
                                  lambda physical: machine.read_phys(physical, kernel_map.PAGE))
