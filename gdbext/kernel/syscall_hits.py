"""One pipeline for every syscall hit, whoever caught it: `kx break`'s gdb
breakpoints, `kx trace`'s gdb engine and its loop engine.

A hit goes through four steps, cheapest first, so that a call nobody asked
for costs as little as possible:
1. filter on the number (a register or one pt_regs slot, no task read);
2. filter on the task's pid / comm (one small read);
3. decode the whole event (kernel/events.py);
4. with returns wanted, park the event until the same task comes back
   through the stub's return point, and read the return value there.

The engine supplies how to read: the number's raw value, a task reader and
a decoder, each a callable over its own view of the machine.
"""
from typing import Callable, Dict, Hashable, Optional, Tuple

from gdbext import arch
from gdbext.kernel import events

# Entries waiting for their return: a task killed mid-call (exit, a fatal
# signal) never comes back, so the table is capped.
MAX_PENDING = 4096


def number_for_filter(abi_name: str, raw: int) -> int:
    """The syscall number a filter compares, from the raw register or
    pt_regs slot: sign-extended at the ABI's width, ABI bits split off."""
    a = arch.current()
    abi = a.abi(abi_name)
    return a.split_nr(abi, a.nr_from_raw(abi, raw)).nr


def return_value_offset(abi_name: str) -> int:
    """Offset in pt_regs of the slot the return value is stored in."""
    a = arch.current()
    return a.pt_regs_offsets[a.abi(abi_name).ptregs_ret]


class SyscallHits:
    """Filter, decode, pair entries with returns.  `hits` counts the events
    that matched; `skipped` those the filter turned away; `undecodable`
    those that could not be read (counted, never fatal)."""

    def __init__(self, flt, want_return: bool):
        self.filter = flt
        self.want_return = want_return
        # task -> its parked event and the machine's state at that entry
        self.pending: Dict[int, Tuple[events.SyscallEvent, Hashable]] = {}
        self.hits = 0
        self.skipped = 0
        self.undecodable = 0

    def wants(self, abi_name: str, raw_nr: int,
              task: Callable[[], Tuple[int, int, str]]) -> bool:
        """Steps 1 and 2: whether the call with this raw number, made by the
        task `task()` describes as (pid, tgid, comm), is wanted."""
        if not self.filter.wants_nr(abi_name, number_for_filter(abi_name, raw_nr)):
            self.skipped += 1
            return False
        if self.filter.needs_task and not self.filter.wants_task(*task()):
            self.skipped += 1
            return False
        return True

    def entered(self, event: events.SyscallEvent, state: Hashable = None) -> events.SyscallEvent:
        """Step 4's first half: count the decoded event and, with returns
        wanted, park it under its task, with `state` (the machine's state
        at the entry, for repeats_parked_entry)."""
        self.hits += 1
        if self.want_return and event.never_returns:
            event.no_return = True      # exit_group: shown now, `= ?`
        elif self.want_return and len(self.pending) < MAX_PENDING:
            self.pending[event.task] = (event, state)
        return event

    def repeats_parked_entry(self, task: int, state: Hashable) -> bool:
        """Whether an entry hit of `task`, in machine state `state`, is its
        parked entry reported a second time rather than a new call.  A task
        makes no new call before its parked one returns through the return
        point, so a hit in the very state of that entry is the same one:
        the vCPU executed nothing in between (QEMU sometimes answers the
        single-step gdb uses to leave a breakpoint without executing it)."""
        parked = self.pending.get(task)
        return state is not None and parked is not None and parked[1] == state

    def shown_at_entry(self, event: events.SyscallEvent) -> bool:
        """Whether an entered event is shown now rather than at its return."""
        return not self.want_return or event.no_return

    def returned(self, task: int, raw_ret: Callable[[], int],
                 read_user: Optional[Callable[[int, int], bytes]] = None) -> Optional[events.SyscallEvent]:
        """Step 4's second half: the parked event of `task` with its return
        value (read only for a task that has one parked), or None.  With
        `read_user` (the task's memory at the return), out-parameters and
        strings unreadable at the entry are read there."""
        event, _ = self.pending.pop(task, (None, None))
        if event is None:
            return None
        event.ret = arch.current().ret_from_raw(raw_ret())
        if read_user is not None:
            events.complete_at_return(event, read_user)
        return event

    def forget(self) -> None:
        """Drop every parked event (the breakpoints behind them are gone)."""
        self.pending.clear()

    @property
    def unreturned(self) -> int:
        return len(self.pending)


class PipelineCounters:
    """A tracer's summary counters, from its `pipeline` (a SyscallHits)."""

    @property
    def skipped(self) -> int:
        return self.pipeline.skipped

    @property
    def undecodable(self) -> int:
        return self.pipeline.undecodable

    @property
    def unreturned(self) -> int:
        return self.pipeline.unreturned


def task_identity(view) -> Tuple[int, int, str]:
    """(pid, tgid, comm) of the task running behind an events.View, in one
    small read: what a task filter compares."""
    brief = view.task_brief(view.current_task())
    return brief["pid"], brief["tgid"], brief["comm"]

