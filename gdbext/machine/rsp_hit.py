"""One hit of the fast breakpoint loop (rsp_loop.py): the stopped vCPU's
registers and memory, read over the loop's own connection (virtual `m`,
physical under QEMU's PhyMemMode, single registers with `p`)."""
import time
from typing import Dict, Optional

try:
    import gdb
except ImportError:   # outside gdb (scripts/bench_trace.py)
    gdb = None

from gdbext import errors
from gdbext.decoders import rsp_packets
from gdbext.decoders.bits import MASK64
from gdbext.decoders.paging import PAGE_SIZE_4K as PAGE

# QEMU 7.2: PacketSize=1000 (hex), so an `m` reply holds at most 2047 bytes.
MAX_READ = 0x7F0


class RspError(errors.KxError):
    """The stub answered something the loop cannot use."""


def retry_on_interrupt(fn, attempts=3):
    for i in range(attempts):
        try:
            return fn()
        except KeyboardInterrupt:
            if i == attempts - 1:
                raise


def extra_register_numbers(names) -> Dict[str, int]:
    """{name: remote register number} of `names` from gdb's own table
    (`maint print remote-registers`), for `p` packets; {} where unknown."""
    if not names:
        return {}
    out = {}
    try:
        for line in gdb.execute("maint print remote-registers", to_string=True).splitlines():
            f = line.split()
            if len(f) >= 7 and f[0] in names and f[6].isdigit():
                out[f[0]] = int(f[6])
    except gdb.error:
        return {}
    return out


class Hit:
    """One breakpoint hit: the vCPU stopped at `pc` (= the breakpoint)."""

    __slots__ = ("cpu", "pc", "regs", "index", "time", "_t", "_cache")
    # {name: remote register number} of the registers outside the `g` reply
    # that register() may read (Arch.loop_extra_registers), set by run().
    extra_registers: Dict[str, int] = {}

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
        if hit is None:
            hit = self._cache[key] = self._fetch(address, size)
        return hit

    def read_phys(self, address: int, size: int) -> bytes:
        """Physical memory (QEMU's PhyMemMode, switched back at once)."""
        key = ("phys", address, size)
        hit = self._cache.get(key)
        if hit is None:
            if self._t.request("Qqemu.PhyMemMode:1") != "OK":
                raise errors.MemoryUnreadable(address, size, "this stub cannot read physical memory")
            try:
                hit = self._cache[key] = self._fetch(address, size)
            finally:
                retry_on_interrupt(lambda: self._t.request("Qqemu.PhyMemMode:0"))
        return hit

    def register(self, name: str) -> Optional[int]:
        """A register outside the `g` reply (extra_registers), by a `p`
        packet; None where the stub has no such register."""
        number = self.extra_registers.get(name)
        if number is None:
            return None
        key = ("reg", name)
        if key not in self._cache:
            reply = self._t.request(f"p{number:x}")
            ok = reply and not rsp_packets.is_error(reply) and "x" not in reply
            self._cache[key] = rsp_packets.decode_le_hex(reply) if ok else None
        return self._cache[key]

    def _fetch(self, address: int, size: int) -> bytes:
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
        return bytes(out[:size])

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
