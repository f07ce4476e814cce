"""Count system calls per comm for N seconds and print a table.

In gdb with kx loaded and the guest stopped:

    (gdb) python import sys; sys.argv = ["syscalls_per_comm", "--seconds", "5"]
    (gdb) source scripts/examples/syscalls_per_comm.py
    COMM               CALLS     /s  TOP SYSCALLS
    kxwork               210   42.0  write 45, wait4 30, clone 30
    hello64               20    4.0  write 10, exit 10
    ...

Calls are counted at their entry, per comm at that moment (a child that
calls execve still has its parent's comm).  --abi all adds the 32-bit
entries (int $0x80, sysenter); --json prints one JSON object instead.
"""
import argparse
import collections
import json

from gdbext import api


def count(seconds: float, abi: str = "64") -> dict:
    """{"seconds", "events", "comms": {comm: {"calls", "syscalls": {name: n}}}}."""
    per_comm = collections.defaultdict(collections.Counter)

    @api.on_syscall(abi=abi)
    def tally(ev):
        per_comm[ev.comm][ev.name or f"nr {ev.nr}"] += 1
        return False

    try:
        run = api.run(seconds=seconds)
    finally:
        tally.remove()
    comms = {comm: {"calls": sum(c.values()), "syscalls": dict(c.most_common())}
             for comm, c in sorted(per_comm.items(), key=lambda kv: -sum(kv[1].values()))}
    return {"seconds": run.seconds, "events": tally.calls, "comms": comms}


def table(data: dict) -> str:
    seconds = max(data["seconds"], 1e-9)
    lines = [f"{'COMM':<16} {'CALLS':>8} {'/s':>6}  TOP SYSCALLS"]
    for comm, c in data["comms"].items():
        top = ", ".join(f"{name} {n}" for name, n in list(c["syscalls"].items())[:3])
        lines.append(f"{comm:<16} {c['calls']:>8} {c['calls'] / seconds:>6.1f}  {top}")
    lines.append(f"{data['events']} calls in {data['seconds']:.1f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="syscalls_per_comm", description="count syscalls per comm")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to count (default %(default)s)")
    p.add_argument("--abi", default="64", help="64 (default), 32 or all")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = p.parse_args(argv)
    data = count(args.seconds, args.abi)
    print(json.dumps(data, separators=(",", ":")) if args.json else table(data))
    return 0


if __name__ == "__main__":
    api.script_main(main)
