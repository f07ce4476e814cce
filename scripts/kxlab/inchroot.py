"""Run a program inside a lab chroot (kxlab/toolchains.py), in the private
mount namespace `unshare -m` gave this process:

    inchroot.py ROOT [--bind DIR ...] -- PROGRAM ARGS...

Binds each DIR at its own path under ROOT, mounts /proc and binds /dev,
then chroots, keeps the working directory, and execs PROGRAM.  The mounts
vanish with the namespace when PROGRAM exits.  Runs as root (the lab does).
"""
import os
import subprocess
import sys


def _mount(args):
    subprocess.run(["mount", *args], check=True)


def main(argv):
    if "--" not in argv or len(argv) < 3:
        sys.exit("usage: inchroot.py ROOT [--bind DIR ...] -- PROGRAM ARGS...")
    split = argv.index("--")
    root, opts, program = argv[0], argv[1:split], argv[split + 1:]
    binds = [opts[i + 1] for i, o in enumerate(opts) if o == "--bind"]
    for host in binds + ["/dev"]:
        inside = os.path.join(root, host.lstrip("/"))
        os.makedirs(inside, exist_ok=True)
        _mount(["--rbind" if host == "/dev" else "--bind", host, inside])
    _mount(["-t", "proc", "proc", os.path.join(root, "proc")])
    cwd = os.getcwd()
    os.chroot(root)
    os.chdir(cwd if os.path.isdir(cwd) else "/")
    os.environ.pop("PYTHONHOME", None)
    os.environ.pop("PYTHONPATH", None)
    os.execvp(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
