"""Build the guest's userland from the sources in scripts/guest/.

/init: kxboot, a short boot step (records in /dev/kmsg, the kernel module
of modules.py) that then execs /sbin/init, a link to /bin/kxwork (so pid
1's comm stays "init").
/bin/kxwork: the static C workload (one binary, two roles).
/bin/hello64: the seed's `syscall` hello.  /bin/hello32: the seed's
`int $0x80` hello, assembled with `as --32` and linked with `ld -m elf_i386`.
/bin/sysenter32: the same write through the vDSO's __kernel_vsyscall
(sysenter on Intel).  /bin/kxseccomp and /bin/kxcreds: one static binary
(kxsec.c) that installs seccomp filters or sets credentials, as ground truth.
/bin/kxsys: the strace oracle's workload (no libc; kxwork runs it under
strace with kxmode=strace).

The archive is written here in the kernel's "newc" cpio format, which lets us
include /dev/console without mknod or root.  It is cached by the hash of the
sources, so a rebuild happens only when they change.
"""
import gzip
import hashlib
import io
import pathlib
import subprocess
import tempfile

from . import paths

SOURCES = ("kxwork.c", "hello64.S", "hello32.S", "sysenter32.S", "kxsec.c", "kxboot.c", "kxsys.c", "raw_syscall.h", "kxguest.h")
TARGET_FILE_TEXT = b"kx lab: the file the workload opens every round\n"


def _build(out: pathlib.Path) -> dict:
    src = paths.GUEST_SRC
    run = lambda *argv: subprocess.run(argv, check=True, cwd=out)  # noqa: E731
    run("gcc", "-static", "-O2", "-Wall", "-Werror", "-o", "kxwork", str(src / "kxwork.c"))
    run("gcc", "-static", "-O2", "-Wall", "-Werror", "-o", "kxboot", str(src / "kxboot.c"))
    run("as", "-o", "hello64.o", str(src / "hello64.S"))
    run("ld", "-o", "hello64", "hello64.o")
    run("as", "--32", "-o", "hello32.o", str(src / "hello32.S"))
    run("ld", "-m", "elf_i386", "-o", "hello32", "hello32.o")
    run("as", "--32", "-o", "sysenter32.o", str(src / "sysenter32.S"))
    run("ld", "-m", "elf_i386", "-o", "sysenter32", "sysenter32.o")
    run("gcc", "-static", "-O2", "-Wall", "-Werror", "-o", "kxsec", str(src / "kxsec.c"))
    run("gcc", "-static", "-nostdlib", "-O2", "-Wall", "-Werror", "-fno-stack-protector", "-fno-builtin",
        "-o", "kxsys", str(src / "kxsys.c"))
    return {name: (out / name).read_bytes()
            for name in ("kxwork", "hello64", "hello32", "sysenter32", "kxsec", "kxboot", "kxsys")}


class _Newc:
    """Writer for the SVR4 "newc" cpio format the kernel unpacks."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0)) -> None:
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name_b), 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name_b)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, mode=0o755):
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def link(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def hash_of(files) -> str:
    """The cache key of a userland: a hash of its source files and of the
    module that builds it."""
    h = hashlib.sha256()
    for f in files:
        h.update(pathlib.Path(f).read_bytes())
    return h.hexdigest()[:16]


def sources_hash() -> str:
    return hash_of([paths.GUEST_SRC / name for name in SOURCES] + [__file__])


def build(force: bool = False) -> pathlib.Path:
    """Return the path of the gzip'd initramfs, building it if needed."""
    out_dir = paths.cache_dir() / "initramfs"
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / f"kx-{sources_hash()}.cpio.gz"
    if image.exists() and not force:
        return image
    with tempfile.TemporaryDirectory(prefix="kx-initramfs-") as tmp:
        tmp = pathlib.Path(tmp)
        bins = _build(tmp)
        cpio = _Newc()
        base_dirs(cpio)
        cpio.chardev("dev/kmsg", 1, 11)
        cpio.file("init", bins["kxboot"])
        cpio.link("sbin/init", "/bin/kxwork")
        cpio.file("bin/kxwork", bins["kxwork"])
        cpio.file("bin/kxspin", bins["kxwork"])
        cpio.file("bin/hello64", bins["hello64"])
        cpio.file("bin/hello32", bins["hello32"])
        cpio.file("bin/sysenter32", bins["sysenter32"])
        cpio.file("bin/kxseccomp", bins["kxsec"])
        cpio.file("bin/kxcreds", bins["kxsec"])
        cpio.file("bin/kxsys", bins["kxsys"])
        cpio.file("etc/kx-target", TARGET_FILE_TEXT, 0o644)
        finish(image, out_dir / f"bin-{sources_hash()}", bins, cpio)
    return image


def base_dirs(cpio: "_Newc") -> None:
    """The directories and device nodes every lab userland has."""
    for d in ("bin", "dev", "etc", "proc", "tmp", "sbin", "sys"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)


def finish(image: pathlib.Path, bin_dir: pathlib.Path, bins: dict, cpio: "_Newc") -> None:
    """Write the archive as `image` (atomically) and keep the unpacked
    binaries in `bin_dir`: tests read their ELF symbols
    (hello64_after_write, ...) as ground truth."""
    if not bin_dir.exists():
        staging = pathlib.Path(tempfile.mkdtemp(dir=bin_dir.parent))
        for name, data in bins.items():
            (staging / name).write_bytes(data)
        staging.rename(bin_dir)
    partial = image.with_suffix(".partial")
    partial.write_bytes(gzip.compress(cpio.finish(), compresslevel=6))
    partial.rename(image)


def binaries_dir() -> pathlib.Path:
    build()
    return paths.cache_dir() / "initramfs" / f"bin-{sources_hash()}"


def build_for(kernel) -> pathlib.Path:
    """build() plus, for `kernel`, a second cpio archive with its module
    (modules.py) in /lib/modules/kx/ and Debian's strace with its libraries
    (strace_bundle.py); the kernel unpacks concatenated archives in order.
    Without either: build() alone."""
    from . import modules, strace_bundle
    if getattr(kernel, "arch", "x86_64") == "i386":
        from . import initramfs_i386
        return initramfs_i386.build()
    if getattr(kernel, "arch", "x86_64") == "arm64":
        from . import initramfs_arm64
        return initramfs_arm64.build()
    base = build()
    found = modules.ensure(kernel) if kernel is not None else None
    files = {}
    if found:
        files[f"lib/modules/kx/{found['module'].name}"] = (found["module"].read_bytes(), 0o644)
    for guest_path, data in (strace_bundle.ensure() or {}).items():
        files[guest_path] = (data, 0o755)
    if not files:
        return base
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name][0])
    image = base.with_name(f"{base.name[:-len('.cpio.gz')]}-{h.hexdigest()[:12]}.cpio.gz")
    if image.exists():
        return image
    extra = _Newc()
    dirs = sorted({str(pathlib.PurePosixPath(n).parents[k]) for n in files
                   for k in range(len(pathlib.PurePosixPath(n).parents) - 1)})
    for d in dirs:
        extra.dir(d)
    for name, (data, mode) in sorted(files.items()):
        extra.file(name, data, mode)
    partial = image.with_suffix(".partial")
    partial.write_bytes(base.read_bytes() + gzip.compress(extra.finish(), compresslevel=6))
    partial.rename(image)
    return image
