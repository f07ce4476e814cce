"""The kernel log as `kx dmesg` shows it: the printk ring buffer that `prb`
points at (kernel/printk/printk.c, 5.10+), read through the backend and
decoded by decoders/printk_ring.py; offsets and the printk_info bitfields
from DWARF (kernel/types.py).

"Console level": the console prints a record when its level is below
console_loglevel (console_printk[0]), or always with ignore_loglevel
(suppress_message_printing(), kernel/printk/printk.c).
"""
from typing import Dict, Optional

from gdbext import errors
from gdbext.decoders import printk_ring as pr
from gdbext.kernel import backend, symbols, types

# The newest record of the ring at the last `kx dmesg`, for --follow.
_last = {"ring": None, "seq": None}


def layout() -> pr.Layout:
    def build():
        info = "struct printk_info"
        sub = types.has_member("struct dev_printk_info", "subsystem")
        dev_off = types.offsetof(info, "dev_info") if types.has_member(info, "dev_info") else None
        return pr.Layout(
            long_size=types.sizeof("unsigned long"),
            desc_size=types.sizeof("struct prb_desc"),
            desc_state_var=types.offsetof("struct prb_desc", "state_var"),
            desc_begin=types.offsetof("struct prb_desc", "text_blk_lpos.begin"),
            desc_next=types.offsetof("struct prb_desc", "text_blk_lpos.next"),
            info_size=types.sizeof(info),
            info_seq=types.offsetof(info, "seq"), info_ts=types.offsetof(info, "ts_nsec"),
            info_text_len=types.offsetof(info, "text_len"), info_facility=types.offsetof(info, "facility"),
            info_flags=types.bitfield(info, "flags"), info_level=types.bitfield(info, "level"),
            info_caller_id=types.offsetof(info, "caller_id"),
            info_subsystem=(dev_off + types.offsetof("struct dev_printk_info", "subsystem"),
                            types.member_size("struct dev_printk_info", "subsystem")) if sub and dev_off is not None
            else None,
            info_device=(dev_off + types.offsetof("struct dev_printk_info", "device"),
                         types.member_size("struct dev_printk_info", "device")) if sub and dev_off is not None
            else None)
    cache = types.cache()
    if "printk-layout" not in cache:
        cache["printk-layout"] = build()
    return cache["printk-layout"]


def _u(address: int, size: int, cpu) -> int:
    return int.from_bytes(backend.read_kernel(address, size, cpu), "little")


def ring(cpu=None) -> pr.Ring:
    """The header of *prb (printk_rb_static, or the dynamic buffer that
    log_buf_len= made)."""
    if symbols.lookup("prb") is None:
        raise errors.MissingSymbol("prb", "the lockless printk ring buffer is 5.10+")
    rb = _u(symbols.address("prb"), 8, cpu)
    off = lambda path: rb + types.offsetof("struct printk_ringbuffer", path)  # noqa: E731
    lsize = types.sizeof("unsigned long")
    return pr.Ring(count_bits=_u(off("desc_ring.count_bits"), 4, cpu),
                   size_bits=_u(off("text_data_ring.size_bits"), 4, cpu),
                   head_id=_u(off("desc_ring.head_id"), lsize, cpu),
                   tail_id=_u(off("desc_ring.tail_id"), lsize, cpu),
                   descs=_u(off("desc_ring.descs"), 8, cpu), infos=_u(off("desc_ring.infos"), 8, cpu),
                   data=_u(off("text_data_ring.data"), 8, cpu))


def _slots(base: int, elem: int, r: pr.Ring, lay: pr.Layout, cpu) -> bytes:
    """descs[] or infos[] with only the tail..head slots read (the rest zero)."""
    out = bytearray(r.count * elem)
    for first, n in pr.slot_span(r, lay.long_size):
        out[first * elem:(first + n) * elem] = backend.read_kernel(base + first * elem, n * elem, cpu)
    return bytes(out)


def read_records(cpu=None):
    """(records oldest first, skipped counts, ring header)."""
    lay = layout()
    r = ring(cpu)
    if r.count_bits > 24 or r.size_bits > 31:
        raise errors.KxError(f"the printk ring header looks wrong (count_bits {r.count_bits}, "
                             f"size_bits {r.size_bits})")
    descs = _slots(r.descs, lay.desc_size, r, lay, cpu)
    infos = _slots(r.infos, lay.info_size, r, lay, cpu)
    data = backend.read_kernel(r.data, r.data_size, cpu)
    records, skipped = pr.records(r, descs, infos, data, lay)
    return records, skipped, r


def console_level(cpu=None) -> Optional[int]:
    """console_loglevel (console_printk[0]), or None if unreadable; 8
    (every level) under ignore_loglevel."""
    try:
        ignore = symbols.lookup("ignore_loglevel")
        if ignore is not None and _u(ignore, 1, cpu):
            return 8
        return _u(symbols.address("console_printk"), 4, cpu)
    except errors.KxError:
        return None


def log(level: Optional[int] = None, console: bool = False, tail: Optional[int] = None,
        follow: bool = False, cpu=None) -> Dict:
    records, skipped, r = read_records(cpu)
    conlevel = console_level(cpu)
    newest = records[-1].seq if records else None
    since, note = None, None
    if follow:
        if _last["ring"] == r.descs and _last["seq"] is not None and (newest is None or newest >= _last["seq"]):
            since = _last["seq"]
        else:
            note = "no earlier kx dmesg of this ring: all records"
    shown = [x for x in records
             if (since is None or x.seq > since)
             and (level is None or x.level <= level)
             and (not console or (conlevel is not None and x.level < conlevel))]
    if tail is not None:
        shown = shown[-tail:] if tail else []
    _last.update(ring=r.descs, seq=newest if newest is not None else _last["seq"])
    return {"records": [_as_dict(x, conlevel) for x in shown], "total": len(records), "newest_seq": newest,
            "since_seq": since, "console_loglevel": conlevel, "skipped": skipped,
            "ring": {"descs": r.descs, "infos": r.infos, "data": r.data, "count_bits": r.count_bits,
                     "size_bits": r.size_bits, "head_id": r.head_id, "tail_id": r.tail_id},
            "note": note}


def _as_dict(x: pr.LogRecord, conlevel: Optional[int]) -> Dict:
    d = x.to_dict()
    d["level_name"] = x.level_name
    d["timestamp"] = pr.timestamp(x.ts_nsec)
    d["console"] = None if conlevel is None else x.level < conlevel
    return d
