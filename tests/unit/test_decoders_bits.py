"""gdbext.decoders.bits: flag and field helpers."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from gdbext.errors import DecodeError
from gdbext.decoders import bits


def test_decode_flags_named_and_unknown():
    table = {0: "A", 3: "D"}
    assert bits.decode_flags(0b1001, table) == ["A", "D"]
    assert bits.decode_flags(0b1011, table) == ["A", "bit1", "D"]
    assert bits.decode_flags(0, table) == []
    assert bits.decode_flags(1 << 70, table) == ["bit70"]


@pytest.mark.parametrize("bad", [-1, "3", 1.5, None, True])
def test_decode_flags_rejects_non_uint(bad):
    with pytest.raises(DecodeError):
        bits.decode_flags(bad, {})


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 64) - 1),
       st.dictionaries(st.integers(0, 63), st.from_regex(r"[A-Z]{1,6}", fullmatch=True), max_size=20))
def test_decode_flags_covers_every_set_bit_once(value, table):
    names = bits.decode_flags(value, table)
    set_bits = [n for n in range(64) if value >> n & 1]
    assert len(names) == len(set_bits)
    assert names == [table.get(n, f"bit{n}") for n in set_bits]


def test_field_helpers():
    assert bits.field(0xABCD, 4, 8) == 0xBC
    assert bits.bits(0xABCD, 11, 4) == 0xBC
    assert bits.bit(0b100, 2) and not bits.bit(0b100, 1)
    assert bits.to_signed(0xFFFFFFFFFFFFFFFF) == -1
    assert bits.to_signed(0xFFFFFF9C, 32) == -100
    assert bits.to_unsigned(-1, 64) == (1 << 64) - 1
    with pytest.raises(DecodeError):
        bits.check_uint(1 << 64)
    with pytest.raises(DecodeError):
        bits.as_bytes(b"abc", 4, "thing")
    with pytest.raises(DecodeError):
        bits.as_bytes("abcd", 4, "thing")


def test_record_to_dict_is_json_ready():
    from dataclasses import dataclass

    @dataclass
    class Inner(bits.Record):
        x: int

    @dataclass
    class Outer(bits.Record):
        items: tuple
        inner: Inner
        raw: bytes

    d = Outer((1, 2), Inner(3), b"\x01\x02").to_dict()
    assert d == {"items": [1, 2], "inner": {"x": 3}, "raw": [1, 2]}
    json.dumps(d)
