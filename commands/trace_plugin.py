"""kx trace's plugin engine: the kxtrace QEMU plugin records each syscall
while the guest runs free (no breakpoint, no debug stop), and kx decodes the
records into the same events as the loop engine (kernel/plugin_trace.py).
Also --record FILE (raw records, no decoding) and --replay FILE."""
import os
import time

from gdbext import errors, settings
from gdbext.kernel import plugin_trace
from gdbext.machine import free_run
from gdbext.machine import plugin_client as pc

# Seconds the records read but not yet decoded get after a Ctrl-C.
FINAL_BUDGET = 1.0


def socket_path() -> str:
    return settings.get("trace-plugin") or ""


def available() -> bool:
    """Whether `set kx trace-plugin` names a socket that exists."""
    path = socket_path()
    return bool(path) and os.path.exists(path)


def connect() -> pc.PluginClient:
    path = socket_path()
    if not path:
        raise errors.NotSupported("kx trace --engine plugin: no plugin socket; `set kx trace-plugin SOCKET` "
                                  "(./scripts/lab boot --trace-plugin starts QEMU 10 with the plugin)")
    return pc.PluginClient(path)


class _Live:
    """One live trace: configure, start, drain while the guest runs, stop."""

    def __init__(self, client, flt, args, sink):
        self.client, self.args, self.sink = client, args, sink
        self.layout = plugin_trace.prepare(flt, args.want_return)
        self.tracer = plugin_trace.PluginTracer(flt, plugin_trace.Layout(self.layout),
                                                lambda e: not sink.emit(e))
        self.writer = pc.RecordWriter(args.record, self.layout) if args.record else None
        self.armed_at = None
        # How well the reader kept up: the longest gap between two drains
        # and the most bytes one drain found.
        self.last_poll, self.max_gap, self.max_batch = None, 0.0, 0
        self.first_record = 0

    def poll(self) -> bool:
        now = time.monotonic()
        if self.last_poll is not None:
            self.max_gap = max(self.max_gap, now - self.last_poll)
        self.last_poll = now
        if self.armed_at is None and self.client.stats().get("armed"):
            self.armed_at = now
        chunks = self.client.rings.drain()
        self.max_batch = max(self.max_batch, sum(len(c) for c in chunks))
        if not chunks:
            return True
        if self.writer is not None:
            for c in chunks:
                self.writer.write(c)
            return self.args.count is None or self.recorded() < self.args.count
        return self.tracer.feed(chunks)

    def _finish(self, result) -> dict:
        """Decode what was read but not decoded when the trace ended, and
        the plugin's counters.  After a Ctrl-C gdb raises its Quit again at
        some of its next calls (free_run retries likewise): each step
        resumes (feed() keeps the rest of a batch)."""
        budget = FINAL_BUDGET if result.reason == "interrupted" else None
        decode = not self.tracer.done and self.writer is None and result.reason != "error"
        chunks = self.client.rings.drain() if decode else []
        for attempt in range(3):
            try:
                if decode:
                    self.tracer.feed(chunks, final=True, budget=budget)
                    decode, chunks = False, []
                return self.client.stats()
            except KeyboardInterrupt:
                if attempt == 2:
                    raise
        return {}

    def recorded(self) -> int:
        return self.client.rings.counters()["records"] - self.first_record

    def run(self):
        client = self.client
        client.configure(plugin_trace.plugin_commands(self.layout))
        client.rings.skip_all()
        before = client.stats()
        self.first_record = client.rings.counters()["records"]
        client.command("start")
        try:
            result = free_run.run(self.poll)
        finally:
            _stop_quietly(client)
            if self.writer is not None:
                for c in client.rings.drain():     # what the vCPUs wrote before the guest stopped
                    self.writer.write(c)
                self.writer.close()
        after = self._finish(result)
        self.recorded_total = self.recorded()
        return result, {k: after[k] - before[k] for k in ("records", "dropped", "filtered")}


def _stop_quietly(client) -> None:
    """Disarm the plugin; if it is gone (QEMU died), the error that ended
    the trace is the one to report, not this one."""
    try:
        client.command("stop")
    except (pc.PluginError, OSError):
        pass


def run_plugin(flt, args, sink, summary):
    client = connect()
    try:
        live = _Live(client, flt, args, sink)
        result, counts = live.run()
    finally:
        client.close()
        if sink.out is not None:
            sink.out.close()
    t = live.tracer
    extra = {"engine": "plugin", "reason": result.reason, "records": counts["records"],
             "dropped": counts["dropped"], "filtered_out": counts["filtered"] + t.skipped,
             "undecodable": t.undecodable, "abandoned": t.abandoned, "unreturned": t.unreturned if args.want_return else 0,
             "max_drain_gap_ms": round(live.max_gap * 1e3, 1), "max_drain_bytes": live.max_batch,
             # from the resume until the plugin's new trace points took effect
             "armed_after_ms": round((live.armed_at - result.start) * 1e3, 1) if live.armed_at else None}
    if live.writer is not None:
        extra.update(recorded=live.recorded_total, record_file=args.record)
    interrupted = result.reason not in ("done",)
    return summary(flt, args, sink, result.seconds, interrupted, extra)


def replay(flt, args, sink, summary):
    """Decode a --record file with the vmlinux gdb has loaded."""
    try:
        meta, chunks = pc.read_record_file(args.replay)
    except OSError as exc:
        raise errors.BadArgument(f"cannot read {args.replay}: {exc.strerror}") from None
    if args.want_return and not meta.get("want_return"):
        raise errors.BadArgument(f"{args.replay} was recorded without --return")
    start = time.monotonic()
    tracer = plugin_trace.PluginTracer(flt, plugin_trace.Layout(meta), lambda e: not sink.emit(e),
                                       want_return=args.want_return)
    try:
        for chunk in chunks:
            if not tracer.feed([chunk]):
                break
        else:
            tracer.feed([], final=True)
    finally:
        if sink.out is not None:
            sink.out.close()
    extra = {"engine": "replay", "reason": "count" if tracer.done else "end", "records": tracer.records,
             "filtered_out": tracer.skipped, "undecodable": tracer.undecodable,
             "unreturned": tracer.unreturned if args.want_return else 0, "recorded_filter": meta.get("filter")}
    return summary(flt, args, sink, time.monotonic() - start, False, extra)
