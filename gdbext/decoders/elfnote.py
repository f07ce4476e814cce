"""ELF notes (the System V gABI note format): the vDSO's PT_NOTE segment and
the vmlinux's .notes section as it lies in guest memory.  Both are 4-byte
aligned on x86, in ELF32 and ELF64 alike, as the kernel emits them."""
import struct
from typing import Iterator, Tuple

from gdbext.errors import DecodeError

NT_GNU_BUILD_ID = 3              # elf.h
_MAX_NAME, _MAX_DESC = 256, 1 << 16   # sanity: anything larger is not a note


def iter_notes(data: bytes) -> Iterator[Tuple[int, str, int, bytes]]:
    """(offset of the note header, name, type, desc) of each note in `data`.
    Raises DecodeError at the first truncated or implausible note."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if namesz > _MAX_NAME or descsz > _MAX_DESC or desc_end > len(data):
            raise DecodeError(f"ELF note at offset {pos:#x} is truncated or malformed")
        name = data[name_start:name_start + namesz].rstrip(b"\0").decode("ascii", "replace")
        yield pos, name, ntype, data[desc_start:desc_end]
        pos = desc_start + ((descsz + 3) & ~3)


def find_build_id(notes: bytes):
    """(offset of its note header, build-id bytes) of the GNU build-id note,
    or None; a malformed note ends the search."""
    try:
        for offset, name, ntype, desc in iter_notes(notes):
            if ntype == NT_GNU_BUILD_ID and name == "GNU":
                return offset, desc
    except DecodeError:
        return None
    return None
