#!/usr/bin/env python3
"""Benchmark: latency of each kx command on a live lab guest.

  python3 scripts/bench_commands.py [--kernel 6.1] [--repeat 5]

Boots the lab guest (2 vCPUs, Haswell, pti=on), stops at entry_SYSCALL_64
and times each command through a real gdb (MI round trip included): the
first run (symbol table and type caches cold) and the median of re-runs.
MSR injection is never cached, so `kx msr` pays its single-steps each time.
Numbers only: this is not a test.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from kxlab import bootstrap  # noqa: E402
from tests.guestlib import GuestSession, LabConfig  # noqa: E402

COMMANDS = ["kx msr --json", "kx msr lstar --json", "kx gdt --json", "kx idt --json",
            "kx idt 0x80 --json", "kx tss --json"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    bootstrap.ensure_all()
    s = GuestSession.get(LabConfig(kernel=a.kernel))
    try:
        s.run_to("entry_SYSCALL_64")
        print(f"{'command':<24} {'first':>9} {'median':>9}")
        for cmd in COMMANDS:
            t0 = time.perf_counter()
            s.cmd(cmd)
            first = time.perf_counter() - t0
            again = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                s.cmd(cmd)
                again.append(time.perf_counter() - t0)
            print(f"{cmd:<24} {first * 1e3:7.1f}ms {statistics.median(again) * 1e3:7.1f}ms")
    finally:
        s.close()


if __name__ == "__main__":
    main()
