"""Bit-twiddling helpers and the common base for decoder results.

Everything here is pure: ints and bytes in, ints/strings/lists out.  Bad
input (negative values, values wider than the register, short buffers) is
reported as DecodeError so callers only ever have one exception to handle.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Any, Dict, List, Mapping, Union

from gdbext.errors import DecodeError

MASK16 = (1 << 16) - 1
MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1

BytesLike = Union[bytes, bytearray, memoryview]


def _jsonify(value: Any) -> Any:
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonify(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonify(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        # JSON has no bytes; a list of ints keeps it lossless and int-typed.
        return list(bytes(value))
    return value


class Record:
    """Mixin for decoder dataclasses: `to_dict()` gives JSON-ready data
    (ints stay ints, nested records become dicts, tuples become lists)."""

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: _jsonify(getattr(self, f.name)) for f in dataclasses.fields(self)}


def check_uint(value: Any, width: int = 64, what: str = "value") -> int:
    """Return `value` as a non-negative int that fits in `width` bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what} must be an integer, not {type(value).__name__}")
    if value < 0 or value >> width:
        raise DecodeError(f"{what} {value:#x} does not fit in {width} bits")
    return value


def to_unsigned(value: Any, width: int = 64, what: str = "value") -> int:
    """Accept a signed or unsigned `width`-bit int, return the unsigned form
    (gdb hands out kernel addresses and -1 sentinels either way)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what} must be an integer, not {type(value).__name__}")
    if value < -(1 << (width - 1)) or value >= (1 << width):
        raise DecodeError(f"{what} {value:#x} does not fit in {width} bits")
    return value & ((1 << width) - 1)


def to_signed(value: int, width: int = 64) -> int:
    """Two's-complement reinterpretation of the low `width` bits."""
    value &= (1 << width) - 1
    if value >> (width - 1):
        value -= 1 << width
    return value


def as_bytes(raw: Any, min_len: int, what: str, exact: bool = False) -> bytes:
    """Validate a bytes-like buffer; too short (or wrong size when `exact`)
    is a DecodeError naming what was being decoded."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{what}: expected bytes, not {type(raw).__name__}")
    data = bytes(raw)
    if len(data) < min_len or (exact and len(data) != min_len):
        need = f"exactly {min_len}" if exact else f"at least {min_len}"
        raise DecodeError(f"{what}: need {need} bytes, got {len(data)}")
    return data


def bit(value: int, n: int) -> bool:
    return bool((value >> n) & 1)


def field(value: int, lo: int, width: int) -> int:
    """`width` bits of `value` starting at bit `lo`."""
    return (value >> lo) & ((1 << width) - 1)


def bits(value: int, hi: int, lo: int) -> int:
    """SDM-style inclusive range value[hi:lo]."""
    return field(value, lo, hi - lo + 1)


def set_bit_numbers(value: int) -> List[int]:
    """Numbers of the set bits of a non-negative int, lowest first."""
    out = []
    n = 0
    while value:
        if value & 1:
            out.append(n)
        value >>= 1
        n += 1
    return out


def decode_flags(value: int, table: Mapping[int, str]) -> List[str]:
    """Names of the set bits of `value`, lowest bit first.

    `table` maps bit numbers to names; a set bit missing from the table is
    reported as "bit<N>", so every set bit appears exactly once."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DecodeError(f"flags value must be a non-negative integer, not {value!r}")
    return [table.get(n, f"bit{n}") for n in set_bit_numbers(value)]


def flag_bools(value: int, table: Mapping[int, str]) -> Dict[str, bool]:
    """{name: is_set} for every bit named in `table` (display order = bit order)."""
    return {name: bit(value, n) for n, name in sorted(table.items())}


def unpack_from(fmt: str, data: bytes, offset: int, what: str) -> tuple:
    """struct.unpack_from that reports short buffers as DecodeError."""
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error as e:
        raise DecodeError(f"{what}: buffer too short ({len(data)} bytes): {e}") from None


def int_or_bytes(raw: Any, size: int, what: str) -> int:
    """Descriptors arrive as either an int or `size` little-endian bytes."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return int.from_bytes(as_bytes(raw, size, what, exact=True), "little")
    return check_uint(raw, size * 8, what)
