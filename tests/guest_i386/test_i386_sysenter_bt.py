"""`bt` across sysenter on the i386 kernel: SYSENTER saves no user state,
so the user frames come from the vDSO's __kernel_vsyscall (it pushed ecx,
edx, ebp and put the user esp in ebp).  Checked against the kernel's own
definition of where it returns (mm->context.vdso +
vdso_image_32.sym_int80_landing_pad, common.c do_fast_syscall_32,
evaluated by gdb from the DWARF), the kernel's pt_regs copy of ebp, and
the sysenter32 binary's ELF (the return address after its `call *%edi`)."""
import re

from elftools.elf.elffile import ELFFile

from kxlab import initramfs_i386
from tests.guest_i386.conftest import SYSENTER32_LEN, elf_symbols

CALL_EDI = bytes.fromhex("ffd7")      # call *%edi (sysenter32.S)
FRAME = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*)$")


def _return_address_after_call() -> int:
    """sysenter32_call + the length of the `call *%edi` there, from the ELF."""
    sym = elf_symbols("sysenter32")["sysenter32_call"]
    with open(initramfs_i386.binaries_dir() / "sysenter32", "rb") as f:
        text = ELFFile(f).get_section_by_name(".text")
        data = text.data()[sym - text["sh_addr"]:][:2]
    assert data == CALL_EDI
    return sym + len(CALL_EDI)


def _frames(kx):
    """[(level, pc or None, rest of the line)] of `bt`."""
    out = []
    for line in kx.cmd("bt").splitlines():
        m = FRAME.match(line.strip())
        if m:
            out.append((int(m.group(1)), int(m.group(2), 16) if m.group(2) else None, m.group(3)))
    return out


def _landing_pad(kx, cpu: int) -> int:
    """The kernel's own landing pad for the task on `cpu` (needs the kernel CR3)."""
    task = f"(*(struct task_struct **)((unsigned long)&current_task + __per_cpu_offset[{cpu}]))"
    vdso = kx.gdb.eval(f"(unsigned long){task}->mm->context.vdso") & 0xFFFFFFFF
    return vdso + kx.gdb.eval("vdso_image_32.sym_int80_landing_pad")


def _assert_user_frames(frames, pad: int, vdso_label: str, ret: int):
    user = [f for f in frames if "user mode" in f[2]]
    assert len(user) == 2, frames
    (_, vdso_pc, vdso_text), (_, caller_pc, caller_text) = user
    assert vdso_pc == pad and vdso_label in vdso_text
    assert caller_pc == ret and "__kernel_vsyscall's caller" in caller_text
    assert frames[-1][1] == ret, "the caller is the outermost frame"


def test_bt_at_entry_sysenter_ends_in_vdso_and_caller(kx):
    """At entry_SYSENTER_32's first instruction (PTI user CR3, before the
    stack switch) and at its call into do_SYSENTER_32 (after SAVE_ALL):
    the vDSO's landing pad, then sysenter32's caller frame."""
    ret = _return_address_after_call()
    kx.run_to("entry_SYSENTER_32", condition=f"$eax == 4 && $edx == {SYSENTER32_LEN}")
    thread = kx.gdb.eval("$_thread")
    first = _frames(kx)
    assert first[0][2].startswith("entry_SYSENTER_32")
    # The stub's call: pt_regs is at esp, so the kernel's copy of the user
    # ebp (= the user esp at sysenter) is pt_regs->bp.
    call = kx.symbols["do_SYSENTER_32"]
    code = kx.gdb.cmd("x/60i entry_SYSENTER_32")
    site = re.search(rf"(0x[0-9a-f]+) <entry_SYSENTER_32\+\d+>:\s+call\s+{call:#x}", code)
    assert site, code
    # The same syscall: this vCPU runs the stub with interrupts off.
    kx.run_to(f"{site.group(1)} thread {thread}")
    assert kx.gdb.eval("((struct pt_regs *)$esp)->dx") == SYSENTER32_LEN
    pad = _landing_pad(kx, thread - 1)
    user_sp = kx.gdb.eval("((struct pt_regs *)$esp)->bp") & 0xFFFFFFFF
    _assert_user_frames(first, pad, "landing pad; sysenter left the user esp in ebp", ret)
    at_call = _frames(kx)
    _assert_user_frames(at_call, pad, "landing pad; sysenter left the user esp in ebp", ret)
    # The caller frame's stack is above the three pushes and the return address.
    kx.gdb.cmd(f"frame {at_call[-1][0]}")
    assert kx.gdb.eval("$esp") & 0xFFFFFFFF == user_sp + 16
    kx.gdb.cmd("frame 0")


def test_bt_in_the_handler_after_sysenter(kx):
    """In __ia32_sys_write, pt_regs hold the landing pad do_fast_syscall_32
    stored and the user esp do_SYSENTER_32 copied from ebp: bt still goes
    on to the caller."""
    ret = _return_address_after_call()
    msg = elf_symbols("sysenter32")["msg"]
    kx.run_to("__ia32_sys_write", condition=f"((struct pt_regs *)$eax)->dx == {SYSENTER32_LEN} && "
              f"((struct pt_regs *)$eax)->cx == {msg}")
    regs = kx.json("kx regs")
    pad = _landing_pad(kx, kx.gdb.eval("$_thread") - 1)
    assert regs["regs"]["ip"] == pad
    frames = _frames(kx)
    _assert_user_frames(frames, pad, "pt_regs at", ret)


def test_bt_in_do_sysenter_32_before_pt_regs_are_complete(kx):
    """At do_SYSENTER_32's first instruction pt_regs->ip and ->sp are still
    the stub's placeholder zeros (common.c fills them): the user frames
    are the landing pad with ebp as the stack, then the caller."""
    ret = _return_address_after_call()
    msg = elf_symbols("sysenter32")["msg"]
    kx.run_to("do_SYSENTER_32", condition=f"((struct pt_regs *)$eax)->dx == {SYSENTER32_LEN} && "
              f"((struct pt_regs *)$eax)->cx == {msg}")
    assert kx.gdb.eval("((struct pt_regs *)$eax)->ip") == 0 == kx.gdb.eval("((struct pt_regs *)$eax)->sp")
    pad = _landing_pad(kx, kx.gdb.eval("$_thread") - 1)
    _assert_user_frames(_frames(kx), pad, "pt_regs at", ret)
