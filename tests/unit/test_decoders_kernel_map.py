# SPDX-License-Identifier: GPL-2.0-or-later
"""decoders/kernel_map.py: the writable, non-executable runs of a page
directory built from bytes (SDM Vol.3A 4.5 entry bits), and the candidate
page pointers in a data blob."""
import array
import struct

from hypothesis import given, strategies as st

from gdbext.decoders import kernel_map as km

BASE = 0xFFFFFFFF80000000
P, RW, PS, NX = km.PRESENT, km.WRITABLE, km.PAGE_SIZE_BIT, km.NO_EXECUTE


def _table(entries: dict) -> bytes:
    words = array.array("Q", [0] * 512)
    for i, e in entries.items():
        words[i] = e
    return words.tobytes()


def test_large_and_small_pages():
    # 2 MiB pages: text (RX) at 8, rodata (RO NX) at 9, data (RW NX) at 10;
    # a page table at 11: 3 RW NX pages, 1 RO NX page, 2 RW NX, 1 not present;
    # a writable executable 2 MiB page at 12 is no data.
    ptes = {0: P | RW | NX, 1: P | RW | NX, 2: P | RW | NX, 3: P | NX, 4: P | RW | NX, 5: P | RW | NX, 6: RW}
    tables = {0x5000: _table(ptes)}
    directory = _table({8: P | PS | 0x1000000, 9: P | PS | NX, 10: P | RW | PS | NX | 0x1400000,
                        11: P | RW | 0x5000, 12: P | RW | PS})
    runs = km.data_ranges(directory, BASE, tables.__getitem__)
    at10, at11 = BASE + 10 * km.LARGE, BASE + 11 * km.LARGE
    assert runs == [(at10, at11 + 3 * km.PAGE), (at11 + 4 * km.PAGE, at11 + 6 * km.PAGE)]


def test_read_only_directory_entry_makes_its_pages_read_only():
    tables = {0x7000: _table({0: P | RW | NX})}
    assert km.data_ranges(_table({0: P | 0x7000}), BASE, tables.__getitem__) == []
    # NX may be set at either level (the effective permission is the OR).
    tables = {0x7000: _table({0: P | RW})}
    assert km.data_ranges(_table({0: P | RW | NX | 0x7000}), BASE, tables.__getitem__) == [(BASE, BASE + km.PAGE)]


@given(st.lists(st.sampled_from([0, P, P | RW, P | NX, P | RW | NX]), min_size=512, max_size=512))
def test_runs_cover_exactly_the_data_pages(kinds):
    tables = {0x9000: _table(dict(enumerate(kinds)))}
    runs = km.data_ranges(_table({0: P | RW | 0x9000}), BASE, tables.__getitem__)
    covered = {a for s, e in runs for a in range(s, e, km.PAGE)}
    want = {BASE + i * km.PAGE for i, k in enumerate(kinds) if k == P | RW | NX}
    assert covered == want
    assert all(b[0] > a[1] for a, b in zip(runs, runs[1:]))      # merged: a gap between runs


def test_page_pointers():
    blob = struct.pack("<6Q", 0xFFFF888001234000, 0xFFFF888001234008, 0xFFFFFFFF81000000,
                       0x1000, 0xFFFF89F0013AC000, 0) + b"\x01\x02\x03"
    assert km.page_pointers(blob, 0xFFFF800000000000, 0xFFFFFFFF80000000) == [
        (0, 0xFFFF888001234000), (32, 0xFFFF89F0013AC000)]
