"""The GDB Remote Serial Protocol's packets as bytes and text, without a
connection: framing, checksums, escaping, and the replies kx's trace loop
reads (stop replies, `g`, `p`, `m`).

References are to the GDB manual, appendix "GDB Remote Serial Protocol":
"Overview" (framing, escapes, run-length encoding), "Packets" (g, p, m,
P, M), "Stop Reply Packets".
"""
import re
from typing import Dict, Optional, Tuple

# name -> (remote register number, offset in the `g` reply, size in bytes)
RegisterLayout = Dict[str, Tuple[int, int, int]]

ACK = b"+"
NAK = b"-"
INTERRUPT = b"\x03"            # "Interrupts": a bare byte, no framing
_ESCAPE, _RUN = 0x7D, 0x2A        # } *
_MUST_ESCAPE = frozenset(b"$#}*")


def checksum(body: bytes) -> bytes:
    """The two lowercase hex digits after '#': the sum of the body's bytes
    modulo 256 (Overview)."""
    return b"%02x" % (sum(body) & 0xFF)


def escape(data: bytes) -> bytes:
    """'$', '#', '}' and '*' become '}' and the byte XOR 0x20 (Overview,
    binary data)."""
    out = bytearray()
    for c in data:
        if c in _MUST_ESCAPE:
            out += bytes((_ESCAPE, c ^ 0x20))
        else:
            out.append(c)
    return bytes(out)


def unescape(body: bytes) -> bytes:
    """A received body with escapes and run-length encoding undone: 'X*n'
    is X followed by ord(n) - 29 more copies of X (Overview)."""
    if _ESCAPE not in body and _RUN not in body:
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == _ESCAPE and i + 1 < len(body):
            out.append(body[i + 1] ^ 0x20)
            i += 2
        elif c == _RUN and out and i + 1 < len(body):
            out += bytes((out[-1],)) * (body[i + 1] - 29)
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def frame(payload: str) -> bytes:
    """`$payload#cs`, escaped, ready for the wire."""
    body = escape(payload.encode("latin-1"))
    return b"$" + body + b"#" + checksum(body)


def take_packet(buffer: bytes) -> Tuple[bytes, Optional[bytes], int]:
    """Split what was received into (the bytes before the next '$', which
    are acks, naks or noise; the packet's raw body, or None while the packet
    is incomplete; how many bytes of `buffer` these take)."""
    start = buffer.find(b"$")
    if start < 0:
        return bytes(buffer), None, len(buffer)
    end = buffer.find(b"#", start + 1)
    if end < 0 or len(buffer) < end + 3:
        return bytes(buffer[:start]), None, start
    return bytes(buffer[:start]), bytes(buffer[start + 1:end]), end + 3


def payload(body: bytes) -> str:
    """The text of a packet body that take_packet returned."""
    return unescape(body).decode("latin-1")


# ---------------------------------------------------------------------------
# Replies

_STOP = re.compile(r"^[TS]([0-9a-fA-F]{2})")
_THREAD = re.compile(r"thread:(?:p([0-9a-fA-F]+)\.)?([0-9a-fA-F]+|-1);")
# gdb's `maint packet` prints `sending: "..."` then `received: "..."`.
_MAINT_RECEIVED = re.compile(r'received: "(.*)"\s*$', re.S)


def parse_stop(reply: str) -> Optional[Tuple[int, Optional[int]]]:
    """(signal, thread id or None) of a `T`/`S` stop reply, or None if the
    reply is not one (Stop Reply Packets)."""
    m = _STOP.match(reply)
    if not m:
        return None
    t = _THREAD.search(reply)
    tid = int(t.group(2), 16) if t and t.group(2) != "-1" else None
    return int(m.group(1), 16), tid


def is_error(reply: str) -> bool:
    """An `E NN` reply."""
    return len(reply) == 3 and reply[0] == "E"


def encode_le_hex(value: int, size: int) -> str:
    """A register value as `P` and `g` carry it: `size` bytes, target
    (little-endian) order, in hex; wider values are truncated."""
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()


def decode_le_hex(text: str) -> int:
    """The value of one register in a `p` reply (or a slice of `g`)."""
    return int.from_bytes(bytes.fromhex(text), "little")


def parse_g(reply: str, layout: RegisterLayout) -> Dict[str, Optional[int]]:
    """The `g` reply as {name: int} for the registers of `layout`; those the
    stub marks unavailable ('xx') or leaves out are None."""
    out = {}
    for name, (_num, off, size) in layout.items():
        h = reply[2 * off:2 * (off + size)]
        if len(h) != 2 * size or "x" in h:
            out[name] = None
        else:
            out[name] = decode_le_hex(h)
    return out


def write_register(regnum: int, value: int, size: int) -> str:
    """`P n=r...`: write one register."""
    return f"P{regnum:x}={encode_le_hex(value, size)}"


def write_memory(address: int, data: bytes) -> str:
    """`M addr,length:XX...`: write memory."""
    return f"M{address:x},{len(data):x}:{data.hex()}"


def maint_packet_reply(output: str) -> Optional[str]:
    """The reply in the output of gdb's `maint packet`, or None if gdb
    printed none."""
    m = _MAINT_RECEIVED.search(output)
    return m.group(1) if m else None
