"""gdbext.decoders.descriptors: selectors, a real Linux GDT, IDT gates."""
import json
import struct

import pytest
from hypothesis import given, settings, strategies as st

from gdbext.errors import DecodeError
from gdbext.decoders import descriptors as d

# The per-cpu GDT as arch/x86/kernel/cpu/common.c initialises it (GDT_ENTRY_INIT
# values are the same in 6.1 and 6.12), after cpu_init() has installed the
# TSS (busy after `ltr`) and setup_getcpu() the CPUNODE entry for cpu 1, node 0.
KERNEL32_CS = 0x00CF9B000000FFFF
KERNEL_CS = 0x00AF9B000000FFFF
KERNEL_DS = 0x00CF93000000FFFF
USER32_CS = 0x00CFFB000000FFFF
USER_DS = 0x00CFF3000000FFFF
USER_CS = 0x00AFFB000000FFFF
# TSS in the cpu_entry_area, limit __KERNEL_TSS_LIMIT = 0x4087 with
# CONFIG_X86_IOPL_IOPERM (hardware TSS + io_bitmap up to mapall + 8 - 1).
TSS_BASE = 0xFFFFFE0000003000
TSS_LOW = 0x00008B0030004087
TSS_HIGH = 0x00000000FFFFFE00
CPUNODE_CPU1 = 0x0040F50000000001  # type 5, DPL 3, S, P, D; limit = (node << 12) | cpu

GDT_SLOTS = [0, KERNEL32_CS, KERNEL_CS, KERNEL_DS, USER32_CS, USER_DS, USER_CS, 0,
             TSS_LOW, TSS_HIGH, 0, 0, 0, 0, 0, CPUNODE_CPU1]
GDT_BYTES = struct.pack("<16Q", *GDT_SLOTS)


def test_gdt_entry_init_matches_kernel_values():
    assert d.gdt_entry_init(0xC09B, 0, 0xFFFFF) == KERNEL32_CS
    assert d.gdt_entry_init(0xA09B, 0, 0xFFFFF) == KERNEL_CS
    assert d.gdt_entry_init(0xC093, 0, 0xFFFFF) == KERNEL_DS
    assert d.gdt_entry_init(0xC0FB, 0, 0xFFFFF) == USER32_CS
    assert d.gdt_entry_init(0xC0F3, 0, 0xFFFFF) == USER_DS
    assert d.gdt_entry_init(0xA0FB, 0, 0xFFFFF) == USER_CS


def test_selector_constants_and_names():
    assert (d.KERNEL32_CS, d.KERNEL_CS, d.KERNEL_DS) == (0x08, 0x10, 0x18)
    assert (d.USER32_CS, d.USER_DS, d.USER_CS) == (0x23, 0x2B, 0x33)
    assert (d.TSS_SEL, d.LDT_SEL, d.CPUNODE_SEG) == (0x40, 0x50, 0x7B)
    s = d.decode_selector(0x33)
    assert (s.selector, s.index, s.ti, s.rpl, s.name, s.entry) == (0x33, 6, 0, 3, "USER_CS", "USER_CS")
    # RPL matters for the name: 0x13 indexes KERNEL_CS's slot but is not __KERNEL_CS.
    s = d.decode_selector(0x13)
    assert s.name is None and s.entry == "KERNEL_CS" and s.rpl == 3
    s = d.decode_selector(0x0F)  # LDT selector
    assert s.ti == 1 and s.name is None and s.entry is None
    assert d.decode_selector(0x63).name == "TLS0" and d.decode_selector(0x73).name == "TLS2"
    assert set(d.decode_selector(0x10).to_dict()) == {"selector", "index", "ti", "rpl", "name", "entry"}
    for bad in (-1, 0x10000, "0x10"):
        with pytest.raises(DecodeError):
            d.decode_selector(bad)


def test_code_and_data_descriptors():
    k = d.decode_segment_descriptor(KERNEL_CS)
    assert k.kind == "code" and k.long and not k.db and k.dpl == 0 and k.present
    assert k.readable and k.accessed and not k.conforming and k.writable is None
    assert k.limit == 0xFFFFF and k.effective_limit == 0xFFFFFFFF and k.granularity
    u = d.decode_segment_descriptor(struct.pack("<Q", USER_DS))
    assert u.kind == "data" and u.dpl == 3 and u.writable and not u.expand_down and u.db
    assert u.readable is None and u.type == 3 and u.s == 1
    c32 = d.decode_segment_descriptor(USER32_CS)
    assert c32.kind == "code" and c32.db and not c32.long and c32.dpl == 3
    assert d.decode_segment_descriptor(0).kind == "null"
    node = d.decode_segment_descriptor(CPUNODE_CPU1)
    assert node.kind == "data" and node.expand_down and not node.writable and node.dpl == 3
    assert d.decode_cpunode(node.limit) == {"cpu": 1, "node": 0}
    json.dumps(k.to_dict())


def test_descriptor_length_checked():
    for bad in (b"\0" * 7, b"\0" * 9, -1, 1 << 64):
        with pytest.raises(DecodeError):
            d.decode_segment_descriptor(bad)
    with pytest.raises(DecodeError):
        d.decode_gate(b"\0" * 15)


def test_decode_real_gdt():
    entries = d.decode_gdt(GDT_BYTES)
    assert len(entries) == 16
    assert [e.selector for e in entries] == [i * 8 for i in range(16)]
    by = {e.index: e for e in entries}
    assert by[0].kind == "null" and by[0].name == "NULL"
    assert (by[2].name, by[2].kind) == ("KERNEL_CS", "code")
    assert (by[5].name, by[5].kind) == ("USER_DS", "data")
    assert (by[6].name, by[6].descriptor.long) == ("USER_CS", True)
    tss = by[8]
    assert tss.name == "TSS" and tss.kind == "tss-busy"
    assert tss.descriptor.base == TSS_BASE and tss.descriptor.limit == 0x4087
    assert tss.descriptor.reserved_high == 0
    hi = by[9]
    assert hi.kind == "upper-half" and hi.upper_half_of == 8 and hi.descriptor is None
    assert by[10].kind == "null" and by[10].name == "LDT"
    assert by[15].name == "CPUNODE"
    dumped = json.loads(json.dumps([e.to_dict() for e in entries]))
    assert dumped[8]["descriptor"]["base"] == TSS_BASE


def test_decode_gdt_custom_names_and_truncated_system_descriptor():
    entries = d.decode_gdt(struct.pack("<2Q", KERNEL_CS, TSS_LOW), names={0: "a", 1: "b"})
    assert [e.name for e in entries] == ["a", "b"]
    assert entries[1].note and entries[1].kind == "tss-busy"
    with pytest.raises(DecodeError):
        d.decode_gdt(b"\0" * 12)


def test_system_descriptor_roundtrip():
    raw = d.encode_system_descriptor(TSS_BASE, 0x4087, type=0xB)
    assert raw == struct.pack("<2Q", TSS_LOW, TSS_HIGH)
    s = d.decode_system_descriptor(raw)
    assert s.base == TSS_BASE and s.kind == "tss-busy"
    with pytest.raises(DecodeError):
        d.decode_system_descriptor(struct.pack("<2Q", KERNEL_CS, 0))


# IDT gates as arch/x86/kernel/idt.c builds them.
PF_HANDLER = 0xFFFFFFFF81A00B20
PF_GATE = bytes.fromhex("200b1000008ea081ffffffff00000000")


def test_real_idt_gates():
    g = d.decode_gate(PF_GATE)
    assert g.offset == PF_HANDLER and g.selector == 0x10 and g.selector_name == "KERNEL_CS"
    assert g.ist == 0 and g.type == 0xE and g.kind == "interrupt" and g.dpl == 0 and g.present
    assert d.encode_gate(PF_HANDLER) == PF_GATE
    # ISTG(X86_TRAP_DF, ..., IST_INDEX_DF) -> ist 1; SYSG(0x80) -> DPL 3.
    df = d.decode_gate(d.encode_gate(0xFFFFFFFF81A01000, ist=1))
    assert df.ist == 1
    trap = d.decode_gate(d.encode_gate(0x1000, type=d.GATE_TRAP, dpl=3))
    assert trap.kind == "trap" and trap.dpl == 3


def test_decode_idt_and_names():
    table = bytearray(256 * 16)
    table[14 * 16:15 * 16] = PF_GATE
    table[0x80 * 16:0x81 * 16] = d.encode_gate(0xFFFFFFFF81A01230, dpl=3)
    idt = d.decode_idt(bytes(table))
    assert len(idt) == 256
    assert idt[14].name == "#PF page fault" and idt[14].gate.offset == PF_HANDLER
    assert idt[0x80].name == "IA32 syscall (int 0x80)" and idt[0x80].gate.dpl == 3
    assert not idt[0].gate.present
    assert d.EXCEPTION_NAMES[0].startswith("#DE")
    assert d.EXCEPTION_NAMES[29].startswith("#VC") and d.EXCEPTION_NAMES[30].startswith("#SX")
    assert d.EXCEPTION_NAMES[22] == "reserved" and d.EXCEPTION_NAMES[31] == "reserved"
    assert all(v in d.EXCEPTION_NAMES for v in range(32))
    assert d.vector_name(0xEC) == "LOCAL_TIMER"
    assert d.vector_name(0x20, (6, 1)) == "IRQ_MOVE_CLEANUP"
    assert d.vector_name(0x20, (6, 12)) == "external interrupt"
    assert d.vector_name(0xEB, (6, 12)) == "POSTED_MSI_NOTIFICATION"
    json.dumps([e.to_dict() for e in idt[:20]])
    with pytest.raises(DecodeError):
        d.decode_idt(b"\0" * 20)


@settings(max_examples=150, deadline=None)
@given(base=st.integers(0, (1 << 32) - 1), limit=st.integers(0, (1 << 20) - 1),
       type_=st.integers(0, 15), s=st.integers(0, 1), dpl=st.integers(0, 3),
       present=st.booleans(), avl=st.booleans(), long=st.booleans(), db=st.booleans(),
       g=st.booleans())
def test_segment_descriptor_roundtrip(base, limit, type_, s, dpl, present, avl, long, db, g):
    raw = d.encode_segment_descriptor(base, limit, type_, s, dpl, present, avl, long, db, g)
    x = d.decode_segment_descriptor(raw)
    assert (x.base, x.limit, x.type, x.s, x.dpl) == (base, limit, type_, s, dpl)
    assert (x.present, x.avl, x.long, x.db, x.granularity) == (present, avl, long, db, g)
    assert x.effective_limit == ((limit << 12) | 0xFFF if g else limit)
    assert d.encode_segment_descriptor(x.base, x.limit, x.type, x.s, x.dpl, x.present,
                                       x.avl, x.long, x.db, x.granularity) == raw


@settings(max_examples=150, deadline=None)
@given(offset=st.integers(0, (1 << 64) - 1), selector=st.integers(0, 0xFFFF),
       ist=st.integers(0, 7), type_=st.integers(0, 15), dpl=st.integers(0, 3),
       present=st.booleans())
def test_gate_roundtrip(offset, selector, ist, type_, dpl, present):
    raw = d.encode_gate(offset, selector, ist, type_, dpl, present)
    g = d.decode_gate(raw)
    assert (g.offset, g.selector, g.ist, g.type, g.dpl, g.present) == \
        (offset, selector, ist, type_, dpl, present)
    assert g.reserved == 0


@settings(max_examples=100, deadline=None)
@given(base=st.integers(0, (1 << 64) - 1), limit=st.integers(0, (1 << 20) - 1),
       type_=st.sampled_from([0x2, 0x9, 0xB]), dpl=st.integers(0, 3))
def test_system_descriptor_roundtrip_property(base, limit, type_, dpl):
    s = d.decode_system_descriptor(d.encode_system_descriptor(base, limit, type_, dpl))
    assert (s.base, s.limit, s.type, s.dpl) == (base, limit, type_, dpl)
    entries = d.decode_gdt(bytes(8) + d.encode_system_descriptor(base, limit, type_, dpl))
    assert [e.kind for e in entries][2] == "upper-half" and entries[1].descriptor.base == base
