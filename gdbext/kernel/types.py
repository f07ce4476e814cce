"""Struct layouts from the vmlinux's DWARF, through gdb.

gdb.lookup_type() finds a type through the index and expands only the
compilation unit that defines it, never the whole DWARF.  Offsets are cached
per objfile and forgotten when a new objfile loads.
"""
import gdb

from gdbext import errors

from gdbext.kernel.objcache import ObjfileCache

_cache = ObjfileCache()


def lookup(name: str) -> gdb.Type:
    """`struct task_struct`, `unsigned long`, ... or MissingType."""
    key = ("type", name)
    if key not in _cache:
        try:
            _cache[key] = gdb.lookup_type(name)
        except gdb.error:
            raise errors.MissingType(name) from None
    return _cache[key]


def has(name: str) -> bool:
    try:
        lookup(name)
        return True
    except errors.MissingType:
        return False


def _field(t: gdb.Type, member: str):
    """The field `member` of t, looking through anonymous structs/unions.
    Returns (byte offset, field type) or None."""
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


def offsetof(struct: str, path: str) -> int:
    return member(struct, path)[0]


def has_member(struct: str, path: str) -> bool:
    try:
        member(struct, path)
        return True
    except errors.MissingType:
        return False


def sizeof(name: str) -> int:
    return lookup(name).sizeof


