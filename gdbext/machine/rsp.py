"""The fast breakpoint loop: kx's own Z0 / c / g / m packets on gdb's remote
connection, for `kx trace`, with gdb's view of the target made exact again
when the loop ends.

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
when the instruction at the breakpoint is trivial to emulate:

- a NOP of any encoding, ENDBR64/ENDBR32, PAUSE, `jmp rel8/rel32`: resume
  with `c ADDR` (QEMU sets the stopped vCPU's pc and continues: one packet);
- `push r64`, `mov r, r` (32/64-bit), `test r, r` (register forms): the
  effect is written with `M`/`P` packets (a half-written effect is rolled
  back if Ctrl-C lands in between), then `c ADDR`;
- anything else: a raw `vCont;s:p1.N` single-step of that vCPU alone (the
  other vCPUs stay stopped), repeated while QEMU answers without moving $pc
  (NOTES.md), then `vCont;c`.

QEMU's stop reply carries no registers (`T05thread:p01.02;`), so each hit
costs one `g` (QEMU points its register/memory thread, g_cpu, at the vCPU
that stopped) plus whatever the callback reads with `m`.

The packets go over gdb's own connection.  The preferred transport borrows
the socket (a dup of gdb's file descriptor, found by the peer address of
`gdb.selected_inferior().connection.details`): gdb is blocked inside this
Python code for the whole loop, so nothing else reads or writes it, and the
loop hands it back with every reply read and acknowledged.  Waiting on the
socket ourselves means Ctrl-C (a KeyboardInterrupt in gdb's Python) is seen
at once, and the loop stops the guest with `\x03` as gdb would.  If the
socket cannot be found (a pipe or serial line), `maint packet` is the
fallback: each `c` then blocks inside gdb for at most `remotetimeout`
seconds (gdb NAKs the silence, QEMU stops the guest and answers T02; the
loop resumes), and Ctrl-C takes effect when that packet returns.

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
import os
import select
import socket
import time

try:
    import gdb
except ImportError:      # outside gdb: the framing, the decoders and the loop
    gdb = None           # itself still work (scripts/bench_trace.py's raw client)

from gdbext.decoders import rsp_packets
from gdbext.decoders.rsp_packets import parse_g, parse_stop
from gdbext import arch, errors, machine
from gdbext.arch.base import ResumePlan

MASK64 = (1 << 64) - 1
PAGE = 4096
# QEMU 7.2: PacketSize=1000 (hex), so an `m` reply holds at most 2047 bytes.
MAX_READ = 0x7F0
STEP_ATTEMPTS = 5

class RspError(errors.KxError):
    """The stub answered something the loop cannot use."""


# ---------------------------------------------------------------------------
# The register layout

_layout_cache = {}


def register_layout() -> dict:
    """{name: (remote regnum, offset in the g reply, size)} for the
    registers of the architecture's layout, from gdb's own table (`maint
    print remote-registers`), else QEMU's."""
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
# Transports

class SocketTransport:
    """RSP on a dup of gdb's own connection socket."""

    name = "socket"

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.ack = None          # learnt from the first reply
        self.outstanding = None  # None | "reply" | "stop"
        self.last = b""

    @classmethod
    def find(cls):
        """The transport for gdb's current remote connection, or None."""
        try:
            conn = gdb.selected_inferior().connection
            details = conn.details if conn is not None else None
            if conn is None or conn.type not in ("remote", "extended-remote") or not details:
                return None
        except (AttributeError, gdb.error):
            return None
        want = _peer_matcher(details)
        if want is None:
            return None
        found, seen = [], set()
        for name in os.listdir("/proc/self/fd"):
            try:
                fd = int(name)
                link = os.readlink(f"/proc/self/fd/{fd}")
                # One socket may sit on several fds (our own dups among them).
                if not link.startswith("socket:") or link in seen:
                    continue
                seen.add(link)
                s = socket.socket(fileno=os.dup(fd))
            except (OSError, ValueError):
                continue
            try:
                if want(s.getpeername()):
                    found.append(s)
                    continue
            except OSError:
                pass
            s.close()
        if len(found) != 1:
            for s in found:
                s.close()
            return None
        return cls(found[0])

    def close(self):
        # Our dup only: closing a duplicate descriptor does not shut the
        # connection down, and gdb's own descriptor stays open.
        try:
            self.sock.close()
        except OSError:
            pass

    # -- framing ---------------------------------------------------------
    def _send_raw(self, data: bytes):
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)
                continue
            view = view[n:]

    def send(self, packet: str):
        self.last = rsp_packets.frame(packet)
        self._send_raw(self.last)

    def _fill(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        try:
            data = self.sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        if not data:
            raise errors.TargetLost("the remote closed the connection during the trace")
        self.buf += data
        return True

    def recv(self, timeout=None):
        """The next packet's payload (acknowledged), or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            before, body, used = rsp_packets.take_packet(self.buf)
            del self.buf[:used]
            self._take_acks(before)
            if body is not None:
                if self.ack is None:
                    self.ack = False
                if self.ack:
                    self._send_raw(rsp_packets.ACK)
                return rsp_packets.payload(body)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._fill(left) and deadline is not None and time.monotonic() >= deadline:
                return None

    def _take_acks(self, data: bytes):
        """Acks learn whether the stub acknowledges; a nak resends."""
        for c in data:
            if c == rsp_packets.ACK[0] and self.ack is None:
                self.ack = True
            elif c == rsp_packets.NAK[0] and self.last:
                self._send_raw(self.last)

    # -- operations --------------------------------------------------------
    def request(self, packet: str) -> str:
        self.outstanding = "reply"
        self.send(packet)
        reply = self.recv()
        self.outstanding = None
        return reply

    def resume(self, packet: str):
        self.outstanding = "stop"
        self.send(packet)

    def wait_stop(self, timeout=None):
        """The stop reply, or None if `timeout` passed first."""
        reply = self.recv(timeout)
        if reply is not None:
            self.outstanding = None
        return reply

    def interrupt(self):
        self._send_raw(rsp_packets.INTERRUPT)

    def recover(self):
        """Bring the connection to rest: the guest stopped, nothing unread.
        Safe to call in any state (after a KeyboardInterrupt anywhere).
        Returns the last stop reply seen, or None."""
        stop = None
        if self.outstanding == "stop":
            self.interrupt()
        self.outstanding = None
        # Drain whatever is in flight (a stop reply, a late reply).
        while True:
            reply = self.recv(0.3)
            if reply is None:
                break
            if parse_stop(reply):
                stop = reply
        # Probe: a byte that reaches QEMU while the guest runs stops it and
        # is dropped (a stop reply comes instead), so read until the probe's
        # own answer arrives.
        self.send("qC")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            reply = self.recv(1.0)
            if reply is None:
                self.send("qC")
                continue
            if parse_stop(reply):
                stop = reply
            elif reply.startswith("QC") or reply == "":
                return stop
        raise errors.TargetLost("the stub did not answer after the trace was interrupted")


def _peer_matcher(details: str):
    d = details
    for prefix in ("tcp:", "tcp4:", "tcp6:"):
        if d.startswith(prefix):
            d = d[len(prefix):]
    if d.startswith("/") or d.startswith("unix:"):
        path = d.split(":", 1)[1] if d.startswith("unix:") else d
        return lambda peer: peer == path
    host, _, port = d.rpartition(":")
    if not port.isdigit():
        return None
    host = host.strip("[]")
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host or "localhost", int(port))}
    except OSError:
        addrs = set()
    port = int(port)
    return lambda peer: isinstance(peer, tuple) and peer[1] == port and (not addrs or peer[0] in addrs)


class MaintTransport:
    """RSP through gdb's `maint packet`: the fallback when the socket cannot
    be borrowed.  A `c` blocks inside gdb until the stop reply, at most
    `remotetimeout` seconds (then gdb NAKs the silence, QEMU stops the guest
    and answers T02)."""

    name = "maint"

    def __init__(self):
        self.outstanding = None
        self._pending_stop = None

    def request(self, packet: str) -> str:
        self.outstanding = "reply"
        reply = machine.packet(packet, from_loop=True)
        self.outstanding = None
        return reply

    def resume(self, packet: str):
        self.outstanding = "stop"
        self._pending_stop = machine.packet(packet, from_loop=True)

    def wait_stop(self, timeout=None):
        reply, self._pending_stop = self._pending_stop, None
        self.outstanding = None
        return reply

    def interrupt(self):
        pass  # every `c` has already returned with the guest stopped

    def recover(self):
        # gdb consumed every reply (a Ctrl-C surfaces only after the packet
        # completed, and that reply is lost) and the guest is stopped.
        self.outstanding = None
        return self._pending_stop

    def close(self):
        pass


def transport(kind: str = "auto"):
    """"socket", "maint" or "auto" (socket if it can be found)."""
    if kind in ("auto", "socket"):
        t = SocketTransport.find()
        if t is not None:
            return t
        if kind == "socket":
            raise errors.NotSupported("cannot find gdb's remote connection socket")
    return MaintTransport()


# ---------------------------------------------------------------------------
# The hit handed to the callback

class Hit:
    """One breakpoint hit: the vCPU stopped at `pc` (= the breakpoint)."""

    __slots__ = ("cpu", "pc", "regs", "index", "time", "_t", "_cache")

    def __init__(self, t, cpu, regs, index):
        self._t = t
        self.cpu = cpu                  # vCPU number (gdb thread cpu + 1)
        self.regs = regs                # {name: int}, those of register_layout()
        self.pc = regs["rip"]
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

def _thread_cpu(tid):
    return None if tid is None else tid - 1


def _stop_cpu(stop_reply, fallback):
    """The vCPU a stop reply names (QEMU always names one); `fallback` if
    none.  (QEMU's qC cannot tell: it always answers the first thread.)"""
    parsed = parse_stop(stop_reply) if stop_reply else None
    if parsed and parsed[1] is not None:
        return parsed[1] - 1
    return fallback


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
    result = TraceResult()
    previous = gdb.selected_thread()
    # The real bytes at each breakpoint, read while gdb still owns the
    # connection: through the kernel page tables if the vCPU gdb reads with
    # is on a user CR3 (KPTI), which plain `m` could not.
    code = {a: machine.read_kernel(a, 16) for a in addrs} if emulate_insns else {}
    for a in addrs:
        result.plans[a] = arch.current().plan_resume(a, code[a]) if emulate_insns else ResumePlan("step")
    layout = register_layout()
    # gdb takes its own breakpoints out of the target at every stop, unless
    # told to keep them in.
    try:
        foreign_bps = gdb.parameter("breakpoint always-inserted") is True
    except (gdb.error, RuntimeError):
        foreign_bps = True
    t = transport(transport_kind)
    result.transport = t.name
    inserted = []
    error = None
    try:
        try:
            for a in addrs:
                reply = t.request(f"Z0,{a:x},1")
                if reply != "OK":
                    raise RspError(f"the stub refused a breakpoint at {a:#x} ({reply or 'unsupported'})")
                inserted.append(a)
            machine.loop_owns_connection = True
            try:
                _loop(t, addrs, on_hit, max_hits, duration, result, layout, foreign_bps)
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
                stop = _retry_on_interrupt(t.recover)
                _retry_on_interrupt(lambda: _note_stop(t, result, layout, stop))
            while inserted:
                a = inserted[-1]
                _retry_on_interrupt(lambda: t.request(f"z0,{a:x},1"))
                inserted.pop()
        except BaseException as exc:
            error = error or exc        # the first failure is the one to report
    finally:
        for a in inserted:     # only if the cleanup above itself failed
            try:
                t.request(f"z0,{a:x},1")
            except BaseException:
                pass
        t.close()
        select = result.stopped_cpu if select_stopped else None
        if select is None and previous is not None and previous.is_valid():
            select = previous.num - 1
        if resync_gdb:
            _retry_on_interrupt(lambda: resync(select))
        else:
            gdb.execute("maintenance flush register-cache", to_string=True)
    if error is not None:
        raise error
    return result


def drive(t, plans: dict, on_hit, max_hits=None, duration=None, layout=None) -> TraceResult:
    """The loop alone, on any transport and without gdb (scripts/bench_trace.py
    runs it on a connection of its own while gdb is detached): Z0 at each
    address of `plans` ({address: ResumePlan}), the loop, z0.  The guest is
    left stopped; nothing is resynchronised."""
    layout = layout or arch.current().gdb_register_layout()
    result = TraceResult(transport=getattr(t, "name", "?"), plans=dict(plans))
    inserted = []
    try:
        for a in plans:
            if t.request(f"Z0,{a:x},1") != "OK":
                raise RspError(f"the stub refused a breakpoint at {a:#x}")
            inserted.append(a)
        try:
            _loop(t, list(plans), on_hit, max_hits, duration, result, layout)
        except KeyboardInterrupt:
            result.reason = "interrupted"
            t.recover()
    finally:
        for a in inserted:
            t.request(f"z0,{a:x},1")
    return result


def _note_stop(t, result, layout, stop_reply):
    """Record where the guest is stopped after a stop that is not a hit.
    QEMU points its general thread at the vCPU its stop reply names; when
    that reply was not seen (the maint transport loses it to Ctrl-C), say
    which vCPU with Hg ourselves: every vCPU is stopped anyway."""
    fallback = result.last.cpu if result.last is not None else 0
    cpu = _stop_cpu(stop_reply, None)
    if cpu is None:
        cpu = fallback
        if t.request(f"Hgp1.{cpu + 1:x}") != "OK":
            raise RspError(f"the stub cannot select CPU {cpu}")
    result.stopped_cpu = cpu
    result.stop_pc = parse_g(t.request("g"), layout).get("rip")


def _retry_on_interrupt(fn, attempts=3):
    for i in range(attempts):
        try:
            return fn()
        except KeyboardInterrupt:
            if i == attempts - 1:
                raise


def _loop(t, addrs, on_hit, max_hits, duration, result, layout, foreign_bps=False):
    """`foreign_bps`: gdb may have breakpoints of its own inserted, so a
    SIGTRAP elsewhere ends the loop instead of being taken as spurious."""
    bpset = set(addrs)
    spurious_run = 0
    plans = result.plans
    regnum = {n: v[0] for n, v in layout.items()}
    start = time.monotonic()
    deadline = None if duration is None else start + duration
    resume = "vCont;c"
    try:
        while True:
            t.resume(resume)
            result.at_last_hit = False
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stop = t.wait_stop(left)
            if stop is None:                       # time is up: stop the guest
                t.interrupt()
                stop = t.wait_stop(5.0)
                result.reason = "time"
                if stop is None:
                    raise errors.TargetLost("the guest did not stop on request")
                _note_stop(t, result, layout, stop)
                return
            parsed = parse_stop(stop)
            if parsed is None:
                raise RspError(f"unexpected stop reply {stop!r}")
            sig, tid = parsed
            if tid is None:
                raise RspError(f"the stop reply does not say which vCPU stopped ({stop!r})")
            cpu = _thread_cpu(tid)
            regs = parse_g(t.request("g"), layout)
            pc = regs.get("rip")
            result.stopped_cpu, result.stop_pc = cpu, pc
            if sig != 5 or pc not in bpset:
                # Not one of ours: the guest was stopped by someone else (or,
                # under the maint transport, by gdb's NAK after remotetimeout
                # seconds of silence), hit a breakpoint gdb left inserted
                # (`set breakpoint always-inserted on`), or QEMU reported a
                # debug stop in which nothing ran: when two vCPUs hit at
                # once, the second one's stop request is left pending and
                # stops the next resume straight away (the "step that did
                # not execute" of NOTES.md; gdb's stepi sees it too).
                if sig == 2 and t.name == "maint" and (deadline is None or time.monotonic() < deadline):
                    resume = "vCont;c"
                    continue
                if sig == 5 and not foreign_bps and spurious_run < 50:
                    result.spurious += 1
                    spurious_run += 1
                    resume = "vCont;c"
                    continue
                if sig == 5:
                    result.reason = "foreign-stop"
                elif deadline is not None and time.monotonic() >= deadline:
                    result.reason = "time"
                else:
                    result.reason = "interrupted"
                return
            spurious_run = 0
            hit = Hit(t, cpu, regs, result.hits)
            result.hits += 1
            result.last = hit
            result.at_last_hit = True
            result.elapsed = hit.time - start
            if not on_hit(hit):
                result.reason = "callback"
                return
            if max_hits is not None and result.hits >= max_hits:
                result.reason = "count"
                return
            if deadline is not None and time.monotonic() >= deadline:
                result.reason = "time"
                return
            resume = _step_past(t, hit, plans[pc], regnum, result)
    finally:
        if result.hits == 0:
            result.elapsed = time.monotonic() - start


def _step_past(t, hit, plan, regnum, result) -> str:
    """Move the stopped vCPU past its breakpoint; the packet that resumes."""
    if plan.kind == "skip":
        return f"c{plan.target:x}"
    if plan.kind == "emulate":
        reg_writes, mem_writes = arch.current().emulate(plan, hit.regs)
        try:
            # Memory first: it only ever lands below the stack pointer.
            for address, data in mem_writes:
                reply = t.request(rsp_packets.write_memory(address, data))
                if reply != "OK":
                    raise RspError(f"cannot write the stack at {address:#x} ({reply})")
            for name, value in reg_writes:
                _set_reg(t, regnum, name, value)
        except BaseException:
            # Half an instruction must never stay behind: the vCPU is still
            # on the breakpoint, so put its registers back as they were.
            _retry_on_interrupt(t.recover)
            for name, _ in reg_writes:
                _retry_on_interrupt(lambda n=name: _set_reg(t, regnum, n, hit.regs[n]))
            raise
        return f"c{plan.target:x}"
    # A real single-step of this vCPU alone (the others stay stopped).
    result.steps += 1
    for _ in range(STEP_ATTEMPTS):
        stop = t.request(f"vCont;s:p1.{hit.cpu + 1:x}")
        if parse_stop(stop) is None:
            raise RspError(f"the stub refused to single-step ({stop!r})")
        pc = rsp_packets.decode_le_hex(t.request(f"p{regnum['rip']:x}"))
        if pc != hit.pc:
            return "vCont;c"
    raise RspError(f"CPU {hit.cpu} did not move off {hit.pc:#x} after {STEP_ATTEMPTS} single-steps")


def _set_reg(t, regnum, name, value):
    reply = t.request(rsp_packets.write_register(regnum[name], value, 4 if name == 'eflags' else 8))
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
        gdb.newest_frame().read_register("rip")
