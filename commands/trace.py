"""kx trace: strace-style tracing of the guest's system calls, without stopping."""
import collections
import json
import time

import gdb

from gdbext import errors, settings
from gdbext.kernel import syscall_filter
from gdbext.render import Report, Text
from gdbext import machine
from gdbext.machine import breakpoints

from .base import KxCommand, parse_int
from .breaks import KxBreakpoint

# One encoder for every event: json.dumps with separators builds a new one
# per call, a tenth of a trace's time per event.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class _Sink:
    """Where the events of one trace go: the console (text or JSON lines),
    the --out file, and the counts behind the summary."""

    def __init__(self, count, as_json, out):
        self.count, self.as_json, self.out = count, as_json, out
        self.events = 0
        self.by_name = collections.Counter()

    def emit(self, event) -> bool:
        """Write one event; True once --count events have been written."""
        self.events += 1
        self.by_name[event.name or f"nr {event.nr}"] += 1
        d = event.to_dict()
        if self.out is not None:
            self.out.write(_COMPACT.encode(d) + "\n")
        if self.as_json:
            gdb.write(_COMPACT.encode(d) + "\n")
        elif self.out is None or settings.debug():
            t = Text().line(("dim", f"[cpu{event.cpu}] "), ("num", f"{event.pid} "), f"{event.comm:<15} ",
                            ("sym", event.strace()))
            gdb.write(t.render(settings.color_enabled()))
        return self.count is not None and self.events >= self.count


class _Tracer(KxBreakpoint):
    """The gdb-breakpoint engine: each match is written out and the guest
    goes on; the last wanted event (--count) stops it."""

    def __init__(self, flt, want_return, sink):
        self.sink = sink
        super().__init__(0, flt, want_return)

    def entered(self, event) -> bool:
        if not self.pipeline.shown_at_entry(event):
            return False  # printed when it returns, with its value, as strace does
        return self.sink.emit(event)

    def returned(self, event, cpu) -> bool:
        return self.sink.emit(event)


class KxTrace(KxCommand):
    """Trace the guest's system calls without stopping, one line per call.
Usage: kx trace [SYSCALL ...] [--pid N] [--comm NAME] [--abi 64|32|all]
                [--count N] [--return] [--out FILE] [--json] [--engine E]
                [--record FILE] [--replay FILE]

Lets the guest run and prints each matching syscall as strace does
(flags, signals, sockets, ioctl requests, timespecs and sigactions by name):
  85 kxwork  openat(AT_FDCWD, "/etc/kx-target", O_RDONLY) = 3
(`= value` with --return, which follows each call to its exit and reads
there what the call wrote back, wait4's status say, and the strings whose
page was not present at the entry; exit_group shows `= ?`).  --json
prints one event object per line instead, and --out FILE writes the JSON
lines to FILE.  The trace ends after --count events or on Ctrl-C; every
breakpoint it set is removed, and a summary follows (events, per-syscall
counts, events/s).  Filters are the same as `kx break`.

--engine plugin (the default when `set kx trace-plugin SOCKET` names the
socket of the kxtrace QEMU plugin: ./scripts/lab boot --trace-plugin) never
stops the guest: the plugin, inside QEMU 10, records each call at the C
entry functions while the guest runs, and kx decodes the records.  The
summary counts records the plugin had to drop (`dropped`) because kx could
not keep up.  As with the loop, gdb's own breakpoints are not inserted
while the guest runs for the trace.  --record FILE stores the raw records (no decoding; --pid and
--comm apply at replay) and --replay FILE decodes such a file later, with
the same vmlinux loaded.

--engine loop (the default on QEMU otherwise) drives QEMU's gdbstub with kx's own
packets for the length of the trace and breaks in the C entry function
(do_syscall_64 ...), then hands the connection back to gdb with its
registers, memory cache and selected thread exact again; gdb's own
breakpoints are not active during such a trace.  --engine gdb uses gdb
breakpoints at the entry stubs instead (slower; any gdb remote)."""

    name = "trace"
    completions = ("loop", "gdb", "plugin", "auto", "all")

    def arguments(self, p):
        p.add_argument("syscalls", nargs="*", metavar="SYSCALL")
        p.add_argument("--pid", type=parse_int, default=None)
        p.add_argument("--comm", default=None)
        p.add_argument("--abi", default=None, help="the kernel's own ABI by default (64 on x86-64, 32 on i386), 32 or all")
        p.add_argument("--count", type=parse_int, default=None, help="stop after N events")
        p.add_argument("--return", dest="want_return", action="store_true",
                       help="show each call's return value (printed when it returns)")
        p.add_argument("--out", default=None, metavar="FILE", help="also write JSON lines to FILE")
        p.add_argument("--engine", default="auto", choices=("auto", "plugin", "loop", "gdb"),
                       help="plugin: the kxtrace QEMU plugin; loop: kx's own packets (QEMU); gdb: gdb "
                            "breakpoints; auto (default): plugin if set up, else loop on QEMU")
        p.add_argument("--record", default=None, metavar="FILE",
                       help="plugin engine: store the raw records in FILE instead of decoding them")
        p.add_argument("--replay", default=None, metavar="FILE", help="decode a --record FILE")

    def run(self, args):
        from . import trace_plugin
        if not args.replay:
            machine.require_stopped()
        if args.count is not None and args.count <= 0:
            raise errors.BadArgument(f"--count must be > 0, got {args.count}")
        flt = syscall_filter.build(args.syscalls, args.abi, args.pid, args.comm)
        engine = _engine(args, trace_plugin)
        out = None
        if args.out:
            try:
                out = open(args.out, "w")
            except OSError as exc:
                raise errors.BadArgument(f"cannot write {args.out}: {exc.strerror}") from None
        sink = _Sink(args.count, args.json, out)
        if args.replay:
            return trace_plugin.replay(flt, args, sink, _summary)
        if engine == "plugin":
            return trace_plugin.run_plugin(flt, args, sink, _summary)
        if engine == "loop":
            return _run_loop(flt, args, sink)
        run = _TraceRun(flt, args, sink)
        try:
            # --json must print nothing but JSON lines: gdb's own stop
            # report ("Thread 1 hit Breakpoint ...") is captured and dropped.
            # Not under MI with mi-async: the stop is an MI record there, and
            # gdb 18 would swallow the command's ^running record into the
            # capture, leaving the frontend waiting for it.
            capture = bool(args.json) and not _mi_async()
            captured = gdb.execute("continue", to_string=capture)
            if capture:
                gdb.write("".join(line + "\n" for line in (captured or "").splitlines()
                                  if line.startswith("{")))
        except KeyboardInterrupt:
            run.interrupted = True
        except BaseException:
            run.finish()
            raise
        if _target_running():
            # Async gdb (MI with mi-async on): `continue` returned at once.
            # The trace ends at the next stop: the last wanted event, or an
            # interrupt; the stop handler cleans up and prints the summary.
            run.finish_at_next_stop()
            return None
        return run.finish()


def _engine(args, trace_plugin) -> str:
    engine = args.engine
    if args.record and args.replay:
        raise errors.BadArgument("--record and --replay exclude each other")
    if args.replay:
        return "replay"
    if engine == "auto":
        if trace_plugin.available():
            engine = "plugin"
        else:
            engine = "loop" if machine.is_qemu() else "gdb"
    elif engine == "loop":
        machine.require_qemu("kx trace --engine loop")
    if args.record and engine != "plugin":
        raise errors.BadArgument("--record needs the plugin engine (set kx trace-plugin SOCKET)")
    return engine


def _run_loop(flt, args, sink):
    """The trace on kx's own breakpoint loop (machine/rsp_loop.py): synchronous
    under every gdb interpreter, Ctrl-C ends it at once."""
    from gdbext.kernel import syscall_trace
    from gdbext.machine import rsp_loop as rsp
    try:
        points = syscall_trace.trace_points(flt, args.want_return)
        tracer = syscall_trace.LoopTracer(flt, args.want_return, points, lambda e: not sink.emit(e))
        tracer.prepare()
        start = time.monotonic()
        result = rsp.run(tracer.addresses, tracer.on_hit)
        elapsed = time.monotonic() - start
    finally:
        if sink.out is not None:
            sink.out.close()
    extra = {"engine": "loop", "reason": result.reason, "hits": tracer.hits, "filtered_out": tracer.skipped,
             "undecodable": tracer.undecodable, "single_steps": result.steps,
             "unreturned": tracer.unreturned if args.want_return else 0}
    interrupted = result.reason != "callback"
    return _summary(flt, args, sink, elapsed, interrupted, extra)


def _summary(flt, args, sink, elapsed, interrupted, extra):
    elapsed = max(elapsed, 1e-9)
    summary = {"events": sink.events, "seconds": round(elapsed, 3),
               "events_per_second": round(sink.events / elapsed, 1),
               "by_syscall": dict(sink.by_name.most_common()), "filter": flt.describe(),
               "interrupted": interrupted, **extra}
    if args.json:
        gdb.write(json.dumps({"summary": summary}, separators=(",", ":")) + "\n")
        return None
    t = Text().line(("head", f"kx trace: {summary['events']} events in {summary['seconds']:.2f} s "
                             f"({summary['events_per_second']:.0f}/s)"), f"  [{flt.describe()}]")
    if interrupted:
        t.line(("dim", f"  ended: {summary.get('reason', 'interrupted')}"))
    if summary.get("dropped"):
        t.line(("dim", f"  dropped: {summary['dropped']} records (the plugin's rings were full)"))
    if summary.get("abandoned"):
        t.line(("dim", f"  undecoded: {summary['abandoned']} records (read before the Ctrl-C; "
                       "the summary came first)"))
    if "recorded" in summary:
        t.line(("dim", f"  recorded: {summary['recorded']} records to {summary['record_file']}"))
    for name, n in sink.by_name.most_common():
        t.line(f"  {n:>7}  ", ("sym", name))
    return Report({"summary": summary}, t)


def _mi_async() -> bool:
    try:
        return bool(gdb.parameter("mi-async"))
    except (gdb.error, RuntimeError):
        return False


def _target_running() -> bool:
    try:
        thread = gdb.selected_thread()
        return thread is not None and thread.is_running()
    except gdb.error:
        return False


class _TraceRun:
    """One gdb-engine trace from start to summary; finish() runs exactly
    once, whether the trace ends inside `continue` (sync gdb) or at a later
    stop event (async gdb), on --count, Ctrl-C, an error or the guest exiting."""

    def __init__(self, flt, args, sink):
        self.flt, self.args, self.sink = flt, args, sink
        self.start = time.monotonic()
        self.interrupted = False
        self.done = False
        self.tracer = None
        try:
            self.tracer = _Tracer(flt, args.want_return, sink)
        except BaseException:
            self.finish()
            raise
        # The events are written while the guest runs: the line gdb 18 may
        # have left open announcing the breakpoints ends before the first.
        breakpoints.end_announcement_line()

    def finish_at_next_stop(self):
        def on_stop(_event):
            self._disconnect(on_stop)
            report = self.finish()
            if report is not None:
                gdb.write(report.text(settings.color_enabled()))
        self._handler = on_stop
        gdb.events.stop.connect(on_stop)
        gdb.events.exited.connect(on_stop)

    @staticmethod
    def _disconnect(handler):
        for registry in (gdb.events.stop, gdb.events.exited):
            try:
                registry.disconnect(handler)
            except (ValueError, RuntimeError):
                pass

    def finish(self):
        if self.done:
            return None
        self.done = True
        if self.tracer is not None:
            self.tracer.delete()
        if self.sink.out is not None:
            self.sink.out.close()
        if self.tracer is None:
            return None
        args, sink = self.args, self.sink
        interrupted = self.interrupted or args.count is None or sink.events < args.count
        return _summary(self.flt, args, sink, time.monotonic() - self.start, interrupted, {"engine": "gdb"})


def register():
    KxTrace()
