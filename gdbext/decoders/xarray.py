# SPDX-License-Identifier: GPL-2.0-or-later
"""The kernel's XArray (include/linux/xarray.h, lib/xarray.c), looked up the
way xas_load() does, over a memory reader.  Pure: the caller gives the
struct xa_node offsets and how to read.

Encoding: an entry with bits 1:0 = 10 is internal; internal entries above
4096 are nodes (the node is the entry minus 2); an internal entry below
xa_mk_internal(XA_CHUNK_SIZE - 1) in a node is a sibling naming the slot of
its multi-index entry; an entry with bit 0 set is a value (a shadow or swap
entry in the page cache), not a pointer.
"""
from typing import Callable, Optional

from gdbext.errors import KxError

XA_CHUNK_SHIFT = 6
XA_CHUNK_MASK = (1 << XA_CHUNK_SHIFT) - 1
MAX_LEVELS = 11             # 64-bit indices, 6 bits per level


def is_internal(entry: int) -> bool:
    return entry & 3 == 2


def is_node(entry: int) -> bool:
    return is_internal(entry) and entry > 4096


def lookup(head: int, index: int, read_word: Callable[[int], int], read_byte: Callable[[int], int],
           shift_offset: int, slots_offset: int, word: int = 8) -> Optional[int]:
    """The pointer stored at `index` of the XArray whose xa_head is `head`,
    or None (empty, a value entry, or past what the tree covers)."""
    entry = head
    if not is_node(entry):
        return entry if index == 0 and entry and not entry & 3 else None
    for level in range(MAX_LEVELS):
        node = entry - 2
        shift = read_byte(node + shift_offset)
        if level == 0 and index >> shift > XA_CHUNK_MASK:
            return None          # beyond what the root node covers (xas_start)
        offset = (index >> shift) & XA_CHUNK_MASK
        entry = read_word(node + slots_offset + word * offset)
        if is_internal(entry) and entry >> 2 < XA_CHUNK_MASK:       # a sibling
            entry = read_word(node + slots_offset + word * (entry >> 2))
        if not is_node(entry):
            return entry if entry and not entry & 3 else None
    raise KxError("xarray deeper than a 64-bit index allows (corrupt?)")
