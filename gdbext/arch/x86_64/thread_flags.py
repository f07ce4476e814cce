"""x86's thread_info bits: TIF_* (thread_info.flags) and TS_*
(thread_info.status), per kernel tree, read from
arch/x86/include/asm/thread_info.h of Debian's 5.10.223, 6.1.192, 6.12.117
and 7.2.13 sources (7.2 also include/asm-generic/thread_info_tif.h).  Pure
data; decoders/flags.tree_for() picks a tree for a kernel version."""
from dataclasses import dataclass
from typing import Dict, Tuple

# 5.10: the syscall work bits were still TIF_* (SYSCALL_TRACE, _EMU, _AUDIT,
# SECCOMP, SYSCALL_TRACEPOINT) and TIF_IA32/TIF_X32 marked compat tasks.
_TIF_5_10 = {
    0: "TIF_SYSCALL_TRACE", 1: "TIF_NOTIFY_RESUME", 2: "TIF_SIGPENDING", 3: "TIF_NEED_RESCHED",
    4: "TIF_SINGLESTEP", 5: "TIF_SSBD", 6: "TIF_SYSCALL_EMU", 7: "TIF_SYSCALL_AUDIT",
    8: "TIF_SECCOMP", 9: "TIF_SPEC_IB", 10: "TIF_SPEC_FORCE_UPDATE", 11: "TIF_USER_RETURN_NOTIFY",
    12: "TIF_UPROBE", 13: "TIF_PATCH_PENDING", 14: "TIF_NEED_FPU_LOAD", 15: "TIF_NOCPUID",
    16: "TIF_NOTSC", 17: "TIF_IA32", 18: "TIF_SLD", 19: "TIF_NOTIFY_SIGNAL", 20: "TIF_MEMDIE",
    21: "TIF_POLLING_NRFLAG", 22: "TIF_IO_BITMAP", 24: "TIF_FORCED_TF", 25: "TIF_BLOCKSTEP",
    27: "TIF_LAZY_MMU_UPDATES", 28: "TIF_SYSCALL_TRACEPOINT", 29: "TIF_ADDR32", 30: "TIF_X32",
}
# 6.1 and 6.12 (same bits): the syscall work moved to thread_info.syscall_work
# (5.11, "entry: Expose helpers to migrate TIF to SYSCALL_WORK flags").
_TIF_6_1 = {
    1: "TIF_NOTIFY_RESUME", 2: "TIF_SIGPENDING", 3: "TIF_NEED_RESCHED",
    4: "TIF_SINGLESTEP", 5: "TIF_SSBD", 9: "TIF_SPEC_IB", 10: "TIF_SPEC_L1D_FLUSH",
    11: "TIF_USER_RETURN_NOTIFY", 12: "TIF_UPROBE", 13: "TIF_PATCH_PENDING",
    14: "TIF_NEED_FPU_LOAD", 15: "TIF_NOCPUID", 16: "TIF_NOTSC", 17: "TIF_NOTIFY_SIGNAL",
    20: "TIF_MEMDIE", 21: "TIF_POLLING_NRFLAG", 22: "TIF_IO_BITMAP",
    23: "TIF_SPEC_FORCE_UPDATE", 24: "TIF_FORCED_TF", 25: "TIF_BLOCKSTEP",
    27: "TIF_LAZY_MMU_UPDATES", 29: "TIF_ADDR32",
}
# 7.2: bits 0-15 are the generic ones (asm-generic/thread_info_tif.h; x86
# defines HAVE_TIF_NEED_RESCHED_LAZY and HAVE_TIF_POLLING_NRFLAG), the x86
# ones start at 16.
_TIF_7_2 = {
    0: "TIF_NOTIFY_RESUME", 1: "TIF_SIGPENDING", 2: "TIF_NOTIFY_SIGNAL", 3: "TIF_MEMDIE",
    4: "TIF_NEED_RESCHED", 5: "TIF_NEED_RESCHED_LAZY", 6: "TIF_POLLING_NRFLAG",
    7: "TIF_USER_RETURN_NOTIFY", 8: "TIF_UPROBE", 9: "TIF_PATCH_PENDING", 11: "TIF_RSEQ",
    12: "TIF_HRTIMER_REARM", 16: "TIF_SSBD", 17: "TIF_SPEC_IB", 18: "TIF_SPEC_L1D_FLUSH",
    19: "TIF_NEED_FPU_LOAD", 20: "TIF_NOCPUID", 21: "TIF_NOTSC", 22: "TIF_IO_BITMAP",
    23: "TIF_SPEC_FORCE_UPDATE", 24: "TIF_FORCED_TF", 25: "TIF_SINGLESTEP",
    26: "TIF_BLOCKSTEP", 27: "TIF_ADDR32",
}
# TS_* are masks in the header (TS_COMPAT 0x0002): here, bit numbers.
_TS_5_10 = {1: "TS_COMPAT", 2: "TS_I386_REGS_POKED", 3: "TS_COMPAT_RESTART"}
_TS_6_1 = {1: "TS_COMPAT", 2: "TS_I386_REGS_POKED"}


@dataclass(frozen=True)
class ThreadFlagTables:
    tree: Tuple[int, int]
    tif: Dict[int, str]
    ts: Dict[int, str]


TREES = (
    ThreadFlagTables((5, 10), _TIF_5_10, _TS_5_10),
    ThreadFlagTables((6, 1), _TIF_6_1, _TS_6_1),
    ThreadFlagTables((6, 12), _TIF_6_1, _TS_6_1),
    ThreadFlagTables((7, 2), _TIF_7_2, _TS_6_1),
)
