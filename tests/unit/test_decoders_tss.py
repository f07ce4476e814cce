"""gdbext.decoders.tss: 64- and 32-bit TSS."""
import struct

import pytest

from gdbext.errors import DecodeError
from gdbext.decoders import tss


def test_tss64_layout():
    # struct x86_hw_tss: reserved1 u32, sp0..sp2, reserved2, ist[7], ..., io_bitmap_base @102.
    rsp = (0xFFFFFE0000002000, 0, 0x00007FFC12345678)  # sp2 = user RSP scratch on SYSCALL
    ist = tuple(0xFFFFFE000000A000 + i * 0x1000 for i in range(7))
    raw = tss.encode_tss64(rsp, ist, io_bitmap_base=0x4088)
    assert len(raw) == 104
    assert struct.unpack_from("<Q", raw, 4)[0] == rsp[0]
    assert struct.unpack_from("<Q", raw, 36)[0] == ist[0]
    t = tss.decode_tss64(raw + b"\xff" * 64)  # trailing io bitmap ignored
    assert t.rsp == list(rsp) and t.ist == list(ist) and t.io_bitmap_base == 0x4088
    assert t.to_dict() == {"rsp": list(rsp), "ist": list(ist), "io_bitmap_base": 0x4088}
    with pytest.raises(DecodeError):
        tss.decode_tss64(raw[:103])


def test_ist_names():
    names = tss.ist_names_for_version(6, 12)
    assert names == {1: "DF", 2: "NMI", 3: "DB", 4: "MCE", 5: "VC"}
    assert tss.ist_names_for_version(6, 1) == names
    assert tss.IST_NAMES[1] == "DF"


def test_tss32_layout():
    vals = {
        "prev_task_link": 0x28, "esp0": 0xC0001000, "ss0": 0x18, "esp1": 0x11, "ss1": 0x12,
        "esp2": 0x13, "ss2": 0x14, "cr3": 0x1C00000, "eip": 0xC0100000, "eflags": 0x202,
        "eax": 1, "ecx": 2, "edx": 3, "ebx": 4, "esp": 5, "ebp": 6, "esi": 7, "edi": 8,
        "es": 0x7B, "cs": 0x73, "ss": 0x7B, "ds": 0x7B, "fs": 0xD8, "gs": 0xE0, "ldt": 0,
    }
    raw = bytearray(104)
    struct.pack_into("<H", raw, 0, vals["prev_task_link"])
    for off, name in ((4, "esp0"), (12, "esp1"), (20, "esp2"), (28, "cr3"), (32, "eip"),
                      (36, "eflags"), (40, "eax"), (44, "ecx"), (48, "edx"), (52, "ebx"),
                      (56, "esp"), (60, "ebp"), (64, "esi"), (68, "edi")):
        struct.pack_into("<I", raw, off, vals[name])
    for off, name in ((8, "ss0"), (16, "ss1"), (24, "ss2"), (72, "es"), (76, "cs"),
                      (80, "ss"), (84, "ds"), (88, "fs"), (92, "gs"), (96, "ldt")):
        struct.pack_into("<H", raw, off, vals[name])
    struct.pack_into("<HH", raw, 100, 1, 0x68)
    t = tss.decode_tss32(bytes(raw)).to_dict()
    assert t == dict(vals, t=True, io_map_base=0x68)
    with pytest.raises(DecodeError):
        tss.decode_tss32(bytes(raw[:50]))
