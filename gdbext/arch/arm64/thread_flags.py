"""arm64's thread_info.flags bits (TIF_*), per kernel tree, read from
arch/arm64/include/asm/thread_info.h of Debian's 6.1.192 and 6.12.117
sources.  arm64 has no thread_info.status.  Pure data;
decoders/flags.tree_for() picks a tree for a kernel version."""
from gdbext.arch.x86_64.thread_flags import ThreadFlagTables

_TIF_6_1 = {
    0: "TIF_SIGPENDING", 1: "TIF_NEED_RESCHED", 2: "TIF_NOTIFY_RESUME", 3: "TIF_FOREIGN_FPSTATE",
    4: "TIF_UPROBE", 5: "TIF_MTE_ASYNC_FAULT", 6: "TIF_NOTIFY_SIGNAL", 8: "TIF_SYSCALL_TRACE",
    9: "TIF_SYSCALL_AUDIT", 10: "TIF_SYSCALL_TRACEPOINT", 11: "TIF_SECCOMP", 12: "TIF_SYSCALL_EMU",
    18: "TIF_MEMDIE", 19: "TIF_FREEZE", 20: "TIF_RESTORE_SIGMASK", 21: "TIF_SINGLESTEP",
    22: "TIF_32BIT", 23: "TIF_SVE", 24: "TIF_SVE_VL_INHERIT", 25: "TIF_SSBD", 26: "TIF_TAGGED_ADDR",
    27: "TIF_SME", 28: "TIF_SME_VL_INHERIT",
}
_TIF_6_12 = {**_TIF_6_1, 29: "TIF_KERNEL_FPSTATE", 30: "TIF_TSC_SIGSEGV"}

TREES = (
    ThreadFlagTables((6, 1), _TIF_6_1, {}),
    ThreadFlagTables((6, 12), _TIF_6_12, {}),
)
