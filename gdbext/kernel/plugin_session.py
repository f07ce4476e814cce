"""One live session of the kxtrace plugin: configure it for a trace,
let the guest run free while the rings are drained into the decoder
(kernel/plugin_trace.py), stop.  Used by `kx trace --engine plugin` and by
the scripts' hooks (gdbext.api.run(engine="plugin")).

The plugin's socket is `set kx trace-plugin SOCKET`."""
import os
import time
from typing import Callable, Optional

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


class LiveTrace:
    """One live trace: configure, start, drain while the guest runs, stop.
    Each wanted event goes to `emit(event) -> bool` (False ends the trace)
    and to the scripts' hooks; with `record` the raw records go to that
    file instead, up to `count` of them."""

    def __init__(self, client, flt, want_return: bool, emit: Callable, record: Optional[str] = None,
                 count: Optional[int] = None):
        self.client, self.count = client, count
        self.layout = plugin_trace.prepare(flt, want_return)
        self.tracer = plugin_trace.PluginTracer(flt, plugin_trace.Layout(self.layout), emit,
                                                deliver_to_hooks=True)
        self.writer = pc.RecordWriter(record, self.layout) if record else None
        self.armed_at = None
        # How well the reader kept up: the longest gap between two drains
        # and the most bytes one drain found.
        self.last_poll, self.max_gap, self.max_batch = None, 0.0, 0
        self.first_record = 0
        self.recorded_total = 0

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
            return self.count is None or self.recorded() < self.count
        return self.tracer.feed(chunks)

    def recorded(self) -> int:
        return self.client.rings.counters()["records"] - self.first_record

    def run(self, duration: Optional[float] = None):
        """(free_run.FreeRun, {records, dropped, filtered} during the run)."""
        client = self.client
        client.configure(plugin_trace.plugin_commands(self.layout))
        client.rings.skip_all()
        before = client.stats()
        self.first_record = client.rings.counters()["records"]
        client.command("start")
        try:
            result = free_run.run(self.poll, duration=duration)
        finally:
            _stop_quietly(client)
            if self.writer is not None:
                for c in client.rings.drain():     # what the vCPUs wrote before the guest stopped
                    self.writer.write(c)
                self.writer.close()
        after = self._finish(result)
        self.recorded_total = self.recorded()
        return result, {k: after[k] - before[k] for k in ("records", "dropped", "filtered")}

    def _finish(self, result) -> dict:
        """Decode what was read but not decoded when the trace ended, and
        the plugin's counters.  After a Ctrl-C the rest gets FINAL_BUDGET
        seconds, and gdb raises its Quit again at some of its next calls
        (free_run retries likewise): each step resumes (feed() keeps the
        rest of a batch)."""
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

    def armed_after_ms(self, result) -> Optional[float]:
        """From the resume until the plugin's new trace points took effect."""
        return round((self.armed_at - result.start) * 1e3, 1) if self.armed_at else None


def _stop_quietly(client) -> None:
    """Disarm the plugin; if it is gone (QEMU died), the error that ended
    the trace is the one to report, not this one."""
    try:
        client.command("stop")
    except (pc.PluginError, OSError):
        pass
