"""Print every path one process opens with openat(), as it happens.

In gdb with kx loaded (./scripts/lab gdb) and the guest stopped:

    (gdb) python import sys; sys.argv = ["openat_paths", "kxwork", "--seconds", "10"]
    (gdb) source scripts/examples/openat_paths.py
    85 kxwork openat("/etc/kx-target") = 3
    ...
    openat_paths: 12 openat calls by pid 85 in 10.0 s

PROCESS is a pid or a comm; every thread of its process counts.  The guest
runs on kx's breakpoint loop for --seconds and is stopped again afterwards.
"""
import argparse
import json

from gdbext import api


def process_id(word: str) -> int:
    """The tgid of a pid, or of the oldest process with that comm (a
    forked child keeps its parent's comm until it calls execve)."""
    if word.isdigit():
        return api.task(int(word)).tgid
    tgids = [t.tgid for t in api.tasks() if t.comm == word]
    if not tgids:
        raise api.KxError(f"no task named {word!r}")
    return min(tgids)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="openat_paths", description="print every openat path of one process")
    p.add_argument("process", help="pid or comm")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default %(default)s)")
    p.add_argument("--no-returns", dest="returns", action="store_false",
                   help="print at entry, without the result")
    args = p.parse_args(argv)
    tgid = process_id(args.process)

    @api.on_syscall("openat", pid=tgid, returns=args.returns)
    def show(ev):
        path = ev.arg("filename").string
        result = f" = {ev.ret}" if ev.ret is not None else ""
        print(f"{ev.pid} {ev.comm} openat({json.dumps(path)}){result}")
        return False

    try:
        run = api.run(seconds=args.seconds)
    finally:
        show.remove()
    print(f"openat_paths: {show.calls} openat calls by pid {tgid} in {run.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    api.script_main(main)
