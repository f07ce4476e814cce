"""gdbext.decoders.flags: task state and PF/TIF/TS/SYSCALL_WORK bits."""
import pytest

from gdbext.errors import DecodeError
from gdbext.decoders import flags


@pytest.mark.parametrize("state,exit_state,label", [
    (0x0000, 0, "R (running)"),
    (0x0001, 0, "S (sleeping)"),
    (0x0002, 0, "D (disk sleep)"),
    (0x0004, 0, "T (stopped)"),
    (0x0008, 0, "t (tracing stop)"),
    (0x0000, 0x10, "X (dead)"),
    (0x0000, 0x20, "Z (zombie)"),
    (0x0040, 0, "P (parked)"),
    (0x0402, 0, "I (idle)"),          # TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD
    (0x0102, 0, "D (disk sleep)"),    # TASK_KILLABLE
    (0x0108, 0, "t (tracing stop)"),  # TASK_TRACED-ish with WAKEKILL
    (0x8000, 0, "D (disk sleep)"),    # TASK_FROZEN reported as D
    (0x1000, 0, "D (disk sleep)"),    # TASK_RTLOCK_WAIT reported as D
    (0x0080, 0x20, "Z (zombie)"),     # TASK_DEAD + EXIT_ZOMBIE
])
def test_task_state(state, exit_state, label):
    ts = flags.decode_task_state(state, exit_state)
    assert ts.label == label and ts.letter == label[0]


def test_task_state_names():
    assert flags.decode_task_state(0).names == ["TASK_RUNNING"]
    assert flags.decode_task_state(0x402).names == ["TASK_UNINTERRUPTIBLE", "TASK_NOLOAD"]
    assert flags.decode_task_state(0x102, version=(6, 1)).names == \
        ["TASK_UNINTERRUPTIBLE", "TASK_WAKEKILL"]
    assert flags.decode_task_state(0x10000).names == ["bit16"]
    d = flags.decode_task_state(1).to_dict()
    assert d == {"value": 1, "exit_state": 0, "letter": "S", "label": "S (sleeping)",
                 "names": ["TASK_INTERRUPTIBLE"]}
    with pytest.raises(DecodeError):
        flags.decode_task_state(-1)


def test_pf_flags_per_version():
    v = 0x00200000 | 0x00004000 | 0x00000040  # KTHREAD | (USER_WORKER in 6.12) | FORKNOEXEC
    assert flags.decode_pf_flags(v, (6, 12)) == ["PF_FORKNOEXEC", "PF_USER_WORKER", "PF_KTHREAD"]
    assert flags.decode_pf_flags(v, (6, 1)) == ["PF_FORKNOEXEC", "bit14", "PF_KTHREAD"]
    assert flags.decode_pf_flags(0x20000000, (6, 12)) == ["PF_BLOCK_TS"]
    assert flags.decode_pf_flags(0x00010000, (6, 12)) == ["PF_KCOMPACTD"]
    assert flags.decode_pf_flags(0x00010000, (5, 10)) == ["PF_FROZEN"]
    assert flags.decode_pf_flags(0x00800000, (7, 2)) == ["bit23"]
    assert flags.decode_pf_flags(0x80000000) == ["PF_SUSPEND_TASK"]
    # A kernel between two trees gets the older tree's names.
    assert [flags.for_version(*v).tree for v in ((5, 4), (5, 10), (5, 15), (6, 6), (6, 12), (7, 0), (7, 3))] == \
        [(5, 10), (5, 10), (5, 10), (6, 1), (6, 12), (6, 12), (7, 2)]


def test_syscall_work_and_bits():
    assert flags.decode_syscall_work(0b1000001) == ["SYSCALL_WORK_SECCOMP",
                                                    "SYSCALL_WORK_SYSCALL_EXIT_TRAP"]
    assert flags.decode_syscall_work(1 << 9) == ["bit9"]
    assert flags.decode_syscall_work(1 << 7, (7, 2)) == ["SYSCALL_WORK_SYSCALL_RSEQ_SLICE"]
    assert flags.decode_syscall_work(2, table={1: "FROM_DWARF"}) == ["FROM_DWARF"]
    assert flags.decode_bits(0x6, {1: "TS_COMPAT"}, 32, "status") == ["TS_COMPAT", "bit2"]
    assert flags.decode_task_state(1, labels=("R (running)", "S (asleep)")).label == "S (asleep)"
