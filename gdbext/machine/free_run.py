"""Let the guest run with no breakpoint at all while kx does something else
(the kxtrace plugin engine reads its rings), then stop it and hand gdb an
exact view again.

Like the breakpoint loop (rsp_loop.py) this borrows gdb's connection
socket (rsp_transport.SocketTransport): kx sends `vCont;c` itself, so gdb
stays blocked inside kx's Python code and never learns that the guest ran.
While it runs, `poll()` is called every `interval` seconds (the wait is a
select() on the socket, so a stop reply or Ctrl-C is seen at once).  At the
end the guest is stopped with `\\x03` (a pause, not a debug stop: QEMU does
not flush its translation cache for it) and rsp_loop.resync() makes gdb's
registers, memory cache and selected thread exact.
"""
import dataclasses
import time
from typing import Callable, Optional

try:
    import gdb
except ImportError:
    gdb = None

from gdbext import errors, machine
from gdbext.decoders.rsp_packets import parse_stop
from gdbext.machine import rsp_loop, rsp_transport

SIGTRAP = 5


@dataclasses.dataclass
class FreeRun:
    reason: str = ""            # done | interrupted | time | guest-stopped | error
    seconds: float = 0.0        # from the resume to the end of the last poll
    start: float = 0.0          # time.monotonic() of the resume
    stopped_cpu: Optional[int] = None
    stop_signal: Optional[int] = None


def run(poll: Callable[[], bool], interval: float = 0.005, duration: Optional[float] = None,
        started: Callable[[], None] = None) -> FreeRun:
    """Resume every vCPU, call `poll()` until it returns False (or Ctrl-C,
    `duration` seconds, or the guest stops by itself), stop the guest and
    resynchronise gdb.  `started()` runs right after the resume.  An
    exception from `poll` is re-raised after the cleanup."""
    machine.require_stopped()
    t = rsp_transport.SocketTransport.find()
    if t is None:
        raise errors.NotSupported("kx cannot find gdb's remote connection socket (a pipe or serial "
                                  "line?): the plugin engine needs it to let the guest run")
    previous = gdb.selected_thread()
    result, error = FreeRun(), None
    start = result.start = time.monotonic()
    try:
        machine.loop_owns_connection = True
        t.resume("vCont;c")
        if started is not None:
            started()
        result.reason = _wait(t, poll, interval, None if duration is None else start + duration, result)
    except KeyboardInterrupt:
        result.reason = "interrupted"
    except BaseException as exc:     # poll's or ours: clean up, then re-raise
        result.reason, error = "error", exc
    finally:
        result.seconds = time.monotonic() - start
        machine.loop_owns_connection = False
        try:
            _stop_guest(t, result)
        finally:
            t.close()
            _give_back(result, previous)
    if error is not None:
        raise error
    return result


def _wait(t, poll, interval, deadline, result) -> str:
    while True:
        stop = t.wait_stop(interval)
        if stop is not None:
            parsed = parse_stop(stop)
            if parsed:
                result.stop_signal = parsed[0]
                result.stopped_cpu = parsed[1] - 1 if parsed[1] else None
            return "guest-stopped"
        if not poll():
            return "done"
        if deadline is not None and time.monotonic() >= deadline:
            return "time"


def _stop_guest(t, result) -> None:
    """Stop the guest wherever it is and learn which vCPU reported it."""
    for attempt in range(3):
        try:
            stop = t.recover()
            break
        except KeyboardInterrupt:
            if attempt == 2:
                raise
    parsed = parse_stop(stop) if stop else None
    if parsed and parsed[1] is not None:
        result.stopped_cpu = parsed[1] - 1
        result.stop_signal = parsed[0]


def _give_back(result, previous) -> None:
    cpu = result.stopped_cpu
    if cpu is None and previous is not None and previous.is_valid():
        cpu = previous.num - 1
    for attempt in range(3):
        try:
            rsp_loop.resync(cpu)
            return
        except KeyboardInterrupt:
            if attempt == 2:
                raise
