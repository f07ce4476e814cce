"""Stop the guest when any task calls execve() on a program of a given name.

In gdb with kx loaded and the guest stopped:

    (gdb) python import sys; sys.argv = ["stop_at_execve", "hello64"]
    (gdb) source scripts/examples/stop_at_execve.py
    stopped on CPU 1: pid 97 (kxwork) execve("/bin/hello64", ...)
    (gdb) kx event

NAME is a basename (hello64) or a full path (/bin/hello64).  On QEMU the
guest runs on kx's breakpoint loop and stops in do_syscall_64 with the
call not yet made; with --engine gdb, gdb breakpoints at entry_SYSCALL_64
decide, and a synchronous `continue` stops there.
"""
import argparse
import sys

from gdbext import api


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="stop_at_execve", description="stop at an execve of NAME")
    p.add_argument("name", help="the program: a basename or a full path")
    p.add_argument("--seconds", type=float, default=None, help="give up after this long (loop engine)")
    p.add_argument("--engine", choices=("auto", "loop", "gdb"), default="auto")
    args = p.parse_args(argv)

    @api.on_syscall("execve")
    def wanted(ev):
        path = ev.arg("filename").string or ""
        return args.name in (path, path.rsplit("/", 1)[-1])

    try:
        run = api.run(seconds=args.seconds, engine=args.engine)
    finally:
        wanted.remove()
    if not run.stopped_by_hook:
        print(f"stop_at_execve: no execve of {args.name!r} ({run.reason} after {run.seconds:.1f} s)")
        return 1
    ev = api.event()
    print(f"stopped on CPU {ev.cpu}: pid {ev.pid} ({ev.comm}) {ev.strace()}")
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
