"""Read several members of a kernel struct in as few target reads as possible.

A StructReader knows, per objfile, the offset and size of each member it was
asked for (from the DWARF, through kernel/types).  `read(address)` coalesces
members that lie close together into one range, reads each range once with
the kernel model's backend (kernel/backend.py), and unpacks every member from those bytes: for
`kx ps` that is two small reads per task_struct instead of one gdb.Value per
field.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from gdbext import errors
from gdbext.kernel import backend, types

# Two members closer than this are read together; the gap costs less than a
# second round trip to the gdbstub.
_MERGE_GAP = 512


@dataclass(frozen=True)
class Member:
    key: str            # name in the result
    paths: Tuple[str, ...]  # alternative member paths, oldest kernel last
    kind: str = "u"     # "u" unsigned, "s" signed, "bytes", "cstr"
    required: bool = True


@dataclass
class _Resolved:
    key: str
    offset: int
    size: int
    kind: str
    path: str


def merge_ranges(spans: Sequence[Tuple[int, int]], gap: int = _MERGE_GAP) -> List[Tuple[int, int]]:
    """[(start, end)] → fewer [(start, end)], merging spans less than `gap` apart."""
    out: List[List[int]] = []
    for start, end in sorted(spans):
        if out and start - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def unpack(raw: bytes, kind: str):
    if kind == "bytes":
        return bytes(raw)
    if kind == "cstr":
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return int.from_bytes(raw, "little", signed=(kind == "s"))


class StructReader:
    """Members of `struct_name`, resolved lazily against the loaded vmlinux."""

    def __init__(self, struct_name: str, members: Sequence[Member]):
        self.struct_name = struct_name
        self.members = tuple(members)
        # Plain strings: a hot loop hashes this key once per read.
        self._layout_key = ("structreader", struct_name, repr(self.members))

    def layout(self) -> Tuple[Dict[str, _Resolved], List[Tuple[int, int]]]:
        return self._compiled()[:2]

    def _compiled(self):
        """(members resolved, ranges to read, the unpacking plan), once per objfile."""
        cache = types.cache()
        if self._layout_key not in cache:
            if not types.has(self.struct_name):  # a symbol-only vmlinux: name the missing struct itself
                raise types.missing(self.struct_name)
            resolved = {}
            for m in self.members:
                hit = None
                for path in m.paths:
                    if types.has_member(self.struct_name, path):
                        hit = _Resolved(m.key, types.offsetof(self.struct_name, path),
                                        types.member_size(self.struct_name, path), m.kind, path)
                        break
                if hit is None:
                    if m.required:
                        raise errors.MissingType(self.struct_name, " or ".join(m.paths))
                    continue
                resolved[m.key] = hit
            ranges = merge_ranges([(r.offset, r.offset + r.size) for r in resolved.values()])
            cache[self._layout_key] = (resolved, ranges, _plan(resolved, ranges))
        return cache[self._layout_key]

    def has(self, key: str) -> bool:
        return key in self.layout()[0]

    def offset(self, key: str) -> int:
        return self.layout()[0][key].offset

    def read(self, address: int, cpu: Optional[int] = None, reader=None) -> Dict[str, object]:
        """{key: value} for every member this kernel has; absent optional
        members are None.  `reader(address, size) -> bytes` replaces the
        backend's read_kernel (the trace loop reads through its own
        packets)."""
        _, ranges, plan = self._compiled()
        if reader is None:
            def reader(a, n):
                return backend.read_kernel(a, n, cpu)
        chunks = [reader(address + start, end - start) for start, end in ranges]
        out = dict.fromkeys(m.key for m in self.members)
        for key, index, lo, hi, kind in plan:
            data = chunks[index]
            if hi <= len(data):
                out[key] = unpack(data[lo:hi], kind)
        return out


def _plan(resolved: Dict[str, _Resolved], ranges: List[Tuple[int, int]]) -> List[Tuple[str, int, int, int, str]]:
    """(key, range index, start, end within that range's bytes, kind) per
    member: read() then unpacks without searching (a trace reads the
    current task's members tens of thousands of times a second)."""
    plan = []
    for r in resolved.values():
        for index, (start, end) in enumerate(ranges):
            if start <= r.offset and r.offset + r.size <= end:
                plan.append((r.key, index, r.offset - start, r.offset - start + r.size, r.kind))
                break
    return plan
