# SPDX-License-Identifier: GPL-2.0-or-later
"""The kernel's compressed symbol table (kallsyms), decoded from its bytes.

Pure: the arrays' bytes in, (address, type, name) out.  The layout is what
scripts/kallsyms.c writes and kernel/kallsyms.c reads:

- kallsyms_names: per symbol a length byte (MSB set: a second byte holds
  length >> 7, "big" symbols since 6.1), then that many token numbers; the
  first expanded character is the type letter (T, t, D, ...);
- kallsyms_token_table: 256 NUL-terminated strings; kallsyms_token_index:
  256 u16 offsets of them in the table;
- kallsyms_markers: a u32 offset in kallsyms_names every 256 symbols;
- the addresses, one of
  - kallsyms_addresses: absolute longs (no CONFIG_KALLSYMS_BASE_RELATIVE);
  - kallsyms_offsets + kallsyms_relative_base (4.6 to 6.14): u32 offsets
    from the base, or with CONFIG_KALLSYMS_ABSOLUTE_PERCPU s32 values where
    >= 0 is an absolute (per-cpu) value and < 0 is base - 1 - value;
  - kallsyms_offsets alone (6.15+, no kallsyms_relative_base): each s32 is
    relative to its own address (offset_to_ptr).

find_tables() locates the arrays in a blob of the kernel image with no
symbol at all: the token table's single-digit tokens, the markers before
it, the names before them and the count before the names.
"""
import dataclasses
import re
import struct
from typing import List, Optional, Tuple

from gdbext import errors
from gdbext.decoders.bits import MASK64

ABSOLUTE = "absolute"              # kallsyms_addresses
RELATIVE = "relative"              # u32 offsets from kallsyms_relative_base
ABSOLUTE_PERCPU = "absolute_percpu"  # s32: >= 0 absolute, < 0 from the base
PLACE_RELATIVE = "place_relative"  # s32 from the offset's own address (6.15+)


@dataclasses.dataclass
class Symbol:
    address: int
    type: str
    name: str


def tokens(token_table: bytes, token_index: bytes) -> List[bytes]:
    """The 256 tokens, through the index as kallsyms_expand_symbol reads them."""
    if len(token_index) < 512:
        raise errors.DecodeError("kallsyms_token_index is shorter than 256 entries")
    out = []
    for off in struct.unpack_from("<256H", token_index):
        end = token_table.find(b"\0", off)
        if end < 0:
            raise errors.DecodeError(f"kallsyms token at {off} has no NUL")
        out.append(token_table[off:end])
    return out


def _entry(names: bytes, off: int) -> Tuple[int, int]:
    """(offset of the first token byte, its count) of the entry at `off`."""
    if off >= len(names):
        raise errors.DecodeError(f"kallsyms_names ends at {len(names)}, entry at {off}")
    n = names[off]
    if n & 0x80:
        n = (n & 0x7F) | (names[off + 1] << 7)
        return off + 2, n
    return off + 1, n


def names_length(names: bytes, count: int, start: int = 0) -> int:
    """Bytes that `count` entries take from `start` in kallsyms_names."""
    off = start
    for _ in range(count):
        first, n = _entry(names, off)
        off = first + n
    if off > len(names):
        raise errors.DecodeError("kallsyms_names is shorter than its symbol count")
    return off - start


def expand_names(names: bytes, count: int, token_list: List[bytes]) -> List[Tuple[str, str]]:
    """[(type letter, name)] of the first `count` entries."""
    out = []
    off = 0
    for _ in range(count):
        first, n = _entry(names, off)
        if first + n > len(names):
            raise errors.DecodeError("kallsyms_names is shorter than its symbol count")
        text = b"".join(token_list[b] for b in names[first:first + n])
        if not text:
            raise errors.DecodeError(f"empty kallsyms entry at {off}")
        out.append((chr(text[0]), text[1:].decode("latin-1")))
        off = first + n
    return out


def addresses(offsets: bytes, count: int, mode: str, relative_base: int = 0,
              offsets_address: int = 0) -> List[int]:
    """The `count` symbol addresses (see the module's comment for `mode`)."""
    if mode == ABSOLUTE:
        return list(struct.unpack_from(f"<{count}Q", offsets))
    if mode == RELATIVE:
        return [(relative_base + v) & MASK64 for v in struct.unpack_from(f"<{count}I", offsets)]
    values = struct.unpack_from(f"<{count}i", offsets)
    if mode == ABSOLUTE_PERCPU:
        return [v if v >= 0 else (relative_base - 1 - v) & MASK64 for v in values]
    if mode == PLACE_RELATIVE:
        return [(offsets_address + 4 * i + v) & MASK64 for i, v in enumerate(values)]
    raise ValueError(mode)


def relative_mode(offsets: bytes, count: int) -> str:
    """RELATIVE or ABSOLUTE_PERCPU for a kallsyms_offsets with a base: with
    absolute per-cpu values every kernel-image symbol is negative, while
    plain u32 offsets from the lowest symbol stay below 2 GiB."""
    values = struct.unpack_from(f"<{count}i", offsets)
    return ABSOLUTE_PERCPU if any(v < 0 for v in values) else RELATIVE


def decode(names: bytes, count: int, token_table: bytes, token_index: bytes, offsets: bytes,
           mode: str, relative_base: int = 0, offsets_address: int = 0) -> List[Symbol]:
    """Every symbol, in kallsyms order (sorted by address)."""
    expanded = expand_names(names, count, tokens(token_table, token_index))
    addrs = addresses(offsets, count, mode, relative_base, offsets_address)
    return [Symbol(a, t, n) for a, (t, n) in zip(addrs, expanded)]


# ---------------------------------------------------------------------------
# Finding the arrays in a blob of the kernel image

# Tokens stand for their own character when no pair replaced them, and
# digits always do in a kernel: "0\0" ... "9\0" at token indices 0x30-0x39.
_DIGITS = b"".join(bytes([c]) + b"\0" for c in b"0123456789")
MIN_SYMBOLS, MAX_SYMBOLS = 1000, 4_000_000


@dataclasses.dataclass
class Tables:
    """Offsets in the blob of each array, and the count."""
    num_syms: int
    count: int
    names: int
    names_size: int
    markers: int
    token_table: int
    token_index: int
    offsets: Optional[int] = None
    relative_base: Optional[int] = None   # offset of kallsyms_relative_base, if any
    pointer_size: int = 8                 # of kallsyms_relative_base (an unsigned long)


def _token_table_start(blob: bytes, digits_at: int) -> Optional[int]:
    """The start of the token table whose '0' token is at `digits_at`:
    walk back 0x30 NUL-terminated strings."""
    pos = digits_at
    for _ in range(0x30):
        prev = blob.rfind(b"\0", 0, pos - 1)
        if prev < 0:
            return None
        pos = prev + 1
    return pos


def _token_index_after(blob: bytes, table: int) -> Optional[Tuple[int, int]]:
    """(token_index offset, table end): the index follows the table,
    aligned, and its 256 u16 offsets are the table's string starts."""
    starts, pos = [], table
    for _ in range(256):
        end = blob.find(b"\0", pos)
        if end < 0:
            return None
        starts.append(pos - table)
        pos = end + 1
    if max(starts) > 0xFFFF:
        return None
    want = struct.pack("<256H", *starts)
    for align in range(0, 16):
        at = pos + align
        if blob[at:at + 512] == want:
            return at, pos
    return None


def _markers_before(blob: bytes, limit: int) -> Optional[Tuple[int, int]]:
    """(offset, entries) of the last increasing u32 run that starts with 0
    and ends within 4 MiB before `limit`: kallsyms_markers."""
    lo = max(0, limit - (4 << 20)) & ~3
    words = struct.unpack_from(f"<{(limit - lo) // 4}I", blob, lo)
    best = None
    for i in range(len(words) - 3):
        if words[i] != 0 or not 256 <= words[i + 1] <= 256 * 200:
            continue
        n = 1
        while i + n < len(words) and 256 <= words[i + n] - words[i + n - 1] <= 256 * 200:
            n += 1
        if n >= 4 and (best is None or n > best[1]):
            best = (lo + 4 * i, n)
    return best


def _names_before(blob: bytes, markers: int, blocks: int) -> Optional[Tuple[int, int, int]]:
    """(num_syms offset, count, names offset): the names end at most 8 bytes
    before the markers and start right after the aligned u32 count."""
    last = struct.unpack_from("<I", blob, markers + 4 * (blocks - 1))[0]
    lo_count, hi_count = 256 * (blocks - 1) + 1, 256 * blocks
    for start in range(markers - last - 8, max(0, markers - last - 256 * 256), -1):
        for gap in (4, 8):
            if start - gap < 0:
                continue
            count = struct.unpack_from("<I", blob, start - gap)[0]
            if not lo_count <= count <= hi_count:
                continue
            try:
                size = names_length(blob, count - 256 * (blocks - 1), start + last)
            except (errors.DecodeError, IndexError):
                continue
            end = start + last + size
            if markers - 8 <= end <= markers:
                return start - gap, count, start
    return None


def find_tables(blob: bytes) -> Tables:
    """Locate kallsyms' arrays in `blob` (part of the kernel image holding
    them); the addresses array is found by locate_offsets()."""
    for m in re.finditer(re.escape(_DIGITS), blob):
        table = _token_table_start(blob, m.start())
        if table is None:
            continue
        index = _token_index_after(blob, table)
        if index is None:
            continue
        markers = _markers_before(blob, table)
        if markers is None:
            continue
        found = _names_before(blob, *markers)
        if found is None:
            continue
        num_syms, count, names = found
        return Tables(num_syms=num_syms, count=count, names=names,
                      names_size=names_length(blob, count, names), markers=markers[0],
                      token_table=table, token_index=index[0])
    raise errors.DecodeError("no kallsyms token table in this part of the kernel image")


def _kernel_address(value: int, pointer_size: int = 8) -> bool:
    # The kernel image's mapping on x86-64 (and any other top-half base);
    # a 32-bit kernel's is above its user space, in the top half too.
    return value >= (0xFFFF800000000000 if pointer_size == 8 else 0x80000000)


def _sorted(addrs: List[int]) -> bool:
    return all(a <= b for a, b in zip(addrs, addrs[1:]))


def _align(value: int, to: int) -> int:
    return (value + to - 1) & ~(to - 1)


def locate_offsets(blob: bytes, t: Tables, pointer_size: int = 8) -> Tables:
    """Fill in t.offsets and t.relative_base: before the count with the base
    between them (up to 6.1), or after the token index with the base after
    them (6.2 to 6.14) or without a base (6.15+).  The arrangement whose
    addresses come out sorted, as scripts/kallsyms.c sorts them, wins.
    `pointer_size` is the kernel's long: the base's size and alignment
    (.long and .balign 4 on a 32-bit kernel, scripts/kallsyms.c)."""
    n, size = t.count, pointer_size
    candidates = []
    base_before = t.num_syms - size
    if base_before >= 4 * n:
        start = base_before - 4 * n
        candidates.append((start - (start % size), base_before))
    after = t.token_index + 512
    for align in sorted({4, size}):
        start = _align(after, align)
        if start + 4 * n + size <= len(blob):
            candidates.append((start, _align(start + 4 * n, size)))
            candidates.append((start, None))
    for offsets, base in candidates:
        raw = blob[offsets:offsets + 4 * n]
        if base is None:
            addrs = addresses(raw, n, PLACE_RELATIVE, offsets_address=1 << (8 * size - 1))
        else:
            value = int.from_bytes(blob[base:base + size], "little")
            if not _kernel_address(value, size):
                continue
            addrs = addresses(raw, n, relative_mode(raw, n), value)
        if _sorted(addrs):
            return dataclasses.replace(t, offsets=offsets, relative_base=base, pointer_size=size)
    raise errors.DecodeError("kallsyms_offsets not found next to the other kallsyms arrays")


def symbols_from_blob(blob: bytes, blob_address: int, t: Tables) -> List[Symbol]:
    """Decode every symbol from a blob that holds all the arrays, mapped at
    `blob_address`."""
    offsets = blob[t.offsets:t.offsets + 4 * t.count]
    if t.relative_base is None:
        mode, base = PLACE_RELATIVE, 0
    else:
        at, size = t.relative_base, t.pointer_size
        mode, base = relative_mode(offsets, t.count), int.from_bytes(blob[at:at + size], "little")
    return decode(blob[t.names:t.names + t.names_size], t.count, blob[t.token_table:t.token_index],
                  blob[t.token_index:t.token_index + 512], offsets, mode, base, blob_address + t.offsets)
