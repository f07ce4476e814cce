"""Scripts' hooks on system calls (gdbext.api.on_syscall): one registry
that every tracing engine delivers decoded events to.

A hook is a filter (kernel/syscall_filter.py: names, pid, comm, ABI),
whether it wants each call at its return (with the return value) rather
than at its entry, and a callback that returns True to stop the guest.
How the engines reach it:

- gdb breakpoints (`continue`): a hook registered inside gdb owns its own
  breakpoints at the entry stubs (HookBreakpoints, the engine of `kx
  break`); they call the hook alone.
- the breakpoint loop (`kx trace --engine loop`, gdbext.api.run): the loop
  owns the connection and gdb's breakpoints are out of the guest, so its
  tracer (kernel/syscall_trace.py) calls `deliver()` with every event it
  decodes, entering and returning.
- the plugin engine: its record decoder calls `deliver()` the same way.

A callback that raises is reported in one line and counted in `errors`;
the guest goes on, it never stays stopped in a kx breakpoint because of it.
"""
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

from gdbext.kernel import syscall_hits
from gdbext.kernel.syscall_filter import SyscallFilter

_hooks: List["SyscallHook"] = []


def say(message: str) -> None:
    """One line to gdb's console (stderr outside gdb)."""
    try:
        import gdb
        gdb.write(message + "\n")
    except ImportError:
        print(message, file=sys.stderr)


class SyscallHook:
    """A registered callback (gdbext.api.on_syscall returns one); `remove()`
    unregisters it and deletes its breakpoints.

    >>> hook = gdbext.api.on_syscall("openat", comm="kxwork")(lambda ev: False)
    >>> hook.calls, hook.errors
    (0, 0)
    >>> hook.remove()
    """

    def __init__(self, flt: SyscallFilter, callback: Callable, returns: bool = False):
        self.filter = flt
        self.callback = callback
        self.returns = returns
        self.calls = 0        # events handed to the callback
        self.errors = 0       # of which the callback raised
        self.active = True
        self.breakpoints = None   # HookBreakpoints inside gdb

    @property
    def name(self) -> str:
        return getattr(self.callback, "__name__", None) or repr(self.callback)

    def wants(self, event, returned: bool) -> bool:
        """Whether this hook takes `event` at this point of the call."""
        if not self.active or returned != self.returns or event.abi not in self.filter.abis:
            return False
        nr = syscall_hits.number_for_filter(event.abi, event.nr)
        return self.filter.wants_nr(event.abi, nr) and self.filter.wants_task(event.pid, event.tgid, event.comm)

    def fire(self, event) -> bool:
        """Call the callback; True when it asks to stop.  An exception is
        reported in one line and means: go on."""
        self.calls += 1
        try:
            return bool(self.callback(event))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a script's bug must not stop the guest
            self.errors += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            say(f"kx: on_syscall hook {self.name} raised {type(exc).__name__}: {exc} "
                f"({where.filename}:{where.lineno}); the guest goes on")
            return False

    def remove(self) -> None:
        """Unregister; delete this hook's gdb breakpoints (idempotent)."""
        self.active = False
        if self in _hooks:
            _hooks.remove(self)
        if self.breakpoints is not None:
            self.breakpoints.delete()
            self.breakpoints = None

    def __enter__(self) -> "SyscallHook":
        return self

    def __exit__(self, *_exc) -> None:
        self.remove()

    def __call__(self, event):
        """The hook calls its callback like the function it decorates."""
        return self.callback(event)

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<SyscallHook {self.name} [{self.filter.describe()}] {state}, {self.calls} calls>"


def register(hook: SyscallHook, with_breakpoints: bool) -> SyscallHook:
    """Add `hook`; with `with_breakpoints` (inside gdb) also its own gdb
    breakpoints, so a plain `continue` calls it."""
    if with_breakpoints:
        from gdbext.kernel.syscall_breakpoints import SyscallBreakpoints

        class HookBreakpoints(SyscallBreakpoints):
            label = f"kx: on_syscall hook {hook.name}"

            def entered(self, event) -> bool:
                return False if hook.returns else hook.fire(event)

            def returned(self, event, cpu) -> bool:
                return hook.fire(event)

            def on_error(self, exc) -> bool:
                # A call kx could not decode: said once, never a stop.
                hook.errors += 1
                say(f"{self.label}: {exc}; the guest goes on")
                return False
        hook.breakpoints = HookBreakpoints(hook.filter, hook.returns)
    _hooks.append(hook)
    return hook


def active() -> List[SyscallHook]:
    """The registered hooks, oldest first."""
    return [h for h in _hooks if h.active]


def remove_all() -> int:
    """Remove every hook; how many there were."""
    hooks = list(_hooks)
    for h in hooks:
        h.remove()
    return len(hooks)


def deliver(event, returned: bool = False) -> bool:
    """Hand one decoded event to every hook that wants it (an engine calls
    this at each entry, and with `returned` at each return carrying the
    return value); True when a callback asked to stop."""
    stop = False
    for hook in list(_hooks):
        if hook.wants(event, returned):
            stop = hook.fire(event) or stop
    return stop


def union_filter(hooks: List[SyscallHook]) -> Optional[SyscallFilter]:
    """One filter that lets through everything any of `hooks` wants (each
    hook checks its own again in deliver()); None without hooks."""
    if not hooks:
        return None
    abis: List[str] = []
    nrs = {}
    for h in hooks:
        for abi in h.filter.abis:
            if abi not in abis:
                abis.append(abi)
                nrs[abi] = set()
            wanted = h.filter.nrs.get(abi)
            nrs[abi] = None if wanted is None or nrs[abi] is None else nrs[abi] | wanted
    pids = {h.filter.pid for h in hooks}
    comms = {h.filter.comm for h in hooks}
    words = sorted({w for h in hooks for w in h.filter.words})
    return SyscallFilter(abis=abis, nrs=nrs, pid=pids.pop() if len(pids) == 1 else None,
                         comm=comms.pop() if len(comms) == 1 else None,
                         words=words if all(h.filter.words for h in hooks) else [])


# ---------------------------------------------------------------------------
# Running the guest for the hooks (gdbext.api.run)

@dataclass
class RunResult:
    """How a run for the hooks went (gdbext.api.run).  `reason`: "callback"
    (a hook asked to stop), "time", "interrupted", "foreign-stop" (another
    breakpoint), "stopped" (gdb's continue came back) or "running" (an
    asynchronous gdb let the guest run on)."""
    engine: str
    reason: str
    seconds: float
    events: int = 0          # calls decoded and handed to the hooks
    filtered_out: int = 0
    undecodable: int = 0
    hook_errors: int = 0

    @property
    def stopped_by_hook(self) -> bool:
        return self.reason == "callback"

    def to_dict(self) -> dict:
        return asdict(self)


def run(seconds: Optional[float] = None, engine: str = "auto") -> RunResult:
    """Let the guest run with the hooks armed until one asks to stop,
    `seconds` pass (loop engine) or Ctrl-C; the guest is stopped after."""
    from gdbext import errors, machine
    hooks = active()
    if not hooks:
        raise errors.BadArgument("no syscall hooks: register one with gdbext.api.on_syscall() first")
    if seconds is not None and seconds <= 0:
        raise errors.BadArgument(f"seconds must be > 0, got {seconds}")
    from gdbext.kernel import plugin_session
    if engine == "auto":
        if plugin_session.available():
            engine = "plugin"
        else:
            engine = "loop" if machine.is_qemu() else "gdb"
    errors_before = sum(h.errors for h in hooks)
    if engine == "loop":
        result = _run_loop(hooks, seconds)
    elif engine == "plugin":
        result = _run_plugin(hooks, seconds)
    elif engine == "gdb":
        result = _run_gdb(hooks, seconds)
    else:
        raise errors.BadArgument(f"engine must be auto, plugin, loop or gdb, not {engine!r}")
    result.hook_errors = sum(h.errors for h in hooks) - errors_before
    return result


def _run_loop(hooks: List[SyscallHook], seconds: Optional[float]) -> RunResult:
    """The breakpoint loop (machine/rsp_loop.py) on the union of the hooks'
    filters; its tracer delivers every event to the hooks."""
    from gdbext import machine
    from gdbext.kernel import syscall_trace
    from gdbext.machine import rsp_loop
    machine.require_qemu("gdbext.api.run(engine='loop')")
    flt = union_filter(hooks)
    want_return = any(h.returns for h in hooks)
    tracer = syscall_trace.LoopTracer(flt, want_return, syscall_trace.trace_points(flt, want_return),
                                      lambda _event: True)
    tracer.prepare()
    start = time.monotonic()
    result = rsp_loop.run(tracer.addresses, tracer.on_hit, duration=seconds)
    return RunResult("loop", result.reason, round(time.monotonic() - start, 3), tracer.pipeline.hits,
                     tracer.skipped, tracer.undecodable)


def _run_plugin(hooks: List[SyscallHook], seconds: Optional[float]) -> RunResult:
    """The kxtrace plugin (`set kx trace-plugin SOCKET`): the guest never
    stops for a call; the records are decoded and delivered to the hooks
    as they arrive.  A hook that asks to stop stops the guest shortly after
    its call (the guest ran on while the record was read), not inside it."""
    from gdbext.kernel import plugin_session
    flt = union_filter(hooks)
    want_return = any(h.returns for h in hooks)
    client = plugin_session.connect()
    try:
        live = plugin_session.LiveTrace(client, flt, want_return, lambda _event: True)
        result, _counts = live.run(duration=seconds)
    finally:
        client.close()
    t = live.tracer
    reason = "callback" if t.done or result.reason == "done" else result.reason
    return RunResult("plugin", reason, round(result.seconds, 3), t.pipeline.hits, t.skipped, t.undecodable)


def _run_gdb(hooks: List[SyscallHook], seconds: Optional[float]) -> RunResult:
    """gdb's own `continue`: the hooks' breakpoints decide whether it stops."""
    import gdb
    from gdbext import errors
    if seconds is not None:
        raise errors.NotSupported("seconds= needs the loop engine (QEMU); with gdb breakpoints, "
                                  "interrupt the guest yourself")
    if not all(h.breakpoints is not None and h.breakpoints.alive() for h in hooks):
        raise errors.KxError("a hook has no gdb breakpoints (deleted with `delete`?): register it again")
    calls = sum(h.calls for h in hooks)
    start = time.monotonic()
    reason = "stopped"
    try:
        gdb.execute("continue")
    except KeyboardInterrupt:
        reason = "interrupted"
    thread = gdb.selected_thread()
    if thread is not None and thread.is_running():
        reason = "running"
    elif any(_stopped_at(h) for h in hooks):
        reason = "callback"
    return RunResult("gdb", reason, round(time.monotonic() - start, 3), sum(h.calls for h in hooks) - calls)


def _stopped_at(hook: SyscallHook) -> bool:
    """Whether gdb's last stop was at one of `hook`'s breakpoints."""
    from gdbext import arch, machine
    from gdbext.machine import breakpoints
    try:
        pc = machine.registers()[arch.current().pc]
    except Exception:  # noqa: BLE001 - no registers: not our stop
        return False
    return any(b.is_valid() and breakpoints.address_of(b) == pc for b in hook.breakpoints.gdb_breakpoints)
