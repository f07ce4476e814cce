"""x86-64's side of `kx regs`, the unwinder and `kx event` (arch/x86_64/
user_regs.py and the X86 methods behind them), from encoded pt_regs: no gdb."""
from gdbext.arch.x86_64 import X86
from gdbext.decoders.ptregs import encode_pt_regs
from gdbext.decoders.syscall_args import ENOSYS


def regs_data(pt, syscall=True):
    """The JSON `kx regs` builds, as far as the rows read it."""
    own, warnings = X86.user_regs_report(pt)
    data = {"mode": X86.user_mode(pt), "regs": {n: getattr(pt, n) for n in X86.pt_regs_offsets},
            "syscall": {"nr": pt.orig_ax} if syscall else None, **own}
    return data, warnings


def test_syscall_frame_64_notes_rcx_r11_and_enosys():
    pt = X86.decode_pt_regs(encode_pt_regs(orig_ax=1, ax=-ENOSYS, cx=0x401711, ip=0x401711, r11=0x246,
                                           flags=0x246, cs=0x33, ss=0x2B))
    data, warnings = regs_data(pt)
    assert warnings == [] and X86.user_abi(data["mode"]).name == "64"
    assert data["cs"] == {"selector": 0x33, "name": "USER_CS", "mode": "64"}
    rows = {name: (value, note) for name, value, note in X86.user_regs_rows(data)}
    assert rows["rax"] == ("0xffffffffffffffda", "-ENOSYS: entry's placeholder until the handler returns")
    assert rows["rcx"][1] == "= rip: SYSCALL saved the return address here"
    assert rows["r11"][1] == "= rflags: SYSCALL saved RFLAGS here"
    assert rows["cs"] == ("0x33", "USER_CS: 64-bit") and rows["flags"] == ("0x246", "PF ZF IF")
    # Not a syscall: no notes on what SYSCALL would have saved.
    data["syscall"] = None
    assert all(note is None for name, _, note in X86.user_regs_rows(data) if name in ("rax", "rcx", "r11"))


def test_compat_frame_uses_i386_names_and_widths():
    pt = X86.decode_pt_regs(encode_pt_regs(orig_ax=4, bx=1, ax=(1 << 64) - 38, cs=0x23, ss=0x2B))
    data, _ = regs_data(pt)
    assert data["mode"] == "32" and X86.user_abi("32").nr_reg == "eax"
    names = [name for name, _, _ in X86.user_regs_rows(data)]
    assert names[:6] == ["r15", "r14", "r13", "r12", "ebp", "ebx"] and "eip" in names
    assert dict((n, v) for n, v, _ in X86.user_regs_rows(data))["ebx"] == "0x00000001"


def test_kernel_frame_is_not_a_user_frame():
    pt = X86.decode_pt_regs(encode_pt_regs(orig_ax=-1, cs=0x10))
    _, warnings = regs_data(pt)
    assert warnings == ["CS 0x10 is not a user code segment: this is not a user-mode frame"]
    assert X86.pt_regs_plausible(pt)
    assert not X86.pt_regs_plausible(X86.decode_pt_regs(encode_pt_regs(cs=0x1234)))


def test_follows_call_is_a_call_rel32():
    code = {0x1000: b"\xe8", 0x2000: b"\x90"}
    assert X86.follows_call(0x1005, lambda a, n: code[a])
    assert not X86.follows_call(0x2005, lambda a, n: code[a])


def test_flag_names_and_return_words():
    assert X86.flag_names(0x246) == ["PF", "ZF", "IF"]
    stubs = X86.stubs()
    assert stubs["entry_SYSCALL_64"][1].live_return == ("rcx", "r11")
    assert stubs["asm_int80_emulation"][1].live_return == ("the IRET frame", "the IRET frame")
    assert X86.pt_regs_return == ("pt_regs->ip", "pt_regs->flags")
