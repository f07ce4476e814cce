"""The `kx` prefix command: `help kx` lists every subcommand."""
import gdb


class KxPrefix(gdb.Command):
    """kx: inspect the Linux kernel's syscall entry path (x86-64, arm64; QEMU gdbstub).

Every subcommand takes --json for one machine-readable JSON object per line;
errors then come as {"error": "..."}.  `help kx SUBCOMMAND` for details.
Settings: `set kx color on|off|auto`, `set kx msr-read inject|off`.
Functions: $kx_current([CPU]), $kx_per_cpu("NAME"[, CPU]), $kx_ptregs([TASK]),
$kx_task_struct([TASK]), $kx_deref(POINTER) (`help function kx_current` and
so on).  `bt` in a syscall ends in a user-mode frame taken from pt_regs, or
from the live registers at an entry stub's first instructions (unwinder
`kx-entry-frames`)."""

    def __init__(self):
        super().__init__("kx", gdb.COMMAND_USER, gdb.COMPLETE_COMMAND, prefix=True)


def register():
    KxPrefix()
