"""The `./scripts/lab` command line."""
import argparse
import json
import os
import signal
import sys

from . import bootstrap, gdbrun, initramfs, kernels, qemu, sources


def _kernel_arg(p, custom=False):
    p.add_argument("--kernel", default=kernels.DEFAULT_SERIES,
                   choices=sorted({s for t in kernels.SERIES_BY_ARCH.values() for s in t}),
                   help="Debian kernel series: 5.10 (bullseye), 6.1 and 6.12 (bookworm), "
                        "7.2 (sid) (default %(default)s); arm64: 6.1 and 6.12")
    _arch_arg(p)
    if custom:
        p.add_argument("--kernel-image", metavar="PATH",
                       help="a kernel you built: its bzImage (with --vmlinux)")
        p.add_argument("--vmlinux", metavar="PATH",
                       help="that kernel's vmlinux with DWARF (a System.map beside it is used, "
                            "else one is made from it)")


def _arch_arg(p):
    p.add_argument("--arch", default=kernels.DEFAULT_ARCH, choices=list(kernels.SERIES_BY_ARCH),
                   help="the guest's architecture: x86_64 (cloud-amd64 kernels), i386 "
                        "(Debian's 686-pae 6.1 under qemu-system-i386) or arm64 (cloud-arm64 6.1 "
                        "and 6.12 under qemu-system-aarch64) (default %(default)s)")


def _kernel(a, need_image=True):
    """The kernel a boot/gdb/demo asked for: one built by hand, or None
    (the Debian series of --kernel, fetched by whoever boots it)."""
    image, vmlinux = getattr(a, "kernel_image", None), getattr(a, "vmlinux", None)
    if not image and not vmlinux:
        return None
    if image and not vmlinux and getattr(a, "no_vmlinux", False):
        return kernels.image_only(image)
    if not vmlinux or (need_image and not image):
        raise SystemExit("lab: a kernel you built needs both --kernel-image and --vmlinux "
                         "(or --kernel-image with --no-vmlinux: kx reads its own kallsyms and BTF)")
    return kernels.custom(image or vmlinux, vmlinux)


def _boot_args(p):
    _kernel_arg(p, custom=True)
    p.add_argument("--smp", type=int, default=2, help="vCPUs (default %(default)s)")
    p.add_argument("--kaslr", action="store_true", help="boot with KASLR (default: nokaslr)")
    p.add_argument("--pti", choices=["on", "off", "auto"], default="auto",
                   help="kernel page-table isolation (default %(default)s; KPTI applies "
                        "only on Intel models such as --cpu Haswell)")
    p.add_argument("--accel", choices=["tcg", "kvm"], default="tcg",
                   help="accelerator (default tcg; nested KVM hangs on our machines)")
    p.add_argument("--port", type=int, default=0, help="gdbstub port (default: a free one)")
    p.add_argument("--cpu", default="", help="QEMU CPU model, e.g. Haswell (Intel), max")
    p.add_argument("--memory", default="512M", help="guest memory (default %(default)s)")
    p.add_argument("--lpa2", action="store_true",
                   help="arm64: leave the CPU's FEAT_LPA2 on (6.12 then runs with 52-bit VAs; "
                        "default lpa2=off, 48-bit)")
    p.add_argument("--workload", choices=["loop", "spin", "strace"], default="loop",
                   help="spin adds a child doing back-to-back getpid (benchmarks)")


def _opts(a) -> qemu.BootOptions:
    if getattr(a, "lpa2", False) and (a.arch != "arm64" or a.cpu):
        raise SystemExit("lab: --lpa2 is for --arch arm64 without --cpu (else put lpa2=on in the --cpu model)")
    return qemu.BootOptions(kernel=a.kernel, smp=a.smp, kaslr=a.kaslr, pti=a.pti, accel=a.accel,
                            port=a.port, cpu=a.cpu, memory=a.memory, workload=a.workload,
                            stopped=getattr(a, "stopped", False),
                            plugin=_plugin_socket(a), arch=a.arch, lpa2=getattr(a, "lpa2", False))


def _plugin_socket(a) -> str:
    """--trace-plugin [SOCKET]: the given path, or one per guest name."""
    want = getattr(a, "trace_plugin", None)
    if not want:
        return ""
    if want == "auto":
        return str(qemu.paths.run_dir() / f"{a.name}-kxtrace.sock")
    return os.path.abspath(want)


def cmd_qemu_args(a):
    """The QEMU command prefix with the plugin, shell-quoted."""
    import shlex
    from . import plugin
    try:
        argv = plugin.qemu_args(os.path.abspath(a.trace_plugin))
    except plugin.PluginUnsupported as exc:
        raise SystemExit(f"lab: {exc}") from None
    print(shlex.join(argv))


def cmd_bootstrap(a):
    python = bootstrap.ensure_all(with_drgn=a.with_drgn)
    for arch in a.arch or ():
        bootstrap.ensure_arch(arch)
    print(python)
    from . import toolchains
    for suite in a.gdb or ():
        print(f"{suite}: {toolchains.version(toolchains.ensure(suite))}")


def cmd_fetch(a):
    bootstrap.ensure_apt()
    bootstrap.ensure_arch(a.arch)
    kernel = kernels.fetch(a.kernel, arch=a.arch)
    info = kernel.info()
    if a.source:
        info["source"] = str(sources.fetch(a.kernel, kernel=kernel))
    print(json.dumps(info, indent=1))


def cmd_initramfs(a):
    bootstrap.ensure_apt()
    if a.arch == "i386":
        from . import initramfs_i386
        print(initramfs_i386.build(force=a.force))
        return
    if a.arch == "arm64":
        from . import initramfs_arm64
        print(initramfs_arm64.build(force=a.force))
        return
    print(initramfs.build(force=a.force))


def cmd_boot(a):
    bootstrap.ensure_apt()
    if qemu.load_state(a.name):
        raise SystemExit(f"lab: guest {a.name!r} is already running (./scripts/lab stop)")
    guest = qemu.Guest(_opts(a), kernel=_kernel(a))
    detach = not a.foreground
    try:
        guest.start(die_with_parent=not detach)
    except qemu.plugin.PluginUnsupported as exc:
        raise SystemExit(f"lab: {exc}") from None
    info = guest.describe()
    if a.no_vmlinux or not guest.kernel.has_vmlinux:
        info["vmlinux"] = None     # `lab gdb` attaches with the kernel's own kallsyms and BTF
    qemu.save_state(guest, a.name, info)
    print(json.dumps(info, indent=1))
    print(f"lab: guest ready; attach with: ./scripts/lab gdb --name {a.name}"
          f"   (or in gdb: target remote 127.0.0.1:{guest.port})", file=sys.stderr)
    if detach:
        return 0
    try:
        guest.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        guest.stop()
        qemu.state_file(a.name).unlink(missing_ok=True)


def cmd_stop(a):
    state = qemu.load_state(a.name)
    if not state:
        print(f"lab: no guest {a.name!r} running")
        return 0
    os.killpg(state["pid"], signal.SIGTERM)
    qemu.state_file(a.name).unlink(missing_ok=True)
    print(f"lab: stopped guest {a.name!r} (pid {state['pid']})")


def cmd_status(a):
    state = qemu.load_state(a.name)
    print(json.dumps(state, indent=1) if state else f"lab: no guest {a.name!r} running")


def cmd_gdb(a):
    bootstrap.ensure_all()
    port = a.port
    vmlinux = None
    arch = a.arch
    state = qemu.load_state(a.name)
    booted_bare = False
    if state and not port:
        port = state["port"]
        vmlinux = state["vmlinux"]
        arch = state.get("arch", arch)
        booted_bare = vmlinux is None
    bootstrap.ensure_arch(arch)
    if booted_bare and not a.no_vmlinux:
        print("lab: the guest was booted with no vmlinux: kx reads the kernel's own kallsyms and BTF",
              file=sys.stderr)
    elif not vmlinux and not a.no_vmlinux:
        custom = _kernel(a, need_image=False)
        vmlinux = (custom or kernels.fetch(a.kernel, arch=arch)).vmlinux
    if a.no_vmlinux:
        vmlinux = None   # kx reads the kernel's own kallsyms and BTF (`kx kernel`)
    if not port:
        raise SystemExit("lab: no running guest; start one with ./scripts/lab boot, or pass --port")
    extra = list(a.ex or ())
    if state and state.get("trace_plugin") and not a.port:
        extra.insert(0, f"set kx trace-plugin {state['trace_plugin']}")
    argv = gdbrun.gdb_argv(vmlinux, port, nx=False, extra_ex=extra, arch=arch)
    if a.batch:
        argv.insert(1, "-batch")
    os.execvp(argv[0], argv)


def cmd_demo(a):
    from . import demo
    return demo.main(a, kernel=_kernel(a))


def _boot_parsers(sub):
    """`boot` and `qemu-args`."""
    p = sub.add_parser("boot", help="boot the lab guest under QEMU with a gdbstub")
    _boot_args(p)
    p.add_argument("--stopped", action="store_true", help="freeze the CPU before the first instruction (-S)")
    p.add_argument("--name", default="default", help="name of this guest (default %(default)s)")
    p.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops QEMU")
    p.add_argument("--no-vmlinux", action="store_true",
                   help="no vmlinux for this guest (e.g. --kernel-image with a stripped bzImage): "
                        "`lab gdb` attaches with kx reading the kernel's own kallsyms and BTF")
    p.add_argument("--trace-plugin", nargs="?", const="auto", default=None, metavar="SOCKET",
                   help="load the kxtrace plugin (QEMU 10.0.2 unless KX_QEMU says otherwise); its "
                        "control socket is SOCKET (default: one per guest in the run directory)")
    p.set_defaults(func=cmd_boot)

    p = sub.add_parser("qemu-args", help="print the QEMU command prefix that loads the kxtrace plugin")
    p.add_argument("--trace-plugin", required=True, metavar="SOCKET",
                   help="the plugin's control socket (kx: set kx trace-plugin SOCKET)")
    p.set_defaults(func=cmd_qemu_args)


def _bootstrap_parser(sub) -> None:
    p = sub.add_parser("bootstrap", help="install the Debian packages and the venv kx needs")
    p.add_argument("--with-drgn", action="store_true",
                   help=f"also install the optional {bootstrap.DRGN} (kx drgn) into the venv")
    p.add_argument("--gdb", action="append", choices=("trixie", "sid"), metavar="SUITE",
                   help="also make the chroot with that Debian suite's gdb (KX_GDB=SUITE; trixie, sid)")
    p.add_argument("--arch", action="append", choices=list(kernels.SERIES_BY_ARCH),
                   help="also what guests of this architecture need (arm64: qemu-system-arm, "
                        "gdb-multiarch, clang and the cross libc/binutils)")
    p.set_defaults(func=cmd_bootstrap)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="lab", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="kx's lab: fetch Debian kernels, build the guest, boot QEMU, attach gdb.\n\n"
                    "  ./scripts/lab demo                 the whole story in one command\n"
                    "  ./scripts/lab boot --smp 2         boot a guest (gdbstub on loopback)\n"
                    "  ./scripts/lab gdb                  attach gdb with kx loaded\n"
                    "  ./scripts/lab stop                 stop it\n\n"
                    "  --kernel 5.10|6.1|6.12|7.2: Debian's cloud-amd64 kernels (bullseye,\n"
                    "  bookworm, sid); --kernel-image/--vmlinux: a kernel you built")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _bootstrap_parser(sub)

    p = sub.add_parser("fetch", help="fetch and cache a Debian cloud kernel with its vmlinux")
    _kernel_arg(p)
    p.add_argument("--source", action="store_true",
                   help="also fetch and unpack its source (linux-source-SERIES) into the cache")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("initramfs", help="build the guest userland from scripts/guest/")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    _arch_arg(p)
    p.set_defaults(func=cmd_initramfs)

    _boot_parsers(sub)

    p = sub.add_parser("stop", help="stop a guest started by `boot`")
    p.add_argument("--name", default="default")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("status", help="show a running guest")
    p.add_argument("--name", default="default")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("gdb", help="start gdb with the vmlinux and kx, attached to the guest")
    _kernel_arg(p, custom=True)
    p.add_argument("--port", type=int, default=0, help="gdbstub port (default: the running guest's)")
    p.add_argument("--name", default="default")
    p.add_argument("--batch", action="store_true", help="run -ex commands and exit")
    p.add_argument("--ex", action="append", metavar="CMD", help="gdb command to run after attaching")
    p.add_argument("--no-vmlinux", action="store_true",
                   help="attach with no vmlinux: kx loads the kernel's own kallsyms and BTF from memory")
    p.set_defaults(func=cmd_gdb)

    p = sub.add_parser("demo", help="fetch, build, boot, attach, and show kx at a syscall")
    _kernel_arg(p, custom=True)
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--cpu", default=None, help="QEMU CPU model (default: Haswell on x86_64, Intel, so KPTI "
                                                 "applies; max,lpa2=off,pauth-impdef=on on arm64)")
    p.add_argument("--pti", choices=["on", "off", "auto"], default=None,
                   help="page-table isolation (default: on for x86_64, auto for arm64)")
    p.add_argument("--no-vmlinux", action="store_true",
                   help="the story with no vmlinux (x86_64): kx reads the kernel's own kallsyms "
                        "and BTF; with --kernel-image, a stripped bzImage is enough")
    p.set_defaults(func=cmd_demo)

    return ap


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        return a.func(a) or 0
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
