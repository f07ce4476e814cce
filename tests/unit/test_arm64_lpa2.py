"""The arm64 52-bit (FEAT_LPA2, TCR_EL1.DS = 1) page walk, on descriptors
read from the lab's 6.12.117+deb12-cloud-arm64 booted with `-cpu
max,lpa2=on` (nokaslr; physical addresses checked with QEMU's `gva2gpa`),
and hypothesis round trips of the descriptor format (Arm ARM D8.3.1:
OA[51:50] in bits [9:8], OA[49:12] in place; TTBR BADDR[51:48] in [5:2])."""
from hypothesis import given, strategies as st

from gdbext.arch.arm64 import ARCH
from gdbext.decoders import arm64_paging as paging
from gdbext.decoders import arm64_sysregs as sysregs
from gdbext.decoders.paging import PageFault
from gdbext.errors import DecodeError

TCR = 0x095001F6B54C350C            # T0SZ = T1SZ = 12, DS = 1
TCR_48 = TCR & ~(0x3F << 16) | (16 << 16)    # T1SZ = 16
TTBR1 = 0x0006000041A79001          # ASID 6, swapper_pg_dir's level -1 table
LINUX_BANNER = 0xFFFF800080FB3E98   # kernel rodata, in a 2 MiB block
BANNER_TABLES = {0x41A79078: 0x100000004242B003, 0x4242B800: 0x100000004242C003,
                 0x4242C010: 0x100000004242D003, 0x4242D038: 0x00E0000041000481}
LINEAR = 0xFFF0000004310000          # the linear map: PAGE_OFFSET + 0x4310000
LINEAR_TABLES = {0x41A79000: 0x180000005FFFF003, 0x5FFFF000: 0x180000005FFFE003,
                 0x5FFFE000: 0x180000005FFFD003, 0x5FFFD108: 0x180000005FFE7003,
                 0x5FFE7880: 0x00E8000044310407}


def _read(tables):
    return lambda address: tables.get(address, 0)


def test_tcr_of_the_lpa2_guest():
    d = sysregs.decode_tcr(TCR)
    assert d["ds"] == 1 and d["va_bits_kernel"] == d["va_bits_user"] == 52
    assert d["levels_kernel"] == ["L-1", "L0", "L1", "L2", "L3"] and d["checks"] == []
    assert sysregs.decode_ttbr(TTBR1, ds=True)["baddr"] == 0x41A79000
    assert "52-bit VAs need TCR.DS" in sysregs.decode_tcr(TCR & ~(1 << 59))["checks"][0]


def test_kernel_text_block_from_level_minus_one():
    t = paging.translate(LINUX_BANNER, TTBR1, _read(BANNER_TABLES), va_bits=52, ds=True)
    assert t.phys == 0x411B3E98 and t.page_size == 2 << 20      # QEMU: gpa 0x411b3e98
    assert [s.level for s in t.levels] == ["L-1", "L0", "L1", "L2"]
    assert t.linux_levels == {"L-1": "pgd", "L0": "p4d", "L1": "pud", "L2": "pmd", "L3": "pte"}
    assert not t.writable and not t.user and not t.executable


def test_linear_map_page_through_the_arch():
    regs = {"TCR_EL1": TCR, "TTBR1_EL1": TTBR1, "TTBR0_EL1": 0x44347281}
    t = ARCH.translate(LINEAR, regs, _read(LINEAR_TABLES))
    assert t.phys == 0x44310000 and t.page_size == 4096 and t.writable   # QEMU: gpa 0x44310000
    d = ARCH.describe_walk(LINEAR, regs, translation=t)
    assert d["va_bits"] == 52 and d["lpa2"] and d["walked_root"] == 0x41A79000
    assert [lv["index"] for lv in d["levels"]] == [0, 0, 0, 33, 272]
    assert d["levels"][-1]["bits"]["sh"] is None      # bits [9:8] are OA[51:50] with DS


def test_level_minus_one_has_sixteen_entries():
    assert paging.levels_for(52) == ["L-1", "L0", "L1", "L2", "L3"]
    assert paging.index(0xFFFF800080FB3E98, "L-1", 52) == 15
    assert paging.index(0xFFF0000000000000, "L-1", 52) == 0
    assert paging.index(0xFFFF800080FB3E98, "L0", 52) == 256


def test_faults_and_reserved_blocks():
    try:
        paging.translate(LINEAR, TTBR1, _read({0x41A79000: 0x41000001}), va_bits=52, ds=True)
    except PageFault as fault:
        assert fault.level == "L-1" and "level -1" in fault.reason
    else:
        raise AssertionError("a level -1 block walked")
    # A level 0 block (512 GiB) is valid with DS only.
    va, root = 0x0000008012345678, 0x1000
    tables = {root + 8 * paging.index(va, "L-1", 52): 0x2003, 0x2000 + 8 * paging.index(va, "L0"): 0x401}
    t = paging.translate(va, root, _read(tables), va_bits=52, ds=True)
    assert t.page_size == 1 << 39 and t.phys == va & ((1 << 39) - 1)


_PA52 = st.integers(0, (1 << 52) - 1)


def _descriptor(pa: int, low: int) -> int:
    # FEAT_LPA2 with 4 KiB granules: OA[49:12] in place, OA[51:50] at [9:8].
    return (pa & 0x0003FFFFFFFFF000) | (((pa >> 50) & 3) << 8) | low


@given(_PA52)
def test_output_address_roundtrip(pa):
    pa &= ~0xFFF
    assert paging.output_address(_descriptor(pa, 3), ds=True) == pa
    assert paging.output_address(_descriptor(pa, 3)) == pa & 0x0000FFFFFFFFF000    # without DS: [47:12]


@given(st.integers(0, (1 << 52) - 1), st.integers(0, 0xFFFF))
def test_ttbr_roundtrip(pa, asid):
    pa &= ~0x3F
    ttbr = (asid << 48) | (pa & 0x0000FFFFFFFFFFC0) | ((pa >> 48) << 2) | 1
    assert paging.table_address(ttbr, ds=True) == pa
    assert sysregs.decode_ttbr(ttbr, ds=True) == {"value": ttbr, "asid": asid, "baddr": pa, "cnp": 1}


@given(st.integers(0, (1 << 52) - 1), st.lists(_PA52, min_size=5, max_size=5, unique_by=lambda p: p >> 12),
       st.booleans())
def test_five_level_walk_anywhere(offset, pas, upper):
    """Tables (one per page) and the page anywhere in 52 bits of physical memory."""
    va = (0xFFF0000000000000 | offset) if upper else offset
    tables, pas = {}, [p & ~0xFFF for p in pas]
    root = pas[0]
    ttbr = (root & 0x0000FFFFFFFFFFC0) | ((root >> 48) << 2)
    base = root
    for level, nxt in zip(("L-1", "L0", "L1", "L2"), pas[1:]):
        tables[base + 8 * paging.index(va, level, 52)] = _descriptor(nxt, 3)
        base = nxt
    page = pas[0] ^ (1 << 51)
    tables[base + 8 * paging.index(va, "L3", 52)] = _descriptor(page, 0x403)
    t = paging.translate(va, ttbr, _read(tables), va_bits=52, ds=True)
    assert t.phys == page | (va & 0xFFF) and [s.address for s in t.levels][0] == root + 8 * paging.index(va, "L-1", 52)


# The arm64 lines of the VMCOREINFO of the same kernel, booted with KASLR and LPA2.
VMCOREINFO = {"NUMBER(VMALLOC_START)": "0xffff800080000000", "NUMBER(VA_BITS)": "52",
              "NUMBER(MODULES_VADDR)": "0xffff800000000000", "NUMBER(MODULES_END)": "0xffff800080000000",
              "NUMBER(VMALLOC_END)": "0xffffc1ffbf800000", "NUMBER(VMEMMAP_START)": "0xffffc1ffc0000000",
              "NUMBER(VMEMMAP_END)": "0xffffffffc0000000", "NUMBER(kimage_voffset)": "0xffffa9ad8f800000",
              "NUMBER(PHYS_OFFSET)": "0x40000000", "NUMBER(TCR_EL1_T1SZ)": "0xc",
              "KERNELOFFSET": "29ad4fa00000", "NUMBER(KERNELPACMASK)": "0xfff0000000000000"}


def test_layout_from_vmcoreinfo():
    from gdbext.arch.arm64 import layout
    warnings = []
    d = layout.layout(VMCOREINFO, TCR, 0x29AD4FA00000, warnings)
    assert warnings == [] and d["vabits_actual"] == 52 and d["page_offset"] == 0xFFF0000000000000
    assert d["vmcoreinfo"]["kernel_offset"] == 0x29AD4FA00000 and d["vmcoreinfo"]["tcr_el1_t1sz"] == 12
    assert ("PAGE_OFFSET", "0xfff0000000000000") in [(r[0], r[1]) for r in layout.rows(d)]
    # A 52-bit kernel on a CPU without LPA2 runs 48-bit (T1SZ = 16); another
    # slide or a T1SZ other than the boot CPU's is said.
    d = layout.layout(dict(VMCOREINFO, **{"NUMBER(TCR_EL1_T1SZ)": "0x10"}), TCR_48, 0, warnings)
    assert d["vabits_actual"] == 48 and d["page_offset"] == 0xFFF0000000000000
    assert any("KERNELOFFSET" in w for w in warnings) and not any("T1SZ" in w for w in warnings)
    layout.layout(VMCOREINFO, TCR_48, 0x29AD4FA00000, warnings)
    assert any("saved 12 at boot" in w for w in warnings)
    assert layout.layout({}, None, 0, warnings)["page_offset"] is None and "not readable" in warnings[-1]


def test_addresses_outside_the_va_range():
    # 52 bits: 0x000f... is user space; 0x0010... is beyond T0SZ = 12.
    assert paging.out_of_range(0x000F000000000000, 52) is None
    assert "outside the 52-bit range of TTBR0" in paging.out_of_range(0x0010000000000000, 52)
    assert "outside the 48-bit range of TTBR1" in paging.out_of_range(0xFFF0000000000000, 48)
    # With TBI the top byte is a tag: bit 55 still picks the half.
    assert paging.out_of_range(0xAB00000012345678, 48, tbi=True) is None
    assert not paging.is_upper(0xAB00000012345678) and paging.is_upper(0x00FF800000000000)
    assert paging.out_of_range(0xAB00000012345678, 48) is not None
    try:
        paging.translate(0x0010000000000000, 0x1000, _read({}), va_bits=52, ds=True)
    except DecodeError as exc:      # nothing read, one clear line
        assert "TTBR0" in str(exc) and not isinstance(exc, PageFault)
    else:
        raise AssertionError("walked an address outside TTBR0's range")
