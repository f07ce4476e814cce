"""The window at an x86-64 entry stub's start in which the CPU still holds
the user context, against the stubs' real bytes (Debian 6.1.192 and
6.12.117; the file image has PTI's `jmp` where memory has NOPs), and the
user frame the architecture builds there."""
from hypothesis import given, strategies as st

from gdbext.arch.x86_64 import X86, abi
from gdbext.decoders.x86_entry import stack_untouched

# swapgs; movq %rsp, %gs:0x6014 (abs32); then PTI's 2-byte NOP or the jmp; mov %cr3, %rsp
SYSCALL64_61_MEM = bytes.fromhex("0f01f8 654889242514600000 6690 0f20dc 0f1f440000")
SYSCALL64_61_FILE = bytes.fromhex("0f01f8 654889242514600000 eb12 0f20dc 9090909090")
# endbr64; swapgs; movq %rsp, %gs:disp32(%rip); jmp (file image)
SYSCALL64_612_FILE = bytes.fromhex("f30f1efa 0f01f8 654889 25855f207e eb12 0f20dc 90909090")
# endbr64; swapgs; movl %esp, %r8d; jmp
COMPAT_612_FILE = bytes.fromhex("f30f1efa 0f01f8 4189e0 eb12 0f20dc 90")
# nop x3 (CLAC without SMAP); cld; push $-1
INT80_61 = bytes.fromhex("909090 fc 6aff e8a5070000")
INT80_612 = bytes.fromhex("f30f1efa 909090 fc 6aff e8e1080000")


def test_windows_of_the_real_stubs():
    assert stack_untouched(SYSCALL64_61_MEM) == 14          # at mov %cr3, %rsp
    assert stack_untouched(SYSCALL64_61_FILE) == 12         # at the jmp
    assert stack_untouched(SYSCALL64_612_FILE) == 15
    assert stack_untouched(COMPAT_612_FILE) == 10
    assert stack_untouched(INT80_61) == 4                   # at push $-1
    assert stack_untouched(INT80_612) == 8


def test_writes_to_rsp_end_the_window():
    assert stack_untouched(bytes.fromhex("4889c4")) == 0    # mov %rax, %rsp
    assert stack_untouched(bytes.fromhex("4c89e0")) == 0    # mov %r12, %rax (REX.R: r12, not rsp)
    assert stack_untouched(bytes.fromhex("4889e0 50")) == 3  # mov %rsp, %rax reads it; push writes


@given(st.binary(max_size=40))
def test_any_bytes_give_an_offset_inside(code):
    assert 0 <= stack_untouched(code) <= len(code)


def _regs(**kw):
    regs = {r: 0x1000 + i for i, r in enumerate(("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                                 "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                                                 "rip", "eflags", "cs", "ss"))}
    regs.update(kw)
    return regs


def _no_read(address, size):
    raise AssertionError("nothing to read at a SYSCALL entry")


def test_syscall_user_frame_from_live_registers():
    regs = _regs(rcx=0x40176D, r11=0x246, rsp=0x7FFC184B1A30, cs=0x10, ss=0x18)
    for offset in (0, 3, 12, 14):
        f = X86.entry_user_frame(abi.SYSCALL_64, offset, SYSCALL64_61_MEM, regs, _no_read)
        assert f.mode == "64" and "live registers" in f.source
        assert (f.regs["rip"], f.regs["rsp"], f.regs["eflags"]) == (0x40176D, 0x7FFC184B1A30, 0x246)
        assert (f.regs["cs"], f.regs["ss"]) == (0x33, 0x2B)
        assert f.regs["rdi"] == regs["rdi"]
    assert X86.entry_user_frame(abi.SYSCALL_64, 17, SYSCALL64_61_MEM, regs, _no_read) is None


def test_int80_user_frame_from_the_iret_frame():
    rsp = 0xFFFFFE0000003FD8
    frame = b"".join(v.to_bytes(8, "little") for v in (0x804905A, 0x23, 0x202, 0xFFD0B1C0, 0x2B))

    def read(address, size):
        assert (address, size) == (rsp, 40)
        return frame
    f = X86.entry_user_frame(abi.INT80_IDT, 7, INT80_612, _regs(rsp=rsp), read)
    assert f.mode == "32" and (f.regs["rip"], f.regs["rsp"], f.regs["cs"]) == (0x804905A, 0xFFD0B1C0, 0x23)
    assert X86.entry_user_frame(abi.INT80_IDT, 10, INT80_612, _regs(rsp=rsp), read) is None


def test_sysenter_has_no_user_frame():
    assert X86.entry_user_frame(abi.SYSENTER, 0, b"\x90", _regs(), _no_read) is None
