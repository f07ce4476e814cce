"""Stop the guest when any task execve()s a program of a given name.

In gdb with kx loaded and the guest stopped:

    (gdb) python import sys; sys.argv = ["stop_at_execve", "hello64"]
    (gdb) source scripts/examples/stop_at_execve.py
    stopped on CPU 1: pid 97 is now "hello64" (execve returned 0); it starts at 0x401000
    (gdb) kx regs

The guest stops where the execve() returns to user space, the new program
loaded and not yet run.  The name is compared with the task's new comm
(the program's basename, at most 15 characters), not with execve's path
argument: right after fork() the child's copy of a read-only string is
often not mapped yet (the kernel faults it in while copying the path), so
at the entry kx may not be able to read it.  On QEMU the guest runs on kx's
breakpoint loop; --engine gdb uses gdb breakpoints and a synchronous
`continue` (gdb's CLI).
"""
import argparse
import os
import time

from gdbext import api

TASK_COMM_LEN = 16   # include/linux/sched.h: comm keeps 15 characters and a NUL


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="stop_at_execve", description="stop when NAME is exec'd")
    p.add_argument("name", help="the program: a basename or a path (its basename is compared)")
    p.add_argument("--seconds", type=float, default=None, help="give up after this long")
    p.add_argument("--engine", choices=("auto", "loop", "gdb"), default="auto")
    args = p.parse_args(argv)
    comm = os.path.basename(args.name)[:TASK_COMM_LEN - 1]
    start = time.monotonic()
    deadline = None if args.seconds is None else start + args.seconds

    # Stop after every successful execve: the task then carries its new comm.
    execs = api.on_syscall("execve", returns=True)(lambda ev: ev.ret == 0)
    try:
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.1)
            run = api.run(seconds=left, engine=args.engine)
            if not run.stopped_by_hook:
                print(f"stop_at_execve: no execve of {comm!r} ({run.reason} after "
                      f"{time.monotonic() - start:.1f} s)")
                return 1
            task = api.current()
            if task.comm == comm:
                break
    finally:
        execs.remove()
    ip = api.pt_regs(task).regs.get("ip")
    where = f"; it starts at {ip:#x}" if ip is not None else ""
    print(f'stopped on CPU {task.running_on}: pid {task.pid} is now "{task.comm}" (execve returned 0){where}')
    return 0


if __name__ == "__main__":
    api.script_main(main)
