"""The x86-64 step-over (gdbext/arch/x86_64/stepover.py) on instruction
bytes as they stand at the kernel's trace points, assembled by hand from
SDM Vol.2 opcodes, and through the Arch seam."""
from hypothesis import given, strategies as st

from gdbext.arch.base import Arch, ResumePlan
from gdbext.arch.x86_64 import X86, gdbregs, stepover
from gdbext.decoders import rsp_packets

A = 0xFFFFFFFF81A03EF0          # do_syscall_64 on the lab's 6.1 kernel

# The first 16 bytes at do_syscall_64 (6.1.0-57-cloud-amd64, read over the
# gdbstub): push %rbp; mov %rsp,%rbp; push %rbx; mov %rdi,%rbx; xchg %ax,%ax; ...
DO_SYSCALL_64 = bytes.fromhex("554889e5534889fb669065488b042580")


def plan(code: str, address: int = A) -> ResumePlan:
    return stepover.plan_resume(address, bytes.fromhex(code) + b"\xcc" * 8)


def test_do_syscall_64_prologue():
    walk = []
    at = 0
    while at < 10:
        p = stepover.plan_resume(A + at, DO_SYSCALL_64[at:])
        walk.append((p.kind, p.text, p.length))
        at += p.length
    assert walk == [("emulate", "push %rbp", 1), ("emulate", "mov64 %rsp,%rbp", 3),
                    ("emulate", "push %rbx", 1), ("emulate", "mov64 %rdi,%rbx", 3),
                    ("skip", "nop", 2)]


def test_nops_and_endbr():
    cases = {
        "90": ("nop", 1),
        "f390": ("pause", 2),
        "0f1f00": ("nop", 3),
        "0f1f4000": ("nop", 4),
        "0f1f440000": ("nop", 5),               # the ftrace call site once patched out
        "660f1f440000": ("nop", 6),
        "0f1f8000000000": ("nop", 7),
        "0f1f840000000000": ("nop", 8),
        "662e0f1f840000000000": ("nop", 10),
        "f30f1efa": ("endbr64", 4),
        "f30f1efb": ("endbr32", 4),
    }
    for code, (text, length) in cases.items():
        p = plan(code)
        assert (p.kind, p.text, p.length, p.target) == ("skip", text, length, A + length), code


def test_jumps():
    p = plan("eb10")
    assert (p.kind, p.length, p.target) == ("skip", 2, A + 2 + 0x10)
    p = plan("ebfe")                            # jmp . : onto itself
    assert p.target == A
    p = plan("e900010000")
    assert (p.length, p.target) == (5, A + 5 + 0x100)
    p = plan("e9f0ffffff", address=0)           # wraps below 0
    assert p.target == (5 - 0x10) & ((1 << 64) - 1)


def test_emulated_forms():
    assert plan("4154").op == ("push", "r12")
    assert plan("4889e5").op == ("mov", "rbp", "rsp", 64)
    assert plan("89c7").op == ("mov", "rdi", "rax", 32)
    assert plan("4c8bc7").op == ("mov", "r8", "rdi", 64)
    assert plan("4885ff").op == ("test", "rdi", "rdi", 64)
    assert plan("85c0").op == ("test", "rax", "rax", 32)
    assert plan("84c0").op == ("test", "rax", "rax", 8)


def test_single_stepped():
    for code in ("",                 # nothing readable
                 "e8aabbccdd",       # call
                 "4190",             # xchg %eax,%r8d, not a nop
                 "f30f1ec8",         # rdsspd
                 "0f1f48",           # nop with /1: not a nop
                 "0f1f",             # truncated
                 "66eb10",           # prefixed jmp
                 "488b07",           # mov from memory
                 "84e0",             # test %ah,%al
                 "4250",             # push with REX.X
                 "0f05"):            # syscall
        assert stepover.plan_resume(A, bytes.fromhex(code)) == stepover.STEP, code


def test_emulate_push():
    regs = {"rsp": 0xFFFFC90000403F50, "rbp": 0x1122334455667788}
    writes, memory = stepover.emulate(plan("55"), regs)
    assert writes == [("rsp", 0xFFFFC90000403F48)]
    assert memory == [(0xFFFFC90000403F48, bytes.fromhex("8877665544332211"))]


def test_emulate_mov_zero_extends():
    regs = {"rax": 0xFFFFFFFF80000001, "rdi": 0}
    assert stepover.emulate(plan("89c7"), regs) == ([("rdi", 0x80000001)], [])
    assert stepover.emulate(plan("4889c7"), regs) == ([("rdi", 0xFFFFFFFF80000001)], [])


def test_emulate_test_flags():
    AF = 1 << 4
    base = stepover.CF | stepover.OF | AF | 0x2     # CF, OF set before; AF undefined
    zero = stepover.emulate(plan("4885ff"), {"rdi": 0, "eflags": base})[0]
    assert zero == [("eflags", stepover.ZF | stepover.PF | AF | 0x2)]
    neg = stepover.emulate(plan("4885ff"), {"rdi": 1 << 63 | 1, "eflags": 0x2})[0][0][1]
    assert neg == stepover.SF | 0x2                 # one bit set in the low byte: PF clear
    low = stepover.emulate(plan("85c0"), {"rax": 1 << 40, "eflags": 0x2})[0][0][1]
    assert low & stepover.ZF                        # 32-bit test ignores bit 40


@given(st.binary(max_size=20), st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_any_bytes(code, address):
    p = stepover.plan_resume(address, code)
    assert p.kind in ("skip", "emulate", "step")
    if p.kind != "step":
        assert 1 <= p.length <= len(code) and p.target is not None


def test_through_the_seam():
    assert X86.plan_resume(A, DO_SYSCALL_64) == stepover.plan_resume(A, DO_SYSCALL_64)
    regs = {"rsp": 0x1000, "rbp": 7}
    assert X86.emulate(plan("55"), regs) == stepover.emulate(plan("55"), regs)
    assert Arch().plan_resume(A, DO_SYSCALL_64).kind == "step"


def test_gdb_register_layout():
    layout = X86.gdb_register_layout()
    assert set(layout) == set(X86.general_regs + X86.system_regs)
    assert layout == gdbregs.QEMU_G_LAYOUT and layout is not gdbregs.QEMU_G_LAYOUT
    ends = sorted((off, off + size) for _num, off, size in layout.values())
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))      # no overlap


# A `g` reply QEMU 7.2 sent with vCPU 1 stopped at do_syscall_64 (6.1 lab
# guest, the workload's invalid syscall 1000): 608 bytes, the x87 and SSE
# state after efer.
QEMU_G_REPLY = (
    "e803000000000000000000000000000000000000000000000000000000000000e803000000000000583f400000c9ffff"
    "0000000000000000503f400000c9ffff0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000f03ea081ffffffff4600000010000000"
    "180000000000000000000000000000000000000080232a30000000000000501f8088ffff000000000000000033000580"
    "00000000f87f24adfe7f00000080a50400000000a0061500000000000100000000000000010d00000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000007f03000000000000000000000000000000000000"
    "000000000000000000000000252525252525252525252525252525250000000000000000000000000000000000ff0000"
    "00000000000000000000000000ff00000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000ff000000002f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f00000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000801f0000"
)


def test_qemu_g_reply():
    regs = rsp_packets.parse_g(QEMU_G_REPLY, X86.gdb_register_layout())
    assert regs["rip"] == A and regs["rsi"] == 1000 and regs["rdi"] == 0xFFFFC90000403F58
    assert regs["rsp"] == 0xFFFFC90000403F50 and regs["eflags"] == 0x46
    assert (regs["cs"], regs["ss"], regs["ds"]) == (0x10, 0x18, 0)
    assert regs["gs_base"] == 0xFFFF88801F500000 and regs["k_gs_base"] == 0
    assert regs["cr0"] == 0x80050033 and regs["cr3"] == 0x4A58000 and regs["efer"] == 0xD01
