"""Relative relocations of a position-independent vmlinux.

arm64 links the kernel with -pie: pointers in data (sys_call_table, the
vDSO descriptors, ...) are zero in the file and filled in at boot from
.rela.dyn's R_AARCH64_RELATIVE entries, each "store addend at offset"
(relative to the link address, since the file is linked at it), by
__relocate_kernel (arch/arm64/kernel/pi/relocate.c, head.S in 6.1).
ELF64 Rela: r_offset, r_info (type in the low 32 bits), r_addend (signed).
"""
import bisect
import struct

from gdbext.decoders.bits import MASK64

R_AARCH64_RELATIVE = 1027      # ELF for the Arm 64-bit Architecture, 5.7.12
_RELA = struct.Struct("<QQq")


class RelativeRelocations:
    """Sorted (offset, value) pairs; empty for a file that needs none."""

    def __init__(self, pairs):
        pairs = sorted(pairs)
        self.offsets = [o for o, _ in pairs]
        self.values = [v for _, v in pairs]

    @classmethod
    def parse_rela(cls, raw: bytes, rtype: int) -> "RelativeRelocations":
        usable = len(raw) - len(raw) % _RELA.size
        return cls([(off, addend & MASK64) for off, info, addend in _RELA.iter_unpack(raw[:usable])
                    if info & 0xFFFFFFFF == rtype])

    def __len__(self):
        return len(self.offsets)


def apply(relocs: RelativeRelocations, address: int, data: bytes) -> bytes:
    """`data` read at link address `address`, with every 8-byte relocation
    that falls wholly or partly inside it filled in."""
    if not relocs.offsets:
        return data
    end = address + len(data)
    lo = bisect.bisect_left(relocs.offsets, address - 7)
    hi = bisect.bisect_left(relocs.offsets, end)
    if lo >= hi:
        return data
    out = bytearray(data)
    for i in range(lo, hi):
        word = relocs.values[i].to_bytes(8, "little")
        start = relocs.offsets[i] - address
        for k in range(8):
            if 0 <= start + k < len(out):
                out[start + k] = word[k]
    return bytes(out)
