"""Where QEMU's x86-64 gdbstub puts each register in its `g` reply, as
gdb's `maint print remote-registers` shows it on QEMU 7.2."""
from gdbext.decoders.rsp_packets import RegisterLayout

_GENERAL = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
_SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
_SYSTEM = ("fs_base", "gs_base", "k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer")

# name -> (remote register number, offset in the `g` reply, size)
QEMU_G_LAYOUT: RegisterLayout = {
    **{n: (i, i * 8, 8) for i, n in enumerate(_GENERAL)},
    "eflags": (17, 136, 4),
    **{n: (18 + i, 140 + 4 * i, 4) for i, n in enumerate(_SEGMENTS)},
    **{n: (24 + i, 164 + 8 * i, 8) for i, n in enumerate(_SYSTEM)},
}
