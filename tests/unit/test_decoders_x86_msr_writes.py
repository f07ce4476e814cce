"""The MSR writes of syscall_init(), walked from its code
(gdbext/decoders/x86_msr_writes.py): hand-assembled functions, then each
cached Debian vmlinux against its own source (arch/x86/kernel/cpu/common.c:
whether CSTAR is skipped on Intel, the X86_EFLAGS_* of MSR_SYSCALL_MASK)."""
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from gdbext import errors
from gdbext.decoders import msr as msrdec
from gdbext.decoders import x86_msr_writes as X
from gdbext.kernel import vmlinux as V
from tests import kernel_source
from tests.unit.syscall_fixtures import cached_kernels

START = 0xFFFFFFFF81040000
SLOT = 0xFFFFFFFF82A39980          # pv_ops.cpu.write_msr
VENDOR = 0xFFFFFFFF82C362E1        # boot_cpu_data.x86_vendor
THUNK = 0xFFFFFFFF81E01EF0         # __x86_return_thunk
STAR, CSTAR, FMASK, SYSENTER_EIP = 0xC0000081, 0xC0000083, 0xC0000084, 0x176


class Asm:
    """Just enough of an assembler for the forms syscall_init uses."""

    def __init__(self):
        self.code, self.fixups, self.labels = bytearray(), [], {}

    def here(self):
        return START + len(self.code)

    def raw(self, b):
        self.code += b
        return self

    def mov32(self, reg, imm):                      # mov $imm32, %r32
        return self.raw(bytes([0xB8 + reg]) + struct.pack("<I", imm))

    def call_slot(self):                            # call *SLOT(%rip)
        return self.raw(b"\xff\x15" + struct.pack("<i", SLOT - (self.here() + 6)))

    def cmpb_vendor(self):                          # cmpb $0, VENDOR(%rip)
        return self.raw(b"\x80\x3d" + struct.pack("<i", VENDOR - (self.here() + 7)) + b"\x00")

    def jump(self, opcode, label):                  # a rel32 jcc/jmp, fixed up at the end
        self.raw(opcode)
        self.fixups.append((len(self.code), label))
        return self.raw(b"\0\0\0\0")

    def label(self, name):
        self.labels[name] = len(self.code)
        return self

    def ret_thunk(self):
        return self.raw(b"\xe9" + struct.pack("<i", THUNK - (self.here() + 5)))

    def bytes(self):
        for at, name in self.fixups:
            self.code[at:at + 4] = struct.pack("<i", self.labels[name] - (at + 4))
        return bytes(self.code)


def wrmsr_pv(a, index, lo, hi):
    """edi = index, esi = lo, edx = hi, then the paravirt call (5.10-6.12)."""
    return a.mov32(7, index).mov32(6, lo).mov32(2, hi).call_slot()


def small_syscall_init():
    """6.1's shape: STAR, then CSTAR only when the vendor byte is not 0
    (Intel), out of line, then SYSCALL_MASK and the return thunk."""
    a = Asm().raw(b"\xf3\x0f\x1e\xfa\x53")                          # endbr64; push %rbx
    wrmsr_pv(a, STAR, 0, 0x230010)
    a.cmpb_vendor().jump(b"\x0f\x85", "cstar").label("back")
    wrmsr_pv(a, FMASK, 0x257FD5, 0)
    a.raw(b"\x5b").ret_thunk().label("cstar")                        # pop %rbx
    # mov $entry,%rax; mov $entry,%rdx; mov $CSTAR,%edi; shr $32,%rdx; lea (%rax),%esi
    entry = 0xFFFFFFFF81C01870
    a.raw(b"\x48\xc7\xc0" + struct.pack("<i", entry - (1 << 64)))
    a.raw(b"\x48\xc7\xc2" + struct.pack("<i", entry - (1 << 64)))
    a.mov32(7, CSTAR).raw(b"\x48\xc1\xea\x20\x8d\x30").call_slot().jump(b"\xe9", "back")
    return a.bytes()


def walk(code, vendor, value_in_rsi=False):
    return X.msr_writes(code, START, lambda a: vendor if a == VENDOR else 0xEE, lambda s: s == SLOT,
                        lambda t: t == THUNK, value_in_rsi)


def test_the_path_follows_the_vendor_byte():
    code = small_syscall_init()
    intel = walk(code, 0)
    assert [(w.index, w.value) for w in intel] == [(STAR, 0x23001000000000), (FMASK, 0x257FD5)]
    amd = walk(code, 2)
    assert [(w.index, w.value) for w in amd] == [(STAR, 0x23001000000000), (CSTAR, 0xFFFFFFFF81C01870),
                                                  (FMASK, 0x257FD5)]
    assert amd[1].at > amd[2].at                      # the out-of-line block ran before the mask


def test_native_wrmsr_and_values_known_only_at_run_time():
    # call get_cpu_entry_area (clobbers the caller-saved registers); mov $0x175,%ecx; wrmsr
    a = Asm().raw(b"\xe8\0\0\0\0").mov32(1, SYSENTER_EIP - 1).raw(b"\x0f\x30")
    a.mov32(1, FMASK).mov32(0, 0x47700).raw(b"\x31\xd2\x0f\x30\xc3")  # xor %edx,%edx; wrmsr
    writes = walk(a.bytes(), 0)
    assert [(w.index, w.value) for w in writes] == [(0x175, None), (FMASK, 0x47700)]


def test_value_in_rsi_for_the_one_argument_write_msr():
    a = Asm().raw(b"\x48\xbe" + struct.pack("<Q", 0x23001000000000)).mov32(7, STAR).call_slot().raw(b"\xc3")
    assert [(w.index, w.value) for w in walk(a.bytes(), 0, value_in_rsi=True)] == [(STAR, 0x23001000000000)]


@pytest.mark.parametrize("code,message", [
    (b"\x0f\x0b", "0f 0b"),                                          # ud2
    (b"\xe9\0\0\0\x10", "leaves the function"),                      # jmp elsewhere (an alternative)
    (b"\x74\x00\xc3", "flags the walk does not know"),               # je with no compare
    (b"\x90" * 3, "outside the function"),                         # runs off the end
])
def test_anything_else_is_a_decode_error(code, message):
    with pytest.raises(errors.DecodeError, match=message):
        X.msr_writes(code, START, lambda a: 0, lambda s: False, lambda t: False)


def test_a_wrmsr_with_an_unknown_msr_number_is_refused():
    a = Asm().raw(b"\x65\x8b\x3d\0\0\0\0").call_slot().raw(b"\xc3")    # mov %gs:..,%edi
    with pytest.raises(errors.DecodeError, match="MSR number not known"):
        walk(a.bytes(), 0)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 255))
def test_any_bytes_walk_or_refuse(code, byte):
    """Garbage never crashes the walk: a list of writes or a DecodeError."""
    try:
        writes = X.msr_writes(code, START, lambda a: byte, lambda s: True, lambda t: t == THUNK)
    except errors.DecodeError:
        return
    assert all(isinstance(w.index, int) for w in writes)


# ---------------------------------------------------------------------------
# The Debian kernels against their sources

KERNELS = cached_kernels()


@pytest.mark.skipif(not KERNELS, reason="no cached kernels (./scripts/lab fetch)")
@pytest.mark.parametrize("series,d", KERNELS, ids=[k[0] for k in KERNELS])
def test_debian_syscall_init(series, d):
    img = V.image(os.path.join(d, "vmlinux"))
    syms, sizes = {}, {}
    for s in img.symbol_entries():
        syms.setdefault(s.name, s.value)
        sizes.setdefault(s.name, s.size)
    start, pv, bcd = syms["syscall_init"], syms["pv_ops"], syms["boot_cpu_data"]
    code = img.read(start, sizes["syscall_init"])
    thunks = {v for n, v in syms.items() if n.endswith("__x86_return_thunk")}
    skips, mask = kernel_source.syscall_init_msrs(series)
    for vendor in (0, 2):      # X86_VENDOR_INTEL, X86_VENDOR_AMD; __ia32_enabled and the rest: 1
        try:
            writes = X.msr_writes(code, start, lambda a: vendor if bcd <= a < bcd + 4 else 1,
                                  lambda slot: pv <= slot < pv + sizes["pv_ops"], lambda t: t in thunks)
        except errors.DecodeError:
            # 7.2's syscall_init ends in a tail jmp the walk does not follow:
            # kx then falls back on version facts (cpu_setup._fallback_msr),
            # which must be this source's.
            known = tuple(int(x) for x in series.split("."))
            assert mask == (msrdec.SFMASK_BEFORE_5_14 if known < (5, 14) else msrdec.EXPECTED_SFMASK)
            assert skips == (known >= (5, 18))
            return
        got = {w.index: w.value for w in writes}
        assert got[FMASK] == mask
        assert got[0xC0000082] == syms["entry_SYSCALL_64"]
        assert (CSTAR in got) == (vendor != 0 or not skips), (series, vendor)
        if CSTAR in got:
            assert got[CSTAR] == syms["entry_SYSCALL_compat"]
