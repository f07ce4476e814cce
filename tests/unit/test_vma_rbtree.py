"""The pre-6.1 VMA lookup (kernel/vdso.find_vma_rbtree: mm->mm_rb, as
mm/mmap.c find_vma() walks it in 5.10) and the vsyscall gate of a 5.10 mm
(no context.flags: context.ia32_compat), on fake memory and fake types."""
import struct

import pytest

from gdbext import machine
from gdbext.arch.x86_64 import vdso as xvdso
from gdbext.kernel import types, vdso
from gdbext.kernel.fake import FakeTypes

# vm_area_struct and rb_node at made-up offsets (the walk asks the DWARF).
LAYOUT = {
    "struct vm_area_struct": (72, {"vm_start": (0, 8), "vm_end": (8, 8), "vm_rb": (16, 24),
                                   "vm_flags": (40, 8), "vm_mm": (48, 8), "vm_private_data": (56, 8)}),
    "struct rb_node": (24, {"__rb_parent_color": (0, 8), "rb_right": (8, 8), "rb_left": (16, 8)}),
}
BASE = 0xFFFF888005000000
VMAS = {   # vm_area_struct address: (start, end, left child, right child)
    BASE + 0x000: (0x600000, 0x601000, BASE + 0x100, BASE + 0x200),
    BASE + 0x100: (0x400000, 0x480000, 0, 0),
    BASE + 0x200: (0x7FFF0000, 0x7FFF2000, BASE + 0x300, 0),
    BASE + 0x300: (0x7FFE0000, 0x7FFE4000, 0, 0),
}


@pytest.fixture
def fake_mm(monkeypatch):
    memory = {}
    for addr, (start, end, left, right) in VMAS.items():
        rb = lambda v: v + 16 if v else 0          # noqa: E731  (an rb_node is &vma->vm_rb)
        memory[addr] = struct.pack("<QQQQQQQQQ", start, end, 0, rb(right), rb(left), 0x75, 0, 0, 0)

    def read_kernel(address, size, cpu=None):
        for start, data in memory.items():
            if start <= address and address + size <= start + len(data):
                return data[address - start:address - start + size]
        raise AssertionError(f"read outside the fake VMAs: {address:#x}")
    monkeypatch.setattr(machine, "read_kernel", read_kernel)
    types.use(FakeTypes(LAYOUT))
    yield BASE + 16                                 # mm->mm_rb.rb_node: the root's vm_rb
    types.use(None)


@pytest.mark.parametrize("address,vma", [
    (0x600000, BASE), (0x600FFF, BASE), (0x400123, BASE + 0x100), (0x7FFF1000, BASE + 0x200),
    (0x7FFE0000, BASE + 0x300), (0x480000, None), (0x7FFE4000, None), (0x3FFFFF, None), (0x7FFF2000, None),
])
def test_find_vma_rbtree(fake_mm, address, vma):
    assert vdso.find_vma_rbtree(fake_mm, address, 0) == vma
    assert vdso.find_vma_rbtree(0, address, 0) is None              # an empty tree


def test_vsyscall_gate_of_an_mm_with_and_without_context_flags():
    assert xvdso.mm_has_vsyscall({"ctx_flags": 0b10}) is True         # 6.1+: MM_CONTEXT_HAS_VSYSCALL
    assert xvdso.mm_has_vsyscall({"ctx_flags": 0b01}) is False        # MM_CONTEXT_UPROBE_IA32 only
    assert xvdso.mm_has_vsyscall({"ctx_flags": None, "ia32_compat": 0}) is True     # 5.10, 64-bit
    assert xvdso.mm_has_vsyscall({"ctx_flags": None, "ia32_compat": 17}) is False   # 5.10, TIF_IA32
    assert xvdso.mm_has_vsyscall({"ctx_flags": None, "ia32_compat": None}) is None
