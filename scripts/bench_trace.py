#!/usr/bin/env python3
"""Benchmark: syscall tracing rates, gdb breakpoints against kx's RSP loop.

  python3 scripts/bench_trace.py [--kernel 6.1] [--hits 200] [--rounds 3]
                                 [--point do_syscall_64] [--gdb-engine]

Boots the lab guest with the back-to-back getpid workload (`--workload
spin`: 2 vCPUs, TCG, Haswell, pti=on) and breaks at the trace point (default:
the first instruction of do_syscall_64).  In one run it prints:

  bare gdb     a gdb breakpoint whose Python stop() returns False: gdb's own
               stop, step-over (z0, vCont;s, Z0) and resume on every hit;
  kx trace     the `kx trace --count N --out /dev/null` command itself, with
               its loop engine: every event fully decoded (task, name, typed
               arguments, strings) and written as JSON; its own summary's
               rate, set-up and resync included (--gdb-engine: also the
               gdb-breakpoint engine at entry_SYSCALL_64);
  kx loop      gdbext.machine.rsp_loop.run() with a decoding callback that does
               what full decoding needs: pt_regs (168 bytes at rdi), the
               current task (per-cpu current_task at __per_cpu_offset[cpu]),
               its pid and comm, and one user string (64 bytes at the user
               stack pointer, standing in for a path argument); over the
               borrowed socket, and over `maint packet`;
  raw floor    the same loop code (rsp_loop.drive) in a separate Python process on
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

--plugin measures `kx trace --engine plugin` on QEMU 10.0.2 instead (the
guest's own getpid rate untraced and traced, live decoding, --record,
--replay, a paced spinner, ratios against bare gdb): scripts/bench_plugin.py.
"""
import argparse
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts")]

from kxlab import bootstrap  # noqa: E402
from tests.guestlib import GuestSession, LabConfig  # noqa: E402
from gdbext import arch  # noqa: E402
from gdbext.decoders.rsp_packets import parse_g  # noqa: E402
from gdbext.machine import rsp_loop, rsp_transport  # noqa: E402  (the raw client runs without gdb)

# Runs inside gdb (sourced once).  Prints one JSON line per call.
GDB_SIDE = r'''
import json, time
import gdb
from gdbext import machine
from gdbext.decoders.bits import MASK64
from gdbext.machine import rsp_loop

def _eval(expr):
    return int(gdb.parse_and_eval(expr)) & MASK64

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
        # read_kernel: the stopped vCPU may be on a user CR3 (KPTI)
        "per_cpu_offset": [int.from_bytes(machine.read_kernel(_eval("(long)&__per_cpu_offset") + 8 * i, 8),
                                          "little") for i in range(ncpu)],
        "pid": _eval("(long)&((struct task_struct *)0)->pid"),
        "comm": _eval("(long)&((struct task_struct *)0)->comm"),
        "sp": _eval("(long)&((struct pt_regs *)0)->sp"),
        "ptregs_size": _eval("sizeof(struct pt_regs)"),
    }
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
    r = rsp_loop.run([KXB["addr"]], on_hit, max_hits=n + 1, transport_kind=transport)
    # Same clock as the bare breakpoint: hit 1 to hit n + 1.
    print(json.dumps({"hits": r.hits - 1, "seconds": times[-1] - times[0],
                      "transport": r.transport, "plan": r.plans[KXB["addr"]].text,
                      "steps": r.steps, "spurious": r.spurious, "tasks": pids}))
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
        self.t = rsp_transport.SocketTransport(sock)
        # QEMU stops the guest on connect and says so (T02): drain it.
        while self.t.recv(0.3) is not None:
            pass
        self.t.request("qSupported:multiprocess+;xmlRegisters=i386")
        # QEMU answers p/P (single registers, used to emulate a push) only
        # for a client that has read the target description, as gdb does.
        self.t.request("qXfer:features:read:target.xml:0,ffb")

    def close(self):
        self.t.request("D;1")       # detach: QEMU resumes the guest
        self.t.sock.close()


def raw_floor(raw, info, n, decode=False):
    plans = {info["addr"]: arch.current().plan_resume(info["addr"], bytes.fromhex(info["code"]))}
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
    r = rsp_loop.drive(raw.t, plans, on_hit, max_hits=n + 1)
    assert r.hits == n + 1, r
    return n, times[-1] - times[0]


def raw_no_progress(raw, info, n):
    """c / stop / g without stepping over the breakpoint."""
    t = raw.t
    layout = arch.current().gdb_register_layout()
    assert t.request(f"Z0,{info['addr']:x},1") == "OK"
    seen = set()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            t.resume("c")
            stop = t.wait_stop(30)
            regs = parse_g(t.request("g"), layout)
            seen.add((stop, regs["rsi"], regs["rdi"]))
        dt = time.perf_counter() - t0
    finally:
        t.request(f"z0,{info['addr']:x},1")
    return n, dt, len(seen)


def cpu_seconds(pid) -> float:
    """User + system CPU time of every thread of process `pid`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


LABELS = {
    "bare": "bare gdb breakpoint (stop() -> False)",
    "kxtrace": "`kx trace` (loop engine, full decoding)",
    "kxtrace-gdb": "`kx trace --engine gdb`",
    "loop": "kx loop + decoding (socket)",
    "loop-maint": "kx loop + decoding (maint packet)",
    "raw": "raw floor: c, stop, g (gdb detached)",
    "raw-decode": "raw floor + the same decoding reads",
    "noprogress": "raw, no step-over (no progress!)",
}


class Bench:
    """One benchmark run on one guest: interleaved samples of every mode."""

    def __init__(self, s, a):
        self.s, self.a = s, a
        self.stats = {k: {"wall": [], "flush": [], "qemu": [], "gdb": []} for k in LABELS}
        self.notes = {}

    def sample(self, mode, fn):
        """fn() -> (hits, seconds from hit 1 to the last); also counts QEMU's
        TB flushes and the CPU time QEMU and gdb spent, per hit."""
        s = self.s
        f0, q0 = jit_flushes(s.guest), cpu_seconds(s.guest.proc.pid)
        g0 = cpu_seconds(s.gdb.proc.pid)
        n, seconds = fn()
        st = self.stats[mode]
        st["wall"].append(seconds / n)
        st["flush"].append((jit_flushes(s.guest) - f0) / (n + 1))
        st["qemu"].append((cpu_seconds(s.guest.proc.pid) - q0) / (n + 1))
        st["gdb"].append((cpu_seconds(s.gdb.proc.pid) - g0) / (n + 1))
        print(f"  {mode:<11} {seconds / n * 1e3:7.2f} ms/hit", flush=True)

    def bare(self):
        s = self.s
        s.cmd(f"python kxb_bare_arm({self.a.hits})")
        s.cont()                       # gdb's own continue, as a user would run it
        s.wait_stopped(timeout=600)
        r = gdb_json(s, "python kxb_bare_result()")
        return r["hits"], r["seconds"]

    def kxtrace(self, engine):
        # The whole command as a user runs it: set-up, every event fully
        # decoded (task, name, typed arguments, strings) and written as JSON
        # to a file, cleanup and resync; the rate is its own summary's.
        s = self.s
        mark = len(s.gdb.transcript)
        out = s.gdb.cmd(f"kx trace --count {self.a.hits} --out /dev/null --engine {engine}", timeout=600)
        if "kx trace:" not in out:      # the gdb engine under MI async: it ends at the next stop
            s.running = True
            s.wait_stopped(timeout=600)
            s.cmd("echo")
            out = "\n".join(s.gdb.transcript[mark:])
        m = re.search(r"kx trace: (\d+) events in ([\d.]+) s", out)
        if not m:
            raise RuntimeError(f"no kx trace summary in:\n{out[-2000:]}")
        return int(m.group(1)), float(m.group(2))

    def loop(self, transport):
        r = gdb_json(self.s, f"python kxb_loop({self.a.hits}, {transport!r})")
        self.notes.update(tasks=r["tasks"], steps=r["steps"])
        self.notes["spurious"] = self.notes.get("spurious", 0) + r["spurious"]
        return r["hits"], r["seconds"]

    def round(self, info):
        s, a = self.s, self.a
        self.sample("bare", self.bare)
        self.sample("kxtrace", lambda: self.kxtrace("loop"))
        if a.gdb_engine:
            self.sample("kxtrace-gdb", lambda: self.kxtrace("gdb"))
        self.sample("loop", lambda: self.loop("socket"))
        self.sample("loop-maint", lambda: self.loop("maint"))
        s.gdb.cmd("detach")
        raw = Raw(s.guest.port)
        try:
            self.sample("raw", lambda: raw_floor(raw, info, a.hits))
            self.sample("raw-decode", lambda: raw_floor(raw, info, a.hits, decode=True))

            def noprogress():
                n, dt, self.notes["distinct"] = raw_no_progress(raw, info, a.hits)
                return n, dt
            self.sample("noprogress", noprogress)
        finally:
            raw.close()
            s.gdb.mi(f"-target-select remote 127.0.0.1:{s.guest.port}", timeout=60)

    def report(self):
        stats, notes, hits = self.stats, self.notes, self.a.hits
        med = {k: {m: statistics.median(v) for m, v in st.items()} for k, st in stats.items() if st["wall"]}
        print()
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
              "(wall times grow with it; the CPU columns much less)")
        print(f"{'mode':<38} {'ms/hit':>7} {'ev/s':>6} {'flush/hit':>9} {'QEMU cpu':>9} {'gdb cpu':>8}"
              f"   wall samples (ms/hit)")
        for k, m in med.items():
            print(f"{LABELS[k]:<38} {m['wall'] * 1e3:7.2f} {1 / m['wall']:6.0f} {m['flush']:9.2f} "
                  f"{m['qemu'] * 1e3:7.2f}ms {m['gdb'] * 1e3:6.2f}ms   "
                  + " ".join(f"{x * 1e3:.2f}" for x in stats[k]["wall"]))
        w = {k: m["wall"] for k, m in med.items()}
        print(f"`kx trace` over bare gdb:         {w['bare'] / w['kxtrace']:.2f}x "
              f"({1 / w['kxtrace']:.0f} vs {1 / w['bare']:.0f} events/s); the issue asks for >= 3x")
        print(f"raw floor over bare gdb:          {w['bare'] / w['raw']:.2f}x "
              f"(no client of this QEMU can beat the floor: it is QEMU's own per-stop cost)")
        print(f"speed-up, kx loop over bare gdb:  {w['bare'] / w['loop']:.2f}x "
              f"(maint transport {w['bare'] / w['loop-maint']:.2f}x); the issue asks for >= 3x")
        print(f"kx loop over the raw floor:       {w['loop'] / w['raw']:.2f}x "
              f"({(w['loop'] - w['raw']) * 1e3:+.2f} ms/hit; "
              f"{(w['loop'] - w['raw-decode']) * 1e3:+.2f} ms against the raw client doing the same reads)")
        print(f"the no-progress loop saw {notes.get('distinct')} distinct (stop reply, nr, pt_regs) in "
              f"{hits} 'hits': it re-reports one breakpoint and the guest never moves")
        print(f"kx loop: {notes.get('steps')} single-steps in the last sample, {notes.get('spurious')} "
              f"spurious debug stops in all; tasks decoded: {notes.get('tasks')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--hits", type=int, default=100, help="hits per sample (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    ap.add_argument("--point", default="do_syscall_64", help="trace point symbol (default %(default)s)")
    ap.add_argument("--gdb-engine", action="store_true", help="also time `kx trace --engine gdb`")
    ap.add_argument("--plugin", action="store_true", help="the plugin engine on QEMU 10.0.2 (bench_plugin.py)")
    import bench_plugin
    bench_plugin.add_arguments(ap)
    a = ap.parse_args()
    if a.plugin:
        return bench_plugin.main(a)
    bootstrap.ensure_all()
    s = GuestSession.get(LabConfig(kernel=a.kernel, workload="spin"))
    helper = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    helper.write(GDB_SIDE)
    helper.close()
    bench = Bench(s, a)
    try:
        s.cmd(f"source {helper.name}")
        info = gdb_json(s, f"python kxb_setup({a.point!r})")
        plan = arch.current().plan_resume(info["addr"], bytes.fromhex(info["code"]))
        print(f"kernel {a.kernel}, trace point {a.point} = {info['addr']:#x} ({plan.text}: "
              f"the loop resumes with a {plan.kind}), {a.hits} hits x {a.rounds} rounds", flush=True)
        for rnd in range(a.rounds):
            print(f"round {rnd + 1}", flush=True)
            bench.round(info)
        bench.report()
    finally:
        os.unlink(helper.name)
        s.close()


if __name__ == "__main__":
    main()
