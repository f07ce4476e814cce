"""gdbext.decoders.xarray: xas_load()'s walk over hand-built trees."""
from hypothesis import given, strategies as st

from gdbext.decoders import xarray

SHIFT_OFF, SLOTS_OFF = 0, 40       # struct xa_node on x86-64 (6.1 DWARF: shift at 0, slots at 40)


class Memory:
    def __init__(self):
        self.words, self.bytes = {}, {}

    def node(self, address, shift, slots):
        self.bytes[address + SHIFT_OFF] = shift
        for i, v in enumerate(slots):
            self.words[address + SLOTS_OFF + 8 * i] = v
        return address + 2                 # xa_mk_node()

    def lookup(self, head, index):
        return xarray.lookup(head, index, lambda a: self.words.get(a, 0), lambda a: self.bytes[a],
                             SHIFT_OFF, SLOTS_OFF)


def build(entries):
    """A two-level tree (shift 6 over shift 0) holding {index: pointer}."""
    m = Memory()
    children = [0] * 64
    for hi in sorted({i >> 6 for i in entries}):
        slots = [entries.get((hi << 6) | lo, 0) for lo in range(64)]
        children[hi] = m.node(0x200000 + hi * 0x1000, 0, slots)
    return m, m.node(0x100000, 6, children)


@given(st.dictionaries(st.integers(0, 4095), st.integers(1, 1 << 40).map(lambda p: 0xFFFF888000000000 + p * 64),
                       min_size=1, max_size=40), st.integers(0, 1 << 20))
def test_every_stored_index_and_no_other(entries, probe):
    m, head = build(entries)
    for index, pointer in entries.items():
        assert m.lookup(head, index) == pointer
    assert m.lookup(head, probe) == entries.get(probe)


def test_siblings_values_and_a_lone_root_entry():
    page = 0xFFFFEA00000E4EC0
    slots = [0] * 64
    slots[8] = page
    for i in range(9, 16):
        slots[i] = (8 << 2) | 2            # xa_mk_sibling(8): a 8-page folio at 8..15
    slots[20] = (1234 << 1) | 1            # a value (shadow) entry
    m = Memory()
    head = m.node(0x100000, 0, slots)
    assert [m.lookup(head, i) for i in (8, 12, 15, 16, 20)] == [page, page, page, None, None]
    assert m.lookup(head, 64) is None      # past the root's reach
    assert m.lookup(page, 0) == page and m.lookup(page, 1) is None and m.lookup(0, 0) is None
