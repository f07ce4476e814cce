"""Struct layouts from the vmlinux's DWARF, through gdb.

gdb.lookup_type() finds a type through the index and expands only the
compilation unit that defines it, never the whole DWARF.  Offsets are cached
per objfile and forgotten when a new objfile loads.

What the kernel model asks of a type source is small: a type's size, and a
member's offset and size.  A unit test installs another source with `use()`
(kernel/fake.py's FakeTypes), so nothing here imports gdb at load time.
"""
from gdbext import errors

from gdbext.kernel.objcache import ObjfileCache

_cache = ObjfileCache()
_source = [None]   # a non-gdb type source, while one is installed


def use(source) -> None:
    """Answer from `source` (offsetof/sizeof/has/has_member/member_size)
    instead of gdb; None goes back to gdb."""
    _source[0] = source
    _cache.clear()


def cache():
    """The per-objfile cache, for layouts derived from these types
    (kernel/structs.py)."""
    return _cache


def lookup(name: str):
    """The gdb.Type of `struct task_struct`, `unsigned long`, ... or MissingType."""
    import gdb
    key = ("type", name)
    if key not in _cache:
        try:
            _cache[key] = gdb.lookup_type(name)
        except gdb.error:
            raise missing(name) from None
    return _cache[key]


def missing(name: str) -> errors.MissingType:
    """The error for a type gdb does not have.  With no vmlinux and a
    kernel built without BTF it says that, and what still works, instead of
    asking for DWARF."""
    from gdbext.kernel import guest_session
    gk = guest_session.current()
    if gk is not None and gk.btf_path is None:
        return errors.MissingType(name, why=(
            "this kernel has no BTF (built without CONFIG_DEBUG_INFO_BTF) and gdb has no vmlinux: kx has "
            f"its symbols from kallsyms, not its types; {guest_session.STILL_WORKS}"))
    return errors.MissingType(name)


def has(name: str) -> bool:
    if _source[0] is not None:
        return _source[0].has(name)
    try:
        lookup(name)
        return True
    except errors.MissingType:
        return False


def _field(t, member: str):
    """The field `member` of the gdb.Type t, looking through anonymous
    structs/unions.  Returns (byte offset, field type) or None."""
    import gdb
    t = t.strip_typedefs()
    for f in t.fields():
        if f.name == member:
            return f.bitpos // 8, f.type
        if f.name is None and f.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            inner = _field(f.type, member)
            if inner is not None:
                return f.bitpos // 8 + inner[0], inner[1]
    return None


def member(struct: str, path: str):
    """(offset, gdb.Type) of a dotted member path such as `thread_info.flags`."""
    key = ("member", struct, path)
    if key not in _cache:
        t = lookup(struct)
        offset = 0
        for part in path.split("."):
            hit = _field(t, part)
            if hit is None:
                raise errors.MissingType(struct, path)
            offset += hit[0]
            t = hit[1]
        _cache[key] = (offset, t)
    return _cache[key]


def _bit_field(t, member: str):
    """(bit offset, bit size, type) of `member` in the gdb.Type t, through
    anonymous structs/unions; bit size 0 for an ordinary member."""
    import gdb
    for f in t.strip_typedefs().fields():
        if f.name == member:
            return f.bitpos, f.bitsize, f.type
        if f.name is None and f.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
            inner = _bit_field(f.type, member)
            if inner is not None:
                return f.bitpos + inner[0], inner[1], inner[2]
    return None


def bitfield(struct: str, path: str):
    """(bit offset from the start of `struct`, width in bits) of a member,
    bitfields included (`struct printk_info`'s level:3).  An ordinary
    member's width is its size * 8."""
    if _source[0] is not None:
        source = _source[0]
        if hasattr(source, "bitfield"):
            return source.bitfield(struct, path)
        return source.offsetof(struct, path) * 8, source.member_size(struct, path) * 8
    key = ("bitfield", struct, path)
    if key not in _cache:
        parts = path.split(".")
        offset = offsetof(struct, ".".join(parts[:-1])) * 8 if len(parts) > 1 else 0
        t = member(struct, ".".join(parts[:-1]))[1] if len(parts) > 1 else lookup(struct)
        hit = _bit_field(t, parts[-1])
        if hit is None:
            raise errors.MissingType(struct, path)
        bitpos, bitsize, ftype = hit
        _cache[key] = (offset + bitpos, bitsize or ftype.sizeof * 8)
    return _cache[key]


def offsetof(struct: str, path: str) -> int:
    if _source[0] is not None:
        return _source[0].offsetof(struct, path)
    return member(struct, path)[0]


def member_size(struct: str, path: str) -> int:
    if _source[0] is not None:
        return _source[0].member_size(struct, path)
    return member(struct, path)[1].sizeof


def has_member(struct: str, path: str) -> bool:
    if _source[0] is not None:
        return _source[0].has_member(struct, path)
    try:
        member(struct, path)
        return True
    except errors.MissingType:
        return False


def sizeof(name: str) -> int:
    if _source[0] is not None:
        return _source[0].sizeof(name)
    return lookup(name).sizeof


def enum_values(name: str):
    """{enumerator: value} of `enum name` from the DWARF, or None when this
    vmlinux has no such enum (or no DWARF)."""
    if _source[0] is not None:
        values = getattr(_source[0], "enum_values", None)
        return values(name) if values else None
    key = ("enum", name)
    if key not in _cache:
        try:
            t = lookup(name).strip_typedefs()
            _cache[key] = {f.name: f.enumval for f in t.fields()}
        except errors.MissingType:
            _cache[key] = None
    return _cache[key]

