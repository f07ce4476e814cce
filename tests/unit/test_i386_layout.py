"""decoders/layout_x86_32.py: the x86-32 memory areas from the inputs of
asm/pgtable_32_areas.h, and CR4.PAE's 32-bit meaning."""
from hypothesis import given, strategies as st

from gdbext.decoders import control_regs
from gdbext.decoders.layout_x86_32 import Inputs32, areas

# Debian's 6.1.0-50-686-pae with 512 MiB: high_memory as the kernel set it,
# __end_of_fixed_addresses, NR_CPUS and sizeof(struct cpu_entry_area) from
# its DWARF.  The IDT QEMU's monitor shows is at 0xff400000 and CPU 0's
# TSS at 0xff406000.
DEBIAN_686_PAE = Inputs32(page_offset=0xC0000000, high_memory=0xDFFE0000, fixaddr_top=0xFFFFF000,
                          fixed_addresses=1537, nr_cpus=32, cpu_entry_area_size=176128, pae=True, highmem=True)


def test_debian_686_pae():
    a = areas(DEBIAN_686_PAE)
    assert a["lowmem"] == (0xC0000000, 0xDFFE0000)
    assert a["vmalloc"] == a["modules"] == (0xDFFE0000 + (8 << 20), 0xFF000000 - 0x2000)
    assert a["pkmap"] == (0xFF000000, 0xFF200000)
    assert a["ldt_remap"] == (0xFF200000, 0xFF400000)
    assert a["cpu_entry_area"][0] == 0xFF400000 < 0xFF406000 < a["cpu_entry_area"][1]
    assert a["fixmap"] == (0xFFFFF000 - 1537 * 4096, 0xFFFFF000)


def test_without_highmem_vmalloc_ends_below_the_ldt_remap():
    a = areas(Inputs32(0xC0000000, 0xF0000000, 0xFFFFF000, 1537, 8, 176128, pae=False, highmem=False))
    assert "pkmap" not in a
    assert a["vmalloc"][1] == a["ldt_remap"][0] - 0x2000
    assert a["ldt_remap"][1] - a["ldt_remap"][0] == 4 << 20     # a 4 MiB PMD without PAE


@given(high=st.integers(0x01000000, 0x37000000), cpus=st.integers(1, 64), fixed=st.integers(16, 2048),
       pae=st.booleans(), highmem=st.booleans())
def test_areas_are_ordered_and_disjoint(high, cpus, fixed, pae, highmem):
    a = areas(Inputs32(0xC0000000, 0xC0000000 + high, 0xFFFFF000, fixed, cpus, 0x2B000, pae, highmem))
    order = [n for n in ("lowmem", "vmalloc", "pkmap", "ldt_remap", "cpu_entry_area", "fixmap") if n in a]
    assert all(a[x][0] < a[x][1] <= a[y][0] for x, y in zip(order, order[1:]))


def test_cr4_pae_on_a_32bit_kernel():
    bit = {b["name"]: b for b in control_regs.decode_cr4(1 << 5, control_regs.CR4_BITS_32)["bits"]}["PAE"]
    assert bit["set"] and "3-level" in bit["meaning"] and "long mode" not in bit["meaning"]
    assert "long mode" in control_regs.CR4_BITS[5][1]


def test_monitor_text_from_gdb18_mi_target_stream():
    from gdbext.decoders.qemu_monitor import mi_target_stream_text
    captured = '@"* CPU #0: thread_id=7625\\r\\n"\n@"  CPU #1: thread_id=7626\\r\\n"\n'
    assert mi_target_stream_text(captured) == "* CPU #0: thread_id=7625\r\n  CPU #1: thread_id=7626\r\n"
    assert mi_target_stream_text('@"a\\"b\\\\c\\033d"') == 'a"b\\c\x1bd'
    assert mi_target_stream_text("EAX=00000004 EBX=00000001\n") == "EAX=00000004 EBX=00000001\n"
