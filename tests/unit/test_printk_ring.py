"""decoders/printk_ring.py on byte fixtures made by a small model of the
kernel's writer (prb_reserve/data_alloc in kernel/printk/printk_ringbuffer.c:
blocks of ALIGN(len + sizeof(id), sizeof(id)) bytes, a block that would
cross the end of the data array placed at data[0] with its id at both
places; seq congruent to the slot index)."""
import pytest
from hypothesis import given, settings, strategies as st

from gdbext.decoders import printk_ring as pr
from gdbext.errors import DecodeError

L = pr.Layout()
SV_SHIFT = 62
MASK_ID = (1 << 62) - 1


class Writer:
    def __init__(self, count_bits=3, size_bits=8):
        self.count_bits, self.size_bits = count_bits, size_bits
        self.count, self.size = 1 << count_bits, 1 << size_bits
        self.descs = bytearray(self.count * L.desc_size)
        self.infos = bytearray(self.count * L.info_size)
        self.data = bytearray(self.size)
        self.head_lpos = 0
        self.tail_id = 0
        self.next_id = 0
        self.blocks = {}   # id -> (begin, next)

    def _desc(self, i, state, begin, nxt):
        slot = i & (self.count - 1)
        raw = ((state << SV_SHIFT) | i).to_bytes(8, "little") + begin.to_bytes(8, "little") + nxt.to_bytes(8, "little")
        self.descs[slot * 24:slot * 24 + 24] = raw

    def _info(self, i, text, level, flags=pr.LOG_NEWLINE):
        slot = i & (self.count - 1)
        raw = bytearray(L.info_size)
        raw[0:8] = i.to_bytes(8, "little")                # seq == id here
        raw[8:16] = (1_000_000 * (i + 1)).to_bytes(8, "little")
        raw[16:18] = len(text).to_bytes(2, "little")
        raw[19] = flags | level << 5
        raw[20:24] = (100 + i).to_bytes(4, "little")
        raw[24:28] = b"pci\0"
        self.infos[slot * L.info_size:(slot + 1) * L.info_size] = raw

    def write(self, text: bytes, level=6, state=2):
        i = self.next_id
        self.next_id += 1
        if i - self.tail_id >= self.count:
            self._desc(self.tail_id, 3, *self.blocks.get(self.tail_id, (1, 1)))
            self.tail_id += 1
        size = (len(text) + 8 + 7) & ~7
        begin = self.head_lpos
        nxt = begin + size
        if begin >> self.size_bits != nxt >> self.size_bits:
            nxt = ((nxt >> self.size_bits) << self.size_bits) + size
            self.data[begin % self.size:begin % self.size + 8] = i.to_bytes(8, "little")[:self.size - begin % self.size]
            at = 0
        else:
            at = begin % self.size
        self.data[at:at + 8] = i.to_bytes(8, "little")
        self.data[at + 8:at + 8 + len(text)] = text
        self.head_lpos = nxt
        self.blocks[i] = (begin, nxt)
        self._desc(i, state, begin, nxt)
        self._info(i, text, level)
        # A block overwritten by this one loses its text: its descriptor is
        # made reusable first (data_push_tail), as the kernel does.
        for old, (b, n) in list(self.blocks.items()):
            if old != i and n <= nxt - self.size and old >= self.tail_id:
                self._desc(old, 3, b, n)
                self.tail_id = max(self.tail_id, old + 1)
        return i

    def dataless(self, lpos, level=6):
        i = self.next_id
        self.next_id += 1
        self._desc(i, 2, lpos, lpos)
        self._info(i, b"", level)
        return i

    def ring(self):
        return pr.Ring(self.count_bits, self.size_bits, self.next_id - 1, self.tail_id)

    def read(self):
        return pr.records(self.ring(), bytes(self.descs), bytes(self.infos), bytes(self.data))


def test_simple_records_and_fields():
    w = Writer()
    w.write(b"hello", level=3)
    w.write(b"two\nlines", level=6)
    recs, skipped = w.read()
    assert [r.text for r in recs] == ["hello", "two\nlines"]
    assert [r.level for r in recs] == [3, 6] and recs[0].level_name == "err"
    assert recs[0].flags == pr.LOG_NEWLINE and recs[0].caller_id == 100 and recs[0].subsystem == "pci"
    assert recs[1].ts_nsec == 2_000_000 and skipped == {"reserved": 0, "reusable": 0, "stale": 0, "lost": 0}
    assert pr.console_lines(recs[1]) == ["[    0.002000] two", "[    0.002000] lines"]


def test_wrapping_block_and_dataless_records():
    w = Writer(count_bits=4, size_bits=7)
    for n in range(5):
        w.write(b"x" * 20 + bytes([65 + n]))
    w.dataless(pr.NO_LPOS)
    w.dataless(pr.FAILED_LPOS)
    recs, skipped = w.read()
    assert recs[-2].text == "" and not recs[-2].text_lost
    assert recs[-1].text_lost and skipped["lost"] == 1
    texts = [r.text for r in recs if r.text]
    assert texts[-1] == "x" * 20 + "E"          # the last one wrapped to data[0]
    assert all(t.startswith("x" * 20) for t in texts)


def test_committed_reserved_and_stale():
    w = Writer()
    w.write(b"done")
    w.write(b"open", state=1)
    w.write(b"busy", state=0)
    recs, skipped = w.read()
    assert [(r.text, r.state) for r in recs] == [("done", "finalized"), ("open", "committed")]
    assert skipped["reserved"] == 1
    w.descs[0:8] = ((2 << SV_SHIFT) | 8).to_bytes(8, "little")   # slot 0 now holds id 8
    recs, skipped = w.read()
    assert skipped["stale"] == 1 and [r.text for r in recs] == ["open"]


def test_overwritten_block_is_lost_not_misread():
    w = Writer()
    w.write(b"abc")
    w.data[0:8] = (99).to_bytes(8, "little")
    recs, skipped = w.read()
    assert recs[0].text_lost and skipped["lost"] == 1


def test_slot_span_wraps():
    r = pr.Ring(count_bits=3, size_bits=8, head_id=10, tail_id=5)
    assert pr.slot_span(r) == [(5, 3), (0, 3)]
    assert list(pr.ids(r)) == [5, 6, 7, 8, 9, 10]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40).filter(lambda b: b"\0" not in b), min_size=1, max_size=40))
def test_random_logs_read_back_newest_records(texts):
    w = Writer(count_bits=3, size_bits=8)
    for t in texts:
        w.write(t)
    recs, _ = w.read()
    assert [r.seq for r in recs] == sorted(r.seq for r in recs)
    for r in recs:
        if not r.text_lost:
            assert r.text == texts[r.seq].decode("utf-8", "replace")
    assert recs[-1].seq == len(texts) - 1


@pytest.mark.parametrize("word,level", [("err", 3), ("3", 3), ("warn", 4), ("DEBUG", 7), ("0", 0)])
def test_parse_level(word, level):
    assert pr.parse_level(word) == level


@pytest.mark.parametrize("word", ["8", "-1", "loud", ""])
def test_parse_level_rejects(word):
    with pytest.raises(DecodeError):
        pr.parse_level(word)


def test_bitfield_and_short_buffers():
    assert pr.bitfield(bytes([0, 0, 0b01100010]), 16 + 5, 3) == 3
    with pytest.raises(DecodeError):
        pr.decode_info(b"\0" * 10, L)
