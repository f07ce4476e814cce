"""decoders.paging.describe_walk / entry_fields: what `kx pagewalk` shows,
over the synthetic page tables of test_paging.py."""
import pytest
from hypothesis import given, strategies as st

from gdbext.decoders import paging
from tests.unit.test_paging import G, P, PKEY3, US, XD, PageTables


def test_4k_walk_described_level_by_level():
    pt = PageTables()
    va = 0x7F1234567ABC
    pt.map(va & ~0xFFF, 0x2345000, 1 << 12, P | US | 0x60, extra=XD | PKEY3)
    t = paging.translate(va, pt.root, pt.read_u64)
    d = paging.describe_walk(va, t.levels, False, translation=t)
    assert d["mapped"] and d["phys"] == 0x2345ABC and d["page_size"] == 4096 and d["fault"] is None
    assert [lv["linux"] for lv in d["levels"]] == ["pgd", "pud", "pmd", "pte"]
    assert [lv["index"] for lv in d["levels"]] == [paging.page_indices(va)[n] for n in ("PML4", "PDPT", "PD", "PT")]
    pte = d["levels"][-1]
    assert pte["bits"] == {"present": True, "writable": False, "user": True, "pwt": False, "pcd": False,
                           "accessed": True, "nx": True, "leaf": True, "dirty": True, "global_page": False,
                           "pkey": 3}
    assert pte["next_table"] is None and d["levels"][0]["next_table"] == d["levels"][1]["address"] & ~0xFFF
    assert d["pkey"] == 3 and not d["writable"] and not d["executable"] and d["user"]


def test_2m_leaf_and_fault():
    pt = PageTables()
    pt.map(0xFFFFFFFF82000000, 0x2000000, 1 << 21, P | G)
    t = paging.translate(0xFFFFFFFF82000360, pt.root, pt.read_u64)
    d = paging.describe_walk(t.va, t.levels, translation=t)
    assert d["levels"][-1]["level"] == "PD" and d["levels"][-1]["bits"]["leaf"]
    assert "PS" in d["levels"][-1]["flags"] and d["global_page"] and d["page_size"] == 1 << 21
    with pytest.raises(paging.PageFault) as ei:
        paging.translate(0xFFFFFFFF80000000, pt.root, pt.read_u64)
    f = paging.describe_walk(0xFFFFFFFF80000000, ei.value.steps, fault=ei.value)
    assert not f["mapped"] and f["fault"]["level"] == "PD" and f["fault"]["linux"] == "pmd"
    assert f["levels"][-1]["flags"] == [] and f["levels"][-1]["bits"]["present"] is False


@given(st.integers(0, (1 << 64) - 1), st.sampled_from(["PML4", "PDPT", "PD", "PT"]))
def test_entry_fields_agree_with_flag_names(value, level):
    bits = paging.entry_fields(value, level)
    names = paging.entry_flags(value, level)
    assert bits["present"] == ("P" in names) and bits["nx"] == ("XD" in names)
    assert bits["writable"] == ("RW" in names) and bits["user"] == ("US" in names)
    if "dirty" in bits:
        assert bits["dirty"] == ("D" in names) and bits["global_page"] == ("G" in names)


def test_page_table_views_on_x86():
    from gdbext.arch.x86_64 import X86
    from gdbext.arch.x86_64 import control
    saved = control.pti_enabled
    try:
        control.pti_enabled = lambda cpu: True
        assert X86.page_table_views(0x5493000, {"cr4": 0}, 0) == [("user", 0x5493000), ("kernel", 0x5492000)]
        assert X86.page_table_views(0x5492000, {"cr4": 0}, 0) == [("kernel", 0x5492000), ("user", 0x5493000)]
        control.pti_enabled = lambda cpu: False
        assert X86.page_table_views(0x5493000, {"cr4": 0}, 0) == [("kernel and user", 0x5493000)]
    finally:
        control.pti_enabled = saved
    assert X86.root_address(0x5493801) == 0x5493000
