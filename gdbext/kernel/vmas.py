# SPDX-License-Identifier: GPL-2.0-or-later
"""A task's VMAs: the vm_area_struct covering an address, by the kernel's
own lookup.

VMAs live in the mm's maple tree (mm->mm_mt) since 6.1 ("mm: start
tracking VMAs with maple tree"); up to 6.0 (5.10) in the red-black tree
mm->mm_rb, each vm_area_struct linked through its vm_rb.  Every walk takes
`read(address, size) -> bytes` (default: the backend's kernel reads on
`cpu`), so the trace loop can walk through its own hit.
"""
from typing import Callable, Optional

from gdbext import arch, errors
from gdbext.kernel import backend, types
from gdbext.kernel.structs import Member, StructReader

# Maple tree encoding (include/linux/maple_tree.h, lib/maple_tree.c, 6.1 and
# 6.12): node pointers keep enum maple_type in bits 3-6; the node is the
# pointer with the low 8 bits cleared; types below maple_range_64 are leaves.
MAPLE_NODE_MASK = 0xFF
MAPLE_TYPE_SHIFT, MAPLE_TYPE_MASK = 3, 0xF
MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64 = 1, 2, 3
_MAX_DEPTH = 16
_MAX_RB_DEPTH = 64          # 2 log2(n + 1) for any possible number of VMAs

VMA = StructReader("struct vm_area_struct", (
    Member("vm_start", ("vm_start",)),
    Member("vm_end", ("vm_end",)),
    Member("vm_flags", ("vm_flags",)),   # 6.3+: a union with __vm_flags
    Member("vm_mm", ("vm_mm",)),
    Member("vm_private_data", ("vm_private_data",)),
    Member("vm_file", ("vm_file",), required=False),
    Member("vm_pgoff", ("vm_pgoff",), required=False),
    Member("anon_vma", ("anon_vma",), required=False),
))
MM_VMAS = StructReader("struct mm_struct", (
    Member("ma_root", ("mm_mt.ma_root",), required=False),
    Member("rb_root", ("mm_rb.rb_node",), required=False),             # up to 6.0
))

Reader = Callable[[int, int], bytes]


def _reader(cpu: Optional[int], read: Optional[Reader]) -> Reader:
    return read or (lambda address, size: backend.read_kernel(address, size, cpu))


def _maple_layout():
    key = ("vdso-maple-layout",)
    if key not in types._cache:
        lay, word = {}, arch.current().pointer_size    # pivots and slots are unsigned longs
        for name, struct in (("range", "struct maple_range_64"), ("arange", "struct maple_arange_64")):
            piv_off, piv_t = types.member(struct, "pivot")
            slot_off, slot_t = types.member(struct, "slot")
            lay[name] = (piv_off, piv_t.sizeof // word, slot_off, slot_t.sizeof // word)
        lay["node_size"] = types.sizeof("struct maple_node")
        lay["word"] = word
        types._cache[key] = lay
    return types._cache[key]


def find_vma(ma_root: int, address: int, cpu: Optional[int] = None, read: Optional[Reader] = None) -> Optional[int]:
    """The vm_area_struct covering `address`, by the kernel's own range walk
    (lib/maple_tree.c mtree_range_walk): in each node take the first slot
    whose pivot is >= address; a zero pivot past slot 0 ends the node's data,
    so that slot runs to the node's maximum."""
    read = _reader(cpu, read)
    entry = ma_root
    lay = _maple_layout()
    for _ in range(_MAX_DEPTH):
        # xa_is_node(): internal entry (low bits 10) above 4096.
        if (entry & 3) != 2 or entry <= 4096:
            return None  # an empty tree or a single root entry: not an mm with VMAs
        node = entry & ~MAPLE_NODE_MASK
        ntype = (entry >> MAPLE_TYPE_SHIFT) & MAPLE_TYPE_MASK
        if ntype not in (MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64):
            raise errors.KxError(f"maple node {node:#x} has unexpected type {ntype}")
        piv_off, npiv, slot_off, nslot = lay["arange" if ntype == MAPLE_ARANGE_64 else "range"]
        raw = read(node, lay["node_size"])
        w = lay["word"]
        pivots = [int.from_bytes(raw[piv_off + w * i:piv_off + w * i + w], "little") for i in range(npiv)]
        offset = 0
        while offset < npiv:
            p = pivots[offset]
            if p >= address or (p == 0 and offset > 0):
                break
            offset += 1
        offset = min(offset, nslot - 1)
        entry = int.from_bytes(raw[slot_off + w * offset:slot_off + w * offset + w], "little")
        if ntype == MAPLE_LEAF_64:
            return entry or None
    raise errors.KxError("maple tree deeper than expected (corrupt?)")


def find_vma_rbtree(rb_node: int, address: int, cpu: Optional[int] = None,
                    read: Optional[Reader] = None) -> Optional[int]:
    """The vm_area_struct covering `address` in an mm_rb tree, by the
    kernel's own walk (mm/mmap.c find_vma() up to 6.0): go left while the
    node's VMA ends above `address`, right otherwise."""
    read = _reader(cpu, read)
    vm_rb = types.offsetof("struct vm_area_struct", "vm_rb")
    left, right = types.offsetof("struct rb_node", "rb_left"), types.offsetof("struct rb_node", "rb_right")
    for _ in range(_MAX_RB_DEPTH):
        if not rb_node:
            return None
        v = VMA.read(rb_node - vm_rb, reader=read)
        if v["vm_end"] > address and v["vm_start"] <= address:
            return rb_node - vm_rb
        link = left if v["vm_end"] > address else right
        w = arch.current().pointer_size
        rb_node = int.from_bytes(read(rb_node + link, w), "little")
    raise errors.KxError("mm_rb deeper than a red-black tree of any mm can be (corrupt?)")


def vma_at(mm: int, address: int, read: Reader) -> Optional[dict]:
    """The VMA of the mm at `mm` that covers `address` ({vm_start, vm_end,
    vm_file, vm_pgoff, ...} and its "address"), or None."""
    roots = MM_VMAS.read(mm, reader=read)
    if roots["ma_root"] is not None:
        vma = find_vma(roots["ma_root"], address, read=read)
    elif roots["rb_root"] is not None:
        vma = find_vma_rbtree(roots["rb_root"], address, read=read)
    else:
        return None
    if not vma:
        return None
    v = VMA.read(vma, reader=read)
    if not v["vm_start"] <= address < v["vm_end"]:
        return None          # the maple walk's slot is the gap before the next VMA
    return dict(v, address=vma)
