#!/usr/bin/env python3
"""Benchmark: kx's load time, and gdb's startup with and without the index cache.

  python3 scripts/bench_load.py [--kernel 6.1] [--repeat 3]

Prints, per measurement, the wall time and gdb's peak RSS.  Targets: loading
the extension under 200 ms; the first type lookup with a warm index cache
under ~1 s (vs ~20 s / 1.9 GB cold).  Not a test: numbers only.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kxlab import bootstrap, gdbrun, kernels  # noqa: E402


def run_gdb(argv):
    """Wall time, this gdb's own peak RSS (MB, from wait4) and its output."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        dt = time.monotonic() - t0
        out.seek(0)
        return dt, usage.ru_maxrss / 1024, out.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="also time a cold index cache (~20 s, 2 GB)")
    a = ap.parse_args()
    bootstrap.ensure_all()
    k = kernels.fetch(a.kernel, quiet=True)

    # 1. The extension alone (no vmlinux): gdbext.LOAD_SECONDS is measured by the loader.
    loads = []
    for _ in range(a.repeat):
        dt, rss, out = run_gdb(gdbrun.gdb_argv(batch=True, extra_ex=["python print('LOAD', gdbext.LOAD_SECONDS)"]))
        loads.append(float(out.split("LOAD")[1].split()[0]))
    print(f"kx load (source scripts/gdbinit.py):       median {statistics.median(loads) * 1000:7.1f} ms  (target < 200 ms)")

    # 2. gdb + vmlinux + the first type lookup, warm index cache.
    lookup = ["-ex", "print sizeof(struct pt_regs)"]
    warm = [run_gdb(gdbrun.gdb_argv(k.vmlinux, batch=True) + lookup) for _ in range(a.repeat)]
    print(f"gdb start + first type lookup, warm cache: median {statistics.median(w[0] for w in warm):7.2f} s"
          f"  peak RSS {max(w[1] for w in warm):6.0f} MB")

    # 3. The same with the index cache off (and, with --cold, an empty one).
    argv = gdbrun.gdb_argv(k.vmlinux, batch=True) + lookup
    off = [x if x != "set index-cache enabled on" else "set index-cache enabled off" for x in argv]
    dt, rss, _ = run_gdb(off)
    print(f"gdb start + first type lookup, cache off:  {dt:7.2f} s         peak RSS {rss:6.0f} MB")
    if a.cold:
        tmp = tempfile.mkdtemp()
        cold = [x if not x.startswith("set index-cache directory") else f"set index-cache directory {tmp}" for x in argv]
        dt, rss, _ = run_gdb(cold)
        print(f"gdb start + first type lookup, cold cache: {dt:7.2f} s         peak RSS {rss:6.0f} MB")
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
