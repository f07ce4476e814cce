"""The RSP packet codec against bytes QEMU 7.2's gdbstub sent (captured on
the lab guest: 2 vCPUs, Haswell, a breakpoint at do_syscall_64), the
examples of the GDB manual's "Overview" of the remote protocol, and
round-trip properties."""
from hypothesis import given, strategies as st

from gdbext.decoders import rsp_packets as rp

# What QEMU wrote on the socket, read by read() call, acks included.
QEMU_WIRE = [
    (b"$T02thread:01;#04", "T02thread:01;"),                 # on connect
    (b"+$OK#9a", "OK"),                                       # Z0
    (b"$T05thread:p01.01;#06", "T05thread:p01.01;"),          # breakpoint hit, vCPU 0
    (b"+$T05thread:p01.02;#07", "T05thread:p01.02;"),         # breakpoint hit, vCPU 1
    (b"+$f03ea081ffffffff#58", "f03ea081ffffffff"),           # p10 (rip)
    (b"+$554889e5534889fb669065488b042580#67", "554889e5534889fb669065488b042580"),  # m
    (b"+$E14#aa", "E14"),                                     # m of an unmapped address
    (b"$T02thread:p01.01;#03", "T02thread:p01.01;"),          # after \x03
]


def test_qemu_frames_decode():
    for wire, text in QEMU_WIRE:
        before, body, used = rp.take_packet(wire)
        assert used == len(wire)
        assert before == wire[:wire.index(b"$")]
        assert rp.payload(body) == text
        assert rp.checksum(body) == wire[-2:]


def test_qemu_frames_encode():
    # What QEMU sends is what kx would frame for the same payload.
    for wire, text in QEMU_WIRE:
        assert wire.endswith(rp.frame(text))


def test_incomplete_packet_waits():
    wire = b"+$T05thread:p01.01;#06"
    for cut in range(1, len(wire)):
        before, body, used = rp.take_packet(wire[:cut])
        assert body is None
        assert wire[used:].startswith(b"$") or used == cut
    assert rp.take_packet(b"") == (b"", None, 0)
    assert rp.take_packet(b"++-") == (b"++-", None, 3)


def test_two_packets_in_one_read():
    data = b"+$OK#9a+$E14#aa"
    before, body, used = rp.take_packet(data)
    assert (before, body) == (b"+", b"OK")
    before, body, used2 = rp.take_packet(data[used:])
    assert (before, body, used + used2) == (b"+", b"E14", len(data))


def test_manual_examples():
    # Overview: "0* " means the same as "0000"; '}' escapes with XOR 0x20.
    assert rp.unescape(b"0* ") == b"0000"
    assert rp.unescape(b"}]") == b"}"
    assert rp.escape(b"$#}*") == b"}\x04}\x03}]}\x0a"
    assert rp.frame("qC") == b"$qC#b4"


def test_stop_replies():
    assert rp.parse_stop("T05thread:p01.01;") == (5, 1)
    assert rp.parse_stop("T05thread:p01.02;") == (5, 2)
    assert rp.parse_stop("T02thread:01;") == (2, 1)
    assert rp.parse_stop("T05swbreak:;thread:p01.0a;") == (5, 10)
    assert rp.parse_stop("T05thread:p01.-1;") == (5, None)
    assert rp.parse_stop("S05") == (5, None)
    for not_a_stop in ("OK", "", "E14", "QCp01.01", "W00"):
        assert rp.parse_stop(not_a_stop) is None


def test_errors():
    assert rp.is_error("E14")
    assert not rp.is_error("")
    assert not rp.is_error("e8f0")          # memory whose hex starts with e
    assert not rp.is_error("E1400000")


def test_register_and_memory_writes():
    assert rp.write_register(0x11, 0x46, 4) == "P11=46000000"
    assert rp.write_register(0x7, 0xFFFFC90000403F50, 8) == "P7=503f400000c9ffff"
    assert rp.write_memory(0xFFFFC90000403F50, b"\x01\x02") == "Mffffc90000403f50,2:0102"
    assert rp.decode_le_hex("f03ea081ffffffff") == 0xFFFFFFFF81A03EF0


def test_parse_g_unavailable():
    layout = {"a": (0, 0, 8), "b": (1, 8, 4), "c": (2, 12, 8)}
    regs = rp.parse_g("0100000000000000" + "xxxxxxxx", layout)
    assert regs == {"a": 1, "b": None, "c": None}


def test_maint_packet_output():
    out = 'sending: "qC"\nreceived: "QCp01.01"\n'
    assert rp.maint_packet_reply(out) == "QCp01.01"
    assert rp.maint_packet_reply('sending: "qBogus"\nreceived: ""\n') == ""
    assert rp.maint_packet_reply("Remote connection closed\n") is None


# ---------------------------------------------------------------------------
# Properties

@given(st.binary())
def test_escape_round_trip(data):
    assert rp.unescape(rp.escape(data)) == data


@given(st.binary())
def test_escaped_body_has_no_framing_byte(data):
    escaped = rp.escape(data)
    i = 0
    while i < len(escaped):
        if escaped[i] == ord("}"):
            i += 2
            continue
        assert escaped[i] not in b"$#*"
        i += 1


@given(st.text(alphabet=st.characters(max_codepoint=255)),
       st.binary(max_size=4).filter(lambda b: b"$" not in b))
def test_frame_round_trip(text, noise):
    wire = noise + rp.frame(text) + b"+"
    before, body, used = rp.take_packet(wire)
    assert before == noise and rp.payload(body) == text
    assert wire[used:] == b"+"


@given(st.integers(min_value=0), st.sampled_from([1, 2, 4, 8, 10, 16]))
def test_le_hex_round_trip(value, size):
    text = rp.encode_le_hex(value, size)
    assert len(text) == 2 * size
    assert rp.decode_le_hex(text) == value & ((1 << (8 * size)) - 1)


@given(st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=3))
def test_parse_g_round_trip(values, gap):
    # Registers of 8 bytes with `gap` bytes of other state between them.
    layout = {f"r{i}": (i, i * (8 + gap), 8) for i in range(len(values))}
    reply = "".join(rp.encode_le_hex(v, 8) + "00" * gap for v in values)
    assert rp.parse_g(reply, layout) == {f"r{i}": v for i, v in enumerate(values)}
