"""gdbext.decoders.paging: page walks over synthetic page tables in a dict."""
import pytest
from hypothesis import given, settings, strategies as st

from gdbext.errors import DecodeError
from gdbext.decoders import paging

P, RW, US, PS, G = 1, 2, 4, 0x80, 0x100
XD = 1 << 63
PKEY3 = 3 << 59


class PageTables:
    """Physical memory as {address: u64}; tables are allocated from 0x100000 up."""

    def __init__(self, la57=False):
        self.mem = {}
        self.la57 = la57
        self.next_page = 0x100000
        self.root = self.alloc()
        self.reads = []

    def alloc(self):
        page = self.next_page
        self.next_page += 0x1000
        return page

    def read_u64(self, addr):
        self.reads.append(addr)
        assert addr % 8 == 0
        return self.mem.get(addr, 0)

    def map(self, va, phys, size, flags=P | RW, extra=0):
        levels = ["PML5", "PML4", "PDPT", "PD", "PT"] if self.la57 else ["PML4", "PDPT", "PD", "PT"]
        leaf = {1 << 30: "PDPT", 1 << 21: "PD", 1 << 12: "PT"}[size]
        idx = paging.page_indices(va, self.la57)
        table = self.root
        for level in levels:
            addr = table + idx[level] * 8
            if level == leaf:
                self.mem[addr] = phys | flags | extra | (PS if level != "PT" else 0)
                return addr
            entry = self.mem.get(addr)
            if entry is None:
                entry = self.alloc() | P | RW | US
                self.mem[addr] = entry
            assert not entry & PS, "test bug: mapping through a large page"
            table = entry & paging.PHYS_ADDR_MASK
        raise AssertionError


def sign_extend(va, la57):
    top = 56 if la57 else 47
    return va | (((1 << 64) - 1) ^ ((1 << (top + 1)) - 1)) if va >> top & 1 else va


def test_4k_page_levels_and_flags():
    pt = PageTables()
    va = 0x00007F1234567000
    pt.map(va, 0x2345000, 1 << 12, P | RW | US, extra=XD)
    t = paging.translate(va + 0x123, pt.root | 0x5, pt.read_u64)  # PCID bits are ignored
    assert t.phys == 0x2345123 and t.page_size == 4096
    assert [s.level for s in t.levels] == ["PML4", "PDPT", "PD", "PT"]
    assert t.levels[0].address == pt.root + paging.page_indices(va)["PML4"] * 8
    assert t.writable and t.user and not t.executable
    name, addr, value = t.levels[-1]
    assert name == "PT" and value & 0xFFFFF000 == 0x2345000
    d = t.to_dict()
    assert d["levels"][-1]["flags"] == ["P", "RW", "US", "XD"]
    assert d["linux_levels"]["PML4"] == "pgd"


def test_2m_and_1g_pages_ignore_pat_and_high_bits():
    pt = PageTables()
    kva = 0xFFFFFFFF81000000  # kernel text, 2 MiB page
    pt.map(kva, 0x1000000, 1 << 21, P | RW | G, extra=(1 << 12) | XD | PKEY3)  # bit 12 = PAT
    t = paging.translate(kva + 0x12345, pt.root, pt.read_u64)
    assert t.phys == 0x1012345 and t.page_size == 1 << 21 and t.global_page
    assert "PAT" in t.levels[-1].to_dict()["flags"] and "PKEY=3" in t.levels[-1].to_dict()["flags"]
    dmap = 0xFFFF888000000000  # direct map, 1 GiB page
    pt.map(dmap, 0x40000000, 1 << 30, P | RW | G, extra=(1 << 12))
    t = paging.translate(dmap + 0x3FFFFFFF, pt.root, pt.read_u64)
    assert t.phys == 0x7FFFFFFF and t.page_size == 1 << 30 and len(t.levels) == 2
    assert not t.user


def test_5level():
    pt = PageTables(la57=True)
    va = 0xFF11000000000000 | 0x123456789000  # canonical under LA57 only
    pt.map(va, 0x8000, 1 << 12)
    t = paging.translate(va, pt.root, pt.read_u64, la57=True)
    assert t.phys == 0x8000 and [s.level for s in t.levels][0] == "PML5"
    assert t.to_dict()["linux_levels"]["PML4"] == "p4d"
    with pytest.raises(DecodeError):
        paging.translate(va, pt.root, pt.read_u64, la57=False)  # non-canonical in 4-level


def test_faults_name_the_level():
    pt = PageTables()
    pt.map(0x400000, 0x9000, 1 << 12)
    with pytest.raises(paging.PageFault) as ei:
        paging.translate(0x401000, pt.root, pt.read_u64)
    assert ei.value.level == "PT" and len(ei.value.steps) == 4
    assert isinstance(ei.value, DecodeError) and "PT" in str(ei.value)
    with pytest.raises(paging.PageFault) as ei:
        paging.translate(0x7FFF00000000, pt.root, pt.read_u64)
    assert ei.value.level == "PML4"
    # PS in a PML4E is reserved.
    pt.mem[pt.root + 8 * 5] = 0x200000 | P | PS
    with pytest.raises(paging.PageFault) as ei:
        paging.translate(5 << 39, pt.root, pt.read_u64)
    assert "reserved" in ei.value.reason


def test_non_canonical_and_bad_reader():
    pt = PageTables()
    with pytest.raises(DecodeError):
        paging.translate(0x0000800000000000, pt.root, pt.read_u64)
    with pytest.raises(DecodeError):
        paging.translate(1 << 64, pt.root, pt.read_u64)
    with pytest.raises(DecodeError):
        paging.translate(0x1000, pt.root, lambda a: "x")
    # Reader exceptions propagate unchanged.
    with pytest.raises(KeyError):
        paging.translate(0x1000, pt.root, lambda a: {}[a])
    # Negative (signed) kernel addresses are accepted.
    pt.map(0xFFFFFFFF81000000, 0x1000000, 1 << 21)
    assert paging.translate(-0x7F000000, pt.root, pt.read_u64).phys == 0x1000000


def test_cr3_helpers():
    kernel = 0x000000010A3E6000 | 0x5          # PCID 5
    user = kernel | (1 << 12) | (1 << 11)        # what SWITCH_TO_USER_CR3 makes
    assert paging.kernel_pgd_from_user_cr3(user) == kernel
    assert paging.kernel_pgd_from_user_cr3(user | (1 << 63)) == kernel | (1 << 63)
    assert paging.user_cr3_from_kernel_cr3(kernel) == user
    d = paging.decode_cr3(user | (1 << 63))
    assert d["pgd"] == 0x10A3E7000 and d["pcid"] == 0x805 and d["noflush"]
    assert d["pti_user_pgd"] and d["pti_user_pcid"]
    assert paging.cr3_pgd_address((1 << 62) | 0x1000 | 0xFFF) == 0x1000
    assert paging.decode_cr3(0x2018, pcide=False) == {
        "pgd": 0x2000, "noflush": False, "lam_u57": False, "lam_u48": False,
        "pti_user_pgd": False, "pwt": True, "pcd": True}


_SIZES = [1 << 12, 1 << 21, 1 << 30]


@settings(max_examples=60, deadline=None)
@given(la57=st.booleans(), data=st.data())
def test_walk_finds_mapped_and_faults_on_unmapped(la57, data):
    pt = PageTables(la57=la57)
    top_shift = 48 if la57 else 39
    slots = data.draw(st.lists(st.integers(0, 511), min_size=1, max_size=6, unique=True))
    mapped = []
    for slot in slots:
        size = data.draw(st.sampled_from(_SIZES))
        low = data.draw(st.integers(0, (1 << top_shift) - 1)) & ~(size - 1)
        va = sign_extend((slot << top_shift) | low, la57)
        phys = data.draw(st.integers(0, (1 << 52) - 1)) & ~(size - 1)
        pt.map(va, phys, size)
        mapped.append((va, phys, size))
    for va, phys, size in mapped:
        off = data.draw(st.integers(0, size - 1))
        t = paging.translate(va + off, pt.root, pt.read_u64, la57=la57)
        assert (t.phys, t.page_size) == (phys + off, size)
    # A top-level slot nobody mapped faults at the top level.
    free = data.draw(st.integers(0, 511).filter(lambda s: s not in slots))
    va = sign_extend(free << top_shift, la57)
    with pytest.raises(paging.PageFault) as ei:
        paging.translate(va, pt.root, pt.read_u64, la57=la57)
    assert ei.value.level == ("PML5" if la57 else "PML4")
    # Next to a 4 KiB mapping in its own PT, the neighbouring page faults at PT.
    va0, phys0, size0 = mapped[0]
    if size0 == 1 << 12:
        neighbour = va0 ^ (1 << 12)
        with pytest.raises(paging.PageFault) as ei:
            paging.translate(neighbour, pt.root, pt.read_u64, la57=la57)
        assert ei.value.level == "PT"


def test_kernel_cr3_tells_a_pti_pair_from_an_odd_pgd():
    """A CR3 with bit 12 set is a PTI user half only if the page below holds
    the same user-space entries (plus NX: pti.c __pti_set_user_pgtbl); 7.2
    without PTI allocates 4 KiB PGDs, which may sit at an odd page."""
    mem = {}
    read = lambda a: mem.get(a, 0)
    kernel, user = 0x10A3E6000, 0x10A3E7000
    entry = 0x2345067
    mem[user + 8 * 3] = entry
    mem[kernel + 8 * 3] = entry | (1 << 63)
    cr3 = user | (1 << 11) | 5
    assert paging.kernel_cr3(cr3, read) == kernel | 5
    assert paging.kernel_cr3(kernel | 5, read) == kernel | 5     # bit 12 clear: as is
    mem[kernel + 8 * 3] = 0x7777067                                 # an unrelated page below
    assert paging.kernel_cr3(user, read) == user
    mem.clear()                                                     # nothing to compare
    assert paging.kernel_cr3(user, read) == user
