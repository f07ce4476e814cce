"""The printk lockless ring buffer (5.10+), decoded from its bytes.

Facts from kernel/printk/printk_ringbuffer.[ch] (6.1; 6.12 renames NO_LPOS
to EMPTY_LINE_LPOS and last_finalized_id to last_finalized_seq, the layout
the reader needs is unchanged):

- struct printk_ringbuffer holds a descriptor ring (count_bits, descs[],
  infos[], head_id, tail_id) and a text data ring (size_bits, data[],
  head_lpos, tail_lpos).  Slot i of descs[] and infos[] is DESC_INDEX(id) =
  id & (2^count_bits - 1).
- prb_desc.state_var: the top two bits of an unsigned long are the state
  (0 reserved, 1 committed, 2 finalized, 3 reusable), the rest the id the
  slot holds now (DESC_ID).  Readers take committed and finalized records
  whose slot still holds their id; the kernel's own readers only finalized
  ones (a committed record may still be extended by a LOG_CONT printk).
- prb_desc.text_blk_lpos {begin, next}: logical positions in the data
  ring.  Both with bit 0 set: a data-less record (FAILED_LPOS 0x1: its text
  was lost; NO_LPOS/EMPTY_LINE_LPOS 0x3: an empty line).  Else the block is
  at data[begin & mask] when begin and next are in the same wrap, or at
  data[0] when it wraps; each block starts with the id of its descriptor
  (an unsigned long), then the text.
- printk_info: seq, ts_nsec, text_len, facility, flags:5 and level:3
  (bitfields), caller_id, dev_info {subsystem[16], device[48]}.  seq is
  congruent to the slot index modulo the descriptor count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from gdbext.decoders.bits import Record
from gdbext.errors import DecodeError

DESC_STATES = {0: "reserved", 1: "committed", 2: "finalized", 3: "reusable"}
READABLE = ("committed", "finalized")
FAILED_LPOS = 0x1
NO_LPOS = 0x3          # EMPTY_LINE_LPOS from 6.10
LOG_NEWLINE = 2        # enum printk_info_flags (kernel/printk/printk_ringbuffer.h)
LOG_CONT = 8
LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass(frozen=True)
class Layout:
    """Offsets (bytes) and bitfields (absolute bit offset, width) of the
    structures, from DWARF; the defaults are x86-64 6.1 and 6.12."""
    long_size: int = 8
    desc_size: int = 24
    desc_state_var: int = 0
    desc_begin: int = 8
    desc_next: int = 16
    info_size: int = 88
    info_seq: int = 0
    info_ts: int = 8
    info_text_len: int = 16
    info_facility: int = 18
    info_flags: Tuple[int, int] = (152, 5)
    info_level: Tuple[int, int] = (157, 3)
    info_caller_id: int = 20
    info_subsystem: Optional[Tuple[int, int]] = (24, 16)   # offset, size
    info_device: Optional[Tuple[int, int]] = (40, 48)


@dataclass(frozen=True)
class Ring:
    """The header fields of struct printk_ringbuffer a reader needs."""
    count_bits: int
    size_bits: int
    head_id: int
    tail_id: int
    descs: int = 0      # addresses, for the caller's reads
    infos: int = 0
    data: int = 0

    @property
    def count(self) -> int:
        return 1 << self.count_bits

    @property
    def data_size(self) -> int:
        return 1 << self.size_bits


@dataclass
class LogRecord(Record):
    seq: int
    ts_nsec: int
    level: int
    facility: int
    flags: int
    caller_id: int
    text: str
    state: str
    id: int
    subsystem: str = ""
    device: str = ""
    text_lost: bool = False

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level & 7]


def _u(raw: bytes, off: int, size: int) -> int:
    if off + size > len(raw):
        raise DecodeError(f"printk ring: need {off + size} bytes, got {len(raw)}")
    return int.from_bytes(raw[off:off + size], "little")


def bitfield(raw: bytes, bit_offset: int, width: int) -> int:
    start = bit_offset // 8
    nbytes = (bit_offset % 8 + width + 7) // 8
    return (_u(raw, start, nbytes) >> (bit_offset % 8)) & ((1 << width) - 1)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def desc_state(state_var: int, long_size: int = 8) -> Tuple[int, str]:
    """(id, state name) of a prb_desc.state_var (DESC_ID, DESC_STATE)."""
    shift = long_size * 8 - 2
    return state_var & ((1 << shift) - 1), DESC_STATES[(state_var >> shift) & 3]


def ids(ring: Ring, long_size: int = 8) -> Iterator[int]:
    """The descriptor ids from tail to head, at most one ring's worth."""
    mask = (1 << (long_size * 8 - 2)) - 1
    i = ring.tail_id & mask
    for _ in range(ring.count):
        yield i
        if i == ring.head_id & mask:
            return
        i = (i + 1) & mask


def slot_span(ring: Ring, long_size: int = 8) -> List[Tuple[int, int]]:
    """[(first slot, number of slots)] covering tail..head: the parts of
    descs[] and infos[] a reader needs (two spans when it wraps)."""
    mask = ring.count - 1
    tail = ring.tail_id & mask
    n = ((ring.head_id - ring.tail_id) & ((1 << (long_size * 8 - 2)) - 1)) + 1
    n = min(n, ring.count)
    first = min(n, ring.count - tail)
    return [(tail, first)] + ([(0, n - first)] if n > first else [])


def block_text(data: bytes, ring: Ring, begin: int, next_: int, desc_id: int,
               long_size: int = 8) -> Tuple[Optional[bytes], str]:
    """(text bytes or None, why not) of one data block (get_data())."""
    if begin & 1 and next_ & 1:
        if begin == NO_LPOS and next_ == NO_LPOS:
            return b"", ""
        return None, "data-less record: its text was lost (FAILED_LPOS)"
    size = ring.data_size
    mask = size - 1
    if begin >> ring.size_bits == next_ >> ring.size_bits and begin < next_:
        start, length = begin & mask, next_ - begin
    elif (begin + size) >> ring.size_bits == next_ >> ring.size_bits:
        start, length = 0, next_ & mask
    else:
        return None, f"illegal block position {begin:#x}..{next_:#x}"
    if length < long_size or start + length > len(data):
        return None, f"block {begin:#x}..{next_:#x} does not fit the data ring"
    block_id = _u(data, start, long_size)
    if block_id != desc_id:
        return None, f"the data block holds id {block_id:#x}, not {desc_id:#x}: overwritten"
    return data[start + long_size:start + length], ""


def decode_info(raw: bytes, layout: Layout) -> Dict[str, object]:
    out = {"seq": _u(raw, layout.info_seq, 8), "ts_nsec": _u(raw, layout.info_ts, 8),
           "text_len": _u(raw, layout.info_text_len, 2), "facility": _u(raw, layout.info_facility, 1),
           "flags": bitfield(raw, *layout.info_flags), "level": bitfield(raw, *layout.info_level),
           "caller_id": _u(raw, layout.info_caller_id, 4), "subsystem": "", "device": ""}
    if layout.info_subsystem:
        off, n = layout.info_subsystem
        out["subsystem"] = _cstr(raw[off:off + n])
    if layout.info_device:
        off, n = layout.info_device
        out["device"] = _cstr(raw[off:off + n])
    return out


def records(ring: Ring, descs: bytes, infos: bytes, data: bytes,
            layout: Layout = Layout()) -> Tuple[List[LogRecord], Dict[str, int]]:
    """The readable records from tail to head, oldest first, and counts of
    what was skipped: {"reserved", "reusable", "stale", "lost"}."""
    skipped = {"reserved": 0, "reusable": 0, "stale": 0, "lost": 0}
    out = []
    mask = ring.count - 1
    for desc_id in ids(ring, layout.long_size):
        slot = desc_id & mask
        d = descs[slot * layout.desc_size:(slot + 1) * layout.desc_size]
        sv_id, state = desc_state(_u(d, layout.desc_state_var, layout.long_size), layout.long_size)
        if sv_id != desc_id:
            skipped["stale"] += 1
            continue
        if state not in READABLE:
            skipped[state] += 1
            continue
        info = decode_info(infos[slot * layout.info_size:(slot + 1) * layout.info_size], layout)
        if info["seq"] & mask != slot:
            skipped["stale"] += 1
            continue
        text, why = block_text(data, ring, _u(d, layout.desc_begin, layout.long_size),
                               _u(d, layout.desc_next, layout.long_size), desc_id, layout.long_size)
        if text is None:
            skipped["lost"] += 1
        body = (text or b"")[:info["text_len"]].decode("utf-8", "replace")
        out.append(LogRecord(info["seq"], info["ts_nsec"], info["level"], info["facility"], info["flags"],
                             info["caller_id"], body, state, desc_id, info["subsystem"], info["device"],
                             text is None))
    out.sort(key=lambda r: r.seq)
    return out, skipped


def timestamp(ts_nsec: int) -> str:
    """The console's "[    1.959826]" (print_time(), kernel/printk/printk.c)."""
    return f"[{ts_nsec // 1_000_000_000:5d}.{ts_nsec % 1_000_000_000 // 1000:06d}]"


def console_lines(record: LogRecord) -> List[str]:
    """The lines the console prints for a record: every line of its text
    with the timestamp prefix (record_print_text())."""
    return [f"{timestamp(record.ts_nsec)} {line}" for line in record.text.split("\n")]


def parse_level(text: str) -> int:
    """A syslog level by number or name (err, warning, ...)."""
    word = str(text).strip().lower()
    aliases = {"warn": "warning", "error": "err", "emergency": "emerg", "critical": "crit"}
    word = aliases.get(word, word)
    if word in LEVEL_NAMES:
        return LEVEL_NAMES.index(word)
    try:
        n = int(word, 0)
    except ValueError:
        raise DecodeError(f"unknown log level {text!r}: use 0-7 or {', '.join(LEVEL_NAMES)}") from None
    if not 0 <= n <= 7:
        raise DecodeError(f"log level must be 0-7, got {n}")
    return n
