"""Task state, PF_* and SYSCALL_WORK_* bits, per kernel tree.

The tables were read from the four trees kx is tested on (Debian's 5.10.223,
6.1.192, 6.12.117 and 7.2.13 sources):
  task state      include/linux/sched.h (TASK_*, EXIT_*), fs/proc/array.c
  PF_*            include/linux/sched.h
  SYSCALL_WORK_*  include/linux/thread_info.h (enum syscall_work_bit, 5.11+)
The architecture's own bits (x86: TIF_*, TS_* in asm/thread_info.h) live
behind the arch seam (gdbext/arch/x86_64/thread_flags.py).  A kernel between
two trees gets the older tree's tables, and says so (FlagTables.tree): a bit
that appeared later prints as bitN rather than under a wrong name.  Where the
kernel itself carries a table (enum syscall_work_bit in the DWARF,
task_state_array in memory), the kernel model reads it instead
(kernel/flag_names.py).
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

# 5.10: bits 0-11 (TASK_STATE_MAX 0x1000).
_TASK_STATE_5_10 = {
    0: "TASK_INTERRUPTIBLE", 1: "TASK_UNINTERRUPTIBLE", 2: "__TASK_STOPPED",
    3: "__TASK_TRACED", 4: "EXIT_DEAD", 5: "EXIT_ZOMBIE", 6: "TASK_PARKED",
    7: "TASK_DEAD", 8: "TASK_WAKEKILL", 9: "TASK_WAKING", 10: "TASK_NOLOAD",
    11: "TASK_NEW",
}
# 5.15 added TASK_RTLOCK_WAIT, 6.1 TASK_FREEZABLE(_UNSAFE) and TASK_FROZEN
# ("freezer,sched: Rewrite core freezer logic", v6.1); same in 6.12 and 7.2.
_TASK_STATE_6_1 = {**_TASK_STATE_5_10, 12: "TASK_RTLOCK_WAIT", 13: "TASK_FREEZABLE",
                   14: "__TASK_FREEZABLE_UNSAFE", 15: "TASK_FROZEN"}

# task_state_array[] in fs/proc/array.c, indexed by __task_state_index();
# the same nine labels in all four trees.
TASK_STATE_LABELS = (
    "R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
    "t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)", "I (idle)",
)

# --- PF_* (task_struct.flags) ---
_PF_5_10 = {
    0: "PF_VCPU", 1: "PF_IDLE", 2: "PF_EXITING", 4: "PF_IO_WORKER", 5: "PF_WQ_WORKER",
    6: "PF_FORKNOEXEC", 7: "PF_MCE_PROCESS", 8: "PF_SUPERPRIV", 9: "PF_DUMPCORE",
    10: "PF_SIGNALED", 11: "PF_MEMALLOC", 12: "PF_NPROC_EXCEEDED", 13: "PF_USED_MATH",
    15: "PF_NOFREEZE", 16: "PF_FROZEN", 17: "PF_KSWAPD", 18: "PF_MEMALLOC_NOFS",
    19: "PF_MEMALLOC_NOIO", 20: "PF_LOCAL_THROTTLE", 21: "PF_KTHREAD", 22: "PF_RANDOMIZE",
    23: "PF_SWAPWRITE", 26: "PF_NO_SETAFFINITY", 27: "PF_MCE_EARLY",
    28: "PF_MEMALLOC_NOCMA", 30: "PF_FREEZER_SKIP", 31: "PF_SUSPEND_TASK",
}
# 6.1: PF_POSTCOREDUMP (bit 3), PF_NO_NOTIFY_SIGNAL (23, where PF_SWAPWRITE
# was), PF_MEMALLOC_PIN (28, was NOCMA); PF_FROZEN and PF_FREEZER_SKIP gone
# with the freezer rewrite (v6.1).
_PF_6_1 = {**{k: v for k, v in _PF_5_10.items() if k not in (16, 30)},
           3: "PF_POSTCOREDUMP", 23: "PF_NO_NOTIFY_SIGNAL", 28: "PF_MEMALLOC_PIN"}
# 6.12 fills three holes: PF_USER_WORKER (14, v6.4, 54e6842d0775),
# PF_KCOMPACTD (16) and PF_BLOCK_TS (29).
_PF_6_12 = {**_PF_6_1, 14: "PF_USER_WORKER", 16: "PF_KCOMPACTD", 29: "PF_BLOCK_TS"}
# 7.2: PF_NO_NOTIFY_SIGNAL is gone (bit 23 is a hole again).
_PF_7_2 = {k: v for k, v in _PF_6_12.items() if k != 23}

# --- SYSCALL_WORK_* (thread_info.syscall_work, 5.11+) ---
_SYSCALL_WORK_6_1 = {
    0: "SYSCALL_WORK_SECCOMP", 1: "SYSCALL_WORK_SYSCALL_TRACEPOINT",
    2: "SYSCALL_WORK_SYSCALL_TRACE", 3: "SYSCALL_WORK_SYSCALL_EMU",
    4: "SYSCALL_WORK_SYSCALL_AUDIT", 5: "SYSCALL_WORK_SYSCALL_USER_DISPATCH",
    6: "SYSCALL_WORK_SYSCALL_EXIT_TRAP",
}
_SYSCALL_WORK_7_2 = {**_SYSCALL_WORK_6_1, 7: "SYSCALL_WORK_SYSCALL_RSEQ_SLICE"}


@dataclass(frozen=True)
class FlagTables(Record):
    tree: Tuple[int, int]        # the tree these tables were read from
    task_state: Dict[int, str]
    pf: Dict[int, str]
    syscall_work: Dict[int, str]


TREES = (
    FlagTables((5, 10), _TASK_STATE_5_10, _PF_5_10, {}),
    FlagTables((6, 1), _TASK_STATE_6_1, _PF_6_1, _SYSCALL_WORK_6_1),
    FlagTables((6, 12), _TASK_STATE_6_1, _PF_6_12, _SYSCALL_WORK_6_1),
    FlagTables((7, 2), _TASK_STATE_6_1, _PF_7_2, _SYSCALL_WORK_7_2),
)
DEFAULT_VERSION = (6, 12)


def tree_for(version: Optional[Tuple[int, int]], trees=TREES):
    """The newest of `trees` (each with a `.tree`) not newer than `version`
    (the oldest for an older kernel; DEFAULT_VERSION's when unknown)."""
    version = tuple(version or DEFAULT_VERSION)[:2]
    older = [t for t in trees if t.tree <= version]
    return older[-1] if older else trees[0]


def for_version(major: int, minor: int) -> FlagTables:
    return tree_for((major, minor))


def _tables(version: Optional[Tuple[int, int]]) -> FlagTables:
    return tree_for(version)


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
                      version: Optional[Tuple[int, int]] = None, labels=TASK_STATE_LABELS) -> TaskState:
    """`labels`: task_state_array as the kernel has it, when it was read."""
    state = check_uint(state, 32, "task state")
    exit_state = check_uint(exit_state, 32, "exit_state")
    idx = task_state_index(state, exit_state)
    label = labels[idx] if idx < len(labels) else TASK_STATE_LABELS[idx]
    names = decode_flags(state | exit_state, _tables(version).task_state) or ["TASK_RUNNING"]
    return TaskState(state, exit_state, label[0], label, names)


def decode_pf_flags(v: int, version: Optional[Tuple[int, int]] = None) -> List[str]:
    return decode_flags(check_uint(v, 32, "PF flags"), _tables(version).pf)


def decode_syscall_work(v: int, version: Optional[Tuple[int, int]] = None,
                        table: Optional[Dict[int, str]] = None) -> List[str]:
    """`table`: {bit: name} as the kernel's DWARF has it, when read."""
    return decode_flags(check_uint(v, 64, "syscall_work"), table or _tables(version).syscall_work)


def decode_bits(v: int, table: Dict[int, str], bits: int, what: str) -> List[str]:
    """Names of the set bits of `v` by `table` (bitN for unknown ones)."""
    return decode_flags(check_uint(v, bits, what), table)
