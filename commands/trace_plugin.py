"""kx trace's plugin engine: the kxtrace QEMU plugin records each syscall
while the guest runs free (no breakpoint, no debug stop), and kx decodes the
records into the same events as the loop engine (kernel/plugin_trace.py).
Also --record FILE (raw records, no decoding) and --replay FILE."""
import time

from gdbext import errors
from gdbext.kernel import plugin_session, plugin_trace
from gdbext.machine import plugin_client as pc

available = plugin_session.available


def run_plugin(flt, args, sink, summary):
    client = plugin_session.connect()
    try:
        live = plugin_session.LiveTrace(client, flt, args.want_return, lambda e: not sink.emit(e),
                                        record=args.record, count=args.count)
        result, counts = live.run()
    finally:
        client.close()
        if sink.out is not None:
            sink.out.close()
    t = live.tracer
    extra = {"engine": "plugin", "reason": result.reason, "records": counts["records"],
             "dropped": counts["dropped"], "filtered_out": counts["filtered"] + t.skipped,
             "undecodable": t.undecodable, "abandoned": t.abandoned,
             "unreturned": t.unreturned if args.want_return else 0,
             "max_drain_gap_ms": round(live.max_gap * 1e3, 1), "max_drain_bytes": live.max_batch,
             "armed_after_ms": live.armed_after_ms(result)}
    if live.writer is not None:
        extra.update(recorded=live.recorded_total, record_file=args.record)
    interrupted = result.reason not in ("done",)
    return summary(flt, args, sink, result.seconds, interrupted, extra)


def replay(flt, args, sink, summary):
    """Decode a --record file with the vmlinux gdb has loaded."""
    try:
        meta, chunks = pc.read_record_file(args.replay)
    except OSError as exc:
        raise errors.BadArgument(f"cannot read {args.replay}: {exc.strerror}") from None
    if args.want_return and not meta.get("want_return"):
        raise errors.BadArgument(f"{args.replay} was recorded without --return")
    start = time.monotonic()
    tracer = plugin_trace.PluginTracer(flt, plugin_trace.Layout(meta), lambda e: not sink.emit(e),
                                       want_return=args.want_return)
    try:
        for chunk in chunks:
            if not tracer.feed([chunk]):
                break
        else:
            tracer.feed([], final=True)
    finally:
        if sink.out is not None:
            sink.out.close()
    extra = {"engine": "replay", "reason": "count" if tracer.done else "end", "records": tracer.records,
             "filtered_out": tracer.skipped, "undecodable": tracer.undecodable,
             "unreturned": tracer.unreturned if args.want_return else 0, "recorded_filter": meta.get("filter")}
    return summary(flt, args, sink, time.monotonic() - start, False, extra)
