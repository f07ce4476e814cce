"""The plugin engine without QEMU: records built here as the kxtrace plugin
lays them out (scripts/plugin/kxtrace.h), read back by plugin_client, and
decoded through RecordView into the same event events.decode gives on the
live (fake) target; the rings, the record file, the capture table and the
configuration lines."""
import os
import struct

import pytest

from gdbext.arch.x86_64 import X86
from gdbext.decoders import syscall_args
from gdbext.decoders.ptregs import PT_REGS_OFFSETS, encode_pt_regs
from gdbext.kernel import backend, events, plugin_trace, syscall_filter, tasks
from gdbext.machine import plugin_client as pc

from .test_fake_target import PER_CPU_BASE, STACK, TASK, THREAD_SIZE, USER_STRING, kernel_regs, task_bytes, x86_target

DO_SYSCALL_64 = 0xFFFFFFFF81A00000
RETURN_POINT = 0xFFFFFFFF81C00050
PT_ADDR = STACK + THREAD_SIZE - 168


def make_record(kind, point, pt, seq=0, vcpu=0, caps=(), task=TASK, task_slices=b"", flags=0):
    """A record as kxtrace.c writes it into a ring: `used` bytes, rounded up to 8."""
    raw = bytearray(pc.RECORD_MAX)
    regs = [PT_ADDR, 0, STACK + 0x3F00, 0x10]                # rdi rsi rsp cs
    nr = struct.unpack_from("<Q", pt, PT_REGS_OFFSETS["orig_ax"])[0]
    data, descs = b"", []
    for arg, status, blob in caps:
        descs.append((arg, status, len(blob), len(data), 0))
        data += blob
    struct.pack_into("<IHBBQQQQQQIHBB", raw, 0, pc.RECORD_MAGIC, vcpu, kind, point, seq, 123, task,
                     PT_ADDR, nr, 0, flags, 432 + len(data), len(caps), len(regs))
    struct.pack_into("<4Q", raw, 64, *regs)
    raw[128:128 + len(task_slices)] = task_slices
    raw[192:192 + len(pt)] = pt
    for i, d in enumerate(descs):
        struct.pack_into("<BBHHH", raw, 384 + 8 * i, *d)
    raw[432:432 + len(data)] = data
    return bytes(raw[:pc.record_length(432 + len(data))])


def layout_dict(target_task_bytes):
    resolved, _ = tasks.LIST_READER.layout()
    slices = plugin_trace._task_slices()
    return {
        "arch": "x86_64", "regs": ["rdi", "rsi", "rsp", "cs"], "abis": ["64"], "want_return": True,
        "points": [{"address": DO_SYSCALL_64, "kind": "entry", "abi": "64", "stub": "entry_SYSCALL_64",
                    "nr_member": "orig_ax", "function": "do_syscall_64", "shared": False},
                   {"address": RETURN_POINT, "kind": "return", "abi": "64", "stub": "entry_SYSCALL_64",
                    "nr_member": None, "function": None, "shared": False}],
        "ptregs_size": 168, "task_slices": slices,
        "task_extent": max(e for _, e in tasks.LIST_READER.layout()[1]),
        "current": {"0": PER_CPU_BASE}, "captures": {"64": {"1": [[1, "buffer", 64, 2]]}},
        "wanted": {"64": [1]}, "vmlinux": "vmlinux", "filter": "write"}, b"".join(
            target_task_bytes[o:o + n] for o, n in slices)


def test_a_record_decodes_to_the_event_the_live_target_gives():
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, ip=0x401234, cs=0x33, flags=0x246, ax=-38)
    target = x86_target(kernel_regs(rip=DO_SYSCALL_64, rdi=PT_ADDR), pt)
    with backend.installed(target):
        live = events.decode(events.View(0)).to_dict()
        raw_layout, slices = layout_dict(task_bytes(42, "hello64", STACK))
        layout = plugin_trace.Layout(raw_layout)
        got = []
        flt = syscall_filter.build(["write"], "64", comm="hello64")
        tracer = plugin_trace.PluginTracer(flt, layout, lambda e: got.append(e) or True)
        entry = make_record(pc.ENTRY, 0, pt, seq=1, caps=[(1, pc.CAP_OK, b"hi\n")], task_slices=slices)
        back = make_record(pc.RETURN, 1, encode_pt_regs(orig_ax=1, ax=3), seq=2, task_slices=slices)
        assert tracer.feed([entry + back])
    (event,) = got
    d = event.to_dict()
    assert d.pop("ret") == 3 and live.pop("ret") is None
    d.pop("ret_name"), live.pop("ret_name")
    assert d.pop("line") == 'write(1, "hi\\n", 3) = 3' and live.pop("line") == 'write(1, "hi\\n", 3)'
    assert d == live
    assert event.strace() == 'write(1, "hi\\n", 3) = 3'
    assert tracer.records == 2 and tracer.undecodable == 0


def test_a_task_that_changes_is_decoded_again():
    """The decoded task is cached by the bytes a record captured: the same
    task_struct after an execve (a new comm) and another pid at a reused
    address must not come out as the first one."""
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, cs=0x33)
    target = x86_target(kernel_regs(rip=DO_SYSCALL_64, rdi=PT_ADDR), pt)
    with backend.installed(target):
        raw_layout, first = layout_dict(task_bytes(42, "hello64", STACK))
        _, after_exec = layout_dict(task_bytes(42, "kxwork", STACK))
        _, reused = layout_dict(task_bytes(43, "kxwork", STACK))
        layout = plugin_trace.Layout(raw_layout)
        got = []
        tracer = plugin_trace.PluginTracer(syscall_filter.build([], "64"), layout,
                                           lambda e: got.append(e) or True, want_return=False)
        tracer.feed([make_record(pc.ENTRY, 0, pt, seq=n, task_slices=slices)
                     for n, slices in enumerate([first, first, after_exec, reused, first])])
    assert [(e.pid, e.comm) for e in got] == [(42, "hello64"), (42, "hello64"), (42, "kxwork"),
                                              (43, "kxwork"), (42, "hello64")]
    assert len(layout.briefs) == 3


def test_records_the_filter_or_the_capture_turns_away():
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, cs=0x33)
    target = x86_target(kernel_regs(rip=DO_SYSCALL_64, rdi=PT_ADDR), pt)
    with backend.installed(target):
        raw_layout, slices = layout_dict(task_bytes(42, "hello64", STACK))
        layout = plugin_trace.Layout(raw_layout)
        got = []
        tracer = plugin_trace.PluginTracer(syscall_filter.build([], "64", comm="other"), layout,
                                           lambda e: got.append(e) or True, want_return=False)
        tracer.feed([make_record(pc.ENTRY, 0, pt, task_slices=slices)])
        assert tracer.skipped == 1 and not got
        tracer = plugin_trace.PluginTracer(syscall_filter.build([], "64"), layout,
                                           lambda e: got.append(e) or True, want_return=False)
        # The string's page was not mapped at entry, and one record lost its task.
        tracer.feed([make_record(pc.ENTRY, 0, pt, seq=1, caps=[(1, pc.CAP_UNREADABLE, b"")],
                                 task_slices=slices),
                     make_record(pc.ENTRY, 0, pt, seq=0, flags=pc.F_TASK, task_slices=slices)])
        assert tracer.undecodable == 1
        assert got[0].args[1].decoded == f"{USER_STRING:#x} (unreadable)"


def test_records_of_two_rings_come_out_in_sequence_order():
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, cs=0x33)
    target = x86_target(kernel_regs(rip=DO_SYSCALL_64, rdi=PT_ADDR), pt)
    with backend.installed(target):
        raw_layout, slices = layout_dict(task_bytes(42, "hello64", STACK))
        seen = []
        tracer = plugin_trace.PluginTracer(syscall_filter.build([], "64"), plugin_trace.Layout(raw_layout),
                                           lambda e: seen.append(e.cpu) or True, want_return=False)
        ring0 = b"".join(make_record(pc.ENTRY, 0, pt, seq=s, task_slices=slices) for s in (0, 2, 4))
        ring1 = b"".join(make_record(pc.ENTRY, 0, pt, seq=s, vcpu=1, task_slices=slices) for s in (1, 3))
        tracer.feed([ring0, ring1])
        assert seen == [0, 1, 0, 1], "seq 4 waits: ring 1 may still get a record below it"
        tracer.feed([], final=True)
    assert seen == [0, 1, 0, 1, 0]


def test_a_record_written_after_its_ring_was_read_is_not_overtaken():
    """A task moves from vCPU 0 to vCPU 1: ring 0 is read before its
    return record is written, ring 1 after the next call's records.  The
    next call waits for that return, so both calls pair up."""
    first = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, cs=0x33, ax=3)
    target = x86_target(kernel_regs(rip=DO_SYSCALL_64, rdi=PT_ADDR), first)
    with backend.installed(target):
        raw_layout, slices = layout_dict(task_bytes(42, "hello64", STACK))
        got = []
        tracer = plugin_trace.PluginTracer(syscall_filter.build([], "64"), plugin_trace.Layout(raw_layout),
                                           lambda e: got.append((e.cpu, e.ret)) or True, want_return=True)
        ring0 = make_record(pc.ENTRY, 0, first, seq=1, task_slices=slices)
        late = make_record(pc.RETURN, 1, first, seq=2, task_slices=slices)
        ring1 = b"".join(make_record(kind, point, first, seq=seq, vcpu=1, task_slices=slices)
                         for kind, point, seq in ((pc.ENTRY, 0, 3), (pc.RETURN, 1, 4)))
        tracer.feed([ring0, ring1])
        tracer.feed([late])
        tracer.feed([], final=True)
    assert got == [(0, 3), (1, 3)]


def test_capture_plan_follows_format_arg():
    write = [("unsigned int", "fd"), ("const char *", "buf"), ("size_t", "count")]
    assert syscall_args.capture_plan(write, "write") == [(1, "buffer", syscall_args.BUF_CAP, 2)]
    openat = [("int", "dfd"), ("const char *", "filename"), ("int", "flags"), ("umode_t", "mode")]
    assert syscall_args.capture_plan(openat, "openat") == [(1, "string", syscall_args.PATH_CAP + 1, None)]
    read = [("unsigned int", "fd"), ("char *", "buf"), ("size_t", "count")]
    assert syscall_args.capture_plan(read, "read") == []
    rename = [("const char *", "oldname"), ("const char *", "newname")]
    assert [c[:2] for c in syscall_args.capture_plan(rename, "rename")] == [(0, "string"), (1, "string")]


def test_configuration_lines():
    pt = encode_pt_regs(orig_ax=1)
    target = x86_target(kernel_regs(), pt)
    with backend.installed(target):
        raw_layout, _ = layout_dict(task_bytes(42, "hello64", STACK))
        lines = plugin_trace.plugin_commands(raw_layout)
    assert lines[:2] == ["regs rdi rsi rsp cs", "ptregs 168"]
    offsets = " ".join(str(PT_REGS_OFFSETS[m]) for m in ("di", "si", "dx", "r10", "r8", "r9"))
    assert f"abi 0 64 {offsets}" in lines
    assert "want 0 other" in lines and "want 0 1" in lines
    assert "cap 0 1 1 2 64 2" in lines
    assert f"current 0 {PER_CPU_BASE:#x}" in lines
    # do_syscall_64: pt_regs in rdi, or rsi when rdi is a number (before 5.12).
    assert (f"point {DO_SYSCALL_64:#x} 1 0 0 1 {X86.kernel_space_start:#x} "
            f"{PT_REGS_OFFSETS['orig_ax']} 2") in lines
    assert f"point {RETURN_POINT:#x} 2 0 2 -1 0x0 {PT_REGS_OFFSETS['orig_ax']} -1" in lines


def fake_rings(path, vcpus=2, ring=4096):
    size = pc.FILE_HEADER + vcpus * (pc.RING_HEADER + ring)
    with open(path, "wb") as f:
        f.write(struct.pack("<5I", pc.RECORD_MAGIC, vcpus, ring // 1024, pc.RECORD_MAX, pc.RING_HEADER))
        f.truncate(size)
    return pc.Rings(os.open(path, os.O_RDWR), vcpus, ring, size), size


def put(rings, vcpu, records):
    """Write `records` as the plugin would (wrapping at the end), then
    advance head and the record count."""
    base = pc.FILE_HEADER + vcpu * rings.per_ring
    w = base // 8
    head = rings.words[w]
    for rec in records:
        for i, byte in enumerate(rec):
            rings.map[base + pc.RING_HEADER + (head + i) % rings.size] = byte
        head += len(rec)
    rings.words[w] = head
    rings.words[w + 4] += len(records)


def test_rings_drain_whole_records_across_the_wrap(tmp_path):
    rings, _ = fake_rings(tmp_path / "rings")
    pt = encode_pt_regs(orig_ax=39)
    recs = [make_record(pc.ENTRY, 0, pt, seq=i, caps=[(0, pc.CAP_OK, b"x" * (i * 100))]) for i in range(6)]
    put(rings, 1, recs[:3])
    assert rings.drain() == [b"".join(recs[:3])]
    put(rings, 1, recs[3:6])          # 4096-byte ring: these wrap around its end
    (chunk,) = rings.drain()
    assert chunk == b"".join(recs[3:6])
    assert [r.seq for r in pc.parse_records(chunk)] == [3, 4, 5]
    assert [c[2] for r in pc.parse_records(chunk) for c in r.captures] == [b"x" * 300, b"x" * 400, b"x" * 500]
    assert rings.drain() == []
    rings.words[pc.FILE_HEADER // 8 + 2] = 5       # vCPU 0 dropped 5
    assert rings.counters() == {"records": 6, "dropped": 5, "filtered": 0}
    rings.close()


def test_rings_refuse_another_layout(tmp_path):
    path = tmp_path / "rings"
    rings, size = fake_rings(path)
    rings.close()
    with pytest.raises(pc.PluginError, match="layout"):
        pc.Rings(os.open(path, os.O_RDWR), 2, 8192, size)


def test_record_file_round_trip_in_whole_records(tmp_path):
    path = str(tmp_path / "trace.kxr")
    pt = encode_pt_regs(orig_ax=39)
    recs = [make_record(pc.ENTRY, 0, pt, seq=i, caps=[(0, pc.CAP_OK, b"y" * i)]) for i in range(50)]
    w = pc.RecordWriter(path, {"filter": "all", "points": []})
    w.write(b"".join(recs))
    w.close()
    meta, chunks = pc.read_record_file(path, batch=1000)      # blocks end inside records
    chunks = list(chunks)
    assert meta == {"filter": "all", "points": []} and len(chunks) > 10
    assert [r.seq for c in chunks for r in pc.parse_records(c)] == list(range(50))
    (tmp_path / "other").write_bytes(b"hello\n")
    with pytest.raises(pc.PluginError, match="not a kx trace record file"):
        pc.read_record_file(str(tmp_path / "other"))


def test_a_bad_record_is_refused():
    with pytest.raises(pc.PluginError, match="magic"):
        pc.Record(bytes(pc.RECORD_MAX))
    with pytest.raises(pc.PluginError, match="corrupt"):
        list(pc.parse_records(bytes(512)))


def test_ctrl_c_in_the_middle_of_a_batch_loses_no_record():
    """The rings are drained before the batch is decoded: a Ctrl-C while
    decoding keeps the rest of the batch for the final feed."""
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, cs=0x33)
    target = x86_target(kernel_regs(rip=DO_SYSCALL_64, rdi=PT_ADDR), pt)
    with backend.installed(target):
        raw_layout, slices = layout_dict(task_bytes(42, "hello64", STACK))
        seen = []

        def emit(event):
            seen.append(event)
            if len(seen) == 2:
                raise KeyboardInterrupt
            return True
        tracer = plugin_trace.PluginTracer(syscall_filter.build([], "64"), plugin_trace.Layout(raw_layout),
                                           emit, want_return=False)
        ring0 = b"".join(make_record(pc.ENTRY, 0, pt, seq=s, task_slices=slices) for s in range(5))
        with pytest.raises(KeyboardInterrupt):
            tracer.feed([ring0])
        tracer.feed([], final=True)
    assert len(seen) == 5
