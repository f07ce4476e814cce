#!/usr/bin/env python3
"""Benchmark of `kx trace --engine plugin` (run through scripts/bench_trace.py
--plugin, or directly):

  python3 scripts/bench_trace.py --plugin [--kernel 6.1] [--window 10]
                                 [--record-seconds 60] [--paced-hz 10000]

On QEMU 10.0.2 with the back-to-back getpid spinner (kxmode=spin, 2 vCPUs,
TCG, Haswell, pti=on) it measures, with the spinner's own counter
(KX-SPIN-RATE lines, four a second: the calls the guest made and the time its own clock measured):

  guest, no plugin     QEMU 10.0.2 without the plugin, untraced;
  guest, plugin idle   the plugin loaded, no trace running;
  bare gdb             a gdb breakpoint at do_syscall_64 whose stop()
                       returns False (events/s; the same QEMU);
  kx trace (live)      `kx trace --out /dev/null`: every call fully decoded
                       and written as JSON; events/s, records the plugin
                       dropped, and the guest's own rate meanwhile;
  kx trace --record    raw records to a file for --record-seconds; records/s,
                       drops, the guest's rate; then --replay's decoding rate;
  paced live           a spinner paced at --paced-hz (kxspin_hz), traced
                       live for --paced-seconds: does decoding keep up
                       (0 dropped)?

then the ratios against bare gdb.  Numbers only: this is not a test.
"""
import os
import re
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from tests.guestlib import GuestSession, LabConfig  # noqa: E402


def spin_rate(guest, start: int) -> float:
    """The spinner's own calls/s over the KX-SPIN-RATE lines printed after
    serial offset `start` (the first, partial second left out)."""
    lines = re.findall(r"KX-SPIN-RATE calls=(\d+) ns=(\d+)", guest.serial()[start:])[1:]
    calls = sum(int(c) for c, _ in lines)
    ns = sum(int(n) for _, n in lines)
    return calls / ns * 1e9 if ns else float("nan")


def qemu_cpu(s) -> float:
    from bench_trace import cpu_seconds
    return cpu_seconds(s.guest.proc.pid)


def run_free(s, seconds: float):
    """(the guest's own rate, QEMU's CPU microseconds per call) while it
    runs untraced for `seconds`.  The second number moves far less with
    the host's load than the first."""
    start, cpu, t0 = len(s.guest.serial()), qemu_cpu(s), time.monotonic()
    s.cont()
    time.sleep(seconds)
    s.ensure_stopped()
    rate = spin_rate(s.guest, start)
    return rate, (qemu_cpu(s) - cpu) / (rate * (time.monotonic() - t0)) * 1e6


def trace_for(s, command: str, seconds: float):
    """(kx trace's console output, the guest's own rate, QEMU's CPU
    microseconds per call) for a trace that a SIGINT ends after `seconds`."""
    start, cpu, t0 = len(s.guest.serial()), qemu_cpu(s), time.monotonic()
    reply, _took = s.cmd_interrupted(command, seconds, timeout=seconds + 600)
    rate = spin_rate(s.guest, start)
    return reply["output"], rate, (qemu_cpu(s) - cpu) / (rate * (time.monotonic() - t0)) * 1e6


def summary_numbers(text: str) -> dict:
    out = {}
    m = re.search(r"kx trace: (\d+) events in ([\d.]+) s", text)
    if m:
        out["events"], out["seconds"] = int(m.group(1)), float(m.group(2))
    m = re.search(r"dropped: (\d+) records", text)
    out["dropped"] = int(m.group(1)) if m else 0
    m = re.search(r"recorded: (\d+) records", text)
    out["recorded"] = int(m.group(1)) if m else 0
    return out


def bare_gdb(s, hits: int) -> float:
    from bench_trace import GDB_SIDE, gdb_json
    helper = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    helper.write(GDB_SIDE)
    helper.close()
    try:
        s.cmd(f"source {helper.name}")
        gdb_json(s, "python kxb_setup('do_syscall_64')")
        rates = []
        for _ in range(3):
            s.cmd(f"python kxb_bare_arm({hits})")
            s.cont()
            s.wait_stopped(timeout=600)
            r = gdb_json(s, "python kxb_bare_result()")
            rates.append(r["hits"] / r["seconds"])
        return statistics.median(rates)
    finally:
        os.unlink(helper.name)


def session(kernel: str, plugin: bool, append: str = "") -> GuestSession:
    return GuestSession.get(LabConfig(kernel=kernel, workload="spin", trace_plugin=plugin, append=append))


def measure_plugin_guest(a, res):
    s = session(a.kernel, True)
    try:
        res["idle"], res["idle_cpu"] = run_free(s, a.window)
        print(f"  guest, plugin idle: {res['idle']:9.0f} getpid/s, {res['idle_cpu']:.2f} us QEMU CPU/call",
              flush=True)
        res["bare"] = bare_gdb(s, a.hits)
        print(f"  bare gdb:           {res['bare']:9.1f} events/s", flush=True)
        text, res["live_guest"], res["live_cpu"] = trace_for(s, "kx trace --out /dev/null", a.window)
        res["live"] = summary_numbers(text)
        print(f"  kx trace (live):    {res['live']}; guest {res['live_guest']:.0f}/s", flush=True)
        rec = os.path.join(tempfile.gettempdir(), "kx-bench.kxr")
        text, res["rec_guest"], res["rec_cpu"] = trace_for(s, f"kx trace --record {rec}", a.record_seconds)
        res["rec"] = summary_numbers(text)
        res["rec_bytes"] = os.path.getsize(rec)
        print(f"  kx trace --record:  {res['rec']}; guest {res['rec_guest']:.0f}/s", flush=True)
        t0 = time.monotonic()
        out = s.gdb.cmd(f"kx trace --replay {rec} --out /dev/null --count 200000", timeout=3600)
        res["replay"] = summary_numbers(out)
        res["replay"]["wall"] = time.monotonic() - t0
        os.unlink(rec)
        print(f"  --replay:           {res['replay']}", flush=True)
    finally:
        GuestSession.release(s.config)


def measure_paced(a, res):
    s = session(a.kernel, True, append=f"kxspin_hz={a.paced_hz}")
    try:
        res["paced_free"], _ = run_free(s, a.window)
        text, res["paced_guest"], _ = trace_for(s, "kx trace --out /dev/null", a.paced_seconds)
        res["paced"] = summary_numbers(text)
        print(f"  paced {a.paced_hz}/s: untraced {res['paced_free']:.0f}/s; traced {res['paced']}; "
              f"guest {res['paced_guest']:.0f}/s", flush=True)
    finally:
        GuestSession.release(s.config)


def report(a, res):
    live, rec, paced = res["live"], res["rec"], res["paced"]
    live_rate = live["events"] / live["seconds"]
    rec_rate = rec["recorded"] / rec["seconds"]
    print()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"QEMU 10.0.2, kernel {a.kernel}, 2 vCPUs (MTTCG), spinner flat out")
    rows = [
        ("guest, no plugin (own counter)", f"{res['noplugin']:.0f} getpid/s",
         f"QEMU CPU {res['noplugin_cpu']:.2f} us/call"),
        ("guest, plugin loaded, not tracing", f"{res['idle']:.0f} getpid/s",
         f"{res['idle'] / res['noplugin']:.3f}x of no plugin; QEMU CPU {res['idle_cpu']:.2f} us/call"),
        ("bare gdb breakpoint (do_syscall_64)", f"{res['bare']:.1f} events/s", "1x"),
        ("kx trace --engine plugin (live, full decoding)", f"{live_rate:.0f} events/s",
         f"{live_rate / res['bare']:.0f}x bare gdb; dropped {live['dropped']}; guest {res['live_guest']:.0f}/s; "
         f"QEMU CPU {res['live_cpu']:.2f} us/call"),
        (f"kx trace --record ({a.record_seconds:.0f} s)", f"{rec_rate:.0f} records/s",
         f"{rec_rate / res['bare']:.0f}x bare gdb; dropped {rec['dropped']}; guest {res['rec_guest']:.0f}/s "
         f"({res['rec_guest'] / res['idle']:.2f}x untraced); QEMU CPU {res['rec_cpu']:.2f} us/call; "
         f"{res['rec_bytes'] / 1e6:.0f} MB"),
        ("kx trace --replay (decoding a record file)",
         f"{res['replay']['events'] / res['replay']['seconds']:.0f} events/s", ""),
        (f"paced spinner {a.paced_hz}/s, live decoding ({a.paced_seconds:.0f} s)", f"{paced['events'] / paced['seconds']:.0f} events/s",
         f"dropped {paced['dropped']}; guest {res['paced_guest']:.0f}/s (untraced {res['paced_free']:.0f}/s)"),
    ]
    for label, value, note in rows:
        print(f"{label:<48} {value:>18}   {note}")
    print_targets(a, res, live_rate)


def print_targets(a, res, live_rate):
    """The issue's three targets.  "Untraced" is the better of the two
    untraced rates (without the plugin, and with it loaded but idle)."""
    untraced = max(res["noplugin"], res["idle"])
    kept = res["rec_guest"] / untraced
    verdict = {True: "met", False: "NOT met"}
    print(f"targets: >= 100x bare gdb (live): {verdict[live_rate >= 100 * res['bare']]}; "
          f"--record 0 drops at full rate for {a.record_seconds:.0f} s: {verdict[res['rec']['dropped'] == 0]}; "
          f"guest >= 0.80x untraced under --record ({kept:.2f}x of {untraced:.0f}/s): {verdict[kept >= 0.8]}; "
          f"live decoding keeps up at {a.paced_hz}/s for {a.paced_seconds:.0f} s: "
          f"{verdict[res['paced']['dropped'] == 0]}")


def main(a):
    from kxlab import bootstrap
    bootstrap.ensure_all()
    os.environ.setdefault("KX_QEMU", "10.0")
    res = {}
    print(f"kernel {a.kernel}: QEMU 10.0.2 without the plugin", flush=True)
    s = session(a.kernel, False)
    try:
        res["noplugin"], res["noplugin_cpu"] = run_free(s, a.window)
        print(f"  guest, no plugin:   {res['noplugin']:9.0f} getpid/s, {res['noplugin_cpu']:.2f} us QEMU CPU/call",
              flush=True)
    finally:
        GuestSession.release(s.config)
    print("with the plugin", flush=True)
    measure_plugin_guest(a, res)
    print(f"paced spinner ({a.paced_hz}/s)", flush=True)
    measure_paced(a, res)
    report(a, res)


def add_arguments(ap):
    ap.add_argument("--window", type=float, default=10.0, help="seconds per rate window (default %(default)s)")
    ap.add_argument("--record-seconds", type=float, default=60.0, help="--record run (default %(default)s)")
    ap.add_argument("--paced-hz", type=int, default=10000, help="paced spinner rate (default %(default)s)")
    ap.add_argument("--paced-seconds", type=float, default=60.0,
                    help="the paced spinner's live trace (default %(default)s)")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--hits", type=int, default=100)
    add_arguments(ap)
    main(ap.parse_args())
