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
    flags.decode_task_state, flags.decode_pf_flags, lambda v: flags.decode_pf_flags(v, (5, 10)),
    lambda v: flags.decode_bits(v, {1: "TS_COMPAT"}, 64, "v"), flags.decode_syscall_work, paging.decode_cr3,
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


# -- the decoders added since (x86insn, qemu_monitor, syscall_args,
# vdso, kaslr, paging helpers).  Same rule: a result (JSON-ready where it is
# data) or DecodeError, nothing else.

from gdbext.decoders import elfnote, kaslr as kaslrdec, qemu_monitor, syscall_args, vdso, x86insn  # noqa: E402

MORE_BYTE_DECODERS = [vdso.parse_vdso, vdso.decode_kernel_vsyscall, vdso.decode_vsyscall_stub,
                      elfnote.find_build_id, lambda b: list(elfnote.iter_notes(b)), kaslrdec.printable_prefix]
MORE_INT_DECODERS = [
    syscall_args.errno_name, syscall_args.format_return, lambda v: syscall_args.format_return(v, True),
    syscall_args.format_open_flags, syscall_args.format_mode, syscall_args.format_at_dirfd,
    syscall_args.format_mmap_prot, syscall_args.format_mmap_flags, kaslrdec.relocatable,
    kaslrdec.slide_problem, lambda v: kaslrdec.signed_delta(v, 0xFFFFFFFF81000000),
    lambda v: kaslrdec.randomized("page_offset_base", v), paging.entry_flags,
    lambda v: paging.entry_flags(v, "PD"), paging.user_cr3_from_kernel_cr3, paging.page_indices,
    lambda v: paging.page_indices(v, True),
]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
@pytest.mark.parametrize("fn", MORE_BYTE_DECODERS, ids=lambda f: f.__name__)
def test_more_random_bytes(fn, data):
    _call(fn, data)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 4096))
def test_vdso_truncated_real_elf(cut):
    """A well-formed ELF header (an x86-64 ET_DYN) cut short anywhere."""
    import struct
    hdr = bytearray(64)
    hdr[:4] = b"\x7fELF"
    hdr[4], hdr[5], hdr[6] = 2, 1, 1
    struct.pack_into("<HHIQQQIHHHHHH", hdr, 16, 3, 62, 1, 0, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, 0x2000, 0x2000, 0x1000)
    data = bytes(hdr) + ph + b"\0" * 4096
    _call(vdso.parse_vdso, data[:cut])


@settings(max_examples=30, deadline=None)
@given(_ints)
@pytest.mark.parametrize("fn", MORE_INT_DECODERS, ids=lambda f: getattr(f, "__name__", "fn"))
def test_more_random_ints(fn, value):
    _call(fn, value)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([None, "x", 1.5, 7, [1], {}]))
@pytest.mark.parametrize("fn", [vdso.parse_vdso, vdso.decode_kernel_vsyscall, vdso.decode_vsyscall_stub],
                         ids=lambda f: f.__name__)
def test_vdso_wrong_types(fn, value):
    """The vDSO decoders take whatever a memory read gave: they check the
    type themselves.  (The syscall-argument formatters and the kaslr
    helpers are only ever called with the ints and bytes kx read, so they
    are fuzzed with ints and bytes above, not with wrong types.)"""
    _call(fn, value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=40), st.integers(-2, 45))
def test_modrm_length(code, i):
    n = x86insn.modrm_length(code, i) if i >= 0 else None
    assert n is None or (1 <= n <= 6 and i + n <= len(code))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000))
def test_monitor_parsers_random_text(text):
    regs = qemu_monitor.parse_info_registers(text)
    json.dumps(regs)
    cpus = qemu_monitor.parse_info_cpus(text)
    json.dumps(cpus)


_REGS_SAMPLE = """RAX=00000000000002ff RBX=ffffffff82c06080 RCX=0000000000000002 RDX=0000000000000001
RIP=ffffffff81ca2ddd RFL=00000286 [--S--P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]
TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl
GDT=     fffffe0000001000 0000007f
IDT=     fffffe0000000000 00000fff
CR0=80050033 CR2=00007fff4b50fb98 CR3=00000000052c8000 CR4=001506f0
EFER=0000000000000d01
"""


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(_REGS_SAMPLE)), st.integers(0, len(_REGS_SAMPLE)), st.text(max_size=20))
def test_monitor_parser_mangled_sample(a, b, junk):
    """Real `info registers` text, truncated and with junk spliced in."""
    text = _REGS_SAMPLE[:a] + junk + _REGS_SAMPLE[b:]
    regs = qemu_monitor.parse_info_registers(text)
    json.dumps(regs)
    if text.count("EFER=") == 1 and "EFER=0000000000000d01\n" in text:
        assert regs["efer"] == 0xD01


_CTYPES = ["const char __user *", "char __user *", "int", "unsigned int", "umode_t", "size_t",
           "unsigned long", "struct stat __user *", "void *", "const char *const __user *", "", "??"]
_PNAMES = ["filename", "flags", "mode", "dfd", "fd", "buf", "count", "prot", "addr", "len", "x", ""]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_CTYPES), st.sampled_from(_PNAMES), st.integers(-(1 << 64), 1 << 65),
       st.one_of(st.none(), st.binary(max_size=300)), st.sampled_from([None, "openat", "mmap", "write", "bogus"]))
def test_format_arg_random(ctype, pname, value, payload, syscall):
    """Any parameter, any value, and a user-memory reader that returns
    random bytes or fails: a string comes out."""
    def read_string(addr, cap):
        if payload is None:
            raise OSError("unreadable")
        return payload[:cap]
    try:
        out = syscall_args.format_arg(ctype, pname, value, read_string, {"flags": 0x40, "mode": 0o644},
                                      syscall)
    except DecodeError:
        return
    assert isinstance(out, str)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_CTYPES), st.sampled_from(_PNAMES)), max_size=7),
       st.lists(st.integers(0, (1 << 64) - 1), max_size=7))
def test_format_args_random(params, values):
    try:
        out = syscall_args.format_args(params, values, lambda a, c: b"x" * c)
    except DecodeError:
        return
    assert len(out) == min(len(params), len(values)) and all(isinstance(s, str) for s in out)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 300), st.booleans())
def test_escape_c_string(data, cap, truncated):
    out = syscall_args.escape_c_string(data, cap, truncated)
    assert isinstance(out, str) and "\n" not in out
