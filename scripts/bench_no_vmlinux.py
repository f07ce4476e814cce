#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark: attach-to-first-answer with no vmlinux, cold and cached,
against gdb loading the vmlinux.

  python3 scripts/bench_no_vmlinux.py [--kernel 6.1] [--repeat 3] [--kaslr]

Boots the lab guest, then times whole gdb runs (`gdb -batch`: start,
`target remote`, `kx ps`, exit) from the gdb's start to its exit:

  cold      no vmlinux, an empty kx cache (KX_CACHE): kallsyms found and
            decoded in memory, BTF read, C emitted, gcc -g, ld, objcopy;
  cached    no vmlinux, the cache from the cold run: the build ID matched
            in memory, the symbol file loaded;
  vmlinux   the Debian vmlinux with gdb's index cache (the lab's default),
            and with the index cache off (`--no-index`, ~16 s).

The phases of the no-vmlinux runs come from `kx kernel --json`.  Numbers
only: this is not a test.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from kxlab import bootstrap, gdbrun, qemu, kernels  # noqa: E402


def timed_gdb(vmlinux, port, env, index=True):
    """(seconds, the `kx kernel --json` object or None, output)."""
    argv = gdbrun.gdb_argv(vmlinux, port, batch=True, extra_ex=["kx ps", "kx kernel --json"])
    if not index:
        argv = [a for a in argv if "index-cache enabled on" not in a]
        argv[1:1] = ["-iex", "set index-cache enabled off"]
    t0 = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900).stdout
    dt = time.monotonic() - t0
    info = None
    for line in out.splitlines():
        if line.startswith("{") and '"source"' in line:
            info = json.loads(line)
    if "tasks" not in out:
        raise SystemExit(f"kx ps gave no answer:\n{out[-2000:]}")
    return dt, info, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kaslr", action="store_true")
    ap.add_argument("--no-index", action="store_true", help="also time the vmlinux with no index cache")
    a = ap.parse_args()
    bootstrap.ensure_all()
    k = kernels.fetch(a.kernel, quiet=True)
    guest = qemu.Guest(qemu.BootOptions(kernel=a.kernel, smp=2, cpu="Haswell", pti="on", kaslr=a.kaslr), kernel=k)
    guest.start()
    try:
        rows = {"cold": [], "cached": [], "vmlinux": [], "vmlinux, no index": []}
        phases = {}
        for _ in range(a.repeat):
            cache = tempfile.mkdtemp(prefix="kx-bench-cache-")
            env = dict(os.environ, KX_CACHE=cache)
            try:
                for mode in ("cold", "cached"):
                    dt, info, _out = timed_gdb(None, guest.port, env)
                    rows[mode].append(dt)
                    phases.setdefault(mode, []).append(info["seconds"] if info else {})
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            rows["vmlinux"].append(timed_gdb(k.vmlinux, guest.port, os.environ)[0])
            if a.no_index:
                rows["vmlinux, no index"].append(timed_gdb(k.vmlinux, guest.port, os.environ, index=False)[0])
        load = os.getloadavg()[0]
        print(f"kernel {a.kernel}{' kaslr' if a.kaslr else ''}, {a.repeat} rounds, load {load:.1f}: "
              "gdb start -> target remote -> `kx ps` answered -> exit")
        for mode, values in rows.items():
            if values:
                print(f"  {mode:<18} median {statistics.median(values):6.2f} s   "
                      + " ".join(f"{v:.2f}" for v in values))
        for mode, runs in phases.items():
            print(f"  {mode} phases (first round): "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in runs[0].items()))
    finally:
        guest.stop()


if __name__ == "__main__":
    main()
