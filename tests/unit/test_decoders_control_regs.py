"""gdbext.decoders.control_regs and the CR3 view of arch/x86_64/control.py,
with values read from the lab guest (QEMU -cpu Haswell, Debian 6.1)."""
import pytest
from hypothesis import given, strategies as st

from gdbext.errors import DecodeError
from gdbext.decoders import control_regs as cr


def test_cr0_of_a_running_kernel():
    d = cr.decode_cr0(0x80050033)
    assert d["set"] == ["PE", "MP", "ET", "NE", "WP", "AM", "PG"]
    assert d["clear"] == ["EM", "TS", "NW", "CD"] and d["unknown"] == []
    assert {b["name"]: b["bit"] for b in d["bits"]}["WP"] == 16


def test_cr4_of_the_haswell_model():
    d = cr.decode_cr4(0x1506B0)
    assert d["set"] == ["PSE", "PAE", "PGE", "OSFXSR", "OSXMMEXCPT", "FSGSBASE", "OSXSAVE", "SMEP"]
    assert "SMAP" in d["clear"] and "PCIDE" in d["clear"] and "LA57" in d["clear"]


def test_cr4_unknown_bit_is_reported():
    d = cr.decode_cr4((1 << 15) | (1 << 5))
    assert d["set"] == ["PAE"] and d["unknown"] == [15]


def test_efer_and_xcr0():
    assert cr.decode_efer(0xD01)["set"] == ["SCE", "LME", "LMA", "NXE"]
    d = cr.decode_xcr0(0x207)
    assert d["set"] == ["X87", "SSE", "AVX", "PKRU"]


def test_cr8_is_a_priority():
    assert cr.decode_cr8(1)["tpl"] == 1 and cr.decode_cr8(1)["set"] == ["TPL=1"]
    assert cr.decode_cr8(0x10)["reserved_set"] is True


@pytest.mark.parametrize("value", [-1, 1 << 64, "0x1", None])
def test_bad_values(value):
    with pytest.raises(DecodeError):
        cr.decode_cr0(value)


def test_consistency():
    assert cr.consistency(0x80050033, 0x1506B0, 0xD01) == []
    problems = cr.consistency(0x33 | 1 << 29, 0, 0x500)
    assert any("CR0.PG" in p for p in problems) and any("PAE" in p for p in problems)
    assert any("NW" in p for p in problems)


@given(st.integers(0, (1 << 64) - 1))
def test_every_set_bit_is_named_once(value):
    for decode, table in ((cr.decode_cr0, cr.CR0_BITS), (cr.decode_cr4, cr.CR4_BITS),
                          (cr.decode_xcr0, cr.XCR0_BITS)):
        d = decode(value)
        named = [b for b in range(64) if value >> b & 1 and b in table]
        assert len(d["set"]) == len(named)
        assert sorted(d["unknown"] + named) == [b for b in range(64) if value >> b & 1]
        assert len(d["set"]) + len(d["clear"]) == len(table)


def test_cr3_view_under_pti():
    from gdbext.arch.x86_64.control import cr3_view
    user = cr3_view(0x545B000, pcide=False, pti=True)
    assert user["view"] == "user" and user["kernel_pgd"] == 0x545A000 and user["user_pgd"] == 0x545B000
    kernel = cr3_view(0x545A000, pcide=False, pti=True)
    assert kernel["view"] == "kernel" and kernel["user_cr3"] == 0x545B000
    # With PCID the user CR3 also has bit 11 (the user PCID) set.
    pcid = cr3_view(0x545A001, pcide=True, pti=True)
    assert pcid["pcid"] == 1 and pcid["user_cr3"] == 0x545B801
    assert cr3_view(0x545B801, pcide=True, pti=True)["kernel_cr3"] == 0x545A001
    off = cr3_view(0x545B000, pcide=False, pti=False)
    assert off["view"] == "only" and off["user_pgd"] is None
    assert cr3_view(0x545B000, pcide=False, pti=None)["view"] is None


def test_cr4_fred_bit():
    """CR4.FRED is bit 32 (Intel's FRED specification, 4.1)."""
    d = cr.decode_cr4((1 << 32) | (1 << 5))
    assert d["set"] == ["PAE", "FRED"] and d["unknown"] == []
