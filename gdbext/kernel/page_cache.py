# SPDX-License-Identifier: GPL-2.0-or-later
"""User memory a task has not faulted in yet, read from the page cache.

fork() copies no page-table entries for a file mapping without anonymous
pages (mm/memory.c copy_page_range: "Don't copy ptes where a page fault
will fill them correctly"), so a freshly forked child that calls
execve("/bin/x") with the path in its binary's .rodata has no PTE for it:
the kernel's own copy_from_user faults it in, a debugger walking the page
tables finds nothing.  The bytes are defined all the same: they are the
file's page in the page cache, which this reads the way filemap_fault()
would find it (vma->vm_file->f_mapping->i_pages at vm_pgoff + the page's
offset in the VMA), through the direct map.  Only where no private copy
can exist: a shared mapping, or one with no anon_vma (copy_page_range()'s
own test for leaving PTEs out).

Every read goes through `read(address, size) -> bytes`, so the trace loop
can use its own hit.  An anonymous page never touched, a page evicted from
the cache or swapped out is still unreadable.
"""
from typing import Callable, Optional

from gdbext import arch, errors
from gdbext.decoders import xarray
from gdbext.kernel import types, vmas

PAGE = 4096
_MAX_FOLIO_PAGES = 512       # a PMD-sized folio
VM_SHARED = 0x8              # include/linux/mm.h

Reader = Callable[[int, int], bytes]


def _word(read: Reader, address: int) -> int:
    w = arch.current().pointer_size
    return int.from_bytes(read(address, w), "little")


def xa_load(xa_head: int, index: int, read: Reader) -> Optional[int]:
    """The pointer at `index` of an XArray (xarray.xa_head), or None."""
    w = arch.current().pointer_size
    return xarray.lookup(xa_head, index, lambda a: _word(read, a), lambda a: read(a, 1)[0],
                         types.offsetof("struct xa_node", "shift"), types.offsetof("struct xa_node", "slots"), w)


def page_of(vma: dict, address: int, read: Reader) -> Optional[int]:
    """The struct page that holds `address` of a file-backed VMA in the
    page cache, or None (anonymous, or not cached)."""
    if not vma.get("vm_file") or vma.get("vm_pgoff") is None:
        return None
    if not vma["vm_flags"] & VM_SHARED and vma.get("anon_vma") != 0:
        # A private mapping with anonymous pages (or unknown): a missing PTE
        # may be a copy swapped out, which the file's page is not.
        return None
    mapping = _word(read, vma["vm_file"] + types.offsetof("struct file", "f_mapping"))
    index = vma["vm_pgoff"] + ((address - vma["vm_start"]) >> 12)
    head = xa_load(_word(read, mapping + types.offsetof("struct address_space", "i_pages.xa_head")), index, read)
    if head is None:
        return None
    # A large folio sits at its first index in every slot it spans: the
    # page for `index` is that many struct pages after its head.
    first = _word(read, head + _index_offset())
    if not first <= index < first + _MAX_FOLIO_PAGES:
        return None
    return head + (index - first) * types.sizeof("struct page")


def _index_offset() -> int:
    """Where a page-cache entry keeps its file index: folio->index (5.16+,
    "mm: Add folio_pgoff"; the only one once page->index is gone), else
    page->index (5.10)."""
    if types.has("struct folio") and types.has_member("struct folio", "index"):
        return types.offsetof("struct folio", "index")
    return types.offsetof("struct page", "index")


def read_unfaulted(task: int, address: int, size: int, read: Reader) -> bytes:
    """`size` bytes at user `address` of `task` (within one page), from the
    page cache.  Raises MemoryUnreadable when the page is not there."""
    if size <= 0 or (address % PAGE) + size > PAGE:
        raise errors.MemoryUnreadable(address, size, "a page-cache read stays within one page")
    mm = _word(read, task + types.offsetof("struct task_struct", "mm"))
    vma = vmas.vma_at(mm, address, read) if mm else None
    page = page_of(vma, address, read) if vma else None
    virtual = arch.current().page_address(page, read) if page else None
    if virtual is None:
        raise errors.MemoryUnreadable(address, size, "not faulted in, and not in the page cache")
    return read(virtual + address % PAGE, size)


def with_page_cache(read_user: Reader, task: Callable[[], int], read_kernel: Reader) -> Reader:
    """`read_user`, falling back to the page cache for a page the task has
    not faulted in (the original error stands when that fails too)."""
    def read(address: int, size: int) -> bytes:
        try:
            return read_user(address, size)
        except errors.MemoryUnreadable as exc:
            try:
                return read_unfaulted(task(), address, size, read_kernel)
            except errors.KxError:
                raise exc from None
    return read
