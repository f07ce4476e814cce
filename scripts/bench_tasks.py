#!/usr/bin/env python3
"""Benchmark: the kernel model's costs on a live lab guest.

  python3 scripts/bench_tasks.py [--kernel 6.1] [--repeat 5] [--skip-cold]

Prints:
- `kx ps` time per 100 tasks (stopped in a syscall; kx's per-stop cache is
  dropped before each run, so every run re-reads every task_struct);
- first-use latency: a fresh gdb, attach, then the first `kx task`, with
  gdb's index cache warm and cold (an empty cache directory: gdb then has
  to index the vmlinux's DWARF itself, ~16 s / 1.8 GB).
Targets (informal): ps < 50 ms per 100 tasks; first use < 2 s warm.
Numbers only: this is not a test.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from kxlab import bootstrap, gdbrun  # noqa: E402
from tests.guestlib import GuestSession, LabConfig  # noqa: E402


def time_ps(s, repeat):
    s.run_to("ksys_write")
    runs, count = [], 0
    for _ in range(repeat):
        s.cmd("python import gdbext.machine as m; m.invalidate()")  # as after a new stop
        t0 = time.perf_counter()
        out = s.cmd("kx ps --json")
        runs.append(time.perf_counter() - t0)
        count = json.loads(out.strip().splitlines()[-1])["count"]
    med = statistics.median(runs)
    print(f"kx ps: {count} tasks, median {med * 1e3:.1f} ms, {med * 1e3 * 100 / count:.1f} ms per 100 tasks "
          f"(min {min(runs) * 1e3:.1f} ms over {repeat} runs)")


def first_use(s, index_dir=None):
    """Seconds from starting gdb to the first `kx task` answer."""
    extra = [f"set index-cache directory {index_dir}"] if index_dir else []
    t0 = time.perf_counter()
    g = gdbrun.GdbMI(gdbrun.gdb_argv(s.kernel.vmlinux, None, mi=True,
                                     extra_iex=["set mi-async on"] + extra))
    try:
        g.mi(f"-target-select remote 127.0.0.1:{s.guest.port}", timeout=120)
        g.cmd("kx task --json", timeout=600)
        return time.perf_counter() - t0
    finally:
        try:
            g.cmd_full("detach")
        finally:
            g.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold index-cache run (~20 s)")
    a = ap.parse_args()
    bootstrap.ensure_all()
    s = GuestSession.get(LabConfig(kernel=a.kernel))
    try:
        time_ps(s, a.repeat)
        # Hand the stub to fresh gdbs: only one client at a time.
        s.gdb.cmd_full("detach")
        s.running = False
        print(f"first use, warm index cache: {first_use(s):.2f} s")
        if not a.skip_cold:
            with tempfile.TemporaryDirectory() as empty:
                print(f"first use, cold index cache: {first_use(s, empty):.2f} s")
        s.gdb.mi(f"-target-select remote 127.0.0.1:{s.guest.port}", timeout=60)
    finally:
        s.close()


if __name__ == "__main__":
    main()
