# SPDX-License-Identifier: GPL-2.0-or-later
"""BTF, the kernel's own type information, decoded from its bytes.

Pure: the blob between __start_BTF and __stop_BTF in, types out.  The
format is include/uapi/linux/btf.h and Documentation/bpf/btf.rst:

- struct btf_header: u16 magic 0xeB9F, u8 version 1, u8 flags, u32 hdr_len,
  then type_off/type_len and str_off/str_len relative to the header's end;
- each type is struct btf_type (name_off, info: vlen bits 0-15, kind bits
  24-28, kind_flag bit 31; size or type) and a kind-specific tail;
- type ids count from 1 in blob order; 0 is void.

Layout questions (sizeof, offsetof through anonymous members) are answered
here so the kernel model can use BTF with no gdb types at all.
"""
import dataclasses
import struct
from typing import Dict, List, Optional, Tuple

from gdbext import errors

MAGIC = 0xEB9F
HEADER = struct.Struct("<HBBIIIII")

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
KIND_NAMES = {INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
              ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile", CONST: "const",
              RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto", VAR: "var",
              DATASEC: "datasec", FLOAT: "float", DECL_TAG: "decl_tag", TYPE_TAG: "type_tag",
              ENUM64: "enum64"}
# Kinds whose `size_or_type` is another type id (the rest carry a size).
_REFERS = {PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DECL_TAG, TYPE_TAG}
_MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


@dataclasses.dataclass
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0   # 0: not a bitfield


@dataclasses.dataclass
class Param:
    name: str
    type: int


@dataclasses.dataclass
class Type:
    id: int
    kind: int
    name: str
    size: int = 0        # INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC
    type: int = 0        # the referred type (PTR, TYPEDEF, modifiers, FUNC, VAR, ...)
    kind_flag: bool = False
    vlen: int = 0
    members: List[Member] = dataclasses.field(default_factory=list)
    params: List[Param] = dataclasses.field(default_factory=list)     # FUNC_PROTO
    values: List[Tuple[str, int]] = dataclasses.field(default_factory=list)  # ENUM, ENUM64
    int_encoding: int = 0
    int_bits: int = 0
    int_offset: int = 0
    array: Tuple[int, int, int] = (0, 0, 0)   # (element type, index type, count)
    linkage: int = 0     # FUNC (vlen), VAR
    secinfo: List[Tuple[int, int, int]] = dataclasses.field(default_factory=list)  # DATASEC
    component: int = -1  # DECL_TAG

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


@dataclasses.dataclass
class Header:
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int


def header(blob: bytes) -> Header:
    if len(blob) < HEADER.size:
        raise errors.DecodeError(f"BTF is {len(blob)} bytes, shorter than its header")
    magic, version, flags, hdr_len, t_off, t_len, s_off, s_len = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise errors.DecodeError(f"no BTF here: magic {magic:#06x}, expected {MAGIC:#06x}")
    if version != 1:
        raise errors.DecodeError(f"BTF version {version}, kx reads version 1")
    h = Header(version, flags, hdr_len, t_off, t_len, s_off, s_len)
    end = hdr_len + max(t_off + t_len, s_off + s_len)
    if end > len(blob):
        raise errors.DecodeError(f"BTF header says {end} bytes, the blob has {len(blob)}")
    return h


def _string(strings: bytes, off: int) -> str:
    end = strings.find(b"\0", off)
    if off >= len(strings) or end < 0:
        raise errors.DecodeError(f"BTF string offset {off} outside the string section")
    return strings[off:end].decode("utf-8", "replace")


def _tail(t: Type, data: bytes, pos: int, name) -> int:
    """Decode the kind-specific tail of `t` at `pos`; return the next position."""
    k, n = t.kind, t.vlen
    if k == INT:
        (v,) = struct.unpack_from("<I", data, pos)
        t.int_encoding, t.int_offset, t.int_bits = (v >> 24) & 0xF, (v >> 16) & 0xFF, v & 0xFF
        return pos + 4
    if k == ARRAY:
        t.array = struct.unpack_from("<III", data, pos)
        return pos + 12
    if k in (STRUCT, UNION):
        for name_off, mtype, off in struct.iter_unpack("<III", data[pos:pos + 12 * n]):
            bits, size = (off & 0xFFFFFF, off >> 24) if t.kind_flag else (off, 0)
            t.members.append(Member(name(name_off), mtype, bits, size))
        return pos + 12 * n
    if k == ENUM:
        fmt = "<Ii" if t.kind_flag else "<II"
        t.values = [(name(o), v) for o, v in struct.iter_unpack(fmt, data[pos:pos + 8 * n])]
        return pos + 8 * n
    if k == ENUM64:
        for o, lo, hi in struct.iter_unpack("<III", data[pos:pos + 12 * n]):
            v = (hi << 32) | lo
            if t.kind_flag and v >> 63:
                v -= 1 << 64
            t.values.append((name(o), v))
        return pos + 12 * n
    if k == FUNC_PROTO:
        t.params = [Param(name(o), ty) for o, ty in struct.iter_unpack("<II", data[pos:pos + 8 * n])]
        return pos + 8 * n
    if k == VAR:
        (t.linkage,) = struct.unpack_from("<I", data, pos)
        return pos + 4
    if k == DATASEC:
        t.secinfo = list(struct.iter_unpack("<III", data[pos:pos + 12 * n]))
        return pos + 12 * n
    if k == DECL_TAG:
        (t.component,) = struct.unpack_from("<i", data, pos)
        return pos + 4
    if k in KIND_NAMES:
        return pos
    raise errors.DecodeError(f"unknown BTF kind {k} (type {t.id})")


def parse(blob: bytes) -> "Btf":
    """Every type of a BTF blob (the kernel's .BTF section)."""
    h = header(blob)
    base = h.hdr_len
    data = blob[base + h.type_off:base + h.type_off + h.type_len]
    strings = blob[base + h.str_off:base + h.str_off + h.str_len]
    names: Dict[int, str] = {}

    def name(off):
        if off not in names:
            names[off] = _string(strings, off)
        return names[off]

    types: List[Optional[Type]] = [None]
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise errors.DecodeError(f"BTF type {len(types)} is cut off at byte {pos}")
        name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
        kind = (info >> 24) & 0x1F
        t = Type(id=len(types), kind=kind, name=name(name_off), kind_flag=bool(info >> 31),
                 vlen=info & 0xFFFF)
        if kind in _REFERS:
            t.type = size_or_type
        else:
            t.size = size_or_type
        if kind == FUNC:
            t.linkage = t.vlen
        try:
            pos = _tail(t, data, pos + 12, name)
        except struct.error:
            raise errors.DecodeError(f"BTF type {t.id} is cut off") from None
        types.append(t)
    return Btf(h, types)


class Btf:
    """Types by id and by name, and the layout questions on them."""

    def __init__(self, hdr: Header, types: List[Optional[Type]]):
        self.header = hdr
        self.types = types
        self._by_name: Dict[Tuple[int, str], int] = {}
        for t in types[1:]:
            if t.name:
                self._by_name.setdefault((t.kind, t.name), t.id)

    def __len__(self) -> int:
        return len(self.types) - 1

    def find(self, kind: int, name: str) -> Optional[Type]:
        """The first type of `kind` named `name` (BTF dedup keeps one per layout)."""
        tid = self._by_name.get((kind, name))
        return None if tid is None else self.types[tid]

    def named(self, spec: str) -> Optional[Type]:
        """'struct task_struct', 'union x', 'enum y' or a typedef/base name."""
        for prefix, kinds in (("struct ", (STRUCT,)), ("union ", (UNION,)), ("enum ", (ENUM, ENUM64))):
            if spec.startswith(prefix):
                name = spec[len(prefix):].strip()
                return next((t for t in (self.find(k, name) for k in kinds) if t), None)
        for kind in (TYPEDEF, INT, FLOAT, STRUCT, UNION):
            t = self.find(kind, spec)
            if t is not None:
                return t
        return None

    def resolve(self, tid: int) -> Optional[Type]:
        """Through typedefs and qualifiers; None for void."""
        seen = 0
        while tid and self.types[tid].kind in _MODIFIERS:
            tid = self.types[tid].type
            seen += 1
            if seen > 64:
                raise errors.DecodeError(f"BTF type {tid}: a loop of typedefs")
        return self.types[tid] if tid else None

    def sizeof(self, tid: int) -> int:
        t = self.resolve(tid)
        if t is None:
            raise errors.DecodeError("sizeof(void)")
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            return t.array[2] * self.sizeof(t.array[0])
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size
        raise errors.DecodeError(f"BTF {t.kind_name} {t.name!r} has no size")

    def field(self, tid: int, member: str) -> Optional[Tuple[int, Member]]:
        """(bit offset, Member) of `member` in struct/union `tid`, looking
        through anonymous struct/union members as C does."""
        t = self.resolve(tid)
        if t is None or t.kind not in (STRUCT, UNION):
            return None
        for m in t.members:
            if m.name == member:
                return m.bit_offset, m
        for m in t.members:
            if not m.name:
                inner = self.field(m.type, member)
                if inner is not None:
                    return m.bit_offset + inner[0], inner[1]
        return None

    def offsetof(self, tid: int, path: str) -> Tuple[int, int]:
        """(bit offset, type id) of a dotted member path such as
        `thread_info.flags`, with `[N]` array subscripts allowed."""
        bits = 0
        for part in path.split("."):
            index = None
            if part.endswith("]") and "[" in part:
                part, index = part[:-1].split("[")
            hit = self.field(tid, part)
            if hit is None:
                name = self.types[tid].name if tid else "void"
                raise errors.DecodeError(f"BTF type {name!r} has no member {part!r}")
            bits += hit[0]
            tid = hit[1].type
            if index is not None:
                arr = self.resolve(tid)
                if arr is None or arr.kind != ARRAY:
                    raise errors.DecodeError(f"{part} is not an array")
                tid = arr.array[0]
                bits += int(index, 0) * self.sizeof(tid) * 8
        return bits, tid
