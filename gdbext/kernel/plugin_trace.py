"""Syscall tracing by the kxtrace QEMU plugin (scripts/plugin/), the engine
with no debug stop at all.

The plugin sits at the same trace points as the breakpoint loop
(syscall_trace.trace_points: the C function each entry stub calls with
pt_regs, and the instruction after that call for returns).  Since nothing
can be read from the guest once the record is written, each record carries
what kx's decoder reads there:

- the registers the architecture names (Arch.trace_registers), which give
  pt_regs (Arch.c_entry_pt_regs_rule) and the return-address slot;
- pt_regs themselves (number, arguments, and the return value at a return
  point);
- `current` (each vCPU's pointer, resolved here) and the task_struct
  members events.decode uses (TASK_MEMBERS);
- the user memory of string, buffer and small struct arguments, as the
  kernel's own signature types them (syscall_args.capture_plan), up to the
  caps the decoder prints; at a return point again, for out-parameters
  and strings whose page was not present at the entry.  What it cannot
  capture: execve's argv and envp arrays (pointers to follow), shown as
  addresses.

RecordView serves events.decode from those bytes, so a record becomes the
same SyscallEvent the loop would have built, through the same pipeline
(syscall_hits.py).  Everything that needs gdb is done in `prepare()`.
"""
import dataclasses
import time
import types as pytypes
from typing import Callable, Dict, List, Optional, Tuple

from gdbext import arch, errors
from gdbext.decoders import syscall_args
from gdbext.kernel import backend, events, structs, symbols, syscall_hits, syscall_hooks, syscalls, tasks
from gdbext.kernel.syscall_trace import TracePoint, stub_of_shared_point, trace_points
from gdbext.machine import plugin_client as pc

# What events.decode reads of the current task (tasks.LIST_READER): the
# rest of the members it asks for read as zero from a record.
TASK_MEMBERS = ("ti_status", "stack", "flags", "pid", "tgid", "comm")
SLICE_BYTES = 64           # kxtrace.h KX_SLICE_BYTES
MAX_NR = 1024              # kxtrace.h KX_MAX_NR
_CAP_KIND = {"string": 1, "buffer": 2}


def _task_slices() -> List[List[int]]:
    """[offset, size] of the task_struct bytes a record carries: the
    members of TASK_MEMBERS, merged where they touch."""
    resolved, _ = tasks.LIST_READER.layout()
    spans = [(resolved[k].offset, resolved[k].offset + resolved[k].size)
             for k in TASK_MEMBERS if k in resolved]
    slices = [[s, e - s] for s, e in structs.merge_ranges(spans, gap=8)]
    if sum(n for _, n in slices) > SLICE_BYTES:
        raise errors.NotSupported(f"the task_struct members a record needs exceed {SLICE_BYTES} bytes")
    return slices


def _capture_table(flt) -> Dict[str, Dict[int, list]]:
    """{abi: {nr: capture_plan}} for every number the filter wants."""
    out = {}
    for abi in flt.abis:
        table = syscalls.table(abi)
        wanted = flt.nrs.get(abi)
        nrs = range(min(table.nr_syscalls, MAX_NR)) if wanted is None else sorted(wanted)
        plans = {}
        for nr in nrs:
            name = table.name(nr) if nr < MAX_NR else None
            sig = syscalls.signature(nr, abi) if name else None
            plan = syscall_args.capture_plan(sig.args, name) if sig else []
            if plan:
                plans[nr] = plan
        out[abi] = plans
    return out


def prepare(flt, want_return: bool) -> dict:
    """The trace's layout (JSON-able: it heads a --record file too), with
    everything that needs gdb resolved: trace points, each vCPU's
    `current`, the task_struct slices, the syscall tables and signatures."""
    a = arch.current()
    points = trace_points(flt, want_return)
    for abi in flt.abis:
        syscalls.dispatch(abi)
    tasks.pt_regs_address_for_stack(0)
    return {"arch": a.name, "regs": list(a.trace_registers), "abis": list(flt.abis),
            "points": [dataclasses.asdict(p) for p in points], "want_return": want_return,
            "ptregs_size": tasks.pt_regs_size(), "task_slices": _task_slices(),
            "task_extent": max(e for _, e in tasks.LIST_READER.layout()[1]),
            "current": {str(cpu): tasks.current_pointer(cpu) for cpu in backend.cpus()},
            "captures": {abi: {str(nr): plan for nr, plan in plans.items()}
                         for abi, plans in _capture_table(flt).items()},
            "wanted": {abi: (None if flt.nrs.get(abi) is None else sorted(flt.nrs[abi]))
                       for abi in flt.abis},
            "vmlinux": symbols.vmlinux_path(), "filter": flt.describe()}


def plugin_commands(layout: dict) -> List[str]:
    """The configuration lines the plugin's control socket takes."""
    a = arch.current()
    regs = layout["regs"]
    lines = ["regs " + " ".join(regs), f"ptregs {layout['ptregs_size']}"]
    for i, abi_name in enumerate(layout["abis"]):
        abi = a.abi(abi_name)
        offsets = " ".join(str(a.pt_regs_offsets[m]) for m in abi.ptregs_args)
        lines.append(f"abi {i} {abi.bits} {offsets}")
        lines += _want_lines(i, layout["wanted"][abi_name])
        for nr, plan in layout["captures"][abi_name].items():
            for arg, kind, most, length_arg in plan:
                lines.append(f"cap {i} {nr} {arg} {_CAP_KIND[kind]} {most} "
                             f"{255 if length_arg is None else length_arg}")
    lines += [f"task {off} {size}" for off, size in layout["task_slices"]]
    lines += [f"current {cpu} {addr:#x}" for cpu, addr in layout["current"].items()]
    slot = regs.index(a.c_entry_return_slot) if a.c_entry_return_slot else -1
    for p in layout["points"]:
        rule = (a.c_entry_pt_regs_rule(p["function"]) if p["kind"] == "entry"
                else a.pt_regs_after_c_call_rule())
        alt = regs.index(rule.alt_reg) if rule.alt_reg else -1
        nr_off = a.pt_regs_offsets[p["nr_member"] or a.abi(p["abi"]).ptregs_nr]
        lines.append(f"point {p['address']:#x} {pc.ENTRY if p['kind'] == 'entry' else pc.RETURN} "
                     f"{layout['abis'].index(p['abi'])} {regs.index(rule.reg)} {alt} {rule.alt_below:#x} "
                     f"{nr_off} {slot if p['kind'] == 'entry' else -1}")
    return lines


def _want_lines(index: int, wanted: Optional[list]) -> List[str]:
    if wanted is None:
        return [f"want {index} all"]
    # Numbers past the bitmap, x32 numbers and the like pass to kx, which
    # filters them exactly (syscall_hits.number_for_filter).
    small = [n for n in wanted if n < MAX_NR]
    lines = [f"want {index} other"]
    for i in range(0, len(small), 48):
        lines.append(f"want {index} " + " ".join(map(str, small[i:i + 48])))
    return lines


class Layout:
    """A layout dict (prepare()) in the shape RecordView reads fast."""

    def __init__(self, layout: dict):
        a = arch.current()
        self.raw = layout
        self.regs = layout["regs"]
        self.points = [TracePoint(**p) for p in layout["points"]]
        self.abis = [a.abi(name) for name in layout["abis"]]
        self.ptregs_size = layout["ptregs_size"]
        self.slices = layout["task_slices"]
        self.task_extent = layout["task_extent"]
        self.current = {int(k): v for k, v in layout["current"].items()}
        self.arg_offsets = {abi.name: [a.pt_regs_offsets[m] for m in abi.ptregs_args] for abi in self.abis}
        # (task, its captured bytes) -> the decoded brief: a spinning task
        # sends the same bytes record after record.
        self.briefs: Dict[Tuple[int, bytes], Dict[str, object]] = {}


class RecordView(events.View):
    """events.View over one record: its registers, and as memory only what
    it captured (pt_regs, the task's members, the return address, the
    argument strings)."""

    def __init__(self, record: pc.Record, layout: Layout):
        super().__init__(record.vcpu)
        self.record, self.layout = record, layout
        self.point = layout.points[record.point]
        self._regs = dict(zip(layout.regs, record.regs))
        self._regs[arch.current().pc] = self.point.address

    def regs(self):
        return self._regs

    def read_kernel(self, address, size):
        r, lay = self.record, self.layout
        if not r.flags & pc.F_PTREGS and r.ptregs <= address and address + size <= r.ptregs + lay.ptregs_size:
            return bytes(r.ptregs_bytes[address - r.ptregs:address - r.ptregs + size])
        if not r.flags & pc.F_TASK and r.task <= address and address + size <= r.task + lay.task_extent:
            return self._task_bytes(address - r.task, size)
        slot = arch.current().c_entry_return_slot
        if slot and not r.flags & pc.F_CALLER and address == self._regs.get(slot) and size <= 8:
            return r.caller.to_bytes(8, "little")[:size]
        if address == lay.current.get(r.vcpu) and size == 8 and not r.flags & pc.F_TASK:
            return r.task.to_bytes(8, "little")
        raise errors.MemoryUnreadable(address, size, "the trace record did not capture it")

    def _task_bytes(self, offset: int, size: int) -> bytes:
        out = bytearray(size)
        at = 0
        for off, n in self.layout.slices:
            lo, hi = max(off, offset), min(off + n, offset + size)
            if lo < hi:
                out[lo - offset:hi - offset] = self.record.task_bytes[at + lo - off:at + hi - off]
            at += n
        return bytes(out)

    def read_user(self, address, size):
        for start, status, data in self._captures():
            k = address - start
            if 0 <= k < len(data):
                return data[k:k + size]
        raise errors.MemoryUnreadable(address, size, "the trace record did not capture it")

    def _captures(self):
        abi = self.layout.abis[self.layout.raw["abis"].index(self.point.abi)]
        offsets = self.layout.arg_offsets[abi.name]
        pt = self.record.ptregs_bytes
        for arg, status, data in self.record.captures:
            value = int.from_bytes(pt[offsets[arg]:offsets[arg] + 8], "little") & abi.mask
            yield value, status, data

    def task_brief(self, task):
        if task != self.record.task:
            return super().task_brief(task)
        key = (task, bytes(self.record.task_bytes))
        briefs = self.layout.briefs
        if key not in briefs:
            if len(briefs) > 4096:
                briefs.clear()
            briefs[key] = super().task_brief(task)
        return briefs[key]

    def current_task(self):
        if self.record.flags & pc.F_TASK:
            raise errors.MemoryUnreadable(self.layout.current.get(self.cpu, 0), 8, "current")
        return self.record.task


class PluginTracer(syscall_hits.PipelineCounters):
    """The records' consumer: the syscall-hit pipeline over RecordViews;
    each wanted event goes to `emit(event) -> bool` (False ends the trace)
    and, live (`deliver_to_hooks`), to the scripts' hooks first, as the
    loop's tracer does: a hook that asks to stop ends the trace.  The guest
    has run on meanwhile, so it stops a little after that call, not in it."""

    def __init__(self, flt, layout: Layout, emit: Callable[[events.SyscallEvent], bool],
                 want_return: Optional[bool] = None, deliver_to_hooks: bool = False):
        self.layout, self.emit, self.filter = layout, emit, flt
        self.deliver = syscall_hooks.deliver if deliver_to_hooks else (lambda _event, returned=False: False)
        self.want_return = layout.raw["want_return"] if want_return is None else want_return
        self.pipeline = syscall_hits.SyscallHits(flt, self.want_return)
        self.records = 0
        self.done = False
        self.memo = {}     # events.decode's, for the whole trace
        self.held: List[pc.Record] = []    # read, waiting for older records of another ring
        self.abandoned = 0     # read but left undecoded: the budget of the last feed ran out

    def feed(self, chunks: List[bytes], final: bool = False, budget: Optional[float] = None) -> bool:
        """Every record of `chunks` (one or more rings' worth) in sequence
        order; False once `emit` said stop.  The rings are drained one
        after the other while the vCPUs write on, so a ring read first may
        still get records numbered below ones already read from another:
        records past the lowest newest number of the rings in this batch
        wait for the next batch (all go with `final`).  `budget`: seconds
        to decode for, the records left then are counted in `abandoned`
        (after a Ctrl-C, the summary must come at once)."""
        fresh = [r for c in chunks for r in pc.parse_records(c)]
        records = sorted(self.held + fresh, key=lambda r: r.seq)
        self.held = []
        newest: Dict[int, int] = {}
        for r in fresh:
            newest[r.vcpu] = max(newest.get(r.vcpu, -1), r.seq)
        if not final and len(newest) > 1:
            mark = min(newest.values())
            self.held = [r for r in records if r.seq > mark]
            records = [r for r in records if r.seq <= mark]
        deadline = None if budget is None else time.monotonic() + budget
        with arch.pinned(), symbols.pinned():
            for i, record in enumerate(records):
                if deadline is not None and time.monotonic() > deadline:
                    self.abandoned += len(records) - i
                    return True
                try:
                    if self.done or not self.on_record(record):
                        self.done = True
                        return False
                except KeyboardInterrupt:
                    # Ctrl-C mid-batch: the rest is drained already; keep it
                    # for the final feed instead of losing it.
                    self.held = records[i + 1:] + self.held
                    raise
        return True

    def on_record(self, record: pc.Record) -> bool:
        self.records += 1
        if record.point >= len(self.layout.points):
            self.pipeline.undecodable += 1
            return True
        view = RecordView(record, self.layout)
        if view.point.abi not in self.filter.abis:
            self.pipeline.skipped += 1
            return True
        if view.point.kind == "return" and not self.want_return:
            return True
        if view.point.kind == "return":
            return self._on_return(view)
        if record.flags & (pc.F_PTREGS | pc.F_TASK):
            self.pipeline.undecodable += 1
            return True
        try:
            if not self.pipeline.wants(view.point.abi, record.nr, lambda: syscall_hits.task_identity(view)):
                return True
            event = events.decode(view, memo=self.memo)
            point = view.point
            event.entry = (stub_of_shared_point(pytypes.SimpleNamespace(regs=view.regs(), read=view.read_kernel),
                                                point) if point.shared else point.stub)
        except errors.KxError:
            self.pipeline.undecodable += 1
            return True
        self.pipeline.entered(event)
        if self.deliver(event):
            return False
        return self.emit(event) if self.pipeline.shown_at_entry(event) else True

    def _on_return(self, view: RecordView) -> bool:
        if not self.pipeline.pending or view.record.flags & (pc.F_PTREGS | pc.F_TASK):
            return True
        offset = syscall_hits.return_value_offset(view.point.abi)
        pt = view.record.ptregs_bytes
        event = self.pipeline.returned(view.record.task, lambda: int.from_bytes(pt[offset:offset + 8], "little"),
                                       view.read_user)
        if event is None:
            return True
        return False if self.deliver(event, returned=True) else self.emit(event)
