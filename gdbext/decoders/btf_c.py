# SPDX-License-Identifier: GPL-2.0-or-later
"""C declarations from BTF, for gcc -g to turn into DWARF gdb can read.

Pure: a decoders.btf.Btf in, C source out.  Offsets are kept exactly: every
struct and union is emitted packed, with explicit padding where BTF's
member offsets leave a gap (unnamed bit-fields inside bit-field runs,
`char __kx_padN[]` elsewhere) and at the end up to BTF's size, so each
member lands at BTF's bit offset whatever gcc's own alignment rules say.
Types are emitted in dependency order (a type used by value is defined
first; pointers need only a forward declaration).  Names BTF repeats (BTF
dedup keeps distinct layouts under one name) get a ___N suffix, as do
repeated enumerators; anonymous enums get a name of their own.
"""
import re
from typing import Dict, List, Set

from gdbext.decoders import btf as B

_QUALIFIERS = {B.CONST: "const", B.VOLATILE: "volatile", B.RESTRICT: "restrict"}


class Emitter:
    def __init__(self, btf: B.Btf):
        self.btf = btf
        self.out: List[str] = []
        self.names: Dict[int, str] = {}
        self.defined: Set[int] = set()
        self.in_progress: Set[int] = set()
        self.enumerators: Set[str] = set()
        self.pads = 0        # anonymous members share their parent's names
        self._name_types()

    # -- names ------------------------------------------------------------
    def _name_types(self) -> None:
        used: Dict[tuple, int] = {}
        for t in self.btf.types[1:]:
            if t.kind in (B.ENUM, B.ENUM64) and not t.name:
                self.names[t.id] = f"__kx_enum_{t.id}"
                continue
            if not t.name or t.kind not in (B.STRUCT, B.UNION, B.ENUM, B.ENUM64, B.TYPEDEF, B.FWD):
                continue
            space = "tag" if t.kind != B.TYPEDEF else "typedef"
            key = (space, t.name)
            n = used.get(key, 0) + 1
            used[key] = n
            self.names[t.id] = t.name if n == 1 else f"{t.name}___{n}"

    def tag(self, t: B.Type) -> str:
        if t.kind == B.FWD:
            return ("union " if t.kind_flag else "struct ") + self.names[t.id]
        word = {B.STRUCT: "struct", B.UNION: "union"}.get(t.kind, "enum")
        return f"{word} {self.names[t.id]}"

    # -- declarators ------------------------------------------------------
    def decl(self, tid: int, inner: str, depth: int = 0) -> str:
        """The C declaration of `inner` (a name or an abstract declarator)
        with type `tid`."""
        inner = inner.strip()
        if tid == 0:
            return f"void {inner}".strip()
        t = self.btf.types[tid]
        k = t.kind
        if k in (B.INT, B.FLOAT):
            return f"{t.name} {inner}".strip()
        if k in (B.STRUCT, B.UNION) and not t.name:
            return f"{self.body(t, depth + 1)} {inner}".strip()
        if k in (B.STRUCT, B.UNION, B.ENUM, B.ENUM64, B.FWD):
            return f"{self.tag(t)} {inner}".strip()
        if k == B.TYPEDEF:
            return f"{self.names[t.id]} {inner}".strip()
        if k == B.PTR:
            target = self.btf.types[t.type] if t.type else None
            if target is not None and target.kind in (B.ARRAY, B.FUNC_PROTO):
                return self.decl(t.type, f"(*{inner})", depth)
            return self.decl(t.type, f"*{inner}", depth)
        if k == B.ARRAY:
            return self.decl(t.array[0], f"{inner}[{t.array[2]}]", depth)
        if k in _QUALIFIERS:
            target = self.btf.types[t.type] if t.type else None
            if target is not None and target.kind == B.PTR:
                return self.decl(t.type, f"{_QUALIFIERS[k]} {inner}", depth)
            if target is not None and target.kind == B.ARRAY:
                return self.decl(t.type, inner, depth)   # qualifiers of arrays go to elements
            return f"{_QUALIFIERS[k]} {self.decl(t.type, inner, depth)}"
        if k in (B.TYPE_TAG, B.DECL_TAG):
            return self.decl(t.type, inner, depth)
        if k == B.FUNC_PROTO:
            return self.decl(t.type, f"{inner}({self.params(t)})", depth)
        raise ValueError(f"no C declarator for BTF {t.kind_name}")

    def params(self, t: B.Type) -> str:
        if not t.params:
            return "void"
        parts = []
        for i, p in enumerate(t.params):
            if p.type == 0 and i == len(t.params) - 1:
                parts.append("...")
            else:
                parts.append(self.decl(p.type, p.name))
        return ", ".join(parts)

    # -- definitions ------------------------------------------------------
    def require(self, tid: int, complete: bool) -> None:
        """Emit what using `tid` needs: its definition when used by value."""
        if tid == 0:
            return
        t = self.btf.types[tid]
        k = t.kind
        if k == B.PTR:
            self.require(t.type, False)
        elif k == B.ARRAY:
            self.require(t.array[0], True)
        elif k in _QUALIFIERS or k in (B.TYPE_TAG, B.DECL_TAG):
            self.require(t.type, complete)
        elif k == B.FUNC_PROTO:
            self.require(t.type, False)
            for p in t.params:
                self.require(p.type, False)
        elif k == B.TYPEDEF:
            self.require(t.type, complete)
            self.define(t)
        elif k in (B.STRUCT, B.UNION):
            if not t.name:
                for m in t.members:
                    self.require(m.type, True)
            elif complete:
                self.define(t)
        elif k in (B.ENUM, B.ENUM64):
            self.define(t)

    def define(self, t: B.Type) -> None:
        if t.id in self.defined or t.id in self.in_progress:
            return
        self.in_progress.add(t.id)
        if t.kind == B.TYPEDEF:
            self.out.append(f"typedef {self.decl(t.type, self.names[t.id])};")
        elif t.kind in (B.ENUM, B.ENUM64):
            self.out.append(self.enum(t) + ";")
        else:
            for m in t.members:
                self.require(m.type, True)
            self.out.append(self.body(t, 0) + ";")
        self.in_progress.discard(t.id)
        self.defined.add(t.id)

    def enum(self, t: B.Type) -> str:
        items = []
        for name, value in t.values:
            if name in self.enumerators:
                name = f"{name}___{t.id}"
            self.enumerators.add(name)
            items.append(f"{name} = {value}{'ULL' if value >= 1 << 63 else 'LL' if abs(value) >= 1 << 31 else ''}")
        if not items:
            items.append(f"__kx_empty_{t.id}")    # a forward-declared enum
        if t.size == 8 and all(-(1 << 31) <= v < (1 << 31) for _n, v in t.values):
            items.append(f"__kx_enum64_{t.id} = 0xffffffffffffffffULL")   # keep BTF's 8-byte size
        packed = " __attribute__((packed))" if t.size < 4 else ""
        return f"enum {self.names[t.id]} {{ {', '.join(items)} }}{packed}"

    def body(self, t: B.Type, depth: int) -> str:
        """`struct NAME { ... } __attribute__((packed))` with BTF's offsets."""
        head = self.tag(t) if t.name else ("struct" if t.kind == B.STRUCT else "union")
        lines: List[str] = []
        if t.kind == B.UNION:
            for m in t.members:
                lines.append(self.member(m))
            widest = max((self._bits(m) for m in t.members), default=0)
            if widest < t.size * 8:
                self.pads += 1
                lines.append(f"char __kx_size{self.pads}[{t.size}];")
        else:
            self._struct_members(t, lines)
        return f"{head} {{ {' '.join(lines)} }} __attribute__((packed))"

    def _bits(self, m: B.Member) -> int:
        return m.bitfield_size or self.btf.sizeof(m.type) * 8

    def member(self, m: B.Member) -> str:
        if m.bitfield_size:
            return f"{self.decl(m.type, m.name)} : {m.bitfield_size};"
        return f"{self.decl(m.type, m.name)};"

    def _struct_members(self, t: B.Type, lines: List[str]) -> None:
        pos = 0
        for m in t.members:
            if m.bit_offset > pos:
                self._pad(lines, pos, m.bit_offset)
                pos = m.bit_offset
            lines.append(self.member(m))
            pos += self._bits(m)
        if pos < t.size * 8:
            self._pad(lines, pos, t.size * 8)

    def _pad(self, lines: List[str], start: int, end: int) -> None:
        self.pads += 1
        label = self.pads
        if start % 8:
            first = min(end, (start + 7) // 8 * 8) - start
            lines.append(f"unsigned char : {first};")
            start += first
        if end - start >= 8:
            lines.append(f"char __kx_pad{label}[{(end - start) // 8}];")
            start += (end - start) // 8 * 8
        if end > start:
            lines.append(f"unsigned char : {end - start};")


SYSCALL_BODIES = ("__do_sys_", "__do_compat_sys_")
# BTF keeps DWARF's base type names; SYSCALL_DEFINE (and ftrace) spell them as C.
_C_SPELLING = (("long long unsigned int", "unsigned long long"), ("long long int", "long long"),
               ("long unsigned int", "unsigned long"), ("long int", "long"),
               ("short unsigned int", "unsigned short"), ("short int", "short"))


def c_spelling(ctype: str) -> str:
    for dwarf, c in _C_SPELLING:
        ctype = re.sub(rf"\b{dwarf}\b", c, ctype)
    return ctype


def syscall_prototypes(btf: B.Btf) -> Dict[str, List[List[str]]]:
    """{"__do_sys_NAME": [[ctype, name], ...]} of the syscall bodies BTF has
    (the out-of-line ones: pahole records no inlined function); bodies that
    take only `const struct pt_regs *__unused` (SYSCALL_DEFINE0) give []."""
    e = Emitter(btf)
    out: Dict[str, List[List[str]]] = {}
    for t in btf.types[1:]:
        if t.kind != B.FUNC or not t.name.startswith(SYSCALL_BODIES):
            continue
        proto = btf.types[t.type]
        params = [[c_spelling(e.decl(p.type, "").strip()), p.name] for p in proto.params if p.type]
        out[t.name] = [] if [p[1] for p in params] == ["__unused"] else params
    return out


# gcc options the emitted C needs: every type kept in the DWARF, and
# unnamed members of a named struct type (7.2's struct aes_key embeds
# `struct aes_enckey;`, which the kernel builds with -fms-extensions).
GCC_OPTIONS = ("-g", "-fno-eliminate-unused-debug-types", "-fms-extensions")


def emit(btf: B.Btf) -> str:
    """C source declaring every struct, union, enum and typedef of `btf`."""
    e = Emitter(btf)
    forward = [f"{e.tag(t)};" for t in btf.types[1:]
               if t.kind in (B.STRUCT, B.UNION) and t.name or t.kind == B.FWD]
    for t in btf.types[1:]:
        if t.kind in (B.STRUCT, B.UNION) and t.name or t.kind in (B.TYPEDEF, B.ENUM, B.ENUM64):
            e.require(t.id, True)
    return "\n".join(["/* Generated by kx from the kernel's BTF. */"] + forward + e.out) + "\n"
