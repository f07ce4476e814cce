"""`./scripts/lab demo`: fetch (cached), build, boot, attach, and show kx at a
syscall.  QEMU is owned by this process and dies with it, also on error or
Ctrl-C (PR_SET_PDEATHSIG as a last resort)."""
import subprocess

from . import bootstrap, gdbrun, initramfs, kernels, paths, qemu


def main(args, kernel: kernels.Kernel = None) -> int:
    """`kernel`: one built by hand; else the Debian series args.kernel."""
    bootstrap.ensure_all()
    arch = getattr(args, "arch", kernels.DEFAULT_ARCH)
    bootstrap.ensure_arch(arch)
    kernel = kernel or kernels.fetch(args.kernel, arch=arch)
    bare = getattr(args, "no_vmlinux", False) or not kernel.has_vmlinux
    if bare and arch != "x86_64":
        raise SystemExit("lab: the demo with no vmlinux runs on x86_64 guests")
    initramfs.build_for(kernel)
    x86 = arch in ("x86_64", "i386")
    cpu = args.cpu if args.cpu is not None else ("Haswell" if x86 else "")
    pti = args.pti if args.pti is not None else ("on" if x86 else "auto")
    opts = qemu.BootOptions(kernel=kernel.series, smp=args.smp, cpu=cpu, pti=pti, arch=arch)
    session = {"i386": "demo_session_i386.py", "arm64": "demo_session_arm64.py"}.get(arch, "demo_session.py")
    if bare:
        session = "demo_session_no_vmlinux.py"
    guest = qemu.Guest(opts, kernel=kernel)
    bootstrap.log(f"booting {kernel.abi} ({args.smp} vCPUs, TCG)")
    try:
        guest.start(die_with_parent=True)
        pid = guest.wait_for(r"KX-WORK pid=(\d+)").group(1)
        bootstrap.log(f"workload is running: pid {pid}; attaching gdb")
        argv = gdbrun.gdb_argv(None if bare else kernel.vmlinux, guest.port, batch=True, arch=arch,
                               extra_ex=["set kx color auto",
                                         f"python import sys; sys.path.insert(0, {str(paths.SCRIPTS)!r})",
                                         f"source {paths.SCRIPTS / 'kxlab' / session}"])
        rc = subprocess.run(argv).returncode
        if rc != 0:
            bootstrap.log(f"gdb exited with {rc}")
            return rc
        before = guest.heartbeats()
        guest.wait_for(r"KX-HEARTBEAT", timeout=30, after=len(guest.serial()))
        bootstrap.log(f"detached; the workload runs on (heartbeats: {before} -> {guest.heartbeats()})")
        return 0
    except KeyboardInterrupt:
        bootstrap.log("interrupted")
        return 130
    finally:
        guest.stop()
        bootstrap.log("QEMU stopped")
