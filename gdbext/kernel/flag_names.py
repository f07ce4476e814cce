"""A task's state and flag words by name, from the tables of the running
kernel: read from the kernel itself where it carries them (enum
syscall_work_bit in the DWARF, 5.11+; task_state_array[] in memory,
fs/proc/array.c), else from the tables of the nearest tree
(decoders/flags.py; the architecture's thread_info bits behind the seam)."""
from typing import Dict, Optional, Tuple

from gdbext import arch, errors
from gdbext.decoders import flags as flagdec
from gdbext.kernel import backend, symbols, types

_ENUM_PREFIX = "SYSCALL_WORK_BIT_"


def syscall_work_table() -> Optional[Dict[int, str]]:
    """{bit: SYSCALL_WORK_name} from enum syscall_work_bit, or None."""
    values = types.enum_values("enum syscall_work_bit")
    if not values:
        return None
    return {v: "SYSCALL_WORK_" + n[len(_ENUM_PREFIX):] for n, v in values.items()
            if n.startswith(_ENUM_PREFIX) and 0 <= v < 64}


def task_state_labels() -> Tuple[str, ...]:
    """task_state_array[] as this kernel has it (its nine or so labels)."""
    def read():
        base = symbols.lookup("task_state_array")
        n = len(flagdec.TASK_STATE_LABELS)
        if base is None:
            return flagdec.TASK_STATE_LABELS
        try:
            raw = backend.read_kernel(base, 8 * n)
            labels = []
            for i in range(n):
                ptr = int.from_bytes(raw[8 * i:8 * i + 8], "little")
                labels.append(backend.read_kernel(ptr, 24).split(b"\0")[0].decode("ascii", "replace"))
        except errors.KxError:
            return flagdec.TASK_STATE_LABELS
        ok = all(len(l) > 3 and l[1:3] == " (" for l in labels)
        return tuple(labels) if ok else flagdec.TASK_STATE_LABELS
    return backend.cached(("task-state-labels",), read)


def state_of(task):
    return flagdec.decode_task_state(task.state & 0xFFFFFFFF, task.exit_state & 0xFFFFFFFF,
                                     backend.kernel_version(), task_state_labels())


def task_flags(task) -> Dict[str, Optional[Dict]]:
    """{"flags", "ti_flags", "syscall_work", "ti_status"}: each {"value",
    "names"} or None, plus "flag_tables": where the names come from."""
    v = backend.kernel_version()
    own = arch.current().thread_flag_tables(v)
    work = syscall_work_table()

    def flag_set(value, decode):
        return None if value is None else {"value": value, "names": decode(value)}
    tree = flagdec.tree_for(v).tree
    return {
        "flags": flag_set(task.flags, lambda x: flagdec.decode_pf_flags(x, v)),
        "ti_flags": flag_set(task.ti_flags, lambda x: flagdec.decode_bits(
            x, own.get("ti_flags", {}), 64, "thread_info.flags")),
        "syscall_work": flag_set(task.syscall_work, lambda x: flagdec.decode_syscall_work(x, v, work)),
        "ti_status": flag_set(task.ti_status, lambda x: flagdec.decode_bits(
            x, own.get("ti_status", {}), 32, "thread_info.status")),
        "flag_tables": {"kernel": ".".join(map(str, v[:2])) if v else None,
                        "tree": ".".join(map(str, tree)),
                        "syscall_work": "DWARF" if work else "table"},
    }
