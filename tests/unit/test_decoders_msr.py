"""gdbext.decoders.msr: MSR lookup and field decoders, with real values."""
import pytest
from hypothesis import given, strategies as st

from gdbext.errors import DecodeError
from gdbext.decoders import msr


@pytest.mark.parametrize("text,name", [
    ("lstar", "IA32_LSTAR"), ("LSTAR", "IA32_LSTAR"), ("MSR_LSTAR", "IA32_LSTAR"),
    ("ia32_lstar", "IA32_LSTAR"), ("efer", "IA32_EFER"), ("MSR_EFER", "IA32_EFER"),
    ("sfmask", "IA32_FMASK"), ("FMASK", "IA32_FMASK"), ("IA32_SFMASK", "IA32_FMASK"),
    ("MSR_SYSCALL_MASK", "IA32_FMASK"), ("kernel_gs_base", "IA32_KERNEL_GS_BASE"),
    ("KernelGSBase", "IA32_KERNEL_GS_BASE"), ("MSR_IA32_SYSENTER_EIP", "IA32_SYSENTER_EIP"),
    ("0xc0000082", "IA32_LSTAR"), ("0XC0000080", "IA32_EFER"), ("3221225602", "IA32_LSTAR"),
    ("0x174", "IA32_SYSENTER_CS"), ("372", "IA32_SYSENTER_CS"), (" star ", "IA32_STAR"),
    ("tsc_aux", "IA32_TSC_AUX"), ("fs_base", "IA32_FS_BASE"), ("gs_base", "IA32_GS_BASE"),
])
def test_lookup_msr(text, name):
    info = msr.lookup_msr(text)
    assert info.name == name
    assert msr.MSR_BY_INDEX[info.index] is info


@pytest.mark.parametrize("text", ["", "foo", "0x10", "12", "0xzz", "lstarx", "0x1c0000082"])
def test_lookup_msr_unknown_lists_valid_names(text):
    with pytest.raises(DecodeError) as ei:
        msr.lookup_msr(text)
    assert "LSTAR" in str(ei.value)


def test_lookup_msr_unknown_index_allowed():
    info = msr.lookup_msr("0x10", allow_unknown_index=True)
    assert info.index == 0x10 and info.name == "MSR_0x10"


def test_all_msrs_indices():
    want = {
        "IA32_EFER": 0xC0000080, "IA32_STAR": 0xC0000081, "IA32_LSTAR": 0xC0000082,
        "IA32_CSTAR": 0xC0000083, "IA32_FMASK": 0xC0000084, "IA32_FS_BASE": 0xC0000100,
        "IA32_GS_BASE": 0xC0000101, "IA32_KERNEL_GS_BASE": 0xC0000102,
        "IA32_TSC_AUX": 0xC0000103, "IA32_SYSENTER_CS": 0x174, "IA32_SYSENTER_ESP": 0x175,
        "IA32_SYSENTER_EIP": 0x176,
    }
    assert {m.name: m.index for m in msr.ALL_MSRS} == want
    assert msr.ALL_MSRS[0].name == "IA32_EFER"
    assert isinstance(msr.ALL_MSRS[0].to_dict()["aliases"], list)


def test_efer_real_value():
    f = msr.decode_efer(0xD01)
    assert f["set"] == ["SCE", "LME", "LMA", "NXE"]
    assert f["SCE"] and f["LME"] and f["LMA"] and f["NXE"]
    assert not f["SVME"] and not f["AUTOIBRS"] and not f["TCE"]
    assert msr.decode_efer(1 << 21)["AUTOIBRS"]
    assert msr.decode_efer(1 << 40)["set"] == ["bit40"]


def test_star_real_value():
    v = 0x0023001000000000
    assert msr.expected_star() == v
    f = msr.decode_star(v)
    assert f["syscall_cs"]["selector"] == 0x10 and f["syscall_cs"]["name"] == "KERNEL_CS"
    assert f["syscall_ss"]["selector"] == 0x18 and f["syscall_ss"]["name"] == "KERNEL_DS"
    assert f["sysret_base"] == 0x23
    assert f["sysret_cs32"]["selector"] == 0x23 and f["sysret_cs32"]["name"] == "USER32_CS"
    assert f["sysret_ss"]["selector"] == 0x2B and f["sysret_ss"]["name"] == "USER_DS"
    assert f["sysret_cs64"]["selector"] == 0x33 and f["sysret_cs64"]["name"] == "USER_CS"
    assert f["sysret_cs64"]["rpl"] == 3 and f["syscall_cs"]["rpl"] == 0
    assert f["legacy_eip"] == 0 and f["matches_linux"]


def test_star_forces_rpl():
    # SYSRET ORs RPL 3 into CS/SS; SYSCALL clears CS's RPL.
    f = msr.decode_star((0x20 << 48) | (0x13 << 32))
    assert f["sysret_cs32"]["selector"] == 0x23
    assert f["sysret_cs64"]["selector"] == 0x33
    assert f["syscall_cs"]["selector"] == 0x10
    assert not f["matches_linux"]


def test_sfmask_linux_value():
    # syscall_init(): CF|PF|AF|ZF|SF|TF|IF|DF|OF|IOPL|NT|RF|AC|ID
    f = msr.decode_sfmask(0x257FD5)
    assert f["cleared"] == ["CF", "PF", "AF", "ZF", "SF", "TF", "IF", "DF", "OF",
                            "IOPL", "NT", "RF", "AC", "ID"]
    assert f["iopl_cleared"] and f["if_cleared"] and f["matches_linux"]
    assert msr.EXPECTED_SFMASK == 0x257FD5
    half = msr.decode_sfmask(1 << 12)
    assert half["cleared"] == ["IOPL"] and not half["iopl_cleared"]


def test_rflags():
    f = msr.decode_rflags(0x246)
    assert f["set"] == ["PF", "ZF", "IF"] and f["IOPL"] == 0 and f["FIXED"]
    f = msr.decode_rflags(0x3002 | (1 << 21) | (1 << 18))
    assert f["IOPL"] == 3 and f["ID"] and f["AC"] and f["set"] == ["AC", "ID"]
    assert msr.decode_rflags(1 << 30)["set"] == ["bit30"]


def test_tsc_aux():
    assert msr.decode_tsc_aux((1 << 12) | 3) == {"cpu": 3, "node": 1}
    assert msr.decode_tsc_aux(0) == {"cpu": 0, "node": 0}


def test_decode_msr_dispatch():
    d = msr.decode_msr(0xC0000080, 0xD01)
    assert d["name"] == "IA32_EFER" and d["fields"]["set"] == ["SCE", "LME", "LMA", "NXE"]
    d = msr.decode_msr(0xC0000082, 0xFFFFFFFF81A00080)
    assert d["fields"] == {} and d["is_address"] and d["value"] == 0xFFFFFFFF81A00080
    assert msr.decode_msr(0x174, 0x10)["fields"]["selector"]["name"] == "KERNEL_CS"
    assert msr.decode_msr(0x10, 5) == {"name": "MSR_0x10", "index": 0x10, "value": 5,
                                       "is_address": False, "fields": {}}
    with pytest.raises(DecodeError):
        msr.decode_msr(0xC0000080, -1)
    with pytest.raises(DecodeError):
        msr.decode_msr(0xC0000080, 1 << 64)


def test_fred_config_as_the_kernel_writes_it():
    """cpu_init_fred_exceptions() (arch/x86/kernel/fred.c): REDZONE (one
    64-byte line, bits 8:6) | INT_STKLVL(0) (bits 10:9) | the 4 KiB-aligned
    asm_fred_entrypoint_user; ring-0 events enter 256 bytes later."""
    entry = 0xFFFFFFFF81C00000
    value = msr.expected_fred_config(entry)
    assert value == entry | 0x40
    f = msr.decode_msr(msr.IA32_FRED_CONFIG, value)["fields"]
    assert f == {"entry_user": entry, "entry_kernel": entry + 256, "event_stack_level": 0,
                 "redzone_bytes": 64, "shadow_stack": False}
    f = msr.decode_fred_config(entry | (2 << 9) | (3 << 6) | 4)
    assert (f["event_stack_level"], f["redzone_bytes"], f["shadow_stack"]) == (2, 192, True)


def test_fred_msrs_are_looked_up_but_not_in_the_default_list():
    assert msr.lookup_msr("fred_config").index == 0x1D4
    assert msr.lookup_msr("MSR_IA32_FRED_RSP0").index == 0x1CC
    assert msr.lookup_msr("0x1d0").name == "IA32_FRED_STKLVLS"
    assert not {m.index for m in msr.FRED_MSRS} & {m.index for m in msr.ALL_MSRS}
    assert msr.decode_msr(msr.IA32_FRED_RSP0, 0xFFFFC90000004000)["is_address"]


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_fred_config_fields_rebuild_the_value(v):
    f = msr.decode_fred_config(v)
    rebuilt = f["entry_user"] | (f["event_stack_level"] << 9) | ((f["redzone_bytes"] // 64) << 6) \
        | (int(f["shadow_stack"]) << 2)
    assert rebuilt == v & ~0b100000111011
