#!/usr/bin/env python3
"""Benchmark: syscall tracing rates, gdb breakpoints against kx's RSP loop.

  python3 scripts/bench_trace.py [--kernel 6.1] [--hits 200] [--rounds 3]
                                 [--point do_syscall_64]

Boots the lab guest with the back-to-back getpid workload (`--workload
spin`: 2 vCPUs, TCG, Haswell, pti=on) and breaks at the trace point (default:
the first instruction of do_syscall_64).  In one run it prints:

  bare gdb     a gdb breakpoint whose Python stop() returns False: gdb's own
               stop, step-over (z0, vCont;s, Z0) and resume on every hit;
  kx loop      gdbext.target.rsp.run() with a decoding callback that does
               what full decoding needs: pt_regs (168 bytes at rdi), the
               current task (per-cpu current_task at __per_cpu_offset[cpu]),
               its pid and comm, and one user string (64 bytes at the user
               stack pointer, standing in for a path argument); over the
               borrowed socket, and over `maint packet`;
  raw floor    the same loop code (rsp.drive) in a separate Python process on
               its own connection while gdb is detached: `c`, stop reply,
               `g`, nothing else; and once with the same decoding reads;
  no progress  the raw `c` / stop reply / `g` loop *without* stepping over
               the breakpoint: QEMU re-reports the same breakpoint and the
               guest never moves (this is what a 0.27 ms "raw RSP" figure
               measures);

then the ratios.  Modes are interleaved round by round and the median is
reported, because the host's load (other guests) moves every number; the
load average is printed too.  "flush/hit" is QEMU's TB flush count (`info
jit`) per hit: QEMU 7.2 flushes its translation cache on every debug stop.
Numbers only: this is not a test.
"""
import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from kxlab import bootstrap  # noqa: E402
from tests.guestlib import GuestSession, LabConfig  # noqa: E402
from gdbext.target import rsp  # noqa: E402  (its pure parts run without gdb)

# Runs inside gdb (sourced once).  Prints one JSON line per call.
GDB_SIDE = r'''
import json, time
import gdb
from gdbext.target import rsp

def _eval(expr):
    return int(gdb.parse_and_eval(expr)) & rsp.MASK64

def kxb_setup(point):
    addr = _eval(f"(long)&{point}")
    try:
        cur = _eval("(long)&current_task")                 # up to 6.1
    except gdb.error:
        cur = _eval("(long)&pcpu_hot.current_task")        # 6.2 .. 6.14
    ncpu = len(gdb.selected_inferior().threads())
    info = {
        "addr": addr,
        "current": cur,
        "per_cpu_offset": [_eval(f"__per_cpu_offset[{i}]") for i in range(ncpu)],
        "pid": _eval("(long)&((struct task_struct *)0)->pid"),
        "comm": _eval("(long)&((struct task_struct *)0)->comm"),
        "sp": _eval("(long)&((struct pt_regs *)0)->sp"),
        "ptregs_size": _eval("sizeof(struct pt_regs)"),
    }
    from gdbext.target import machine
    info["code"] = machine.read_kernel(addr, 16).hex()   # KPTI-safe
    global KXB
    KXB = info
    print(json.dumps(info))

def kxb_decode(hit):
    i = KXB
    regs = hit.read(hit.regs["rdi"], i["ptregs_size"])
    task = hit.read_u64(i["per_cpu_offset"][hit.cpu] + i["current"])
    pid = int.from_bytes(hit.read(task + i["pid"], 4), "little")
    comm = hit.read(task + i["comm"], 16).split(b"\0")[0]
    sp = int.from_bytes(regs[i["sp"]:i["sp"] + 8], "little")
    try:
        hit.read_string(sp, 64)
    except Exception:
        pass
    return pid, comm

class _Bare(gdb.Breakpoint):
    def stop(self):
        self.n += 1
        if self.n == 1:
            self.t0 = time.perf_counter()
        elif self.n == self.limit:
            self.t1 = time.perf_counter()
            return True
        return False

def kxb_bare_arm(n):
    """A breakpoint that stops gdb at hit n + 1; the driver continues."""
    global BARE
    BARE = _Bare(f"*{KXB['addr']:#x}", internal=True)
    BARE.n, BARE.limit = 0, n + 1

def kxb_bare_result():
    BARE.delete()
    print(json.dumps({"hits": BARE.limit - 1, "seconds": BARE.t1 - BARE.t0}))

def kxb_loop(n, transport):
    pids, times = {}, []
    def on_hit(hit):
        times.append(time.perf_counter())
        pid, comm = kxb_decode(hit)
        pids[comm.decode(errors="replace")] = pid
        return True
    r = rsp.run([KXB["addr"]], on_hit, max_hits=n + 1, transport_kind=transport)
    # Same clock as the bare breakpoint: hit 1 to hit n + 1.
    print(json.dumps({"hits": r.hits - 1, "seconds": times[-1] - times[0],
                      "transport": r.transport, "plan": r.plans[KXB["addr"]].text,
                      "steps": r.steps, "tasks": pids}))
'''


def gdb_json(s, command):
    out = s.cmd(command)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{command}: no JSON in:\n{out}")
    return json.loads(lines[-1])


def jit_flushes(guest) -> int:
    for line in guest.hmp("info jit").splitlines():
        if line.startswith("TB flush count"):
            return int(line.split()[-1])
    return 0


class Raw:
    """Our own RSP connection to QEMU's gdbstub (gdb detached)."""

    def __init__(self, port):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.t = rsp.SocketTransport(sock)
        # QEMU stops the guest on connect and says so (T02): drain it.
        while self.t.recv(0.3) is not None:
            pass

    def close(self):
        self.t.request("D;1")       # detach: QEMU resumes the guest
        self.t.sock.close()


def raw_floor(raw, info, n, decode=False):
    plans = {info["addr"]: rsp.plan_resume(info["addr"], bytes.fromhex(info["code"]))}
    times = []

    def on_hit(hit):
        times.append(time.perf_counter())
        if decode:
            regs = hit.read(hit.regs["rdi"], info["ptregs_size"])
            task = hit.read_u64(info["per_cpu_offset"][hit.cpu] + info["current"])
            hit.read(task + info["pid"], 4)
            hit.read(task + info["comm"], 16)
            sp = int.from_bytes(regs[info["sp"]:info["sp"] + 8], "little")
            try:
                hit.read_string(sp, 64)
            except Exception:
                pass
        return True
    r = rsp.drive(raw.t, plans, on_hit, max_hits=n + 1)
    assert r.hits == n + 1, r
    return n, times[-1] - times[0]


def raw_no_progress(raw, info, n):
    """c / stop / g without stepping over the breakpoint."""
    t = raw.t
    layout = dict(rsp._QEMU_X86_64_LAYOUT)
    assert t.request(f"Z0,{info['addr']:x},1") == "OK"
    seen = set()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            t.resume("c")
            stop = t.wait_stop(30)
            regs = rsp.parse_g(t.request("g"), layout)
            seen.add((stop, regs["rsi"], regs["rdi"]))
        dt = time.perf_counter() - t0
    finally:
        t.request(f"z0,{info['addr']:x},1")
    return n, dt, len(seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--hits", type=int, default=200, help="hits per sample (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    ap.add_argument("--point", default="do_syscall_64", help="trace point symbol (default %(default)s)")
    a = ap.parse_args()
    bootstrap.ensure_all()
    s = GuestSession.get(LabConfig(kernel=a.kernel, workload="spin"))
    helper = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    helper.write(GDB_SIDE)
    helper.close()
    samples = {k: [] for k in ("bare", "loop", "loop-maint", "raw", "raw-decode", "noprogress")}
    flushes = {k: [] for k in samples}
    notes = {}
    try:
        s.cmd(f"source {helper.name}")
        info = gdb_json(s, f"python kxb_setup({a.point!r})")
        plan = rsp.plan_resume(info["addr"], bytes.fromhex(info["code"]))
        print(f"kernel {a.kernel}, trace point {a.point} = {info['addr']:#x} "
              f"({plan.text}: the loop resumes with a {plan.kind}), {a.hits} hits x {a.rounds} rounds")
        attached = True
        for rnd in range(a.rounds):
            if not attached:
                s.gdb.mi(f"-target-select remote 127.0.0.1:{s.guest.port}", timeout=60)
                attached = True
            for mode, cmd in (("bare", None),
                              ("loop", f"python kxb_loop({a.hits}, 'socket')"),
                              ("loop-maint", f"python kxb_loop({a.hits}, 'maint')")):
                f0 = jit_flushes(s.guest)
                if cmd is None:     # gdb's own continue, as a user would run it
                    s.cmd(f"python kxb_bare_arm({a.hits})")
                    s.cont()
                    s.wait_stopped(timeout=600)
                    cmd = "python kxb_bare_result()"
                r = gdb_json(s, cmd)
                flushes[mode].append((jit_flushes(s.guest) - f0) / (a.hits + 1))
                samples[mode].append(r["seconds"] / r["hits"])
                if mode == "loop":
                    notes["tasks"] = r["tasks"]
                    notes["steps"] = r["steps"]
            s.gdb.cmd("detach")
            attached = False
            raw = Raw(s.guest.port)
            try:
                for mode in ("raw", "raw-decode"):
                    f0 = jit_flushes(s.guest)
                    n, dt = raw_floor(raw, info, a.hits, decode=(mode == "raw-decode"))
                    flushes[mode].append((jit_flushes(s.guest) - f0) / (n + 1))
                    samples[mode].append(dt / n)
                f0 = jit_flushes(s.guest)
                n, dt, distinct = raw_no_progress(raw, info, a.hits)
                flushes["noprogress"].append((jit_flushes(s.guest) - f0) / n)
                samples["noprogress"].append(dt / n)
                notes["distinct"] = distinct
            finally:
                raw.close()
        if not attached:
            s.gdb.mi(f"-target-select remote 127.0.0.1:{s.guest.port}", timeout=60)

        med = {k: statistics.median(v) for k, v in samples.items()}
        label = {
            "bare": "bare gdb breakpoint (stop() -> False)",
            "loop": "kx loop, decoding (socket)",
            "loop-maint": "kx loop, decoding (maint packet)",
            "raw": "raw floor: c, stop, g (gdb detached)",
            "raw-decode": "raw + the same decoding reads",
            "noprogress": "raw without step-over (no progress!)",
        }
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"{'mode':<40} {'ms/hit':>8} {'events/s':>9} {'flush/hit':>9}   samples (ms/hit)")
        for k in samples:
            print(f"{label[k]:<40} {med[k] * 1e3:8.3f} {1 / med[k]:9.0f} "
                  f"{statistics.median(flushes[k]):9.2f}   "
                  + " ".join(f"{x * 1e3:.2f}" for x in samples[k]))
        print(f"kx loop / bare gdb speed-up:  {med['bare'] / med['loop']:.2f}x (maint transport "
              f"{med['bare'] / med['loop-maint']:.2f}x)")
        print(f"raw floor / kx loop:          {med['loop'] / med['raw']:.2f}x "
              f"(loop is {(med['loop'] - med['raw']) * 1e3:.2f} ms/hit above the floor; "
              f"{(med['loop'] - med['raw-decode']) * 1e3:.2f} ms above the raw client doing the same reads)")
        print(f"no-progress loop: {notes.get('distinct')} distinct (stop, nr, pt_regs) tuples "
              f"in {a.hits} 'hits'; the loop single-stepped {notes.get('steps')} times; "
              f"tasks seen: {notes.get('tasks')}")
    finally:
        os.unlink(helper.name)
        s.close()


if __name__ == "__main__":
    main()
