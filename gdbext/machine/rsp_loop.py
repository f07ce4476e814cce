"""The fast breakpoint loop: kx's own Z0 / c / g / m packets on gdb's remote
connection (rsp_transport.py), for `kx trace`, with gdb's view of the target
made exact again when the loop ends.

What a hit costs (QEMU 7.2 TCG, 2 vCPUs, back-to-back getpid;
scripts/bench_trace.py, which also prints the numbers behind this):

- QEMU 7.2 flushes its whole translation cache on every *debug* stop (a
  breakpoint hit or a single-step; not a Ctrl-C): gdb_vm_state_change() calls
  tb_flush() for RUN_STATE_DEBUG (upstream dropped that call only in 2025).
  `info jit` ("TB flush count") goes up by one per hit.  Everything the guest
  runs until the next stop is then translated again: about 6-8 ms of QEMU
  CPU per getpid round trip on this 2-core host, against 0.8 ms for a stop
  that re-reports the same breakpoint.  That retranslation, not gdb, is
  most of the cost of a hit, and no client of the gdbstub avoids it.
- Resuming a vCPU that sits on a breakpoint re-reports the same breakpoint
  without executing anything.  A loop of `c` + stop reply + `g` that does
  not step over the breakpoint runs at ~1 ms per "hit" and never makes
  progress (a 0.27 ms "raw" figure measured earlier came from such a loop).
- gdb steps over the breakpoint on each hit (z0, vCont;s, Z0, vCont;c): two
  debug stops per event (the second flush is cheap: only one instruction ran
  since the first), plus its stop processing (~0.5-1.4 ms of gdb CPU).

So this loop takes exactly one debug stop per event, and never single-steps
when the architecture can move the vCPU past the instruction at the
breakpoint without one (`Arch.plan_resume`; on x86-64,
gdbext/arch/x86_64/stepover.py):

- "skip" (x86: a NOP of any encoding, ENDBR64/ENDBR32, PAUSE, `jmp
  rel8/rel32`): resume with `c ADDR` (QEMU sets the stopped vCPU's pc and
  continues: one packet);
- "emulate" (x86: `push r64`, `mov r, r`, `test r, r`, register forms): the
  effect (`Arch.emulate`) is written with `M`/`P` packets (a half-written
  effect is rolled back if Ctrl-C lands in between), then `c ADDR`;
- anything else: a raw `vCont;s:p1.N` single-step of that vCPU alone (the
  other vCPUs stay stopped), repeated while QEMU answers without moving $pc
  (NOTES.md), then `vCont;c`.

QEMU's stop reply carries no registers (`T05thread:p01.02;`), so each hit
costs one `g` (QEMU points its register/memory thread, g_cpu, at the vCPU
that stopped) plus whatever the callback reads with `m`.

When the loop ends (count reached, callback said stop, Ctrl-C, time limit,
an error, or an exception in the callback) the guest is stopped (all-stop).
Every breakpoint the loop set is removed with z0 and gdb is resynchronised
(`resync`):

- QEMU moved its general thread (Hg) to each vCPU that stopped, and gdb,
  which did not see those stops, still believes the stub points at the
  thread of its last `Hg` (remote.c caches it).  gdb never says which
  thread that is, so resync first sends `Hg` for the thread to be selected
  itself and then makes gdb read that thread's registers: if gdb's belief
  was that thread it sends nothing and the stub is already right;
  otherwise gdb sends the same `Hg`.  Either way they agree again.
- `maintenance flush register-cache` (registers and frames),
  `maintenance flush dcache` (gdb's memory cache) and kx's per-stop cache.
- By default gdb's selected thread becomes the vCPU of the final stop: the
  last hit's, which sits on the breakpoint address (its instruction has not
  run), unless the loop was interrupted while the guest ran.

Not resynchronised: gdb's idea of where each thread last stopped (its
stop_pc), which only decides whether gdb steps over one of *its own*
breakpoints on the next resume.  A vCPU left on a breakpoint address that
the user also has a gdb breakpoint on should therefore report that
breakpoint again at once when resumed, before running (reasoned from gdb's
proceed(), not tested).

Callbacks must read the target only through the Hit they are given
(`hit.read`, `hit.read_many`, `hit.read_string`), never through gdb
(gdb.Value, frames, machine.read): gdb's register and memory caches are
stale while the loop owns the connection.  Symbol and type lookups are fine.
"""
import dataclasses
import time

try:
    import gdb
except ImportError:      # outside gdb: `drive` on a transport of its own
    gdb = None           # still works (scripts/bench_trace.py's raw client)

from gdbext import arch, errors, machine
from gdbext.arch.base import ResumePlan
from gdbext.decoders import rsp_packets
from gdbext.decoders.bits import MASK64
from gdbext.decoders.paging import PAGE_SIZE_4K as PAGE
from gdbext.decoders.rsp_packets import parse_g, parse_stop
from gdbext.machine.rsp_transport import transport

# QEMU 7.2: PacketSize=1000 (hex), so an `m` reply holds at most 2047 bytes.
MAX_READ = 0x7F0
STEP_ATTEMPTS = 5
# Debug stops in a row in which nothing hit before the loop gives up.
MAX_SPURIOUS_RUN = 50
SIGINT, SIGTRAP = 2, 5       # gdb's signal numbers, which stop replies carry (include/gdb/signals.def)


class RspError(errors.KxError):
    """The stub answered something the loop cannot use."""


# ---------------------------------------------------------------------------
# The register layout

_layout_cache = {}


def register_layout() -> rsp_packets.RegisterLayout:
    """{name: (remote regnum, offset in the g reply, size)} for the
    architecture's registers, from gdb's own table (`maint print
    remote-registers`), else as QEMU lays them out."""
    key = _connection_key()
    if key in _layout_cache:
        return _layout_cache[key]
    qemu = arch.current().gdb_register_layout()
    layout = {}
    try:
        text = gdb.execute("maint print remote-registers", to_string=True)
        for line in text.splitlines():
            f = line.split()
            # Name Nr Rel Offset Size Type RmtNr g/GOffset
            if len(f) == 8 and f[0] in qemu and f[6].isdigit() and f[7].isdigit():
                layout[f[0]] = (int(f[6]), int(f[7]), int(f[4]))
    except gdb.error:
        layout = {}
    if set(layout) != set(qemu):
        layout = qemu
    _layout_cache[key] = layout
    return layout


def _connection_key():
    try:
        conn = gdb.selected_inferior().connection
        return (conn.num, conn.details) if conn is not None else None
    except (AttributeError, gdb.error):
        return None


# ---------------------------------------------------------------------------
# The hit handed to the callback

class Hit:
    """One breakpoint hit: the vCPU stopped at `pc` (= the breakpoint)."""

    __slots__ = ("cpu", "pc", "regs", "index", "time", "_t", "_cache")

    def __init__(self, t, cpu, regs, pc, index):
        self._t = t
        self.cpu = cpu                  # vCPU number (gdb thread cpu + 1)
        self.regs = regs                # {name: int}, those of register_layout()
        self.pc = pc
        self.index = index              # 0-based
        self.time = time.monotonic()
        self._cache = {}

    @property
    def thread(self) -> int:
        return self.cpu + 1

    def read(self, address: int, size: int) -> bytes:
        """Virtual memory of this vCPU (its current CR3), one `m` packet per
        2032 bytes.  Raises errors.MemoryUnreadable."""
        address &= MASK64
        key = (address, size)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = bytearray()
        pos = address
        while len(out) < size:
            n = min(MAX_READ, size - len(out))
            reply = self._t.request(f"m{pos:x},{n:x}")
            if not reply or rsp_packets.is_error(reply):
                raise errors.MemoryUnreadable(address, size, f"the stub answered {reply or 'nothing'}")
            try:
                chunk = bytes.fromhex(reply)
            except ValueError:
                raise RspError(f"bad reply to m{pos:x},{n:x}: {reply[:40]!r}") from None
            if not chunk:
                raise errors.MemoryUnreadable(address, size)
            out += chunk
            pos += len(chunk)
        data = bytes(out[:size])
        self._cache[key] = data
        return data

    def read_many(self, requests) -> list:
        """[bytes or None] for [(address, size)]: None where unreadable."""
        out = []
        for address, size in requests:
            try:
                out.append(self.read(address, size))
            except errors.MemoryUnreadable:
                out.append(None)
        return out

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def read_string(self, address: int, limit: int = 256):
        """(bytes up to the NUL, truncated?) of a C string, reading page by
        page so that an unmapped page after the string does not fail the
        read.  Raises MemoryUnreadable if the first byte is unreadable."""
        out = b""
        pos = address & MASK64
        while len(out) < limit:
            n = min(limit - len(out), PAGE - (pos & (PAGE - 1)))
            try:
                chunk = self.read(pos, n)
            except errors.MemoryUnreadable:
                if not out:
                    raise
                return out, True
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul], False
            out += chunk
            pos += n
        return out, True


@dataclasses.dataclass
class TraceResult:
    hits: int = 0
    reason: str = ""          # count | callback | interrupted | time | foreign-stop | error
    elapsed: float = 0.0      # seconds, first resume to the last hit's stop
    last: Hit = None          # the last hit
    at_last_hit: bool = False  # the guest is stopped at `last` (its vCPU on that breakpoint)
    stopped_cpu: int = None   # the vCPU of the final stop (gdb thread stopped_cpu + 1)
    stop_pc: int = None       # its pc
    transport: str = ""
    plans: dict = dataclasses.field(default_factory=dict)   # bp address -> ResumePlan
    steps: int = 0            # hits that needed a real single-step
    spurious: int = 0         # debug stops in which nothing hit (resumed)

    @property
    def rate(self) -> float:
        """Hits per second."""
        return self.hits / self.elapsed if self.elapsed > 0 else 0.0


# ---------------------------------------------------------------------------
# The loop

def run(breakpoints, on_hit, max_hits=None, duration=None, select_stopped=True,
        transport_kind="auto", emulate_insns=True, resync_gdb=True) -> TraceResult:
    """Trace `breakpoints` (kernel text addresses) until `max_hits` hits,
    `on_hit` returns a false value, `duration` seconds pass, or Ctrl-C.

    `on_hit(hit)` gets a Hit (cpu, pc, regs, read*) and returns True to go
    on.  Ctrl-C ends the loop cleanly (reason "interrupted"); any other
    exception, from `on_hit` or the stub, ends it too and is re-raised after
    the cleanup.  On return the guest is stopped (all vCPUs), no breakpoint
    of the loop is left, and gdb's registers, frames, memory cache and
    threads are right (see `resync`).  With `select_stopped`, gdb's selected
    thread becomes the vCPU of the final stop (the last hit's, unless the
    loop was interrupted while the guest ran); otherwise it stays as it was.

    `transport_kind` is "auto", "socket" or "maint"; `emulate_insns=False`
    single-steps every hit; `resync_gdb=False` is for tests that show what
    goes wrong without `resync`.
    """
    machine.require_stopped()
    addrs = sorted({a & MASK64 for a in breakpoints})
    if not addrs:
        raise errors.BadArgument("no breakpoint address to trace")
    cpu_arch = arch.current()
    result = TraceResult(plans=_plans(cpu_arch, addrs, emulate_insns))
    previous = gdb.selected_thread()
    layout = register_layout()
    foreign_bps = _gdb_keeps_breakpoints_inserted()
    trace = _Trace(transport(transport_kind), result, layout, cpu_arch, foreign_bps)
    result.transport = trace.t.name
    error = None
    try:
        error = _trace_and_clean_up(trace, on_hit, max_hits, duration)
    finally:
        trace.remove_breakpoints_quietly()     # only if the cleanup itself failed
        trace.t.close()
        _give_back(result, previous, select_stopped, resync_gdb)
    if error is not None:
        raise error
    return result


def _plans(cpu_arch, addrs, emulate_insns) -> dict:
    """How to get past each breakpoint, from the real bytes there, read while
    gdb still owns the connection: through the kernel page tables if the
    vCPU gdb reads with is on a user CR3 (KPTI), which plain `m` could not."""
    if not emulate_insns:
        return {a: ResumePlan("step") for a in addrs}
    return {a: cpu_arch.plan_resume(a, machine.read_kernel(a, 16)) for a in addrs}


def _gdb_keeps_breakpoints_inserted() -> bool:
    # gdb takes its own breakpoints out of the target at every stop, unless
    # told to keep them in.
    try:
        return gdb.parameter("breakpoint always-inserted") is True
    except (gdb.error, RuntimeError):
        return True


def _trace_and_clean_up(trace, on_hit, max_hits, duration):
    """Insert the breakpoints, run the loop, and whatever happened leave the
    guest stopped with every breakpoint removed: the exception to re-raise
    (the first one), or None."""
    result, error = trace.result, None
    try:
        trace.insert_breakpoints()
        machine.loop_owns_connection = True
        try:
            trace.loop(on_hit, max_hits, duration)
        finally:
            machine.loop_owns_connection = False
    except KeyboardInterrupt:
        result.reason = "interrupted"
    except BaseException as exc:   # the callback's or ours: clean up, then re-raise
        result.reason = "error"
        error = exc
    try:
        if result.reason in ("interrupted", "error"):
            # Wherever the interrupt landed: stop the guest, read what is
            # in flight, and learn where it stopped.
            result.at_last_hit = False
            stop = _retry_on_interrupt(trace.t.recover)
            _retry_on_interrupt(lambda: trace.note_stop(stop))
        trace.remove_breakpoints()
    except BaseException as exc:
        error = error or exc        # the first failure is the one to report
    return error


def _give_back(result, previous, select_stopped, resync_gdb):
    """Hand the target back to gdb, on the vCPU of the final stop (with
    `select_stopped`) or else on gdb's `previous` thread."""
    cpu = result.stopped_cpu if select_stopped else None
    if cpu is None and previous is not None and previous.is_valid():
        cpu = previous.num - 1
    if resync_gdb:
        _retry_on_interrupt(lambda: resync(cpu))
    else:
        gdb.execute("maintenance flush register-cache", to_string=True)


def drive(t, plans: dict, on_hit, max_hits=None, duration=None, layout=None) -> TraceResult:
    """The loop alone, on any transport and without gdb (scripts/bench_trace.py
    runs it on a connection of its own while gdb is detached): Z0 at each
    address of `plans` ({address: ResumePlan}), the loop, z0.  The guest is
    left stopped; nothing is resynchronised."""
    cpu_arch = arch.current()
    result = TraceResult(transport=getattr(t, "name", "?"), plans=dict(plans))
    trace = _Trace(t, result, layout or cpu_arch.gdb_register_layout(), cpu_arch)
    try:
        trace.insert_breakpoints()
        try:
            trace.loop(on_hit, max_hits, duration)
        except KeyboardInterrupt:
            result.reason = "interrupted"
            t.recover()
    finally:
        trace.remove_breakpoints()
    return result


def _retry_on_interrupt(fn, attempts=3):
    for i in range(attempts):
        try:
            return fn()
        except KeyboardInterrupt:
            if i == attempts - 1:
                raise


class _Trace:
    """One run of the loop: its transport, its breakpoints (the keys of
    `result.plans`) and how a stop's registers are read and written."""

    def __init__(self, t, result: TraceResult, layout, cpu_arch, foreign_bps=False):
        self.t = t
        self.result = result
        self.layout = layout
        self.arch = cpu_arch
        # gdb may have breakpoints of its own inserted, so a SIGTRAP
        # elsewhere ends the loop instead of being taken as spurious.
        self.foreign_bps = foreign_bps
        self.inserted = []
        self.spurious_run = 0
        self.start = self.deadline = None

    # -- breakpoints -------------------------------------------------------
    def insert_breakpoints(self):
        for a in self.result.plans:
            reply = self.t.request(f"Z0,{a:x},{self.arch.breakpoint_kind}")
            if reply != "OK":
                raise RspError(f"the stub refused a breakpoint at {a:#x} ({reply or 'unsupported'})")
            self.inserted.append(a)

    def remove_breakpoints(self):
        while self.inserted:
            a = self.inserted[-1]
            _retry_on_interrupt(lambda: self.t.request(f"z0,{a:x},{self.arch.breakpoint_kind}"))
            self.inserted.pop()

    def remove_breakpoints_quietly(self):
        for a in self.inserted:
            try:
                self.t.request(f"z0,{a:x},{self.arch.breakpoint_kind}")
            except BaseException:
                pass

    # -- the loop ----------------------------------------------------------
    def loop(self, on_hit, max_hits=None, duration=None):
        """Resume and take stops until the count, the callback, the time
        limit or a stop that is not a hit ends the loop (result.reason)."""
        self.start = time.monotonic()
        self.deadline = None if duration is None else self.start + duration
        resume = "vCont;c"
        try:
            while True:
                stop = self._resume_and_wait(resume)
                if stop is None:
                    return
                sig, cpu, regs = stop
                pc = regs.get(self.arch.pc)
                self.result.stopped_cpu, self.result.stop_pc = cpu, pc
                if sig != SIGTRAP or pc not in self.result.plans:
                    if self._ends_at_foreign_stop(sig):
                        return
                    resume = "vCont;c"
                    continue
                self.spurious_run = 0
                hit = Hit(self.t, cpu, regs, pc, self.result.hits)
                if not self._hand_over(on_hit, hit, max_hits):
                    return
                resume = self._step_past(hit, self.result.plans[pc])
        finally:
            if self.result.hits == 0:
                self.result.elapsed = time.monotonic() - self.start

    def _time_up(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _resume_and_wait(self, resume: str):
        """Resume with the packet `resume`: (signal, vCPU, registers) of the
        next stop, or None when the time limit had to stop the guest."""
        t = self.t
        t.resume(resume)
        self.result.at_last_hit = False
        left = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        stop = t.wait_stop(left)
        if stop is None:                       # time is up: stop the guest
            t.interrupt()
            stop = t.wait_stop(5.0)
            self.result.reason = "time"
            if stop is None:
                raise errors.TargetLost("the guest did not stop on request")
            self.note_stop(stop)
            return None
        parsed = parse_stop(stop)
        if parsed is None:
            raise RspError(f"unexpected stop reply {stop!r}")
        sig, tid = parsed
        if tid is None:
            raise RspError(f"the stop reply does not say which vCPU stopped ({stop!r})")
        return sig, tid - 1, parse_g(t.request("g"), self.layout)

    def _ends_at_foreign_stop(self, sig: int) -> bool:
        """A stop that is not one of the loop's hits: True (with
        result.reason) if it ends the loop, False to resume.

        The guest was stopped by someone else (or, under the maint
        transport, by gdb's NAK after remotetimeout seconds of silence), hit
        a breakpoint gdb left inserted (`set breakpoint always-inserted
        on`), or QEMU reported a debug stop in which nothing ran: when two
        vCPUs hit at once, the second one's stop request is left pending and
        stops the next resume straight away (the "step that did not
        execute" of NOTES.md; gdb's stepi sees it too)."""
        result = self.result
        if sig == SIGINT and self.t.name == "maint" and not self._time_up():
            return False
        if sig == SIGTRAP and not self.foreign_bps and self.spurious_run < MAX_SPURIOUS_RUN:
            result.spurious += 1
            self.spurious_run += 1
            return False
        if sig == SIGTRAP:
            result.reason = "foreign-stop"
        elif self._time_up():
            result.reason = "time"
        else:
            result.reason = "interrupted"
        return True

    def _hand_over(self, on_hit, hit: Hit, max_hits) -> bool:
        """Count `hit` and give it to the callback: False (with
        result.reason) when the loop ends with it."""
        result = self.result
        result.hits += 1
        result.last = hit
        result.at_last_hit = True
        result.elapsed = hit.time - self.start
        if not on_hit(hit):
            result.reason = "callback"
        elif max_hits is not None and result.hits >= max_hits:
            result.reason = "count"
        elif self._time_up():
            result.reason = "time"
        else:
            return True
        return False

    # -- after a stop --------------------------------------------------------
    def note_stop(self, stop_reply):
        """Record where the guest is stopped after a stop that is not a hit.
        QEMU points its general thread at the vCPU its stop reply names; when
        that reply was not seen (the maint transport loses it to Ctrl-C), say
        which vCPU with Hg ourselves: every vCPU is stopped anyway."""
        parsed = parse_stop(stop_reply) if stop_reply else None
        if parsed and parsed[1] is not None:
            cpu = parsed[1] - 1
        else:
            cpu = self.result.last.cpu if self.result.last is not None else 0
            if self.t.request(f"Hgp1.{cpu + 1:x}") != "OK":
                raise RspError(f"the stub cannot select CPU {cpu}")
        self.result.stopped_cpu = cpu
        self.result.stop_pc = parse_g(self.t.request("g"), self.layout).get(self.arch.pc)

    def _step_past(self, hit: Hit, plan: ResumePlan) -> str:
        """Move the stopped vCPU past its breakpoint; the packet that resumes."""
        if plan.kind == "skip":
            return f"c{plan.target:x}"
        if plan.kind == "emulate":
            self._emulate(hit, plan)
            return f"c{plan.target:x}"
        # A real single-step of this vCPU alone (the others stay stopped).
        self.result.steps += 1
        for _ in range(STEP_ATTEMPTS):
            stop = self.t.request(f"vCont;s:p1.{hit.cpu + 1:x}")
            if parse_stop(stop) is None:
                raise RspError(f"the stub refused to single-step ({stop!r})")
            pc = rsp_packets.decode_le_hex(self.t.request(f"p{self.layout[self.arch.pc][0]:x}"))
            if pc != hit.pc:
                return "vCont;c"
        raise RspError(f"CPU {hit.cpu} did not move off {hit.pc:#x} after {STEP_ATTEMPTS} single-steps")

    def _emulate(self, hit: Hit, plan: ResumePlan):
        reg_writes, mem_writes = self.arch.emulate(plan, hit.regs)
        try:
            # Memory first: it only ever lands below the stack pointer.
            for address, data in mem_writes:
                reply = self.t.request(rsp_packets.write_memory(address, data))
                if reply != "OK":
                    raise RspError(f"cannot write the stack at {address:#x} ({reply})")
            for name, value in reg_writes:
                self._set_reg(name, value)
        except BaseException:
            # Half an instruction must never stay behind: the vCPU is still
            # on the breakpoint, so put its registers back as they were.
            _retry_on_interrupt(self.t.recover)
            for name, _ in reg_writes:
                _retry_on_interrupt(lambda n=name: self._set_reg(n, hit.regs[n]))
            raise

    def _set_reg(self, name: str, value: int):
        regnum, _offset, size = self.layout[name]
        reply = self.t.request(rsp_packets.write_register(regnum, value, size))
        if reply != "OK":
            raise RspError(f"cannot set {name} ({reply})")


# ---------------------------------------------------------------------------
# Giving the target back to gdb

def resync(cpu: int = None) -> None:
    """Make gdb's view exact after packets it did not see: the stub's general
    thread, gdb's register, frame and memory caches, kx's per-stop cache,
    and (with `cpu`) the selected thread.  The guest must be stopped."""
    threads = {t.num: t for t in gdb.selected_inferior().threads()}
    thread = threads.get(cpu + 1) if cpu is not None else None
    if thread is not None and thread.is_valid():
        thread.switch()
    selected = gdb.selected_thread()
    if selected is not None:
        # 1. the stub's Hg to the thread gdb will read first ...
        machine.packet(f"Hgp1.{selected.num:x}")
    gdb.execute("maintenance flush register-cache", to_string=True)
    try:
        gdb.execute("maintenance flush dcache", to_string=True)
    except gdb.error:
        pass
    machine.invalidate()
    if selected is not None:
        # 2. ... and gdb reads it: it sends the same Hg unless it already
        # believed the stub was there; either way both now agree.
        gdb.newest_frame().read_register(arch.current().pc)
