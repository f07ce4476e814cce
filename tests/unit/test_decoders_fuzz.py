"""Every decoder, fed random or truncated input, returns a result or raises
DecodeError -- nothing else -- and its result is JSON-ready."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from gdbext.errors import DecodeError
from gdbext.decoders import descriptors, flags, msr, paging, ptregs, tss

BYTE_DECODERS = [
    descriptors.decode_segment_descriptor,
    descriptors.decode_system_descriptor,
    descriptors.decode_gdt,
    descriptors.decode_gate,
    descriptors.decode_idt,
    tss.decode_tss64,
    tss.decode_tss32,
    ptregs.decode_pt_regs,
]

INT_DECODERS = [
    msr.decode_efer, msr.decode_star, msr.decode_rflags, msr.decode_sfmask,
    msr.decode_tsc_aux, msr.decode_sysenter_cs, descriptors.decode_selector,
    descriptors.decode_segment_descriptor, descriptors.decode_gate,
    descriptors.decode_system_descriptor, descriptors.decode_cpunode, descriptors.vector_name,
    flags.decode_task_state, flags.decode_pf_flags, flags.decode_tif_flags,
    flags.decode_ts_status, flags.decode_syscall_work, paging.decode_cr3,
    paging.kernel_pgd_from_user_cr3, ptregs.mode_from_cs, ptregs.decode_fred_cs,
    ptregs.decode_fred_ss, paging.cr3_pgd_address, lambda v: paging.is_canonical(v, True),
    lambda v: msr.decode_msr(0xC0000080, v), lambda v: msr.decode_msr(0xC0000081, v),
    lambda v: msr.decode_msr(0xC0000084, v), lambda v: msr.decode_msr(0xC0000103, v),
    lambda v: msr.decode_msr(0x174, v), lambda v: msr.decode_msr(v, 0),
]


def _json_ready(result):
    data = result.to_dict() if hasattr(result, "to_dict") else result
    if isinstance(data, list):
        data = [x.to_dict() if hasattr(x, "to_dict") else x for x in data]
    text = json.dumps(data)
    assert json.loads(text) == data  # no tuples/bytes/objects sneaking through


def _call(fn, arg):
    try:
        result = fn(arg)
    except DecodeError:
        return
    _json_ready(result)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
@pytest.mark.parametrize("fn", BYTE_DECODERS, ids=lambda f: f.__name__)
def test_random_bytes(fn, data):
    _call(fn, data)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=168, max_size=200), st.integers(0, 200))
@pytest.mark.parametrize("fn", BYTE_DECODERS, ids=lambda f: f.__name__)
def test_truncated_valid_sized_bytes(fn, data, cut):
    _call(fn, data[:cut])


_ints = st.one_of(st.integers(-(1 << 70), 1 << 130), st.integers(0, (1 << 64) - 1),
                  st.sampled_from([0, 1, -1, (1 << 64) - 1, 1 << 64, 0xD01, 0x257FD5]))


@settings(max_examples=30, deadline=None)
@given(_ints)
@pytest.mark.parametrize("fn", INT_DECODERS, ids=lambda f: getattr(f, "__name__", "fn"))
def test_random_ints(fn, value):
    _call(fn, value)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([None, "x", 1.5, b"\0" * 8, [1]]))
@pytest.mark.parametrize("fn", INT_DECODERS + BYTE_DECODERS, ids=lambda f: getattr(f, "__name__", "fn"))
def test_wrong_types(fn, value):
    _call(fn, value)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=30))
def test_lookup_msr_text(text):
    try:
        info = msr.lookup_msr(text)
    except DecodeError:
        return
    assert info in msr.ALL_MSRS


@settings(max_examples=60, deadline=None)
@given(st.integers(-(1 << 64), 1 << 65), st.integers(-(1 << 64), 1 << 65), st.booleans(),
       st.dictionaries(st.integers(0, 1 << 20), st.integers(0, (1 << 64) - 1), max_size=8))
def test_translate_random(va, cr3, la57, mem):
    try:
        t = paging.translate(va, cr3, lambda a: mem.get(a, 0x1003), la57)
    except DecodeError:
        return
    json.dumps(t.to_dict())
