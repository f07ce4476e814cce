"""The two ways kx's trace loop (rsp_loop.py) sends its own packets over
gdb's remote connection.

The preferred transport borrows the socket (a dup of gdb's file descriptor,
found by the peer address of `gdb.selected_inferior().connection.details`):
gdb is blocked inside kx's Python code for the whole loop, so nothing else
reads or writes it, and the loop hands it back with every reply read and
acknowledged.  Waiting on the socket ourselves means Ctrl-C (a
KeyboardInterrupt in gdb's Python) is seen at once, and the loop stops the
guest with `\x03` as gdb would.

If the socket cannot be found (a pipe or serial line), `maint packet` is the
fallback: each `c` then blocks inside gdb for at most `remotetimeout`
seconds (gdb NAKs the silence, QEMU stops the guest and answers T02; the
loop resumes), and Ctrl-C takes effect when that packet returns.

Both offer request (a packet and its reply), resume / wait_stop (a packet
answered by a stop reply), interrupt, recover and close.
"""
import os
import select
import socket
import time

try:
    import gdb
except ImportError:      # outside gdb: SocketTransport on a connection of its
    gdb = None           # own still works (scripts/bench_trace.py's raw client)

from gdbext import errors, machine
from gdbext.decoders import rsp_packets
from gdbext.decoders.rsp_packets import parse_stop


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
