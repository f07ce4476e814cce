"""The client of the kxtrace TCG plugin (scripts/plugin/): its control
socket, its per-vCPU rings of fixed-size records, and record files.

No gdb here: the plugin runs inside QEMU and reads the guest itself, so
this module only talks to a unix socket and reads shared memory.

- Control: one text line per command, one answer line ("ok ..." / "err
  ..."); `hello` also passes the rings' memfd (SCM_RIGHTS).
- Rings: after a 64-byte file header, one ring of bytes per vCPU: a
  64-byte ring header (head, tail, dropped, filtered, records: u64 each)
  and the data.  The vCPU thread writes a record (wrapping at the end),
  then advances head by its length; the reader copies the bytes from tail
  to head, then advances tail.  A full ring makes the plugin drop and
  count, never wait.
- Records: laid out as struct kx_record in scripts/plugin/kxtrace.h
  (change both together); only the first `used` bytes, rounded up to 8,
  are stored.
- A record file (--record) is a header line of JSON (the trace's
  configuration) and then the raw records, as the rings held them.
"""
import json
import mmap
import os
import queue
import socket
import struct
import threading
import time
from typing import Dict, Iterator, List

from gdbext import errors

PROTOCOL = 2
RECORD_MAX = 1024
RECORD_MAGIC = 0x3152584B       # "KXR1"
FILE_MAGIC = b"KXTRACE1"
ENTRY, RETURN = 1, 2
# Capture status (kxtrace.h).
CAP_OK, CAP_TRUNCATED, CAP_UNREADABLE, CAP_PARTIAL, CAP_NO_ROOM = range(5)
F_TASK, F_PTREGS, F_CALLER = 1, 2, 4

_HEAD = struct.Struct("<IHBBQQQQQQIHBB")   # the first 64 bytes
_USED = struct.Struct("<H")                  # kx_record.used, at 60
_REGS_AT, _TASK_AT, _PTREGS_AT, _CAPS_AT, DATA_AT = 64, 128, 192, 384, 432
_CAP = struct.Struct("<BBHHH")
RING_HEADER = 64
FILE_HEADER = 64


class PluginError(errors.KxError):
    """The plugin refused something, or cannot be reached."""


class Record:
    """One record, decoded enough to filter and to build a View."""

    __slots__ = ("vcpu", "kind", "point", "seq", "time_ns", "task", "ptregs", "nr", "caller",
                 "flags", "regs", "task_bytes", "ptregs_bytes", "captures")

    def __init__(self, raw: bytes):
        (magic, self.vcpu, self.kind, self.point, self.seq, self.time_ns, self.task, self.ptregs,
         self.nr, self.caller, self.flags, used, ncap, nregs) = _HEAD.unpack_from(raw, 0)
        if magic != RECORD_MAGIC:
            raise PluginError(f"not a kxtrace record (magic {magic:#x})")
        self.regs = struct.unpack_from(f"<{nregs}Q", raw, _REGS_AT)
        self.task_bytes = raw[_TASK_AT:_PTREGS_AT]
        self.ptregs_bytes = raw[_PTREGS_AT:_CAPS_AT]
        self.captures = []
        for i in range(ncap):
            arg, status, length, off, _ = _CAP.unpack_from(raw, _CAPS_AT + i * _CAP.size)
            self.captures.append((arg, status, bytes(raw[DATA_AT + off:DATA_AT + off + length])))


def record_length(used: int) -> int:
    return (used + 7) & ~7


def split_records(chunk: bytes) -> Iterator[memoryview]:
    """The records of `chunk`, whole ones only (see whole_length)."""
    view = memoryview(chunk)
    at, end = 0, len(chunk)
    while at + 64 <= end:
        n = record_length(_USED.unpack_from(chunk, at + 60)[0])
        if n < DATA_AT or at + n > end:
            if n < DATA_AT:
                raise PluginError(f"a record of {n} bytes: the ring or the file is corrupt")
            return
        yield view[at:at + n]
        at += n


def whole_length(chunk: bytes) -> int:
    """How many bytes at the start of `chunk` are whole records."""
    at, end = 0, len(chunk)
    while at + 64 <= end:
        n = record_length(_USED.unpack_from(chunk, at + 60)[0])
        if n < DATA_AT or at + n > end:
            break
        at += n
    return at


def parse_records(chunk: bytes) -> Iterator[Record]:
    for raw in split_records(chunk):
        yield Record(raw)


class Rings:
    """The shared rings: drain() copies what the vCPUs wrote since the last
    call and frees that space."""

    def __init__(self, fd: int, vcpus: int, ring: int, size: int):
        self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fd)
        magic, n, kib, record, header = struct.unpack_from("<5I", self.map, 0)
        if (magic, n, kib * 1024, record, header) != (RECORD_MAGIC, vcpus, ring, RECORD_MAX, RING_HEADER):
            raise PluginError("the plugin's rings do not have the layout kx expects "
                              f"({n} vCPUs, {kib} KiB rings, {record}-byte records)")
        self.vcpus, self.size = vcpus, ring
        self.per_ring = RING_HEADER + ring
        # The ring headers through a 'Q' view: one 8-byte load or store per
        # word.  struct's "<Q" moves bytes one at a time: the vCPU threads
        # would see a torn tail (a ring that looks full), or we a torn head.
        self.words = memoryview(self.map).cast("Q")

    def _base(self, vcpu: int) -> int:
        return FILE_HEADER + self.per_ring * vcpu

    def counters(self) -> Dict[str, int]:
        out = {"records": 0, "dropped": 0, "filtered": 0}
        for v in range(self.vcpus):
            w = self._base(v) // 8
            out["dropped"] += self.words[w + 2]
            out["filtered"] += self.words[w + 3]
            out["records"] += self.words[w + 4]
        return out

    def skip_all(self) -> None:
        """Forget whatever is in the rings (left from an earlier trace)."""
        for v in range(self.vcpus):
            w = self._base(v) // 8
            self.words[w + 1] = self.words[w]

    def drain(self) -> List[bytes]:
        """One chunk of whole records per vCPU that wrote any."""
        chunks = []
        for v in range(self.vcpus):
            base = self._base(v)
            w = base // 8
            head, tail = self.words[w], self.words[w + 1]
            if head == tail:
                continue
            at, n = tail % self.size, head - tail
            start = base + RING_HEADER
            if at + n <= self.size:
                chunks.append(self.map[start + at:start + at + n])
            else:
                first = self.size - at
                chunks.append(self.map[start + at:start + self.size] + self.map[start:start + n - first])
            self.words[w + 1] = head
        return chunks

    def close(self) -> None:
        try:
            self.words.release()
            self.map.close()
        except (BufferError, ValueError):
            pass


class PluginClient:
    """One connection to the plugin's control socket."""

    def __init__(self, path: str, timeout: float = 5.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise PluginError(f"cannot reach the kxtrace plugin at {path}: {exc.strerror or exc}") from None
        self.buf = b""
        self.rings = None
        self.info = self._hello()

    def _hello(self) -> Dict[str, int]:
        try:
            self.sock.sendall(b"hello\n")
            msg, fds, _flags, _addr = socket.recv_fds(self.sock, 1024, 1)
        except socket.timeout:
            self.sock.close()
            raise PluginError(f"the kxtrace plugin at {self.path} does not answer "
                              "(it serves one kx at a time: is another connected?)") from None
        words = msg.decode(errors="replace").split()
        if len(words) < 3 or words[:2] != ["ok", "kxtrace"] or not fds:
            raise PluginError(f"{self.path} is not the kxtrace plugin ({msg[:60]!r})")
        if int(words[2]) != PROTOCOL:
            raise PluginError(f"the plugin speaks protocol {words[2]}, kx speaks {PROTOCOL}: rebuild it")
        info = {k: int(v) for k, v in (w.split("=", 1) for w in words[3:])}
        if info["record"] != RECORD_MAX or info["header"] != RING_HEADER:
            raise PluginError("the plugin lays out its records otherwise than kx: rebuild it")
        self.rings = Rings(fds[0], info["vcpus"], info["ring"], info["bytes"])
        return info

    def command(self, line: str) -> str:
        """Send one line; the answer after "ok", or PluginError."""
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise PluginError("the plugin closed its control socket")
            self.buf += data
        answer, self.buf = self.buf.split(b"\n", 1)
        text = answer.decode(errors="replace")
        if not text.startswith("ok"):
            raise PluginError(f"the plugin refused {line.split()[0]!r}: {text[4:] or text}")
        return text[2:].strip()

    def configure(self, lines: List[str]) -> None:
        """Send a configuration (each line answered before the next)."""
        self.command("clear")
        for line in lines:
            self.command(line)

    def stats(self) -> Dict[str, int]:
        return {k: int(v) for k, v in (w.split("=", 1) for w in self.command("stats").split())}

    def wait_armed(self, timeout: float = 5.0) -> bool:
        """Whether the new trace points took effect (the plugin re-instruments
        at the next vCPU idle/resume) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats().get("armed"):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        if self.rings is not None:
            self.rings.close()
        try:
            self.sock.close()
        except OSError:
            pass


class RecordWriter:
    """--record FILE: the configuration as a JSON line, then raw records.

    A thread of its own writes them: a write() the kernel holds back while
    it flushes dirty pages must not keep the reader from draining the
    rings (the plugin would drop records meanwhile)."""

    def __init__(self, path: str, meta: dict):
        self.f = open(path, "wb")
        self.f.write(FILE_MAGIC + b" " + json.dumps(meta, separators=(",", ":")).encode() + b"\n")
        self.error = None
        self.queue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write_all, name="kx-record", daemon=True)
        self.thread.start()

    def _write_all(self):
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            try:
                self.f.write(chunk)
            except OSError as exc:
                self.error = exc

    def write(self, chunk: bytes) -> None:
        if self.error is not None:
            raise PluginError(f"cannot write the record file: {self.error.strerror}")
        self.queue.put(chunk)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self.f.close()


def read_record_file(path: str, batch: int = 1 << 22):
    """(meta, iterator of chunks of whole records) of a --record file."""
    f = open(path, "rb")
    first = f.readline()
    if not first.startswith(FILE_MAGIC + b" "):
        f.close()
        raise PluginError(f"{path} is not a kx trace record file")
    meta = json.loads(first[len(FILE_MAGIC) + 1:])

    def chunks():
        rest = b""
        with f:
            while True:
                data = f.read(batch)
                if not data:
                    return
                data = rest + data
                n = whole_length(data)
                rest = data[n:]
                yield data[:n]
    return meta, chunks()
