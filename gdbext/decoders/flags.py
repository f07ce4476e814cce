"""Task state, PF_*, TIF_*, TS_* and SYSCALL_WORK_* bits, per kernel version.

Tables were read from the 6.1 and 6.12 trees:
  task state      include/linux/sched.h (TASK_*, EXIT_*), fs/proc/array.c
  PF_*            include/linux/sched.h
  TIF_*, TS_*     arch/x86/include/asm/thread_info.h
  SYSCALL_WORK_*  include/linux/thread_info.h
Only PF_* differs between the two.  for_version() picks the 6.1 tables for
6.1 and older and the 6.12 tables for anything newer: the 6.12 additions
only reuse bits that were PF__HOLE__* in 6.1, which are never set there, so
the newer table cannot mislabel an older kernel's flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from gdbext.decoders.bits import Record, check_uint, decode_flags

# --- task state (task_struct.__state / exit_state) ---

TASK_RUNNING = 0x0000
TASK_INTERRUPTIBLE = 0x0001
TASK_UNINTERRUPTIBLE = 0x0002
__TASK_STOPPED = 0x0004
__TASK_TRACED = 0x0008
EXIT_DEAD = 0x0010
EXIT_ZOMBIE = 0x0020
TASK_PARKED = 0x0040
TASK_DEAD = 0x0080
TASK_WAKEKILL = 0x0100
TASK_WAKING = 0x0200
TASK_NOLOAD = 0x0400
TASK_NEW = 0x0800
TASK_RTLOCK_WAIT = 0x1000
TASK_FREEZABLE = 0x2000
TASK_FREEZABLE_UNSAFE = 0x4000  # only with CONFIG_LOCKDEP
TASK_FROZEN = 0x8000
TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD
TASK_REPORT = 0x7F  # RUNNING|INTERRUPTIBLE|UNINTERRUPTIBLE|STOPPED|TRACED|EXIT_DEAD|EXIT_ZOMBIE|PARKED

_TASK_STATE_BITS = {
    0: "TASK_INTERRUPTIBLE", 1: "TASK_UNINTERRUPTIBLE", 2: "__TASK_STOPPED",
    3: "__TASK_TRACED", 4: "EXIT_DEAD", 5: "EXIT_ZOMBIE", 6: "TASK_PARKED",
    7: "TASK_DEAD", 8: "TASK_WAKEKILL", 9: "TASK_WAKING", 10: "TASK_NOLOAD",
    11: "TASK_NEW", 12: "TASK_RTLOCK_WAIT", 13: "TASK_FREEZABLE",
    14: "__TASK_FREEZABLE_UNSAFE", 15: "TASK_FROZEN",
}
# Same values in 6.1 and 6.12.
TASK_STATE_BITS_6_1 = dict(_TASK_STATE_BITS)
TASK_STATE_BITS_6_12 = dict(_TASK_STATE_BITS)

# task_state_array[] in fs/proc/array.c, indexed by __task_state_index().
TASK_STATE_LABELS = (
    "R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
    "t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)", "I (idle)",
)

# --- PF_* (task_struct.flags) ---

_PF_COMMON = {
    0: "PF_VCPU", 1: "PF_IDLE", 2: "PF_EXITING", 3: "PF_POSTCOREDUMP",
    4: "PF_IO_WORKER", 5: "PF_WQ_WORKER", 6: "PF_FORKNOEXEC", 7: "PF_MCE_PROCESS",
    8: "PF_SUPERPRIV", 9: "PF_DUMPCORE", 10: "PF_SIGNALED", 11: "PF_MEMALLOC",
    12: "PF_NPROC_EXCEEDED", 13: "PF_USED_MATH", 15: "PF_NOFREEZE",
    17: "PF_KSWAPD", 18: "PF_MEMALLOC_NOFS", 19: "PF_MEMALLOC_NOIO",
    20: "PF_LOCAL_THROTTLE", 21: "PF_KTHREAD", 22: "PF_RANDOMIZE",
    23: "PF_NO_NOTIFY_SIGNAL", 26: "PF_NO_SETAFFINITY", 27: "PF_MCE_EARLY",
    28: "PF_MEMALLOC_PIN", 31: "PF_SUSPEND_TASK",
}
# 6.1: bits 14, 16, 24, 25, 29, 30 are PF__HOLE__*.
PF_FLAGS_6_1 = dict(_PF_COMMON)
# 6.12 fills three holes:
#   0x00004000 PF_USER_WORKER  (v6.4, commit 54e6842d0775 "fork/vm: Move common
#                               PF_IO_WORKER behavior to new flag")
#   0x00010000 PF_KCOMPACTD    (added after 6.1; release not verified)
#   0x20000000 PF_BLOCK_TS     (added after 6.1, block plug timestamp; ~v6.9)
PF_FLAGS_6_12 = {**_PF_COMMON, 14: "PF_USER_WORKER", 16: "PF_KCOMPACTD", 29: "PF_BLOCK_TS"}

# --- TIF_* (thread_info.flags, x86) --- identical in 6.1 and 6.12.
_TIF = {
    1: "TIF_NOTIFY_RESUME", 2: "TIF_SIGPENDING", 3: "TIF_NEED_RESCHED",
    4: "TIF_SINGLESTEP", 5: "TIF_SSBD", 9: "TIF_SPEC_IB", 10: "TIF_SPEC_L1D_FLUSH",
    11: "TIF_USER_RETURN_NOTIFY", 12: "TIF_UPROBE", 13: "TIF_PATCH_PENDING",
    14: "TIF_NEED_FPU_LOAD", 15: "TIF_NOCPUID", 16: "TIF_NOTSC", 17: "TIF_NOTIFY_SIGNAL",
    20: "TIF_MEMDIE", 21: "TIF_POLLING_NRFLAG", 22: "TIF_IO_BITMAP",
    23: "TIF_SPEC_FORCE_UPDATE", 24: "TIF_FORCED_TF", 25: "TIF_BLOCKSTEP",
    27: "TIF_LAZY_MMU_UPDATES", 29: "TIF_ADDR32",
}
TIF_FLAGS_6_1 = dict(_TIF)
TIF_FLAGS_6_12 = dict(_TIF)

# --- TS_* (thread_info.status, x86) --- identical in 6.1 and 6.12.
_TS = {1: "TS_COMPAT", 2: "TS_I386_REGS_POKED"}
TS_FLAGS_6_1 = dict(_TS)
TS_FLAGS_6_12 = dict(_TS)

# --- SYSCALL_WORK_* (thread_info.syscall_work) --- identical in 6.1 and 6.12.
_SYSCALL_WORK = {
    0: "SYSCALL_WORK_SECCOMP", 1: "SYSCALL_WORK_SYSCALL_TRACEPOINT",
    2: "SYSCALL_WORK_SYSCALL_TRACE", 3: "SYSCALL_WORK_SYSCALL_EMU",
    4: "SYSCALL_WORK_SYSCALL_AUDIT", 5: "SYSCALL_WORK_SYSCALL_USER_DISPATCH",
    6: "SYSCALL_WORK_SYSCALL_EXIT_TRAP",
}
SYSCALL_WORK_6_1 = dict(_SYSCALL_WORK)
SYSCALL_WORK_6_12 = dict(_SYSCALL_WORK)


@dataclass(frozen=True)
class FlagTables(Record):
    version: Tuple[int, int]   # the tree these tables were read from
    task_state: Dict[int, str]
    pf: Dict[int, str]
    tif: Dict[int, str]
    ts: Dict[int, str]
    syscall_work: Dict[int, str]


TABLES_6_1 = FlagTables((6, 1), TASK_STATE_BITS_6_1, PF_FLAGS_6_1, TIF_FLAGS_6_1,
                        TS_FLAGS_6_1, SYSCALL_WORK_6_1)
TABLES_6_12 = FlagTables((6, 12), TASK_STATE_BITS_6_12, PF_FLAGS_6_12, TIF_FLAGS_6_12,
                         TS_FLAGS_6_12, SYSCALL_WORK_6_12)

DEFAULT_VERSION = (6, 12)


def for_version(major: int, minor: int) -> FlagTables:
    return TABLES_6_1 if (major, minor) <= (6, 1) else TABLES_6_12


def _tables(version: Optional[Tuple[int, int]]) -> FlagTables:
    return for_version(*(version or DEFAULT_VERSION))


@dataclass
class TaskState(Record):
    value: int           # __state
    exit_state: int
    letter: str          # ps-style: R S D T t X Z P I
    label: str           # /proc/PID/status style: "S (sleeping)"
    names: List[str]     # every set bit of __state | exit_state, or ["TASK_RUNNING"]


def task_state_index(state: int, exit_state: int = 0) -> int:
    """__task_state_index() from include/linux/sched.h."""
    s = (state | exit_state) & TASK_REPORT
    if (state & TASK_IDLE) == TASK_IDLE:
        s = TASK_REPORT + 1
    # RT "sleeping" spinlocks and frozen tasks are reported as D.
    if state & TASK_RTLOCK_WAIT or state & TASK_FROZEN:
        s = TASK_UNINTERRUPTIBLE
    return s.bit_length()  # fls()


def decode_task_state(state: int, exit_state: int = 0,
                      version: Optional[Tuple[int, int]] = None) -> TaskState:
    state = check_uint(state, 32, "task state")
    exit_state = check_uint(exit_state, 32, "exit_state")
    idx = task_state_index(state, exit_state)
    label = TASK_STATE_LABELS[idx]
    names = decode_flags(state | exit_state, _tables(version).task_state) or ["TASK_RUNNING"]
    return TaskState(state, exit_state, label[0], label, names)


def decode_pf_flags(v: int, version: Optional[Tuple[int, int]] = None) -> List[str]:
    return decode_flags(check_uint(v, 32, "PF flags"), _tables(version).pf)


def decode_tif_flags(v: int, version: Optional[Tuple[int, int]] = None) -> List[str]:
    return decode_flags(check_uint(v, 64, "TIF flags"), _tables(version).tif)


def decode_ts_status(v: int, version: Optional[Tuple[int, int]] = None) -> List[str]:
    return decode_flags(check_uint(v, 32, "thread_info.status"), _tables(version).ts)


def decode_syscall_work(v: int, version: Optional[Tuple[int, int]] = None) -> List[str]:
    return decode_flags(check_uint(v, 64, "syscall_work"), _tables(version).syscall_work)
